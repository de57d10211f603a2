"""DNA client side (SPEC §11): servald's retry schedule, timeout, answer cache, number checks."""

from __future__ import annotations

import random

import pytest

from lab.netsim import Network, events_of
from vomp.dna_lookup import ANSWER_TTL, DnaLookups
from vomp.events import DnaAnswer, DnaLookupFinished
from vomp.identity import Identity
from vomp.node import Node


def send_times(timeout: float) -> list[float]:
    lookups = DnaLookups(random.Random(0))
    lookups.start("5552002", 0.0, timeout)
    times, now = [], 0.0
    while (timer := lookups.next_timer()) is not None:
        now = timer
        times += [now for _ in lookups.due(now)]
        lookups.finished(now)
    return times


def test_resends_follow_servalds_schedule_until_the_timeout():
    assert send_times(3.0) == pytest.approx([0.0, 0.25, 0.625, 1.125, 1.875, 2.875])


def test_a_1500_ms_lookup_sends_like_the_captured_servald():
    # captured: +0, +251, +629, +1133 ms
    assert send_times(1.5) == pytest.approx([0.0, 0.25, 0.625, 1.125])


def test_client_ports_are_random_and_above_32767():
    lookups = DnaLookups(random.Random(3))
    ports = {lookups.start(f"55520{i:02}", 0.0).port for i in range(20)}
    assert len(ports) == 20 and min(ports) >= 32768


def test_replies_to_unknown_ports_are_not_answers():
    lookups = DnaLookups(random.Random(3))
    assert lookups.answer(40000, b"s" * 32, "sid://x", "5552002", "n", 0.0) == (None, False)


def test_answers_are_cached_until_they_expire():
    lookups = DnaLookups(random.Random(3))
    lookup = lookups.start("5552002", 0.0)
    assert lookups.answer(lookup.port, b"s" * 32, "sid://x", "5552002", "n", 1.0) == (
        "5552002",
        True,
    )
    assert lookups.answer(lookup.port, b"s" * 32, "sid://x", "5552002", "n", 1.1)[1] is False
    assert [a.sid for a in lookups.cached("5552002", 1.0 + ANSWER_TTL - 1)] == [b"s" * 32]
    assert lookups.cached("5552002", 1.1 + ANSWER_TTL) == []


@pytest.mark.parametrize("number", ["1234", "1" * 32, "555-2001", "555 2001", "", "abcde"])
def test_node_refuses_an_invalid_own_number_with_a_clear_error(number):
    with pytest.raises(ValueError, match="5 to 31 characters of 0-9 \\* # \\+"):
        Node(Identity.from_seed(bytes(32)), number)


@pytest.mark.parametrize("number", ["55520", "+4930123456", "*#123", "1" * 31])
def test_valid_numbers_are_accepted(number):
    assert Node(Identity.from_seed(bytes(32)), number).number == number


def test_lookup_that_nobody_answers_finishes_unanswered():
    net = Network()
    a, _b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    a.node.lookup("5559999", net.now)
    net.run_until(6.0)
    assert events_of(a, DnaAnswer) == []
    assert events_of(a, DnaLookupFinished) == [DnaLookupFinished("5559999", False)]
    assert a.node.counters["dna_requests_sent"] == 6


def test_dial_by_number_uses_the_cache_after_a_lookup():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    a.node.lookup("5552002", net.now)
    net.run_until(6.0)
    call = a.node.dial("5552002", net.now)
    assert call is not None
    assert a.node.calls.get(call).remote_sid == b.node.sid


def test_a_lookup_reaches_known_neighbours_even_when_every_broadcast_is_lost():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    net.faults.broadcast_loss = 1.0
    a.node.lookup("5552002", net.now)
    net.run_until(6.0)
    assert [e.sid for e in events_of(a, DnaAnswer)] == [b.node.sid]
    assert b.node.counters["dna_answered"] == a.node.counters["dna_requests_sent"]
