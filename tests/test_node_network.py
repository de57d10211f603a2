"""Nodes on an in-memory network (lab/netsim.py): discovery, DNA, calls, audio."""

from __future__ import annotations

from lab.netsim import Network, events_of
from vomp.codecs import Codec
from vomp.events import (
    AudioFrameReceived,
    CallEnded,
    CallStateChanged,
    DnaAnswer,
    DnaLookupFinished,
    IncomingCall,
    PeerFound,
)
from vomp.messages import CallState

S = CallState


def auto_answer(station, event, now, net, ring_after=0.2, answer_after=0.5):
    if isinstance(event, IncomingCall):
        call = event.call
        node = station.node

        def ring():
            if node.calls.get(call) and node.calls.get(call).local_state < S.RINGINGIN:
                node.ring(call, net.now)

        def answer():
            if node.calls.get(call) and node.calls.get(call).local_state < S.INCALL:
                node.answer(call, net.now)

        net.at(now + ring_after, ring)
        net.at(now + answer_after, answer)


def test_two_nodes_find_each_other_and_exchange_sign_keys():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    assert [e.sid for e in events_of(a, PeerFound)] == [b.node.sid]
    assert [e.sid for e in events_of(b, PeerFound)] == [a.node.sid]
    assert a.node.book.sign_key(b.node.sid) == b.node.identity.sign_public
    assert b.node.book.sign_key(a.node.sid) == a.node.identity.sign_public
    assert a.node.counters["linkstate_heard_us"] > 0


def test_dna_lookup_finds_the_number_and_only_that_node():
    net = Network()
    a, b, c = net.add("5552001"), net.add("5552002"), net.add("5552003")
    net.run_until(2.0)
    a.node.lookup("5552003", net.now)
    net.run_until(6.0)
    answers = events_of(a, DnaAnswer)
    assert [(e.sid, e.did, e.name) for e in answers] == [(c.node.sid, "5552003", "Node 2")]
    assert events_of(a, DnaLookupFinished) == [DnaLookupFinished("5552003", True)]
    assert b.node.counters["dna_answered"] == 0


def test_lookup_of_everyone_hears_every_node():
    net = Network()
    a = net.add("5552001")
    others = [net.add(f"555200{i}") for i in range(2, 5)]
    net.run_until(2.0)
    a.node.lookup("*", net.now)
    net.run_until(6.0)
    assert {e.sid for e in events_of(a, DnaAnswer)} == {s.node.sid for s in others}


def test_call_by_number_with_audio_both_ways_then_hang_up():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    b.handlers.append(lambda st, ev, now: auto_answer(st, ev, now, net))
    net.run_until(2.0)
    assert a.node.dial("5552002", net.now) is None  # looked up first
    net.run_until(4.0)
    [incoming] = events_of(b, IncomingCall)
    assert incoming.caller_number == "5552001" and incoming.called_number == "5552002"
    call_a = events_of(a, CallStateChanged)[0].call
    assert a.node.calls.get(call_a).local_state == S.INCALL
    for i in range(10):
        when = net.now + 0.02 * i
        net.at(when, lambda i=i: a.node.send_audio(call_a, Codec.MULAW, b"a%d" % i, 20))
        net.at(when, lambda i=i: b.node.send_audio(incoming.call, Codec.MULAW, b"b%d" % i, 20))
    net.run_until(5.0)
    heard_b = [(e.time_ms, e.seq, e.payload) for e in events_of(b, AudioFrameReceived)]
    assert heard_b == [(20 * i, i, b"a%d" % i) for i in range(10)]
    assert len(events_of(a, AudioFrameReceived)) == 10
    a.node.hang_up(call_a, net.now)
    net.run_until(8.0)
    assert a.node.calls.calls() == [] and b.node.calls.calls() == []
    ended = events_of(a, CallEnded) + events_of(b, CallEnded)
    assert [e.timed_out for e in ended] == [False, False]
    # the last state both sides reported is CALLENDED/CALLENDED
    for st in (a, b):
        last = events_of(st, CallStateChanged)[-1]
        assert (last.local_state, last.remote_state) == (S.CALLENDED, S.CALLENDED)


def test_nodes_keep_each_other_alive_for_a_long_call():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    b.handlers.append(lambda st, ev, now: auto_answer(st, ev, now, net))
    net.run_until(1.0)
    call = a.node.dial(b.node.sid, net.now)
    net.run_until(120.0)
    assert a.node.calls.get(call).local_state == S.INCALL
    assert not events_of(a, CallEnded)
