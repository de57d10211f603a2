"""Two handsets over real UDP in network namespaces: lookup time, call set-up, audio latency.

Prints `name value unit` lines. Needs root (namespaces); as another user it prints nothing and
says why on stderr. Run: `make bench` (or, from the repository root,
`sudo PYTHONPATH=. .venv/bin/python bench/netns_call_bench.py`).
The audio figure is one-way, from `send_audio` in one process to the AudioFrameReceived event
in the other; both read CLOCK_MONOTONIC, which every namespace on a host shares.
"""

from __future__ import annotations

import os
import statistics
import sys

from lab import netns

RUNS = 3


def one_way_ms(sender: dict, receiver: dict) -> list[float]:
    """Per-frame latency, pairing frames by their payload index (lost frames are skipped)."""
    heard = {int(payload[2:4], 16): t for (_ms, _seq, payload), t in
             zip(receiver["audio"], receiver["heard_at"], strict=True)}  # fmt: skip
    return [(heard[i] - sent) * 1000 for i, sent in enumerate(sender["sent_at"]) if i in heard]


def main() -> None:
    if os.geteuid() != 0:
        print("netns_call_bench: needs root for network namespaces; skipped", file=sys.stderr)
        return
    lookups, setups, latencies = [], [], []
    for _ in range(RUNS):
        with netns.bridged_namespaces() as (ns_a, ns_b):
            caller, callee = netns.call_between_namespaces(ns_a, ns_b)
        lookups.append(caller["lookup_s"] * 1000)
        setups.append(caller["setup_s"] * 1000)
        latencies += one_way_ms(caller, callee) + one_way_ms(callee, caller)
    print(f"netns_dna_lookup_median {statistics.median(lookups):.1f} ms")
    print(f"netns_call_setup_median {statistics.median(setups):.1f} ms")
    print(f"netns_audio_one_way_median {statistics.median(latencies):.2f} ms")
    print(f"netns_audio_one_way_max {max(latencies):.2f} ms")


if __name__ == "__main__":
    main()
