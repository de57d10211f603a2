"""One whole handset for the two-namespace call tests and the latency/CPU benchmarks: a real
Node on the real asyncio UDP transport, with real call audio (Opus, redundancy, jitter
buffer) on a real paced sound card through the AudioEngine.

Run inside a namespace (`ip netns exec NS python lab/handset_call_peer.py ...`) with
ALSA_CONFIG_PATH and JACK_DEFAULT_SERVER set. The caller looks the callee up, dials, talks for
`--seconds` and hangs up; the callee answers. Each prints one JSON line (statistics, CPU) and
exits; every wait is bounded so a broken network or device fails, never hangs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import sys
import time

from firmware.handset_audio import HandsetAudio
from firmware.transport import start
from hw.soundcard.devices import PcmSettings
from hw.soundcard.engine import AudioEngine, EngineSettings
from hw.soundcard.realtime import become_realtime
from vomp.events import AudioFrameReceived, CallEnded, CallStateChanged, DnaAnswer, PeerFound
from vomp.identity import Identity
from vomp.media import MULAW, OPUS, OUR_CODECS
from vomp.messages import CallState
from vomp.node import Node


def cpu_seconds(engine: AudioEngine) -> tuple[float, float]:
    """CPU of this handset: (its own process, its running engine process)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime, engine.process_cpu_seconds()


class _Done(Exception):
    """talk_for's time is up."""


class Handset:
    def __init__(self, protocol, audio: HandsetAudio, budget: float) -> None:
        self.protocol = protocol
        self.audio = audio
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + budget
        self.seen: list[object] = []
        self.answer_calls = False
        self.final_stats: dict = {}

    async def talk_for(self, seconds: float) -> None:
        """Stay in the call for `seconds`, still handling events (the peer's audio)."""
        until = self.loop.time() + seconds
        with contextlib.suppress(_Done):
            await self.wait_for(lambda e: False, "nothing", until=until)

    async def wait_for(self, predicate, what: str, until: float | None = None):
        while True:
            for event in self.seen:
                if predicate(event):
                    return event
            if until is not None and self.loop.time() >= until:
                raise _Done
            remaining = min(self.deadline, until or self.deadline) - self.loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            try:
                event = await asyncio.wait_for(self.protocol.next_event(), remaining)
            except TimeoutError:
                continue
            self.audio.on_event(event)
            if not isinstance(event, AudioFrameReceived):  # a call has thousands of those
                self.seen.append(event)
            self.react(event)

    def react(self, event) -> None:
        if (
            self.answer_calls
            and isinstance(event, CallStateChanged)
            and event.remote_state == CallState.RINGINGOUT
            and event.local_state < CallState.RINGINGIN
        ):
            self.protocol.command(
                lambda n, now: (n.ring(event.call, now), n.answer(event.call, now))
            )
        if self.in_call(event) and self.audio.call != event.call:
            call = self.protocol.node.calls.get(event.call)
            self.audio.start_call(event.call, call.remote_codecs)
        ended = isinstance(event, CallEnded) or (
            isinstance(event, CallStateChanged) and event.local_state > CallState.INCALL
        )
        if ended and self.audio.call is not None:
            self.final_stats = self.audio.end_call()

    def in_call(self, event) -> bool:
        return isinstance(event, CallStateChanged) and event.local_state == CallState.INCALL


async def main(args: argparse.Namespace) -> dict:
    identity = Identity.from_seed(bytes.fromhex(args.seed))
    # "servald" offers only what servald decodes (µ-law, plain Opus), as a servald peer would
    codecs = (MULAW, OPUS) if args.codecs == "servald" else OUR_CODECS
    node = Node(identity, args.number, args.role, rng=random.Random(args.seed), codecs=codecs)
    pcm = PcmSettings(
        capture_device=args.capture,
        playback_device=args.playback,
        period_frames=args.period_frames,
        playback_prefill_periods=args.prefill,
    )
    if args.realtime_priority:
        # The call path is an audio path too: below the engine, above everything else. Before
        # engine.start(), so the engine's supervisor thread takes it on (see AudioEngine).
        become_realtime(args.realtime_priority)
    engine = AudioEngine(EngineSettings(pcm=pcm))
    engine.start()
    protocol = await start(node, interface=args.interface, port=args.port)
    audio = HandsetAudio(
        engine,
        lambda call, codec, payload, ms: protocol.command(
            lambda n, now: n.send_audio(call, codec, payload, ms)
        ),
    )
    loop = asyncio.get_running_loop()
    audio.attach(loop)
    handset = Handset(protocol, audio, args.budget + args.seconds)
    result: dict = {}
    try:
        if args.role == "callee":
            handset.answer_calls = True
            await handset.wait_for(handset.in_call, "INCALL")
            cpu_start, wall_start = cpu_seconds(engine), time.monotonic()
            ended = await handset.wait_for(lambda e: isinstance(e, CallEnded), "the hang-up")
        else:
            await handset.wait_for(lambda e: isinstance(e, PeerFound), "a neighbour")
            protocol.command(lambda n, now: n.lookup(args.call, now))
            answer = await handset.wait_for(lambda e: isinstance(e, DnaAnswer), "a DNA answer")
            call = protocol.command(lambda n, now: n.dial(answer.sid, now))
            await handset.wait_for(handset.in_call, "the callee to answer")
            cpu_start, wall_start = cpu_seconds(engine), time.monotonic()
            if args.kill_engine_after:
                # The sound card's process dies mid-call (a crash, or a driver hang cut short).
                await handset.talk_for(args.kill_engine_after)
                os.kill(engine._proc.pid, signal.SIGKILL)
                await handset.talk_for(args.seconds - args.kill_engine_after)
            else:
                await handset.talk_for(args.seconds)
            handset.final_stats = audio.end_call()
            protocol.command(lambda n, now: n.hang_up(call, now))
            ended = await handset.wait_for(lambda e: isinstance(e, CallEnded), "the call to end")
        wall = time.monotonic() - wall_start
        cpu_end = cpu_seconds(engine)
        result["cpu_percent_main"] = 100.0 * (cpu_end[0] - cpu_start[0]) / wall
        result["cpu_percent_engine"] = 100.0 * (cpu_end[1] - cpu_start[1]) / wall
        result["cpu_percent"] = result["cpu_percent_main"] + result["cpu_percent_engine"]
        result["call_seconds"] = wall
        result["timed_out"] = ended.timed_out
        result["rounds"] = audio.rounds
        result["stats"] = handset.final_stats
        await asyncio.sleep(0.3)  # let the last status datagrams leave
    finally:
        audio.detach(loop)
        protocol.close()
        engine.stop()
    result["counters"] = dict(node.counters)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["caller", "callee"])
    parser.add_argument("--seed", required=True)
    parser.add_argument("--number", required=True)
    parser.add_argument("--call", help="number the caller dials")
    parser.add_argument("--interface", required=True)
    parser.add_argument("--port", type=int, default=4110)
    parser.add_argument("--capture", required=True, help="ALSA capture device")
    parser.add_argument("--playback", required=True, help="ALSA playback device")
    parser.add_argument("--period-frames", type=int, default=160)
    parser.add_argument("--prefill", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0, help="how long the caller talks")
    parser.add_argument("--realtime-priority", type=int, default=60, help="0: normal")
    parser.add_argument(
        "--kill-engine-after", type=float, default=0.0, help="seconds into the call"
    )
    parser.add_argument("--codecs", choices=["ours", "servald"], default="ours")
    parser.add_argument("--budget", type=float, default=30.0)
    arguments = parser.parse_args()
    profile_to = os.environ.get("HANDSET_PROFILE")  # a path prefix: where cProfile writes
    try:
        if profile_to:
            import cProfile

            with cProfile.Profile() as profiler:
                outcome = asyncio.run(main(arguments))
            profiler.dump_stats(f"{profile_to}.{arguments.role}")
        else:
            outcome = asyncio.run(main(arguments))
        print(json.dumps(outcome), flush=True)
    except TimeoutError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        sys.exit(1)
