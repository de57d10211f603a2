"""CPU of a whole handset during a full-duplex call, in percent of one core.

The same two-namespace call as m2e_bench (real Node, UDP, Opus with redundancy, jitter buffer,
AudioEngine on paced jackd sound cards), 60 s long; each handset reports the CPU time of its
own process plus its engine process over the call. B's microphone is the dummy driver's
silence and A's is a click train, so both directions encode, send, receive and decode. Also
reported: xruns on both handsets over the call (the machine's other load is whatever it is).
"""

from __future__ import annotations

import os
import sys
import time

from hw.soundcard.devices import PcmSettings
from lab.two_handsets import run_call

SECONDS = float(os.environ.get("CALL_CPU_SECONDS", "60"))
PERIOD_FRAMES = int(os.environ.get("M2E_PERIOD_FRAMES", str(PcmSettings().period_frames)))


def engine_alone_cpu_percent(seconds: float = 10.0) -> float:
    """The engine process on the fake card (a sleep per period, no ALSA, no JACK): what the
    engine itself costs, without the virtual card's JACK threads and 48 kHz resampling."""
    from hw.soundcard.engine import AudioEngine, EngineSettings

    with AudioEngine(EngineSettings(backend="fake")) as engine:
        time.sleep(1.0)
        start, began = engine.process_cpu_seconds(), time.monotonic()
        end = began + seconds
        while time.monotonic() < end:
            time.sleep(0.01)
            data = engine.read_capture()
            engine.write_playback(data)
        used = engine.process_cpu_seconds() - start
        return 100.0 * used / (time.monotonic() - began)


def main() -> int:
    print(f"cpu_percent_engine_process_fake_card {engine_alone_cpu_percent():.2f} %")
    if os.geteuid() != 0:
        print("# call_cpu_bench: needs root for network namespaces; skipped", file=sys.stderr)
        return 0
    result = run_call(SECONDS, period_frames=PERIOD_FRAMES)
    a, b = result.caller, result.callee
    print(f"cpu_percent_per_call {max(a['cpu_percent'], b['cpu_percent']):.2f} %")
    print(f"cpu_percent_caller {a['cpu_percent']:.2f} %")
    print(f"cpu_percent_callee {b['cpu_percent']:.2f} %")
    for role, side in (("caller", a), ("callee", b)):
        print(f"cpu_percent_{role}_engine_process {side['cpu_percent_engine']:.2f} %")
        print(f"cpu_percent_{role}_call_process {side['cpu_percent_main']:.2f} %")
    print(f"call_cpu_seconds {a['call_seconds']:.0f} s")
    xruns = a["stats"]["device_xruns"] + b["stats"]["device_xruns"]
    print(f"call_xruns {xruns} xruns")
    print(
        f"call_device_reopens {a['stats']['device_reopens'] + b['stats']['device_reopens']} reopens"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
