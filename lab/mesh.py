"""A mesh of many handset daemons: one network namespace each, all on one bridge.

That is the shape every handset sees on batman-adv: one broadcast domain in which every other
handset is one hop away. Used by bench/mesh_bench.py. Needs root. Names carry the process id,
so parallel runs do not collide, and everything is removed afterwards.

Each daemon is the real `handset daemon` with test backends: `fake` audio (a silent sound
card that keeps time), no keypad, `unmanaged` mesh on the namespace's eth0.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HANDSET = str(Path(sys.executable).parent / "handset")


NEIGH_SYSCTL = Path("/proc/sys/net/ipv4/neigh/default")


@contextlib.contextmanager
def room_for_neighbour_entries(entries: int) -> Iterator[None]:
    """Let the kernel's ARP table hold `entries` entries while the mesh runs.

    The table is one for the whole kernel, shared by every network namespace, with a hard cap
    of gc_thresh3 (1024 on Debian). N handsets on one machine need about N * N entries (each
    namespace resolves every peer, and its broadcast address): at 50 that is 2,550, and once
    the cap is hit the kernel drops unicasts *and* broadcasts ("neighbor table overflow").
    Each real handset has a kernel of its own, with about N entries. Restored afterwards."""
    names = ("gc_thresh1", "gc_thresh2", "gc_thresh3")
    wanted = {"gc_thresh1": entries, "gc_thresh2": 2 * entries, "gc_thresh3": 4 * entries}
    before = {name: int((NEIGH_SYSCTL / name).read_text()) for name in names}
    try:
        for name in reversed(names):  # the hard cap first: thresh1 <= thresh2 <= thresh3
            if before[name] < wanted[name]:
                (NEIGH_SYSCTL / name).write_text(f"{wanted[name]}\n")
        yield
    finally:
        for name in names:
            with contextlib.suppress(OSError):
                (NEIGH_SYSCTL / name).write_text(f"{before[name]}\n")


@contextlib.contextmanager
def namespaces_on_one_bridge(
    count: int, prefix: str = "hm", subnet: str = "10.81"
) -> Iterator[tuple[list[str], str]]:
    """`count` namespaces with eth0 at <subnet>.x.1.. /24, bridged in one more namespace.

    Yields (node namespaces, bridge namespace); the bridge is `br0` in the latter."""
    from pyroute2 import NetNS, netns

    if not 1 <= count <= 250:
        raise ValueError(f"{count} nodes: one /24 holds 1..250")
    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    octet = os.getpid() % 250 + 1
    bridge_ns = f"{prefix}br{tag}"
    nodes = [f"{prefix}{tag}n{i}" for i in range(count)]
    made: list[str] = []
    with room_for_neighbour_entries(count * (count + 1)):
        try:
            for name in (bridge_ns, *nodes):
                netns.create(name)
                made.append(name)
            with NetNS(bridge_ns) as br:
                br.link("add", ifname="br0", kind="bridge")
                bridge = br.link_lookup(ifname="br0")[0]
                for i, name in enumerate(nodes):
                    br.link(
                        "add",
                        ifname=f"v{i}",
                        kind="veth",
                        peer={"ifname": "eth0", "net_ns_fd": name},
                    )
                    port = br.link_lookup(ifname=f"v{i}")[0]
                    br.link("set", index=port, master=bridge, state="up")
                br.link("set", index=bridge, state="up")
            for host, name in enumerate(nodes, start=1):
                with NetNS(name) as ns:
                    eth0 = ns.link_lookup(ifname="eth0")[0]
                    ns.addr(
                        "add",
                        index=eth0,
                        address=f"{subnet}.{octet}.{host}",
                        prefixlen=24,
                        broadcast=f"{subnet}.{octet}.255",
                    )
                    ns.link("set", index=eth0, state="up")
                    ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            yield nodes, bridge_ns
        finally:
            for name in made:
                with contextlib.suppress(OSError):
                    netns.remove(name)


def bridge_rx_bytes(bridge_ns: str) -> int:
    """Bytes the bridge itself received: every broadcast frame on the segment, once (unicast
    between two nodes goes port to port and is not counted)."""
    from pyroute2 import NetNS

    with NetNS(bridge_ns) as br:
        link = br.get_links(br.link_lookup(ifname="br0")[0])[0]
        return int(link.get_attr("IFLA_STATS64")["rx_bytes"])


def bridge_port_rx_bytes(bridge_ns: str) -> int:
    """Bytes the bridge received on its node ports: every frame any node sent, once, broadcast
    and unicast alike (what the nodes put on the air)."""
    from pyroute2 import NetNS

    total = 0
    with NetNS(bridge_ns) as br:
        for link in br.get_links():
            if link.get_attr("IFLA_IFNAME", "").startswith("v"):
                total += int(link.get_attr("IFLA_STATS64")["rx_bytes"])
    return total


@dataclass
class MeshDaemon:
    number: str
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def socket(self) -> Path:
        return self.directory / "control.sock"

    def pids(self) -> list[int]:
        """The daemon and its children (the audio engine process)."""
        pid = self.process.pid
        children: list[int] = []
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                text = (task / "children").read_text().split()
                children += [int(child) for child in text]
        return [pid, *children]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def daemon_config(directory: Path, number: str) -> str:
    return f"""\
[handset]
number = "{number}"
name = "mesh node {number}"
state_dir = "{directory / "state"}"

[mesh]
mode = "unmanaged"
interface = "eth0"

[audio]
backend = "fake"
realtime_priority = 0

[control]
socket = "{directory / "control.sock"}"
"""


def start_daemon(
    namespace: str, directory: Path, number: str, config_text: str | None = None
) -> MeshDaemon:
    """`handset daemon` in `namespace` with `config_text` (default: daemon_config's)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "handset.toml"
    config.write_text(config_text or daemon_config(directory, number))
    log = (directory / "daemon.log").open("wb")
    process = subprocess.Popen(
        ["ip", "netns", "exec", namespace, HANDSET, "daemon", "--config", str(config)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    return MeshDaemon(number, directory, process)


def wait_until_listening(daemons: list[MeshDaemon], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    for daemon in daemons:
        while not daemon.socket.exists():
            if daemon.process.poll() is not None or time.monotonic() > deadline:
                log = (daemon.directory / "daemon.log").read_text(errors="replace")
                raise RuntimeError(f"daemon {daemon.number} did not start:\n{log[-2000:]}")
            time.sleep(0.1)


@contextlib.contextmanager
def mesh_of_daemons(
    directory: Path, namespaces: list[str], numbers: list[str]
) -> Iterator[list[MeshDaemon]]:
    """One `handset daemon` per namespace (started together), stopped afterwards."""
    daemons: list[MeshDaemon] = []
    try:
        for namespace, number in zip(namespaces, numbers, strict=True):
            daemons.append(start_daemon(namespace, directory / number, number))
        wait_until_listening(daemons)
        yield daemons
    finally:
        for daemon in daemons:
            with contextlib.suppress(Exception):
                daemon.process.send_signal(signal.SIGTERM)
        for daemon in daemons:
            daemon.stop()


@dataclass
class ProcessSample:
    cpu_s: float
    rss_kb: int


def sample_processes(pids: list[int]) -> ProcessSample:
    """CPU time and resident memory summed over `pids` (gone ones count 0).

    CPU time is the scheduler's own account of each thread's time on a CPU, in nanoseconds
    (/proc/PID/task/TID/schedstat): /proc's utime/stime count 10 ms ticks, too coarse for a
    process that runs a few hundred microseconds at a time."""
    cpu, rss = 0.0, 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError):
                    cpu += int((task / "schedstat").read_text().split()[0]) / 1e9
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
    return ProcessSample(cpu, rss)
