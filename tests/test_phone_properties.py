"""Property tests of the phone: any sequence of keys, hook moves, control commands and VoMP
events is handled without a crash, keeps the phone's promises, and hanging up ends in IDLE."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.netsim import Faults
from lab.phones import phones
from vomp.events import (
    CallEnded,
    CallStateChanged,
    DnaLookupFinished,
    EndReason,
    IncomingCall,
)
from vomp.messages import CallState
from vomp.phone import (
    Answer,
    HangUp,
    Phone,
    PhoneError,
    PhoneSettings,
    PhoneState,
    PlayTone,
    Ring,
    SetRinger,
    StartCallAudio,
    StopCallAudio,
    StopTone,
)

SID = b"\x11" * 32
NUMBER = "5552002"
keys = st.sampled_from("0123456789*#ABCD")
call_ids = st.integers(1, 3)
states = st.sampled_from(list(CallState))
events = st.one_of(
    st.builds(
        IncomingCall,
        call_ids,
        st.just(SID),
        st.just(NUMBER),
        st.just("5552001"),
        st.one_of(st.none(), call_ids),
    ),
    st.builds(
        CallStateChanged,
        call_ids,
        st.just(1),
        st.just(2),
        states,
        states,
        st.just(SID),
        st.sampled_from(["", NUMBER]),
        st.just(()),
        st.sampled_from([None, *EndReason]),
    ),
    st.builds(CallEnded, call_ids, st.just(SID), st.booleans(), st.sampled_from(list(EndReason))),
    st.builds(DnaLookupFinished, st.sampled_from([NUMBER, "5559999"]), st.booleans()),
)
steps = st.one_of(
    st.tuples(st.just("key"), keys),
    st.tuples(st.just("hook"), st.booleans()),
    st.tuples(st.just("event"), events),
    st.tuples(st.just("wait"), st.floats(0.0, 40.0)),
    st.tuples(
        st.just("control"),
        st.sampled_from(
            [
                "dial",
                "answer",
                "hang_up",
                "reject",
                "redial",
                "mute",
                "unmute",
                "volume_up",
                "volume_down",
            ]
        ),
    ),
)


def control(phone: Phone, name: str, now: float) -> None:
    commands = {
        "dial": lambda: phone.dial(NUMBER, now),
        "answer": lambda: phone.answer(now),
        "hang_up": lambda: phone.hang_up(now),
        "reject": lambda: phone.reject(now),
        "redial": lambda: phone.redial(now),
        "mute": lambda: phone.set_mute(True, now),
        "unmute": lambda: phone.set_mute(False, now),
        "volume_up": lambda: phone.volume_up(now),
        "volume_down": lambda: phone.volume_down(now),
    }
    with contextlib.suppress(PhoneError):
        commands[name]()


class Observer:
    """Checks the promises the actions keep, whatever the inputs."""

    def __init__(self, phone: Phone) -> None:
        self.phone = phone
        self.known_calls: set[int] = set()
        self.audio_on: int | None = None
        self.tone: str | None = None
        self.ringer = False

    def note_inputs(self, step) -> None:
        if step[0] == "event" and hasattr(step[1], "call"):
            self.known_calls.add(step[1].call)

    def drain(self) -> None:
        while (action := self.phone.next_action()) is not None:
            if isinstance(action, Ring | Answer | HangUp):
                assert action.call in self.known_calls, action
            if isinstance(action, StartCallAudio):
                assert self.audio_on is None
                self.audio_on = action.call
            if isinstance(action, StopCallAudio):
                assert self.audio_on == action.call
                self.audio_on = None
            if isinstance(action, PlayTone):
                self.tone = action.name
            if isinstance(action, StopTone):
                self.tone = None
            if isinstance(action, SetRinger):
                assert action.on != self.ringer
                self.ringer = action.on
        state = self.phone.state
        assert self.ringer == (state is PhoneState.RINGING_IN)
        assert (self.audio_on is not None) == (state is PhoneState.IN_CALL)
        if state is PhoneState.DIAL_TONE:
            assert self.tone == "dial"
        if state in (PhoneState.IDLE, PhoneState.IN_CALL, PhoneState.RINGING_IN):
            assert self.tone is None


@settings(max_examples=300)
@given(st.lists(steps, max_size=40), st.booleans(), st.booleans())
def test_any_inputs_keep_the_promises_and_hanging_up_returns_to_idle(
    script, hook_switch, auto_answer
):
    phone = Phone(PhoneSettings(hook_switch=hook_switch, auto_answer=auto_answer))
    seen = Observer(phone)
    now = 0.0
    for step in script:
        seen.note_inputs(step)
        kind, value = step
        if kind == "key":
            phone.key(value, now)
        elif kind == "hook":
            phone.hook(value, now)
        elif kind == "event":
            phone.node_event(value, now)
        elif kind == "wait":
            now += value
            while (due := phone.next_timer()) is not None and due <= now:
                phone.handle_timer(due)
                seen.drain()
        else:
            control(phone, value, now)
        seen.drain()
    phone.hook(False, now)
    control(phone, "hang_up", now)
    seen.drain()
    assert phone.state is PhoneState.IDLE
    assert phone.next_timer() is None
    assert (seen.tone, seen.ringer, seen.audio_on) == (None, False, None)


user_steps = st.one_of(
    st.tuples(st.sampled_from("abc"), st.just("key"), st.sampled_from("55520013#ABCD*")),
    st.tuples(st.sampled_from("abc"), st.just("hook"), st.booleans()),
    st.tuples(
        st.sampled_from("abc"),
        st.just("dial"),
        st.sampled_from(["5552001", "5552002", "5552003", "1"]),
    ),
    st.tuples(
        st.sampled_from("abc"),
        st.just("control"),
        st.sampled_from(["answer", "hang_up", "reject", "redial", "mute"]),
    ),
    st.tuples(st.sampled_from("abc"), st.just("wait"), st.floats(0.0, 8.0)),
)


@settings(max_examples=25)
@given(
    st.lists(user_steps, max_size=30),
    st.sampled_from([0.0, 0.1, 0.4]),
    st.booleans(),
    st.booleans(),
)
def test_real_phones_under_random_use_stay_in_step_with_their_nodes(
    script, loss, auto_answer, hook_switch
):
    """Three phones on real Nodes, used at random under loss: a node has a call in INCALL
    exactly when its phone is in a call, on that call; hanging up leaves no call anywhere."""
    settings_ = PhoneSettings(
        auto_answer=auto_answer,
        auto_answer_after_s=0.5,
        hook_switch=hook_switch,
        speed_dials={"1": "5552002"},
    )
    net, stations = phones(3, settings_, faults=Faults(loss=loss), seed=3)
    by_name = dict(zip("abc", stations, strict=True))
    for who, kind, value in script:
        side = by_name[who]
        if kind == "key":
            side.press(value)
        elif kind == "hook":
            side.do(lambda now, v=value, s=side: s.phone.hook(v, now))
        elif kind == "dial":
            side.do(lambda now, v=value, s=side: control_dial(s.phone, v, now))
        elif kind == "control":
            side.do(lambda now, v=value, s=side: control(s.phone, v, now))
        else:
            net.run_until(net.now + value)
        for each in stations:
            live = [c.call_id for c in each.node.calls.calls() if c.local_state == CallState.INCALL]
            in_call = each.phone.state is PhoneState.IN_CALL
            assert live == ([each.phone.call] if in_call else []), each.states()
    for side in stations:
        side.do(lambda now, s=side: s.phone.hook(False, now))
        side.do(lambda now, s=side: control(s.phone, "hang_up", now))
    net.faults = Faults()
    net.run_until(net.now + 45)  # any call the far end still had times out or is hung up
    for side in stations:
        assert side.phone.state is PhoneState.IDLE, side.states()
        assert side.node.calls.calls() == []


def control_dial(phone: Phone, number: str, now: float) -> None:
    with contextlib.suppress(PhoneError):
        phone.dial(number, now)


@settings(max_examples=20)
@given(st.floats(0.0, 1.5), st.sampled_from([0.0, 0.1, 0.3]), st.integers(0, 1000), st.booleans())
def test_crossing_calls_never_connect_twice(offset, loss, seed, lower_dials_first):
    """Both dial each other, the second up to 1.5 s later (maybe while the first call already
    reached it): never two calls, and without loss always one."""
    net, stations = phones(2, faults=Faults(loss=loss), seed=seed)
    a, b = sorted(stations, key=lambda s: s.node.sid, reverse=not lower_dials_first)
    a.node.lookup(b.node.number, net.now)  # both sides know each other: the calls cross
    b.node.lookup(a.node.number, net.now)
    net.run_until(net.now + 3.5)
    a.lift()
    b.lift()
    a.press(b.node.number + "#")
    net.run_until(net.now + offset)
    b.press(a.node.number + "#")
    for _ in range(10):
        net.run_until(net.now + 0.5)
        live = [
            [c for c in s.node.calls.calls() if c.local_state == CallState.INCALL] for s in (a, b)
        ]
        assert all(len(calls) <= 1 for calls in live)
        if a.state == b.state == "in call":
            assert live[0][0].local_session == live[1][0].remote_session
    if loss == 0.0:
        assert (a.state, b.state) == ("in call", "in call")
