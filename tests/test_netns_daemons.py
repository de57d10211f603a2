"""Real handset daemons in network namespaces, driven only through the `handset` CLI.

Three daemons (A, B, C) on one bridge, each with `file` audio: its microphone is a test tone
of its own frequency, its earpiece is written to a WAV. A call is placed by number, the far
end rings, is answered, and each side's earpiece carries the other's tone (found by FFT in the
part of the WAV recorded during the call); either side hangs up. Busy, no answer and an
unknown number end with their reasons. The daemons stay up across the tests (each test leaves
them idle), so the suite pays their start-up once.
"""

from __future__ import annotations

import os
import time

import pytest

from lab.daemons import (
    daemons_in_namespaces,
    in_state,
    peers_found,
    phone_in,
    read_wav,
    strongest_frequency,
)

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

NUMBERS = ["5557001", "5557002", "5557003"]
TONES = [700.0, 1100.0, 1500.0]
TALK_S = 1.5


@pytest.fixture(scope="module")
def handsets(tmp_path_factory):
    with daemons_in_namespaces(tmp_path_factory.mktemp("daemons"), NUMBERS, TONES) as started:
        for daemon in started:
            daemon.wait_for("both neighbours", peers_found(2))
        yield started


@pytest.fixture
def idle(handsets):
    """Each test starts with every phone idle, and puts them back (on-hook) afterwards."""
    yield handsets
    for daemon in handsets:
        if daemon.status()["state"] != "idle":
            daemon.cli("hangup", check=False)
    for daemon in handsets:
        daemon.wait_for("the phone to be idle", phone_in("idle"))


def test_dial_ring_answer_talk_both_ways_and_the_caller_hangs_up(idle):
    a, b, _ = idle
    a.cli("dial", b.number)
    ringing = b.wait_for("the call to ring", in_state("RINGINGIN"))
    assert ringing["call"]["peer_number"] == a.number
    assert a.status()["call"]["state"] == "RINGINGOUT"
    b.cli("answer")
    heard_from = {d.name: len(read_wav(d.output)) for d in (a, b)}
    in_call = a.wait_for("the call", in_state("INCALL"))
    assert in_call["call"]["peer_number"] == b.number
    time.sleep(TALK_S)
    talking = b.status()["call"]
    assert talking["state"] == "INCALL" and talking["audio"]["frames_received"] > 20
    a.cli("hangup")
    assert a.status()["state"] == "idle"
    ended = b.wait_for("the far end's hang-up", phone_in("ended"))
    assert ended["phone"]["last_end"] == "ended by the far end"
    assert_heard(a, TONES[1], since=heard_from["a"])
    assert_heard(b, TONES[0], since=heard_from["b"])


def test_the_callee_hangs_up(idle):
    a, b, _ = idle
    b.cli("dial", a.number)
    a.wait_for("the call to ring", in_state("RINGINGIN"))
    a.cli("answer")
    b.wait_for("the call", in_state("INCALL"))
    a.cli("hangup")
    ended = b.wait_for("the far end's hang-up", phone_in("ended"))
    assert ended["phone"]["last_end"] == "ended by the far end"


def assert_heard(daemon, hz: float, since: int) -> None:
    samples = read_wav(daemon.output)[since:]
    assert len(samples) > 16000 * TALK_S * 0.8, f"{daemon.name} recorded {len(samples)} samples"
    found = strongest_frequency(samples)
    assert abs(found - hz) < 15, f"{daemon.name} heard {found:.0f} Hz, expected {hz:.0f} Hz"


def test_a_busy_handset_rejects_a_second_caller_who_hears_busy(idle):
    a, b, c = idle
    a.cli("dial", b.number)
    b.wait_for("the call to ring", in_state("RINGINGIN"))
    b.cli("answer")
    a.wait_for("the call", in_state("INCALL"))
    c.cli("dial", b.number)
    busy = c.wait_for("the busy end", phone_in("ended"))
    assert busy["phone"]["last_end"] == "busy: the far end ended the call before it rang"
    assert b.status()["call"]["peer_number"] == a.number  # B's call with A goes on
    assert "rejected call" in "\n".join(b.cli("log").stdout.splitlines()[-20:])


def test_no_answer_and_an_unknown_number_end_with_their_reasons(idle):
    a, b, c = idle
    c.cli("dial", a.number)
    a.wait_for("the call to ring", phone_in("ringing in"))
    b.cli("dial", "5550000")
    unknown = b.wait_for("the lookup to fail", phone_in("ended"), timeout=10)
    assert unknown["phone"]["last_end"] == "no such number: nobody answered the lookup"
    no_answer = c.wait_for("the ring timeout", phone_in("ended"), timeout=45)
    assert no_answer["phone"]["last_end"] == "no answer (ring timeout)"
    a.wait_for("the ringing to stop", phone_in("idle"), timeout=10)
