"""A two-handset network lab: namespaces on a bridge, and handset processes inside them.

Used by tests/test_netns_call.py and bench/netns_call_bench.py. Needs root. Every name carries
the process id, so parallel runs do not collide, and everything is removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PEER = Path(__file__).resolve().parent / "netns_peer.py"


@contextlib.contextmanager
def bridged_namespaces(
    prefix: str = "hs", subnet: str = "10.77", count: int = 2
) -> Iterator[tuple[str, ...]]:
    """`count` namespaces, each with eth0 (<subnet>.x.1, .2, ... /24) on one bridge in another.

    `prefix` and `subnet` keep labs that may run at once (the call tests and the audio call)
    apart; the process id keeps parallel runs apart.
    """
    from pyroute2 import NetNS, netns

    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    octet = os.getpid() % 250 + 1
    sides = "abcdefgh"[:count]
    names = {"br": f"{prefix}br{tag}", **{side: f"{prefix}{side}{tag}" for side in sides}}
    for name in names.values():
        netns.create(name)
    try:
        with NetNS(names["br"]) as br:
            br.link("add", ifname="br0", kind="bridge")
            bridge = br.link_lookup(ifname="br0")[0]
            for side in sides:
                br.link(
                    "add",
                    ifname=f"v{side}",
                    kind="veth",
                    peer={"ifname": "eth0", "net_ns_fd": names[side]},
                )
                port = br.link_lookup(ifname=f"v{side}")[0]
                br.link("set", index=port, master=bridge, state="up")
            br.link("set", index=bridge, state="up")
        for host, side in enumerate(sides, start=1):
            with NetNS(names[side]) as ns:
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
        yield tuple(names[side] for side in sides)
    finally:
        for name in names.values():
            with contextlib.suppress(OSError):
                netns.remove(name)


def start_peer(namespace: str, role: str, seed: bytes, number: str, *extra: str):
    command = ["ip", "netns", "exec", namespace, sys.executable, str(PEER), role]
    command += ["--seed", seed.hex(), "--number", number, "--interface", "eth0", *extra]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def result_of(process) -> dict:
    try:
        out, err = process.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    lines = out.decode().strip().splitlines()
    assert lines, f"peer printed nothing; stderr:\n{err.decode()[-3000:]}"
    result = json.loads(lines[-1])
    assert "error" not in result, f"{result['error']}; stderr:\n{err.decode()[-3000:]}"
    return result


def call_between_namespaces(ns_a: str, ns_b: str) -> tuple[dict, dict]:
    """A caller in ns_a looks up and calls a callee in ns_b; returns both peers' reports."""
    rng = random.Random(os.getpid())
    callee = start_peer(ns_b, "callee", rng.randbytes(32), "5552002")
    caller = start_peer(ns_a, "caller", rng.randbytes(32), "5552001", "--call", "5552002")
    return result_of(caller), result_of(callee)
