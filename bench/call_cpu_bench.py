"""CPU of a whole handset during a full-duplex call, in percent of one core.

The same call as m2e_bench: two `handset daemon`s (lab/two_handsets.py) in two network
namespaces, each on its own jackd-paced sound card (alsa backend), with the call's real
settings (Opus with redundancy, jitter buffer, the configured period), 60 s long. Each
handset's CPU is the CPU time of its daemon process plus its engine process over the call,
read from /proc, over the call's wall time. B's microphone is the dummy driver's silence and
A's is a click train, so both directions encode, send, receive and decode. Also reported:
xruns on both handsets over the call (the machine's other load is whatever it is).
CALL_CPU_SECONDS sets the length, CALL_PERIOD_MS the period (default: the daemon's).

`cpu_percent_per_call` leaves out one thing the bench adds and a handset does not have: the
virtual sound card's own threads. ALSA's `jack` plugin, which stands in for the card here,
runs one JACK client thread per PCM inside the engine process (real-time, started by
libjack); each JACK cycle it copies samples between jackd's ports and the plugin's ring buffer
and wakes the reader. On a handset the card's DMA does that, with no thread of ours. Those
threads are the engine process's real-time threads other than its main thread (the engine
starts none itself); `_virtual_card_threads` prints them, and `_all_threads` the whole CPU
with them. What the plugin costs in the engine's own thread (the ALSA plug layer's rate
conversion to the card's 48 kHz, the plugin's poll and copy) stays counted.
"""

from __future__ import annotations

import os
import sys
import time

from firmware.config import AUDIO_RATE, AudioSettings
from lab.two_handsets import run_call

SECONDS = float(os.environ.get("CALL_CPU_SECONDS", "60"))
PERIOD_MS = int(os.environ.get("CALL_PERIOD_MS", str(AudioSettings().period_ms)))


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
    result = run_call(SECONDS, period_frames=AUDIO_RATE * PERIOD_MS // 1000)
    a, b = result.caller, result.callee
    handset = {
        role: side["cpu_percent"] - side["cpu_percent_card_threads"]
        for role, side in (("caller", a), ("callee", b))
    }
    print(f"cpu_percent_per_call {max(handset.values()):.2f} %")
    print(f"cpu_percent_per_call_all_threads {max(a['cpu_percent'], b['cpu_percent']):.2f} %")
    for role, side in (("caller", a), ("callee", b)):
        print(f"cpu_percent_{role} {handset[role]:.2f} %")
        print(f"cpu_percent_{role}_all_threads {side['cpu_percent']:.2f} %")
        print(f"cpu_percent_{role}_engine_process {side['cpu_percent_engine']:.2f} %")
        print(f"cpu_percent_{role}_virtual_card_threads {side['cpu_percent_card_threads']:.2f} %")
        print(f"cpu_percent_{role}_call_process {side['cpu_percent_main']:.2f} %")
    print(f"call_cpu_seconds {a['call_seconds']:.0f} s")
    # How busy the machine was: the speed of a shared VM drifts, so compare figures of runs
    # taken under the same load (the hypervisor's steal time is 0 on real hardware).
    print(f"call_cpu_load_average {os.getloadavg()[0]:.2f} load")
    print(f"call_cpu_steal_percent {100 * result.steal_s / a['call_seconds']:.2f} %")
    print(f"call_cpu_period_ms {PERIOD_MS} ms")
    xruns = a["stats"]["device_xruns"] + b["stats"]["device_xruns"]
    print(f"call_xruns {xruns} xruns")
    print(
        f"call_device_reopens {a['stats']['device_reopens'] + b['stats']['device_reopens']} reopens"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
