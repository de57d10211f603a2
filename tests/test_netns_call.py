"""Two handsets in two network namespaces joined by a bridge, over real UDP on port 4110.

The test builds the network with pyroute2 (a bridge in a third namespace, one veth pair per
handset), runs each handset in its own process inside its namespace with the real asyncio
transport, and tears everything down afterwards. Needs root (CI runs `make test` as root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab import netns
from lab.netns import call_between_namespaces, result_of, start_peer

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


@pytest.fixture
def bridged_namespaces():
    with netns.bridged_namespaces() as names:
        yield names


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


def test_handset_run_answers_a_call_over_the_bridge(bridged_namespaces, tmp_path):
    """The shipped command (`make run`) in one namespace, auto-answering our test caller."""
    ns_a, ns_b = bridged_namespaces
    handset = Path(sys.executable).parent / "handset"
    command = ["ip", "netns", "exec", ns_b, str(handset), "run", "--interface", "eth0"]
    command += ["--keyring", str(tmp_path / "keyring"), "--number", "5552002", "--name", "Run"]
    command += ["--auto-answer"]
    daemon = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert "number 5552002" in daemon.stderr.readline()
        caller = result_of(
            start_peer(ns_a, "caller", bytes(range(32)), "5552001", "--call", "5552002")
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        log = daemon.communicate(timeout=10)[1]
    assert daemon.returncode == 0
    assert caller["dna"][1:] == ["5552002", "Run"]
    assert caller["deleted"]
    assert log.count("AudioFrameReceived(") == 10
    assert "CallEnded(" in log
