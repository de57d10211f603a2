"""The engine process: the DeviceLoop alone in its own real-time process.

Started by `AudioEngine` as `python -m hw.soundcard.engine_process SETTINGS CAPTURE_W
PLAYBACK_R SHM`: it opens the devices, primes playback and runs periods until the device goes
(exit status EXIT_GONE, the supervisor reopens) or the parent does (the playback pipe closes).
A device that opens with the wrong rate, format or period exits with EXIT_MISMATCH, which the
supervisor does not retry. It imports pyalsaaudio and nothing else heavy, so it starts fast
when a USB card comes back.
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
from dataclasses import dataclass

from hw.soundcard.counters import SharedCounters
from hw.soundcard.device_loop import DeviceLoop
from hw.soundcard.devices import DeviceGoneError, DeviceMismatchError, PcmSettings, load_backend
from hw.soundcard.realtime import become_realtime

EXIT_GONE = 3
EXIT_MISMATCH = 4


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
    """Allowance for process start and device open before the first heartbeat."""
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


def run_engine_process(settings: EngineSettings, capture_w: int, playback_r: int, shm: int) -> int:
    """Body of the engine process: open, prime, loop until the device or the parent goes."""
    shared = SharedCounters(shm)
    realtime = settings.realtime_priority > 0 and become_realtime(settings.realtime_priority)
    backend = load_backend(settings.backend)
    try:
        capture = backend.open_capture(settings.pcm)
        playback = backend.open_playback(settings.pcm)
    except DeviceMismatchError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except DeviceGoneError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_GONE

    parent_gone = False

    def deliver(data: bytes) -> bool:
        try:
            os.write(capture_w, data)
        except BlockingIOError:
            return False
        return True

    def fetch() -> bytes:
        nonlocal parent_gone
        try:
            data = os.read(playback_r, 65536)
        except BlockingIOError:
            return b""
        if not data:
            parent_gone = True
        return data

    def wait_for_reply(seconds: float) -> None:
        select.select([playback_r], [], [], seconds)

    loop = DeviceLoop(
        capture,
        playback,
        settings.pcm,
        deliver,
        fetch,
        time.monotonic_ns,
        wait_for_reply,
        shared.call_path_idle,
    )
    loop.counters.realtime = int(realtime)
    loop.prime()
    gc.disable()  # the loop makes no reference cycles; a collection would only add jitter
    try:
        while not parent_gone:
            loop.run_period()
            shared.publish(loop.counters)
    except DeviceGoneError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_GONE
    except BrokenPipeError:
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
    parser.add_argument("capture_w", type=int)
    parser.add_argument("playback_r", type=int)
    parser.add_argument("shm", type=int)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    return run_engine_process(
        EngineSettings.from_json(args.settings), args.capture_w, args.playback_r, args.shm
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
