"""VoMP v2 call state machine (SPEC §12): each §12.3 row, local actions, timers, audio numbering."""

from __future__ import annotations

import random

import pytest

from vomp.call import (
    DIAL_TIMEOUT,
    MAX_CALLS,
    MAX_INCOMING_PER_PEER,
    NETWORK_TIMEOUT,
    RING_TIMEOUT,
    SIMULTANEOUS_WINDOW,
    CallError,
    CallTable,
)
from vomp.codecs import ALAW, MULAW, OPUS
from vomp.events import (
    AudioFrameReceived,
    CallEnded,
    CallStateChanged,
    EndReason,
    IncomingCall,
)
from vomp.messages import CallState, VompAudio, VompMessage

S = CallState
A_SID = b"\xaa" * 32
B_SID = b"\xbb" * 32


def table(number="5552001", codecs=(MULAW, OPUS), seed=1, **kw) -> CallTable:
    return CallTable(number, codecs, random.Random(seed), **kw)


def msg(s_sess, r_sess, sender, recipient, codecs=None, numbers=None, audio=None) -> VompMessage:
    caller, called = numbers or (None, None)
    return VompMessage(s_sess, r_sess, sender, recipient, codecs, caller, called, audio)


def drain(t: CallTable) -> list[VompMessage]:
    out = [m for _, m in t.outgoing]
    t.outgoing.clear()
    return out


def state_bytes(messages: list[VompMessage]) -> list[int]:
    return [(int(m.recipient_state) << 4) | int(m.sender_state) for m in messages]


def pump(a: CallTable, b: CallTable, now: float, rounds: int = 10) -> None:
    """Deliver everything both tables queued until both are quiet."""
    for _ in range(rounds):
        from_a, from_b = drain(a), drain(b)
        if not from_a and not from_b:
            return
        for m in from_a:
            b.receive(A_SID, m, now)
        for m in from_b:
            a.receive(B_SID, m, now)


def set_up_call(answer=True):
    a, b = table("5552001", seed=1), table("5552002", seed=2)
    call_a = a.dial(B_SID, "5552002", 0.0)
    pump(a, b, 0.0)
    incoming = [e for e in b.events if isinstance(e, IncomingCall)]
    assert len(incoming) == 1
    call_b = incoming[0].call
    b.ring(call_b, 0.1)
    pump(a, b, 0.1)
    if answer:
        b.answer(call_b, 0.2)
        pump(a, b, 0.2)
    return a, b, call_a.call_id, call_b


# ------------------------------------------------------------------ a whole call, as in the vector
def test_call_setup_sends_the_state_bytes_servald_sends():
    a, b = table("5552001", seed=1), table("5552002", seed=2)
    call = a.dial(B_SID, "5552002", 0.0)
    first = drain(a)
    assert state_bytes(first) == [0x12]
    assert first[0].codecs == (MULAW, OPUS)
    assert (first[0].caller_number, first[0].called_number) == ("5552001", "5552002")
    assert first[0].recipient_session == 0
    b.receive(A_SID, first[0], 0.0)
    reply = drain(b)
    assert state_bytes(reply) == [0x21]
    assert reply[0].codecs == (MULAW, OPUS) and reply[0].caller_number is None
    assert reply[0].recipient_session == call.local_session
    a.receive(B_SID, reply[0], 0.0)
    assert state_bytes(drain(a)) == [0x13]
    assert a.get(call.call_id).remote_session == reply[0].sender_session


def test_full_call_ends_with_both_sides_deleted():
    a, b, ca, cb = set_up_call()
    assert a.get(ca).local_state == S.INCALL and b.get(cb).local_state == S.INCALL
    a.hang_up(ca, 1.0)
    sent = drain(a)
    assert state_bytes(sent) == [0x56]
    b.receive(A_SID, sent[0], 1.0)
    answer = drain(b)
    assert state_bytes(answer) == [0x66]
    a.receive(B_SID, answer[0], 1.0)
    assert state_bytes(drain(a)) == [0x66]
    a.handle_timer(2.0)
    b.handle_timer(2.0)
    assert a.calls() == [] and b.calls() == []
    assert drain(a) == [] and drain(b) == []
    assert any(isinstance(e, CallEnded) and not e.timed_out for e in a.events)


def test_message_for_deleted_session_is_ignored():
    a, b, ca, _cb = set_up_call()
    a.hang_up(ca, 1.0)
    late = a.outgoing[0][1]
    pump(a, b, 1.0)
    a.handle_timer(2.0)
    b.handle_timer(2.0)
    b.receive(A_SID, late, 2.5)
    assert b.calls() == [] and drain(b) == []


def test_status_is_resent_every_second():
    a = table()
    a.dial(B_SID, "5552002", 0.0)
    drain(a)
    assert a.next_timer() == pytest.approx(1.0)
    a.handle_timer(1.0)
    assert state_bytes(drain(a)) == [0x12]
    a.handle_timer(2.0)
    assert state_bytes(drain(a)) == [0x12]


# --------------------------------------------------------------------- every row of §12.3 step 4
def make_call(mine: CallState, remote: CallState, *, caller: bool, **kw):
    """A call in a chosen state pair, as if reached by earlier messages."""
    t = table(**kw)
    if caller:
        call = t.dial(B_SID, "5552002", 0.0)
        call.remote_session = 0x4242
    else:
        t.receive(B_SID, msg(0x4242, 0, S.CALLPREP, S.NOCALL, (MULAW,), ("5550000", "5552001")), 0)
        call = t.calls()[0]
    call.local_state, call.remote_state = mine, remote
    call.last_sent_state_byte = call.state_byte
    drain(t)
    t.events.clear()
    return t, call


def deliver(t, call, their, **kw):
    t.receive(B_SID, msg(0x4242, call.local_session, their, call.local_state, **kw), 5.0)
    return drain(t)


def test_row_nocall_callprep_does_nothing_but_reply_with_codecs():
    t, call = make_call(S.NOCALL, S.NOCALL, caller=False)
    sent = deliver(t, call, S.CALLPREP, codecs=(MULAW,))
    assert (call.local_state, call.remote_state) == (S.NOCALL, S.CALLPREP)
    assert state_bytes(sent) == [0x21] and sent[0].codecs == (MULAW, OPUS)


@pytest.mark.parametrize("mine", [S.NOCALL, S.RINGINGIN])
def test_row_ringingout_heard_by_callee_waits_for_local_ring(mine):
    t, call = make_call(mine, S.CALLPREP, caller=False)
    deliver(t, call, S.RINGINGOUT)
    assert (call.local_state, call.remote_state) == (mine, S.RINGINGOUT)


def test_row_ringingout_heard_by_caller_in_nocall_means_busy():
    t, call = make_call(S.NOCALL, S.NOCALL, caller=True)
    deliver(t, call, S.RINGINGOUT)
    assert call.local_state == S.CALLENDED


@pytest.mark.parametrize("their", [S.NOCALL, S.CALLPREP])
def test_row_callprep_caller_moves_to_ringingout(their):
    t, call = make_call(S.CALLPREP, S.NOCALL, caller=True)
    sent = deliver(t, call, their, codecs=(OPUS,))
    assert call.local_state == S.RINGINGOUT
    assert state_bytes(sent) == [(their << 4) | 3]


@pytest.mark.parametrize("their", [S.NOCALL, S.CALLPREP])
def test_row_callprep_callee_ends_the_call(their):
    t, call = make_call(S.CALLPREP, S.CALLPREP, caller=False)
    deliver(t, call, their, codecs=(OPUS,))
    assert call.local_state == S.CALLENDED


@pytest.mark.parametrize("their", [S.NOCALL, S.CALLPREP, S.RINGINGIN])
def test_row_ringingout_waits_while_the_callee_prepares_or_rings(their):
    t, call = make_call(S.RINGINGOUT, S.NOCALL, caller=True)
    deliver(t, call, their, codecs=(OPUS,))
    assert (call.local_state, call.remote_state) == (S.RINGINGOUT, their)


def test_row_ringingout_ringingout_goes_incall():
    t, call = make_call(S.RINGINGOUT, S.NOCALL, caller=True)
    deliver(t, call, S.RINGINGOUT)
    assert call.local_state == S.INCALL


def test_row_ringingout_incall_answers_and_plays_the_audio():
    t, call = make_call(S.RINGINGOUT, S.RINGINGIN, caller=True)
    deliver(t, call, S.INCALL, audio=VompAudio(MULAW, 0, 0, b"hello"))
    assert call.local_state == S.INCALL
    audio = [e for e in t.events if isinstance(e, AudioFrameReceived)]
    assert [(e.codec, e.time_ms, e.seq, e.payload) for e in audio] == [(MULAW, 0, 0, b"hello")]


def test_row_incall_ringingout_does_nothing():
    t, call = make_call(S.INCALL, S.RINGINGOUT, caller=False)
    assert deliver(t, call, S.RINGINGOUT) == []
    assert (call.local_state, call.remote_state) == (S.INCALL, S.RINGINGOUT)


def test_row_incall_incall_plays_the_audio():
    t, call = make_call(S.INCALL, S.INCALL, caller=False)
    deliver(t, call, S.INCALL, audio=VompAudio(OPUS, 3, 7, b"x"))
    audio = [e for e in t.events if isinstance(e, AudioFrameReceived)]
    assert [(e.time_ms, e.seq) for e in audio] == [(60, 7)]


@pytest.mark.parametrize("their", list(S))
def test_row_callended_any_does_nothing(their):
    t, call = make_call(S.CALLENDED, S.INCALL, caller=True)
    deliver(t, call, their)
    assert call.local_state == S.CALLENDED


@pytest.mark.parametrize(
    ("mine", "their", "caller"),
    [
        (S.NOCALL, S.NOCALL, False),
        (S.RINGINGIN, S.CALLPREP, False),
        (S.RINGINGIN, S.INCALL, False),
        (S.INCALL, S.RINGINGIN, True),
        (S.CALLPREP, S.INCALL, True),
    ],
)
def test_pairs_outside_the_table_ignore_the_whole_message(mine, their, caller):
    t, call = make_call(mine, S.NOCALL, caller=caller)
    before = (call.local_state, call.remote_state, call.last_activity)
    assert deliver(t, call, their, codecs=(MULAW,)) == []
    assert (call.local_state, call.remote_state, call.last_activity) == before
    assert t.ignored == 1


def test_step1_no_way_to_ring_answers_callprep_with_callended():
    t = table(can_ring=False)
    t.receive(B_SID, msg(0x4242, 0, S.CALLPREP, S.NOCALL, (MULAW,), ("1", "2")), 0.0)
    assert state_bytes(drain(t)) == [0x26]
    assert not any(isinstance(e, IncomingCall) for e in t.events)


def test_step2_no_shared_codec_ends_the_call():
    t = table(codecs=(OPUS,))
    t.receive(B_SID, msg(0x4242, 0, S.CALLPREP, S.NOCALL, (MULAW,), ("1", "2")), 0.0)
    assert state_bytes(drain(t)) == [0x26]


def test_step2_a_shared_codec_we_cannot_send_ends_the_call():
    t = table(codecs=(ALAW, MULAW, OPUS))
    t.receive(B_SID, msg(0x4242, 0, S.CALLPREP, S.NOCALL, (ALAW,), ("1", "2")), 0.0)
    assert state_bytes(drain(t)) == [0x26]


def test_step2_missing_codec_list_ends_the_call():
    t, call = make_call(S.CALLPREP, S.NOCALL, caller=True)
    deliver(t, call, S.NOCALL)
    assert call.local_state == S.CALLENDED


def test_step3_their_callended_ends_ours_and_we_confirm():
    t, call = make_call(S.INCALL, S.INCALL, caller=True)
    assert state_bytes(deliver(t, call, S.CALLENDED)) == [0x66]


def test_their_state_never_goes_back():
    t, call = make_call(S.RINGINGOUT, S.RINGINGIN, caller=True)
    deliver(t, call, S.NOCALL)
    assert call.remote_state == S.RINGINGIN


# --------------------------------------------------------------------------------- call matching
def test_message_with_unknown_recipient_session_matches_nothing():
    t, call = make_call(S.INCALL, S.INCALL, caller=True)
    t.receive(B_SID, msg(0x4242, call.local_session ^ 1, S.CALLENDED, S.INCALL), 1.0)
    assert call.local_state == S.INCALL and t.ignored == 1


def test_message_from_another_sid_matches_nothing():
    t, call = make_call(S.INCALL, S.INCALL, caller=True)
    t.receive(A_SID, msg(0x4242, call.local_session, S.CALLENDED, S.INCALL), 1.0)
    assert call.local_state == S.INCALL


@pytest.mark.parametrize("bad", [(S.CALLENDED, S.NOCALL), (S.CALLPREP, S.CALLENDED)])
def test_callended_never_creates_a_call(bad):
    t = table()
    t.receive(B_SID, msg(0x4242, 0, bad[0], bad[1], (MULAW,), ("1", "2")), 0.0)
    assert t.calls() == [] and drain(t) == []


def test_a_new_session_differs_from_every_session_id_in_use():
    # The remote ids come from the same random stream as ours, so collisions are tried for.
    for seed in range(30):
        t = CallTable("5552001", (MULAW,), random.Random(seed))
        in_use: set[int] = set()
        remotes = random.Random(seed).sample(range(1, 0x10000), MAX_CALLS)
        for i, remote in enumerate(remotes):
            caller = bytes([i + 1]) * 32
            t.receive(caller, msg(remote, 0, S.CALLPREP, S.NOCALL, (MULAW,), ("1", "2")), 0.0)
            newest = max(t.calls(), key=lambda c: c.call_id)
            assert newest.local_session not in in_use | {remote, 0}
            in_use |= {newest.local_session, remote}


def test_no_more_than_16_calls_at_once_and_the_17th_caller_hears_busy():
    t = table()
    for i in range(MAX_CALLS + 5):
        caller = bytes([i + 1]) * 32
        t.receive(caller, msg(i + 1, 0, S.CALLPREP, S.NOCALL, (MULAW,), ("1", "2")), 0.0)
    assert len(t.calls()) == MAX_CALLS
    busy = [(sid, m) for sid, m in t.outgoing if m.sender_state == S.CALLENDED]
    assert [sid[0] for sid, _m in busy] == list(range(MAX_CALLS + 1, MAX_CALLS + 6))
    assert all(m.recipient_session == sid[0] and m.recipient_state == S.CALLPREP for sid, m in busy)


def test_one_peer_gets_at_most_two_incoming_calls_and_busy_after_that():
    t = table()
    for session in range(1, 6):
        t.receive(B_SID, msg(session, 0, S.CALLPREP, S.NOCALL, (MULAW,), ("1", "2")), 0.0)
    assert len(t.calls()) == MAX_INCOMING_PER_PEER == 2
    assert t.refused == 3
    ended = [m for m in drain(t) if m.sender_state == S.CALLENDED]
    assert [m.recipient_session for m in ended] == [3, 4, 5]


def test_a_callprep_replayed_long_after_its_call_ended_starts_nothing():
    t = table()
    callprep = msg(0x1234, 0, S.CALLPREP, S.NOCALL, (MULAW,), ("1", "2"))
    t.receive(B_SID, callprep, 0.0)
    [call] = t.calls()
    t.hang_up(call.call_id, 1.0)
    t.receive(B_SID, msg(0x1234, call.local_session, S.CALLENDED, S.CALLENDED), 1.1)
    t.handle_timer(3.0)
    assert t.calls() == []
    drain(t)
    t.events.clear()
    t.receive(B_SID, callprep, 130.0)  # the captured CALLPREP, replayed after 130 s
    t.receive(B_SID, callprep, 100_000.0)
    assert t.calls() == [] and t.events == [] and drain(t) == []


def test_simultaneous_dial_without_local_sids_rejects_the_incoming_call():
    a, b = table("5552001", seed=1), table("5552002", seed=2)
    out_a = a.dial(B_SID, "5552002", 0.0)
    out_b = b.dial(A_SID, "5552001", 0.0)
    pump(a, b, 0.0)
    for t, out in ((a, out_a), (b, out_b)):
        incoming = [c for c in t.calls() if not c.is_caller]
        assert [c.local_state for c in incoming] == [S.CALLENDED]
        assert [c.end_reason for c in incoming] == [EndReason.SIMULTANEOUS_DIAL]
        assert not any(isinstance(e, IncomingCall) for e in t.events)
        # our outgoing call is busy too: the peer rejected it
        assert t.get(out.call_id).local_state == S.CALLENDED


def test_simultaneous_dial_keeps_exactly_the_lower_sids_call():
    a = table("5552001", seed=1, local_sid=A_SID)
    b = table("5552002", seed=2, local_sid=B_SID)
    out_a = a.dial(B_SID, "5552002", 0.0)
    out_b = b.dial(A_SID, "5552001", 0.0)
    pump(a, b, 0.0)
    # A_SID < B_SID: A's call is kept, B hung its own up and took A's as incoming
    (taken,) = [e for e in b.events if isinstance(e, IncomingCall)]
    assert taken.replaces == out_b.call_id and taken.caller_number == "5552001"
    assert b.get(out_b.call_id).end_reason is EndReason.SIMULTANEOUS_DIAL
    assert not any(isinstance(e, IncomingCall) for e in a.events)
    assert a.get(out_a.call_id).local_state == S.RINGINGOUT
    b.answer(taken.call, 0.1)
    pump(a, b, 0.1)
    live = [c for t in (a, b) for c in t.calls() if c.local_state == S.INCALL]
    assert len(live) == 2 and {c.is_caller for c in live} == {True, False}
    assert live[0].local_session in (live[1].remote_session,)


# ------------------------------------------------------------------------------- local actions
def test_ring_and_answer_need_the_caller_ringing_out():
    a = table()
    call = a.dial(B_SID, "5552002", 0.0)
    with pytest.raises(CallError):
        a.ring(call.call_id, 0.0)
    with pytest.raises(CallError):
        a.answer(call.call_id, 0.0)
    with pytest.raises(CallError):
        a.answer(999, 0.0)


def test_hang_up_twice_sends_one_callended():
    a, _b, ca, _cb = set_up_call()
    a.hang_up(ca, 1.0)
    a.hang_up(ca, 1.0)
    assert state_bytes(drain(a)) == [0x56]


def test_simultaneous_dial_survives_losing_the_lower_sids_first_callprep():
    a = table("5552001", seed=1, local_sid=A_SID)
    b = table("5552002", seed=2, local_sid=B_SID)
    out_a = a.dial(B_SID, "5552002", 0.0)
    drain(a)  # A's (the lower SID's) first CALLPREP is lost
    out_b = b.dial(A_SID, "5552001", 0.1)
    for m in drain(b):
        a.receive(B_SID, m, 0.1)
    for m in drain(a):  # A keeps its call: B's is rejected (0x26), which ends B's call busy
        b.receive(A_SID, m, 0.1)
    assert b.get(out_b.call_id).end_reason is EndReason.BUSY
    a.handle_timer(1.0)  # A's status tick resends its CALLPREP
    for m in drain(a):
        b.receive(A_SID, m, 1.0)
    (taken,) = [e for e in b.events if isinstance(e, IncomingCall)]
    assert taken.replaces == out_b.call_id
    pump(a, b, 1.0)
    b.answer(taken.call, 1.1)
    pump(a, b, 1.1)
    assert a.get(out_a.call_id).local_state == S.INCALL


def test_a_call_back_soon_after_a_refusal_replaces_the_refused_call():
    a = table("5552001", seed=1, local_sid=A_SID)
    b = table("5552002", seed=2, local_sid=B_SID)
    out_a = a.dial(B_SID, "5552002", 0.0)
    pump(a, b, 0.0)
    (incoming,) = [e for e in b.events if isinstance(e, IncomingCall)]
    b.hang_up(incoming.call, 0.1, EndReason.BUSY_HERE)  # B was busy dialling A
    pump(a, b, 0.1)
    assert a.get(out_a.call_id).end_reason is EndReason.BUSY
    b.dial(A_SID, "5552001", 1.0)  # B (the higher SID) places its call
    pump(a, b, 1.0)
    assert [e.replaces for e in a.events if isinstance(e, IncomingCall)] == [out_a.call_id]
    a.handle_timer(SIMULTANEOUS_WINDOW + 2.0)
    b.dial(A_SID, "5552001", SIMULTANEOUS_WINDOW + 2.0)  # later: an ordinary incoming call
    pump(a, b, SIMULTANEOUS_WINDOW + 2.0)
    assert [e.replaces for e in a.events if isinstance(e, IncomingCall)][-1] is None


def test_callee_can_reject_a_ringing_call():
    a, b, ca, cb = set_up_call(answer=False)
    b.hang_up(cb, 1.0, EndReason.DECLINED)
    pump(a, b, 1.0)
    assert a.get(ca).local_state == S.CALLENDED
    assert a.get(ca).end_reason is EndReason.REJECTED
    assert b.get(cb).end_reason is EndReason.DECLINED


def test_answering_without_ringing_still_passes_through_ringingin():
    a, b = table("5552001", seed=1), table("5552002", seed=2)
    call_a = a.dial(B_SID, "5552002", 0.0)
    pump(a, b, 0.0)
    (incoming,) = [e for e in b.events if isinstance(e, IncomingCall)]
    b.answer(incoming.call, 0.1)
    sent = drain(b)
    assert state_bytes(sent) == [0x34, 0x35]
    changes = [e.local_state for e in b.events if isinstance(e, CallStateChanged)]
    assert changes[-2:] == [S.RINGINGIN, S.INCALL]
    for message in sent:
        a.receive(B_SID, message, 0.1)
    remote_seen = [e.remote_state for e in a.events if isinstance(e, CallStateChanged)]
    assert S.RINGINGIN in remote_seen
    assert a.get(call_a.call_id).local_state == S.INCALL


def end_reasons(t: CallTable) -> list[tuple[EndReason | None, str]]:
    """The distinct reasons the ended call's state changes carried (the reason never changes)."""
    reasons = [
        (e.end_reason, e.end_detail)
        for e in t.events
        if isinstance(e, CallStateChanged) and e.local_state == S.CALLENDED
    ]
    return list(dict.fromkeys(reasons))


def test_every_end_carries_a_reason():
    a, b, _ca, cb = set_up_call()
    b.hang_up(cb, 1.0)
    pump(a, b, 1.0)
    assert end_reasons(b) == [(EndReason.HUNG_UP, EndReason.HUNG_UP.value)]
    assert end_reasons(a) == [(EndReason.ENDED_BY_FAR_END, EndReason.ENDED_BY_FAR_END.value)]
    a.handle_timer(2.5)
    b.handle_timer(2.5)
    ((_t, ended),) = [(t, e) for t in (a,) for e in t.events if isinstance(e, CallEnded)]
    assert (ended.reason, ended.timed_out) == (EndReason.ENDED_BY_FAR_END, False)


def test_busy_when_the_far_end_ends_before_ringing():
    a, b = table("5552001", seed=1), table("5552002", seed=2)
    call = a.dial(B_SID, "5552002", 0.0)
    pump(a, b, 0.0)
    (incoming,) = [e for e in b.events if isinstance(e, IncomingCall)]
    b.hang_up(incoming.call, 0.1, EndReason.BUSY_HERE)
    pump(a, b, 0.1)
    assert a.get(call.call_id).end_reason is EndReason.BUSY
    assert end_reasons(b) == [(EndReason.BUSY_HERE, EndReason.BUSY_HERE.value)]


def test_callee_hears_cancelled_when_the_caller_gives_up():
    a, b, ca, cb = set_up_call(answer=False)
    a.hang_up(ca, 1.0)
    pump(a, b, 1.0)
    assert b.get(cb).end_reason is EndReason.CANCELLED


def test_no_shared_codec_names_the_far_ends_codecs():
    t = table(codecs=(OPUS,))
    t.receive(B_SID, msg(0x4242, 0, S.CALLPREP, S.NOCALL, (0x21,), ("1", "2")), 0.0)
    (call,) = t.calls()
    assert call.end_reason is EndReason.NO_SHARED_CODEC
    assert call.end_detail == "no shared codec; far end offers [0x21]"
    caller = table(codecs=(MULAW,))
    out = caller.dial(B_SID, "5552002", 0.0)
    caller.receive(B_SID, msg(0x4242, out.local_session, S.NOCALL, S.CALLPREP, (0x21, OPUS)), 0)
    assert end_reasons(caller) == [
        (EndReason.NO_SHARED_CODEC, "no shared codec; far end offers [0x21, 0x07]")
    ]


def test_cannot_ring_is_the_reason_without_a_way_to_ring():
    t = table(can_ring=False)
    t.receive(B_SID, msg(0x4242, 0, S.CALLPREP, S.NOCALL, (MULAW,), ("1", "2")), 0.0)
    assert t.calls()[0].end_reason is EndReason.CANNOT_RING


@pytest.mark.parametrize(
    ("answered", "when", "reason"),
    [
        (None, DIAL_TIMEOUT + 0.5, EndReason.NO_REPLY),
        (False, RING_TIMEOUT + 0.5, EndReason.NO_ANSWER),
        (True, NETWORK_TIMEOUT + 1.5, EndReason.NETWORK_LOST),
    ],
)
def test_timeouts_say_which_timeout(answered, when, reason):
    if answered is None:
        a = table()
        a.dial(B_SID, "5552002", 0.0)
    else:
        a, _b, _ca, _cb = set_up_call(answer=answered)
    for t in range(1, int(when) + 1):
        a.handle_timer(float(t))
    a.handle_timer(when)
    (ended,) = [e for e in a.events if isinstance(e, CallEnded)]
    assert (ended.reason, ended.timed_out) == (reason, True)
    assert end_reasons(a)[-1][0] is reason


# -------------------------------------------------------------------------------------- timeouts
def test_dial_timeout_sends_one_0x66_and_deletes():
    a = table()
    call = a.dial(B_SID, "5552002", 0.0)
    drain(a)
    a.handle_timer(DIAL_TIMEOUT - 0.5)
    assert state_bytes(drain(a)) == [0x12]
    a.handle_timer(DIAL_TIMEOUT + 0.5)
    assert state_bytes(drain(a)) == [0x66]
    assert a.get(call.call_id) is None
    assert any(isinstance(e, CallEnded) and e.timed_out for e in a.events)
    a.handle_timer(DIAL_TIMEOUT + 5)
    assert drain(a) == []


def test_ring_timeout_ends_an_unanswered_call_after_a_clock_jump():
    a, _b, _ca, _cb = set_up_call(answer=False)
    a.handle_timer(RING_TIMEOUT + 100.0)  # the clock jumped: one tick, one 0x66
    assert state_bytes(drain(a)) == [0x66]
    assert a.calls() == []


def test_network_timeout_ends_a_silent_call():
    a, _b, ca, _cb = set_up_call()
    for t in range(1, int(NETWORK_TIMEOUT)):
        a.handle_timer(float(t))
    assert a.get(ca) is not None
    drain(a)
    a.handle_timer(NETWORK_TIMEOUT + 1.0)
    assert state_bytes(drain(a)) == [0x66] and a.get(ca) is None


def test_an_unanswered_call_is_ended_by_the_caller_who_says_no_answer():
    a, b, _ca, cb = set_up_call(answer=False)
    for t in range(1, int(RING_TIMEOUT)):
        for side in (a, b):
            side.handle_timer(float(t))
        pump(a, b, float(t))
    b.handle_timer(RING_TIMEOUT + 0.5)  # the called side's clock runs a little ahead
    assert b.get(cb).local_state == S.RINGINGIN
    a.handle_timer(RING_TIMEOUT + 0.5)
    pump(a, b, RING_TIMEOUT + 0.5)
    assert end_reasons(a)[-1][0] is EndReason.NO_ANSWER
    assert b.get(cb) is None or b.get(cb).local_state == S.CALLENDED


def test_answer_restarts_the_ring_clock():
    a, b, ca, cb = set_up_call(answer=False)
    b.answer(cb, RING_TIMEOUT - 1)
    pump(a, b, RING_TIMEOUT - 1)
    a.handle_timer(RING_TIMEOUT + 1)
    b.handle_timer(RING_TIMEOUT + 1)
    assert a.get(ca).local_state == S.INCALL and b.get(cb).local_state == S.INCALL


# ------------------------------------------------------------------------------------------ audio
def test_audio_is_sent_only_incall_and_numbered_from_zero():
    a, b, ca, cb = set_up_call(answer=False)
    drain(a)
    assert not a.send_audio(ca, MULAW, b"x", 20)
    b.answer(cb, 1.0)
    pump(a, b, 1.0)
    assert a.send_audio(ca, MULAW, b"one", 20)
    assert a.send_audio(ca, MULAW, b"two", 40)
    assert a.send_audio(ca, MULAW, b"three", 20)
    frames = [m.audio for m in drain(a)]
    assert [(f.time_field, f.seq_field) for f in frames] == [(0, 0), (1, 1), (3, 2)]
    with pytest.raises(ValueError):
        a.send_audio(ca, MULAW, b"x", 10)


def test_audio_duplicates_are_dropped_and_late_frames_kept():
    a, b, ca, _cb = set_up_call()
    for payload in (b"0", b"1", b"2"):
        a.send_audio(ca, MULAW, payload, 20)
    frames = drain(a)
    b.events.clear()
    for m in (frames[0], frames[2], frames[1], frames[2], frames[0]):
        b.receive(A_SID, m, 1.0)
    got = [(e.time_ms, e.payload) for e in b.events if isinstance(e, AudioFrameReceived)]
    assert got == [(0, b"0"), (40, b"2"), (20, b"1")]


def test_row_ringingout_ringingout_goes_incall_without_audio():
    t, call = make_call(S.RINGINGOUT, S.NOCALL, caller=True)
    deliver(t, call, S.RINGINGOUT)
    assert call.local_state == S.INCALL
    assert not [e for e in t.events if isinstance(e, AudioFrameReceived)]


def test_state_changes_carry_the_peers_codec_list():
    a, _b, ca, _cb = set_up_call()
    changes = [e for e in a.events if isinstance(e, CallStateChanged) and e.call == ca]
    assert changes[-1].remote_codecs == (MULAW, OPUS)
    assert changes[0].remote_codecs == ()  # our own CALLPREP: nothing heard yet
