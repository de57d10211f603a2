"""Calls between in-memory nodes while hypothesis loses, duplicates, delays and reorders datagrams.

Whatever the faults, every call ends, both sides end it (CALLENDED, then deleted), and neither side
believes in a conversation the other never joined.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lab.netsim import Faults, Network, events_of
from vomp.events import CallEnded, CallStateChanged, DnaAnswer, IncomingCall
from vomp.messages import CallState

S = CallState
# The suite runs 20 fixed examples per property; a soak run explores more, e.g.
# HANDSET_FAULT_EXAMPLES=500 .venv/bin/pytest tests/test_calls_under_faults.py
SOAK_EXAMPLES = int(os.environ.get("HANDSET_FAULT_EXAMPLES", "0"))
FAULT_SETTINGS = settings(
    max_examples=SOAK_EXAMPLES or 20,
    deadline=None,
    derandomize=not SOAK_EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow],
)

faults = st.builds(
    Faults,
    loss=st.floats(0.0, 0.3),
    duplicate=st.floats(0.0, 0.3),
    min_delay=st.just(0.001),
    max_delay=st.floats(0.001, 0.4),
)

# What the called party does: answer, reject while ringing, or let it ring out.
callee_behaviour = st.sampled_from(["answer", "reject", "ignore"])


def states_reached(station, call_id) -> set[int]:
    return {e.local_state for e in events_of(station, CallStateChanged) if e.call == call_id}


def assert_everything_ended(*stations) -> None:
    for station in stations:
        assert station.node.calls.calls() == [], f"{station.address} still has calls"
        for call_id in {e.call for e in events_of(station, CallStateChanged)}:
            assert S.CALLENDED in states_reached(station, call_id)
            assert call_id in {e.call for e in events_of(station, CallEnded)}


def callee(net, behaviour, delay):
    def handle(station, event, now):
        if not isinstance(event, IncomingCall):
            return
        node, call = station.node, event.call

        def act():
            c = node.calls.get(call)
            if c is None or c.local_state >= S.CALLENDED:
                return
            if c.remote_state != S.RINGINGOUT:  # not ringing yet (or already over): try again
                if c.remote_state < S.RINGINGOUT:
                    net.at(net.now + 0.1, act)
                return
            if behaviour == "answer":
                node.answer(call, net.now)
            elif behaviour == "reject":
                node.hang_up(call, net.now)

        def ring():
            c = node.calls.get(call)
            if c is None or c.local_state >= S.RINGINGIN:
                return
            if c.remote_state == S.RINGINGOUT:
                node.ring(call, net.now)
            elif c.remote_state < S.RINGINGOUT:
                net.at(net.now + 0.1, ring)

        net.at(now + 0.1, ring)
        net.at(now + delay, act)

    return handle


@FAULT_SETTINGS
@given(
    faults=faults,
    seed=st.integers(0, 2**16),
    behaviour=callee_behaviour,
    answer_delay=st.floats(0.2, 5.0),
    talk_time=st.floats(0.5, 20.0),
    caller_hangs_up=st.booleans(),
)
def test_a_call_always_ends_with_both_sides_agreeing(
    faults, seed, behaviour, answer_delay, talk_time, caller_hangs_up
):
    net = Network(faults, seed=seed)
    a, b = net.add("5552001"), net.add("5552002")
    b.handlers.append(callee(net, behaviour, answer_delay))
    net.run_until(3.0)
    call = a.node.dial(b.node.sid, net.now)
    hang_up_at = net.now + answer_delay + talk_time
    if caller_hangs_up:
        net.at(hang_up_at, lambda: a.node.hang_up(call, net.now))
    else:

        def b_hangs_up():
            if not b.node.calls.calls():  # the call has not reached B yet: B's user waits
                net.at(net.now + 0.5, b_hangs_up)
            for c in b.node.calls.calls():
                b.node.hang_up(c.call_id, net.now)

        net.at(hang_up_at, b_hangs_up)
    net.run_until_quiet_calls(hang_up_at + 70.0)
    assert_everything_ended(a, b)
    # A can only have heard "answered" if B really answered.
    b_calls = {e.call for e in events_of(b, IncomingCall)}
    b_incall = any(S.INCALL in states_reached(b, c) for c in b_calls)
    if S.INCALL in states_reached(a, call):
        assert b_incall
    if behaviour != "answer":
        assert S.INCALL not in states_reached(a, call)


@FAULT_SETTINGS
@given(faults=faults, seed=st.integers(0, 2**16), skew=st.floats(0.0, 0.3))
def test_simultaneous_dial_with_nobody_answering_ends_every_call(faults, seed, skew):
    net = Network(faults, seed=seed)
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(3.0)
    net.at(3.0, lambda: a.node.dial(b.node.sid, net.now))
    net.at(3.0 + skew, lambda: b.node.dial(a.node.sid, net.now))
    net.run_until(3.5)
    net.run_until_quiet_calls(80.0)
    assert_everything_ended(a, b)


def answer_replacements(net):
    """As the phone does: a call that replaces our own crossing call is answered at once."""

    def handle(station, event, now):
        if isinstance(event, IncomingCall) and event.replaces is not None:
            node, call = station.node, event.call

            def answer():
                c = node.calls.get(call)
                if c is not None and c.remote_state == S.RINGINGOUT and c.local_state < S.INCALL:
                    node.answer(call, net.now)

            # the caller must have rung out first; its status comes within a round trip
            for delay in (0.1, 0.5, 1.0, 2.0, 4.0):
                net.at(now + delay, answer)

    return handle


@FAULT_SETTINGS
@given(faults=faults, seed=st.integers(0, 2**16), skew=st.floats(0.0, 0.3))
def test_simultaneous_dial_never_connects_two_calls(faults, seed, skew):
    net = Network(faults, seed=seed)
    a, b = net.add("5552001"), net.add("5552002")
    for station in (a, b):
        station.handlers.append(answer_replacements(net))
    net.run_until(3.0)
    net.at(3.0, lambda: a.node.dial(b.node.sid, net.now))
    net.at(3.0 + skew, lambda: b.node.dial(a.node.sid, net.now))
    for step in range(40):
        net.run_until(3.0 + 0.25 * step)
        live = [[c for c in s.node.calls.calls() if c.local_state == S.INCALL] for s in (a, b)]
        assert all(len(calls) <= 1 for calls in live)
        if live[0] and live[1]:
            assert live[0][0].local_session == live[1][0].remote_session


@FAULT_SETTINGS
@given(
    faults=faults,
    seed=st.integers(0, 2**16),
    n=st.integers(3, 5),
)
def test_calls_between_several_pairs_do_not_disturb_each_other(faults, seed, n):
    net = Network(faults, seed=seed)
    stations = [net.add(f"555200{i}") for i in range(n)]
    for s in stations[1:]:
        s.handlers.append(callee(net, "answer", 0.5))
    net.run_until(3.0)
    caller, callees = stations[0], stations[1:]
    calls = [caller.node.dial(s.node.sid, net.now) for s in callees]
    net.run_until(12.0)
    for c in calls:
        net.at(12.0, lambda c=c: caller.node.hang_up(c, net.now))
    net.run_until_quiet_calls(100.0)
    assert_everything_ended(*stations)
    for s in callees:
        assert len(events_of(s, IncomingCall)) == 1


@FAULT_SETTINGS
@given(
    loss=st.floats(0.0, 0.1),
    duplicate=st.floats(0.0, 0.3),
    max_delay=st.floats(0.001, 0.3),
    seed=st.integers(0, 2**16),
)
def test_dna_lookup_answers_exactly_the_owner_of_the_number(loss, duplicate, max_delay, seed):
    net = Network(Faults(loss, duplicate, 0.001, max_delay), seed=seed)
    stations = [net.add(f"555200{i}") for i in range(4)]
    net.run_until(3.0)
    stations[0].node.lookup("5552003", net.now)
    net.run_until(8.0)
    answers = events_of(stations[0], DnaAnswer)
    assert [e.sid for e in answers] == [stations[3].node.sid]


def record_calls(station):
    """Every call a station ever had: id -> (remote sid, local session, remote session, states)."""
    calls: dict[int, dict] = {}
    for _t, e in station.events:
        if isinstance(e, CallStateChanged):
            entry = calls.setdefault(e.call, {"remote": e.remote_sid, "states": set()})
            entry["local_session"], entry["remote_session"] = e.local_session, e.remote_session
            entry["states"].add(e.local_state)
    return calls


actions = st.lists(
    st.tuples(
        st.sampled_from(["dial", "hang_up"]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.floats(0.0, 20.0),
    ),
    max_size=8,
)


@FAULT_SETTINGS
@given(
    faults=faults,
    seed=st.integers(0, 2**16),
    n=st.integers(2, 4),
    script=actions,
    answer_delay=st.floats(0.2, 3.0),
)
def test_random_dials_and_hang_ups_in_a_mesh_end_consistently(
    faults, seed, n, script, answer_delay
):
    net = Network(faults, seed=seed)
    stations = [net.add(f"555200{i}") for i in range(n)]
    for s in stations:
        s.handlers.append(callee(net, "answer", answer_delay))
    net.run_until(3.0)
    for kind, i, j, when in script:
        src, dst = stations[i % n], stations[j % n]
        if kind == "dial" and src is not dst:
            net.at(3.0 + when, lambda src=src, dst=dst: src.node.dial(dst.node.sid, net.now))
        elif kind == "hang_up":

            def hang_up_all(src=src):
                for c in src.node.calls.calls():
                    src.node.hang_up(c.call_id, net.now)

            net.at(3.0 + when, hang_up_all)
    # everyone hangs up at the end so that every call can finish
    for s in stations:
        net.at(30.0, lambda s=s: [s.node.hang_up(c.call_id, net.now) for c in s.node.calls.calls()])
    net.run_until(30.0)
    net.run_until_quiet_calls(140.0)
    assert_everything_ended(*stations)
    by_sid = {s.node.sid: record_calls(s) for s in stations}
    for s in stations:
        for entry in record_calls(s).values():
            peer_calls = by_sid[entry["remote"]]
            twins = [
                c
                for c in peer_calls.values()
                if c["remote"] == s.node.sid
                and c["local_session"] == entry["remote_session"]
                and c["remote_session"] == entry["local_session"]
            ]
            assert len(twins) <= 1
            if S.CALLPREP in entry["states"] and S.INCALL in entry["states"]:
                # a caller only goes INCALL once the callee has answered (a callee may answer
                # just as the caller hangs up, so the converse does not hold)
                assert twins and S.INCALL in twins[0]["states"]
