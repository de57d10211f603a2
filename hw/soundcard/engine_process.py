"""The engine process: the DeviceLoop alone in its own real-time process.

Started by `AudioEngine` as `python -m hw.soundcard.engine_process SETTINGS SHM CAPTURE_W
PLAYBACK_R CALL_R CALL_W`: it opens the devices, primes playback and runs periods until the
device goes (exit status EXIT_GONE, the supervisor reopens) or the parent does (the playback
pipe closes). A device that opens with the wrong rate, format or period exits with
EXIT_MISMATCH, which the supervisor does not retry. During a call it also runs the call's
audio (EngineCall), fed by and feeding the call-record pipes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from hw.soundcard.call_records import pipe_writes
from hw.soundcard.counters import SharedCounters
from hw.soundcard.device_loop import DeviceLoop
from hw.soundcard.devices import (
    AudioBackend,
    CaptureStream,
    DeviceGoneError,
    DeviceMismatchError,
    PcmSettings,
    PlaybackStream,
    load_backend,
)
from hw.soundcard.engine_call import EngineCall
from hw.soundcard.realtime import become_realtime

EXIT_GONE = 3
EXIT_MISMATCH = 4
FALLBACK_PERIOD_MS = 10
"""The period asked for when a card refuses a shorter one: what every card can do."""


@dataclass(frozen=True)
class EngineSettings:
    pcm: PcmSettings = dataclasses.field(default_factory=PcmSettings)
    backend: str | None = None
    """A name of hw.backends.AUDIO; None: $HANDSET_AUDIO_BACKEND, else alsa."""
    realtime_priority: int = 70
    """SCHED_FIFO priority of the engine process; 0: normal scheduling."""
    stall_timeout_s: float = 0.5
    """A running engine whose heartbeat is older than this is hung (e.g. its sound server died
    under a blocking read) and gets killed and restarted."""
    startup_timeout_s: float = 5.0
    """Allowance for process start and device open before the first heartbeat; doubled
    after each start that missed it (up to a minute), back to this once the engine runs."""
    reopen_backoff_s: tuple[float, float] = (0.05, 2.0)
    """First and longest wait between reopen attempts (doubling in between)."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EngineSettings:
        raw = json.loads(text)
        raw["pcm"] = PcmSettings(**raw["pcm"])
        raw["reopen_backoff_s"] = tuple(raw["reopen_backoff_s"])
        return cls(**raw)


@dataclass(frozen=True)
class EnginePipes:
    """The engine process's ends of its pipes to the handset."""

    capture_w: int
    """Captured periods, while the call path wants them (tones, echo test, keypad beeps)."""
    playback_r: int
    """The call path's answer to each: a period to play."""
    call_r: int
    """Call records for the engine: start, end, mute, gain and each received frame."""
    call_w: int
    """Call records from it: each encoded frame, now and then the call's statistics."""


class ParentGone(Exception):
    """The handset closed its end of the playback pipe: it stopped, so the engine stops."""


def piped_loop(
    settings: PcmSettings,
    capture: CaptureStream,
    playback: PlaybackStream,
    pipes: EnginePipes,
    call_path_idle: Callable[[], bool],
    clock_ns: Callable[[], int] = time.monotonic_ns,
) -> DeviceLoop:
    """The DeviceLoop on these streams, talking to the handset through `pipes`; its
    run_period() raises ParentGone once the handset is gone."""
    call = EngineCall(settings)
    # Asked before each read: most periods nothing came, and a read that finds nothing costs
    # a raised BlockingIOError, three times what the poll costs.
    told_readable = _readable(pipes.call_r)
    reply_readable = _readable(pipes.playback_r)

    def deliver(data: bytes) -> bool:
        try:
            os.write(pipes.capture_w, data)
        except BlockingIOError:
            return False
        return True

    def fetch() -> bytes:
        if not reply_readable():
            return b""
        try:
            data = os.read(pipes.playback_r, 65536)
        except BlockingIOError:
            return b""
        if not data:
            raise ParentGone
        return data

    def wait_for_reply(seconds: float) -> None:
        select.select([pipes.playback_r], [], [], seconds)

    def call_round(captured: bytes) -> bytes | None:
        if told_readable():
            with contextlib.suppress(BlockingIOError):
                call.take(os.read(pipes.call_r, 65536))
        if call.audio is None:
            return None
        pcm, records = call.round(captured, clock_ns() / 1e9)
        for chunk in pipe_writes(records):
            try:
                os.write(pipes.call_w, chunk)
            except BlockingIOError:
                loop.counters.call_records_dropped += 1
        return pcm

    loop = DeviceLoop(
        capture,
        playback,
        settings,
        deliver,
        fetch,
        clock_ns,
        wait_for_reply,
        call_path_idle,
        call_round,
    )
    return loop


def _readable(fd: int) -> Callable[[], bool]:
    """A check, without waiting, whether `fd` has something to read (or its writer is gone)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return lambda: bool(poller.poll(0))


def open_devices(
    backend: AudioBackend, pcm: PcmSettings
) -> tuple[CaptureStream, PlaybackStream, PcmSettings]:
    """Capture and playback with `pcm`'s period or, on a card that refuses a period that
    short, with FALLBACK_PERIOD_MS periods; also the settings they were opened with."""
    try:
        return (*_open_both(backend, pcm), pcm)
    except DeviceMismatchError as exc:
        if pcm.period_ms >= FALLBACK_PERIOD_MS:
            raise
        longer = dataclasses.replace(pcm, period_frames=pcm.rate * FALLBACK_PERIOD_MS // 1000)
        print(f"audio engine: {exc}; trying {FALLBACK_PERIOD_MS} ms periods", file=sys.stderr)
        return (*_open_both(backend, longer), longer)


def _open_both(backend: AudioBackend, pcm: PcmSettings) -> tuple[CaptureStream, PlaybackStream]:
    capture = backend.open_capture(pcm)
    try:
        return capture, backend.open_playback(pcm)
    except Exception:
        capture.close()
        raise


def run_engine_process(settings: EngineSettings, pipes: EnginePipes, shm: int) -> int:
    """Body of the engine process: open, prime, loop until the device or the parent goes."""
    shared = SharedCounters(shm)
    realtime = settings.realtime_priority > 0 and become_realtime(settings.realtime_priority)
    backend = load_backend(settings.backend)
    try:
        capture, playback, pcm = open_devices(backend, settings.pcm)
    except DeviceMismatchError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except DeviceGoneError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_GONE

    loop = piped_loop(pcm, capture, playback, pipes, shared.call_path_idle)
    loop.counters.realtime = int(realtime)
    loop.prime()
    gc.disable()  # the loop makes no reference cycles; a collection would only add jitter
    try:
        while True:
            loop.run_period()
            shared.publish(loop.counters)
    except DeviceGoneError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_GONE
    except (BrokenPipeError, ParentGone):
        return 0
    finally:
        shared.publish(loop.counters)
        for stream in (capture, playback):
            with contextlib.suppress(Exception):
                stream.close()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="audio engine process (started by AudioEngine)")
    parser.add_argument("settings")
    parser.add_argument("shm", type=int)
    for name in EnginePipes.__dataclass_fields__:
        parser.add_argument(name, type=int)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    pipes = EnginePipes(**{name: getattr(args, name) for name in EnginePipes.__dataclass_fields__})
    return run_engine_process(EngineSettings.from_json(args.settings), pipes, args.shm)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
