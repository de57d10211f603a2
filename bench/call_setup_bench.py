"""Call set-up time between real handset daemons in network namespaces: from the moment the
caller's phone has the whole number (its state goes to "calling": the last digit and `#`, or
`handset dial`) to the moment the far end's phone rings ("ringing in").

Three daemons on one bridge, driven by the `handset` CLI. Each caller -> callee pair is timed
once cold (the number not yet known: a DNA lookup first) and then warm (the answer cached, as
for a redial within a minute). Both ends log on the host's clock (millisecond resolution).
Prints `name value unit` lines; needs root. Run: `make bench`, or from the repository root
`flock /tmp/handset-heavy.lock env PYTHONPATH=. .venv/bin/python bench/call_setup_bench.py`.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lab.daemons import Daemon, daemons_in_namespaces, peers_found, phone_in

NUMBERS = ["5558001", "5558002", "5558003"]
WARM_ROUNDS = 3


def one_call(caller: Daemon, callee: Daemon) -> float:
    """Dial, wait for the ring, hang up both; the set-up time in ms from the two logs."""
    calling_before = len(caller.logged_at("-> calling"))
    ringing_before = len(callee.logged_at("-> ringing in"))
    caller.cli("dial", callee.number)
    callee.wait_for("the ring", phone_in("ringing in"))
    caller.cli("hangup")
    callee.wait_for("the ringing to stop", phone_in("idle"))
    deadline = time.monotonic() + 5
    while True:  # the log line may reach the file a moment after the status changed
        calling = caller.logged_at("-> calling")[calling_before:]
        ringing = callee.logged_at("-> ringing in")[ringing_before:]
        if (calling and ringing) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return (ringing[0] - calling[0]) * 1000


def main() -> None:
    if os.geteuid() != 0:
        print("call_setup_bench: needs root for network namespaces; skipped", file=sys.stderr)
        return
    cold: list[float] = []
    warm: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        daemons_in_namespaces(
            Path(tmp), NUMBERS, [0.0] * len(NUMBERS), prefix="cs", subnet="10.81"
        ) as handsets,
    ):
        for daemon in handsets:
            daemon.wait_for("both neighbours", peers_found(2))
        pairs = [(a, b) for a in handsets for b in handsets if a is not b]
        for caller, callee in pairs:
            cold.append(one_call(caller, callee))
        for _ in range(WARM_ROUNDS):
            for caller, callee in pairs:
                warm.append(one_call(caller, callee))
    every = sorted(cold + warm)
    print(f"call_setup_ms_p50 {statistics.median(every):.0f} ms")
    print(f"call_setup_ms_p90 {every[int(0.9 * (len(every) - 1))]:.0f} ms")
    print(f"call_setup_ms_max {every[-1]:.0f} ms")
    print(f"call_setup_cold_ms_p50 {statistics.median(cold):.0f} ms")
    print(f"call_setup_warm_ms_p50 {statistics.median(warm):.0f} ms")
    print(f"call_setup_samples {len(every)} calls")


if __name__ == "__main__":
    main()
