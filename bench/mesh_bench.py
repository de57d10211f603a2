"""What the mesh costs each handset as it grows: 10, then 50 daemons on one broadcast segment.

Every node is the real `handset daemon` with test backends (lab/mesh.py) in its own network
namespace, all on one bridge: the shape every handset sees on batman-adv, where each other
handset is one hop away. After the daemons have heard each other, an idle window measures per
node: CPU (daemon + its audio engine process, CPU time over wall time), resident memory
(daemon + engine, VmRSS), and the broadcast bytes on the segment (the bridge's own receive
counter sees each broadcast frame once; unicast is not counted). Then one more node
(lab/dna_looker.py: the daemon's Node on the daemon's transport) looks up every daemon's
number, one after another, and times each first answer. The idle window starts once every
daemon's audio engine runs (50 engines starting at once on two cores take a while).

Prints mesh{N}_dna_lookup_found, mesh{N}_dna_lookup_ms_p50/_p95, mesh{N}_cpu_percent_per_node,
mesh{N}_rss_mb_per_node, mesh{N}_broadcast_bytes_per_s_per_node and
mesh{N}_wire_bytes_per_s_per_node (everything a node sends, unicast link-state and acks
included: each frame counted once, as it enters the bridge) for N in MESH_SIZES
("10 50"); MESH_IDLE_SECONDS (20) is the idle window. Needs root.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from firmware.control_protocol import ControlError, Request, ask
from lab.mesh import (
    MeshDaemon,
    bridge_port_rx_bytes,
    bridge_rx_bytes,
    mesh_of_daemons,
    namespaces_on_one_bridge,
    sample_processes,
)

REPO = Path(__file__).resolve().parent.parent
SIZES = [int(n) for n in os.environ.get("MESH_SIZES", "10 50").split()]
IDLE_SECONDS = float(os.environ.get("MESH_IDLE_SECONDS", "20"))
SETTLE_TIMEOUT_S = 90.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def peers_heard(daemon: MeshDaemon) -> int:
    try:
        response = ask(Request.make("status"), daemon.socket, timeout=10)
    except ControlError:
        return 0
    return int((response.result or {}).get("peers", 0)) if response.ok else 0


def refusals(daemons: list[MeshDaemon]) -> dict[str, int]:
    """Every daemon's refused-input and withheld-output counters, summed by reason."""
    total: dict[str, int] = {}
    for daemon in daemons:
        try:
            response = ask(Request.make("status"), daemon.socket, timeout=10)
        except ControlError:
            continue
        for reason, count in ((response.result or {}).get("rejected") or {}).items():
            total[reason] = total.get(reason, 0) + int(count)
    return total


def engine_state(daemon: MeshDaemon) -> tuple[str, int]:
    """The daemon's audio engine: (state, reopens so far)."""
    try:
        response = ask(Request.make("audio"), daemon.socket, timeout=10)
    except ControlError:
        return "unknown", 0
    stats = (response.result or {}).get("stats") or {}
    return str(stats.get("device_state", "unknown")), int(stats.get("device_reopens", 0))


def wait_for_engines(daemons: list[MeshDaemon]) -> float:
    """Seconds until every daemon's audio engine runs: idle is measured after start-up."""
    began = time.monotonic()
    waiting = list(daemons)
    while waiting and time.monotonic() - began < SETTLE_TIMEOUT_S:
        waiting = [d for d in waiting if engine_state(d)[0] != "running"]
        time.sleep(0.5)
    return time.monotonic() - began


def wait_for_everyone(daemons: list[MeshDaemon]) -> float:
    """Seconds until the first and the last daemon have heard every other one."""
    began = time.monotonic()
    for daemon in (daemons[0], daemons[-1]):
        while peers_heard(daemon) < len(daemons) - 1:
            if time.monotonic() - began > SETTLE_TIMEOUT_S:
                break
            time.sleep(0.5)
    return time.monotonic() - began


def measure(size: int) -> dict[str, float]:
    numbers = [f"5554{i:03d}" for i in range(size)]
    figures: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix=f"mesh{os.getpid()}") as tmp,
        namespaces_on_one_bridge(size + 1) as (namespaces, bridge_ns),
        mesh_of_daemons(Path(tmp), namespaces[:size], numbers) as daemons,
    ):
        figures["engines_s"] = wait_for_engines(daemons)
        figures["settle_s"] = wait_for_everyone(daemons)
        if figures["settle_s"] >= SETTLE_TIMEOUT_S:
            heard = [peers_heard(d) for d in daemons]
            log = (daemons[0].directory / "daemon.log").read_text(errors="replace")
            print(f"# peers heard: {heard}\n# first daemon's log:\n{log[-3000:]}", file=sys.stderr)
        reopens_before = sum(engine_state(d)[1] for d in daemons)
        pids = [daemon.pids() for daemon in daemons]
        before = [sample_processes(p) for p in pids]
        wire_before, began = bridge_rx_bytes(bridge_ns), time.monotonic()
        sent_before = bridge_port_rx_bytes(bridge_ns)
        time.sleep(IDLE_SECONDS)
        after = [sample_processes(p) for p in pids]
        wire_after, wall = bridge_rx_bytes(bridge_ns), time.monotonic() - began
        sent_after = bridge_port_rx_bytes(bridge_ns)
        figures["wire_bytes_per_s_per_node"] = (sent_after - sent_before) / wall / size
        cpu = [100 * (b.cpu_s - a.cpu_s) / wall for a, b in zip(before, after, strict=True)]
        figures["cpu_percent_per_node"] = statistics.mean(cpu)
        figures["rss_mb_per_node"] = statistics.mean(s.rss_kb for s in after) / 1024
        figures["broadcast_bytes_per_s_per_node"] = (wire_after - wire_before) / wall / size
        reopens = sum(engine_state(d)[1] for d in daemons) - reopens_before
        print(f"# mesh of {size}: engine restarts in the idle window: {reopens}", file=sys.stderr)
        heard = [peers_heard(d) for d in daemons]
        print(f"# mesh of {size}: peers heard min {min(heard)} max {max(heard)}", file=sys.stderr)
        print(f"# refused/withheld, all daemons: {refusals(daemons)}", file=sys.stderr)
        command = ["ip", "netns", "exec", namespaces[size], sys.executable, "-m", "lab.dna_looker"]
        looker = subprocess.run(
            [*command, "--interface", "eth0", "--peers", str(size), *numbers],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60 + 4 * size,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        if looker.returncode != 0:
            raise RuntimeError(f"looker failed: {looker.stderr[-2000:]}")
        result = json.loads(looker.stdout.strip().splitlines()[-1])
        found = [ms for ms in result["ms"].values() if ms is not None]
        figures["dna_lookup_found"] = len(found)
        figures["looker_peers"] = result["peers"]
        if found:
            figures["dna_lookup_ms_p50"] = statistics.median(found)
            figures["dna_lookup_ms_p95"] = percentile(found, 0.95)
    return figures


def main() -> int:
    if os.geteuid() != 0:
        print("# mesh_bench: needs root for network namespaces; skipped", file=sys.stderr)
        return 0
    for size in SIZES:
        f = measure(size)
        print(f"# mesh of {size}: engines running after {f['engines_s']:.1f} s", file=sys.stderr)
        print(f"# mesh of {size}: settled in {f['settle_s']:.1f} s", file=sys.stderr)
        print(f"mesh{size}_dna_lookup_found {f['dna_lookup_found']:.0f} /{size}")
        for name in ("dna_lookup_ms_p50", "dna_lookup_ms_p95"):
            if name in f:
                print(f"mesh{size}_{name} {f[name]:.1f} ms")
        print(f"mesh{size}_cpu_percent_per_node {f['cpu_percent_per_node']:.2f} %")
        print(f"mesh{size}_rss_mb_per_node {f['rss_mb_per_node']:.1f} MB")
        print(
            f"mesh{size}_broadcast_bytes_per_s_per_node "
            f"{f['broadcast_bytes_per_s_per_node']:.0f} bytes/s"
        )
        print(f"mesh{size}_wire_bytes_per_s_per_node {f['wire_bytes_per_s_per_node']:.0f} bytes/s")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
