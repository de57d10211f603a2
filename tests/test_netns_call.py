"""Two handsets in two network namespaces joined by a bridge, over real UDP on port 4110.

The test builds the network with pyroute2 (a bridge in a third namespace, one veth pair per
handset), runs each handset in its own process inside its namespace with the real asyncio
transport, and tears everything down afterwards. Needs root (CI runs `make test` as root).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

REPO = Path(__file__).resolve().parent.parent
PEER = REPO / "tests" / "netns_peer.py"
SUBNET = "10.77.{}.{}"


@pytest.fixture
def bridged_namespaces():
    """Namespaces a and b, each with eth0 on one bridge; yields (ns_a, ns_b, third octet)."""
    from pyroute2 import NetNS, netns

    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    octet = os.getpid() % 250 + 1
    names = {"br": f"hsbr{tag}", "a": f"hsa{tag}", "b": f"hsb{tag}"}
    for name in names.values():
        netns.create(name)
    try:
        with NetNS(names["br"]) as br:
            br.link("add", ifname="br0", kind="bridge")
            bridge = br.link_lookup(ifname="br0")[0]
            for side in ("a", "b"):
                br.link(
                    "add",
                    ifname=f"v{side}",
                    kind="veth",
                    peer={"ifname": "eth0", "net_ns_fd": names[side]},
                )
                port = br.link_lookup(ifname=f"v{side}")[0]
                br.link("set", index=port, master=bridge, state="up")
            br.link("set", index=bridge, state="up")
        for host, side in ((1, "a"), (2, "b")):
            with NetNS(names[side]) as ns:
                eth0 = ns.link_lookup(ifname="eth0")[0]
                ns.addr(
                    "add",
                    index=eth0,
                    address=SUBNET.format(octet, host),
                    prefixlen=24,
                    broadcast=SUBNET.format(octet, 255),
                )
                ns.link("set", index=eth0, state="up")
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        yield names["a"], names["b"]
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


def add_loss(namespace: str, percent: int) -> None:
    """Drop `percent`% of the namespace's outgoing port-4110 datagrams (nftables numgen)."""
    rules = f"""table inet handset_loss {{
  chain out {{
    type filter hook output priority 0; policy accept;
    udp dport 4110 numgen random mod 100 < {percent} drop
  }}
}}
"""
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "-f", "-"],
        input=rules.encode(),
        capture_output=True,
    )
    if done.returncode != 0:  # e.g. a kernel built without nf_tables: say so, do not guess
        pytest.skip(f"this kernel refused the nftables loss rule: {done.stderr.decode().strip()}")


def sent_by(tag: bytes) -> list[list]:
    return [[20 * i, i, (tag + bytes([i]) * 159).hex()] for i in range(10)]


def call_between_namespaces(ns_a: str, ns_b: str):
    rng = random.Random(os.getpid())
    callee = start_peer(ns_b, "callee", rng.randbytes(32), "5552002")
    caller = start_peer(ns_a, "caller", rng.randbytes(32), "5552001", "--call", "5552002")
    return result_of(caller), result_of(callee)


def test_dna_lookup_and_a_call_with_audio_between_two_namespaces(bridged_namespaces):
    caller, callee = call_between_namespaces(*bridged_namespaces)
    assert caller["dna"] == [callee["sid"], "5552002", "callee"]
    assert callee["audio"] == sent_by(b"A")
    assert caller["audio"] == sent_by(b"B")
    assert caller["deleted"] and callee["deleted"]
    # Nothing was refused, except (maybe) a first lookup that beat the key exchange (SPEC §10).
    allowed = {"dropped_missing_sign_key", "dropped_unresolved_frame"}
    for result in (caller, callee):
        assert {k for k in result["counters"] if k.startswith("dropped_")} <= allowed


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft (nftables) is not installed")
def test_a_call_survives_20_percent_loss_each_way(bridged_namespaces):
    for namespace in bridged_namespaces:
        add_loss(namespace, 20)
    caller, callee = call_between_namespaces(*bridged_namespaces)
    assert caller["dna"] == [callee["sid"], "5552002", "callee"]
    for heard, sent in ((callee["audio"], sent_by(b"A")), (caller["audio"], sent_by(b"B"))):
        assert heard == [frame for frame in sent if frame in heard]  # in order, no duplicates
        assert len(heard) >= 3
