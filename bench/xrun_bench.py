"""Xruns over a long call with both cores loaded (goal: 0 over a 10-minute call).

The two-daemon call of m2e_bench, with one busy-looping process per CPU at normal priority
for the whole call: the engines (SCHED_FIFO 70) and call paths (SCHED_FIFO 60) must still
meet every period. XRUN_SECONDS sets the call length: 120 s by default to keep `make bench`
short; the goal is stated for XRUN_SECONDS=600. XRUN_PERIOD_MS: the period (the daemon's).

The last three lines are what the machine took from the call, which no handset can make up
for: cycles in which the virtual card's own clock or its clients (all above the handset's
priorities) were late, and the hypervisor's steal time. On real hardware they are 0; on a
virtual machine a virtual CPU taken away for 5-10 ms stalls whatever was queued on it, and
at 5 ms periods that is the whole playback cushion.
"""

from __future__ import annotations

import os
import subprocess
import sys

from firmware.config import AUDIO_RATE, AudioSettings
from lab.two_handsets import run_call

SECONDS = float(os.environ.get("XRUN_SECONDS", "120"))
PERIOD_MS = int(os.environ.get("XRUN_PERIOD_MS", str(AudioSettings().period_ms)))
BUSY = "while True: pass"


def main() -> int:
    if os.geteuid() != 0:
        print("# xrun_bench: needs root for network namespaces; skipped", file=sys.stderr)
        return 0
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(os.cpu_count() or 2)]
    try:
        result = run_call(SECONDS, period_frames=AUDIO_RATE * PERIOD_MS // 1000)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    a, b = result.caller["stats"], result.callee["stats"]
    print(f"loaded_call_seconds {result.caller['call_seconds']:.0f} s")
    print(f"loaded_call_xruns {a['device_xruns'] + b['device_xruns']} xruns")
    print(
        f"# xruns: caller capture {a['device_capture_xruns']} playback "
        f"{a['device_playback_xruns']}, callee capture {b['device_capture_xruns']} playback "
        f"{b['device_playback_xruns']}",
        file=sys.stderr,
    )
    print(f"loaded_call_late_periods {a['device_period_late'] + b['device_period_late']} periods")
    print(
        f"loaded_call_max_period_interval_ms "
        f"{max(a['device_period_interval_max_us'], b['device_period_interval_max_us']) / 1000:.1f}"
        " ms"
    )
    print(
        f"loaded_call_playback_starved "
        f"{a['device_playback_starved'] + b['device_playback_starved']} periods"
    )
    print(f"loaded_call_concealed {a['concealed'] + b['concealed']} frames")
    # What the machine took away, beyond the handset's control: on a real card and CPU both 0.
    print(f"loaded_call_card_late_cycles {result.card_late.timer} cycles")
    print(f"loaded_call_card_clients_late_cycles {result.card_late.clients} cycles")
    print(f"loaded_call_steal_ms {1000 * result.steal_s:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
