"""The phone (vomp/phone.py) over every path, on real Nodes on the in-memory network."""

from __future__ import annotations

import pytest

from lab.netsim import Faults
from lab.phones import add_phone, phones
from vomp.events import CallStateChanged, EndReason, IncomingCall
from vomp.messages import CallState
from vomp.phone import (
    Answer,
    Dial,
    HangUp,
    Phone,
    PhoneError,
    PhoneSettings,
    PhoneState,
    RejectedWhileBusy,
    Ring,
    SetMute,
    SetVolume,
    StopCallAudio,
)

S = CallState


def remote_states_seen(station, call=None) -> list[int]:
    return [
        e.remote_state
        for _t, e in station.station.events
        if isinstance(e, CallStateChanged) and (call is None or e.call == call)
    ]


def connect(net, a, b, number="5552002"):
    a.lift()
    a.press(number + "#")
    net.run_until(net.now + 1.0)
    b.lift()
    net.run_until(net.now + 0.5)


def test_dialling_by_keys_rings_the_far_end_and_lifting_connects_both():
    net, (a, b) = phones(2)
    a.lift()
    assert (a.state, a.tone(), a.led()) == ("dial tone", "dial", "on")
    a.press("5552002")
    assert a.keys_beeped() == "5552002"
    assert a.tone() is None  # the first digit stops the dial tone
    a.press("#")
    assert a.of(Dial) == [Dial("5552002")]
    net.run_until(net.now + 1.0)
    assert (b.state, b.ringing(), b.led()) == ("ringing in", True, "blink")
    assert (a.state, a.tone()) == ("ringing out", "ringback")
    b.lift()
    net.run_until(net.now + 0.5)
    assert (a.state, b.state) == ("in call", "in call")
    assert (a.tone(), b.tone(), b.ringing()) == (None, None, False)
    assert a.audio_started() == [a.phone.call] and b.audio_started() == [b.phone.call]
    assert b.phone.status().number == "5552001"


def test_far_end_hanging_up_gives_the_call_ended_tone_until_on_hook():
    net, (a, b) = phones(2)
    connect(net, a, b)
    call = a.phone.call
    b.put_down()
    assert b.state == "idle" and b.of(StopCallAudio)
    net.run_until(net.now + 0.5)
    assert (a.state, a.tone()) == ("ended", "call_ended")
    assert a.of(StopCallAudio) == [StopCallAudio(call)]
    assert a.phone.status().last_end == EndReason.ENDED_BY_FAR_END.value
    net.run_until(net.now + 11)  # the tone stops; the line stays dead until on-hook
    assert (a.state, a.tone()) == ("wait on-hook", None)
    a.put_down()
    assert (a.state, a.led()) == ("idle", "off")
    net.run_until_quiet_calls(net.now + 5)
    assert a.node.calls.calls() == [] and b.node.calls.calls() == []


def test_inter_digit_timeout_sends_the_number():
    net, (a, b) = phones(2)
    a.lift()
    a.press("5552002")
    net.run_until(net.now + 3.9)
    assert a.of(Dial) == []
    net.run_until(net.now + 0.2)
    assert a.of(Dial) == [Dial("5552002")]
    net.run_until(net.now + 1.0)
    assert b.state == "ringing in"


def test_busy_far_end_rejects_and_logs_and_the_caller_hears_busy():
    net, (a, b) = phones(2)
    b.lift()  # b is off-hook, dialling: busy
    a.lift()
    a.press("5552002#")
    net.run_until(net.now + 1.0)
    assert b.state == "dial tone"
    (logged,) = b.of(RejectedWhileBusy)
    assert (logged.remote_sid, logged.caller_number) == (a.node.sid, "5552001")
    assert b.of(HangUp) == [HangUp(logged.call, EndReason.BUSY_HERE)]
    assert (a.state, a.tone()) == ("ended", "busy")
    assert a.phone.status().last_end == EndReason.BUSY.value


def test_unknown_number_gives_the_error_tone():
    net, (a, _b) = phones(2)
    a.lift()
    a.press("5559999#")
    net.run_until(net.now + 2.9)
    assert a.state == "calling" and a.tone() is None
    net.run_until(net.now + 0.2)
    assert (a.state, a.tone()) == ("ended", "error")
    assert a.phone.status().last_end == "no such number: nobody answered the lookup"


def test_too_short_a_number_gives_the_error_tone_at_once():
    _net, (a, _b) = phones(2)
    a.lift()
    a.press("12#")
    assert (a.state, a.tone()) == ("ended", "error")
    assert a.of(Dial) == []


def test_no_answer_ends_after_the_ring_timeout_on_both_sides():
    net, (a, b) = phones(2)
    a.lift()
    a.press("5552002#")
    net.run_until(net.now + 25)
    assert b.ringing() and a.tone() == "ringback"
    net.run_until(net.now + 7)
    assert (a.state, a.tone()) == ("ended", "call_ended")
    assert a.phone.status().last_end == EndReason.NO_ANSWER.value
    assert (b.state, b.ringing(), b.led()) == ("idle", False, "off")


def test_rejecting_a_ringing_call_tells_the_caller_busy():
    net, (a, b) = phones(2)
    a.lift()
    a.press("5552002#")
    net.run_until(net.now + 1.0)
    b.press("D")  # the hang-up key while ringing
    assert (b.state, b.ringing()) == ("idle", False)
    assert b.of(HangUp)[-1].reason is EndReason.DECLINED
    net.run_until(net.now + 0.5)
    assert (a.state, a.tone()) == ("ended", "busy")
    assert a.phone.status().last_end == EndReason.REJECTED.value


def test_caller_giving_up_stops_the_ringer():
    net, (a, b) = phones(2)
    a.lift()
    a.press("5552002#")
    net.run_until(net.now + 1.0)
    a.put_down()
    net.run_until(net.now + 0.5)
    assert (b.state, b.ringing(), b.tone()) == ("idle", False, None)


def test_network_lost_in_a_call_gives_the_error_tone():
    net, (a, b) = phones(2)
    connect(net, a, b)
    net.faults = Faults(loss=1.0)
    net.run_until(net.now + 32)
    for side in (a, b):
        assert (side.state, side.tone()) == ("ended", "error")
        assert side.phone.status().last_end == EndReason.NETWORK_LOST.value


def test_second_incoming_call_while_in_a_call_is_rejected_and_logged():
    net, (a, b, c) = phones(3)
    connect(net, a, b)
    c.lift()
    c.press("5552002#")
    net.run_until(net.now + 1.0)
    assert (a.state, b.state) == ("in call", "in call")
    assert [r.caller_number for r in b.of(RejectedWhileBusy)] == ["5552003"]
    assert b.phone.status().rejected_while_busy == 1
    assert (c.state, c.tone()) == ("ended", "busy")


def test_auto_answer_rings_first_then_answers():
    net, (a, b) = phones(2, PhoneSettings(auto_answer=True, auto_answer_after_s=1.0))
    a.lift()
    a.press("5552002#")
    net.run_until(net.now + 0.5)
    assert b.state == "ringing in" and a.tone() == "ringback"
    net.run_until(net.now + 1.0)
    assert (a.state, b.state) == ("in call", "in call")
    commands = [type(x) for x in b.of(Ring | Answer)]
    assert commands == [Ring, Answer]
    assert S.RINGINGIN in remote_states_seen(a)
    a.put_down()  # the far end hangs up: the auto-answered phone goes back to idle by itself
    net.run_until(net.now + 11)
    assert b.state == "idle"


def test_redial_calls_the_last_number_again():
    net, (a, _b) = phones(2)
    a.lift()
    a.press("5552002#")
    net.run_until(net.now + 1.0)
    a.put_down()
    net.run_until(net.now + 3)
    a.lift()
    a.press("B")  # the redial key
    assert a.of(Dial) == [Dial("5552002"), Dial("5552002")]
    a.put_down()
    a.lift()
    a.press("A")  # the call key with no digits redials too
    assert len(a.of(Dial)) == 3
    a.put_down()
    a.do(a.phone.redial)  # and the control command
    assert len(a.of(Dial)) == 4


def test_redial_with_nothing_dialled_is_an_error_for_control_and_ignored_for_keys():
    _net, (a, _b) = phones(2)
    with pytest.raises(PhoneError, match="nothing to redial"):
        a.do(a.phone.redial)
    a.press("B")
    assert a.state == "idle"


def test_speed_dial_from_the_keypad_and_from_control():
    settings = PhoneSettings(speed_dials={"1": "5552002"})
    net, (a, b) = phones(2, settings)
    a.lift()
    a.press("1#")
    assert a.of(Dial) == [Dial("5552002")]
    net.run_until(net.now + 1.0)
    assert b.state == "ringing in"
    a.put_down()
    a.do(lambda now: a.phone.dial("1", now))
    assert a.of(Dial)[-1] == Dial("5552002")


def test_mute_and_volume_in_a_call():
    net, (a, b) = phones(2)
    connect(net, a, b)
    a.press("C")
    a.do(lambda now: a.phone.set_mute(False, now))
    a.press("##*")  # in a call: '#' louder, '*' softer
    assert a.of(SetMute) == [SetMute(True), SetMute(False)]
    assert a.of(SetVolume) == [SetVolume(8), SetVolume(9), SetVolume(8)]
    a.press("C")
    a.put_down()
    assert a.of(SetMute)[-1] == SetMute(False)  # a muted call that ends unmutes
    assert not a.phone.muted
    with pytest.raises(PhoneError, match="not in a call"):
        a.do(lambda now: a.phone.set_mute(True, now))


def test_volume_stays_within_its_range():
    phone = Phone(PhoneSettings(volume=9, volume_max=10))
    for _ in range(3):
        phone.volume_up(0.0)
    for _ in range(15):
        phone.volume_down(0.0)
    assert phone.volume == 0
    levels = []
    while (action := phone.next_action()) is not None:
        assert isinstance(action, SetVolume)
        levels.append(action.level)
    assert levels == [10, *range(9, -1, -1)]


def test_control_commands_dial_answer_and_hang_up_without_a_hook():
    net, (a, b) = phones(2)
    a.do(lambda now: a.phone.dial("5552002", now))
    net.run_until(net.now + 1.0)
    b.do(b.phone.answer)
    net.run_until(net.now + 0.5)
    assert (a.state, b.state) == ("in call", "in call")
    a.do(a.phone.hang_up)
    net.run_until(net.now + 0.5)
    assert (a.state, b.state) == ("idle", "ended")
    net.run_until(net.now + 11)
    assert b.state == "idle"  # nobody lifted b's handset: the end tone puts it back
    with pytest.raises(PhoneError, match="no call is ringing"):
        b.do(b.phone.answer)
    with pytest.raises(PhoneError, match="cannot dial '12'"):
        b.do(lambda now: b.phone.dial("12", now))


def test_a_phone_without_hook_switch_uses_the_call_and_hang_up_keys():
    settings = PhoneSettings(hook_switch=False)
    net, (a, b) = phones(2, settings)
    a.press("5552002A")  # typing starts; the call key sends
    assert a.of(Dial) == [Dial("5552002")]
    net.run_until(net.now + 1.0)
    b.press("A")  # the call key answers
    net.run_until(net.now + 0.5)
    assert (a.state, b.state) == ("in call", "in call")
    b.press("D")
    net.run_until(net.now + 0.5)
    assert (a.state, b.state) == ("ended", "idle")
    net.run_until(net.now + 11)
    assert a.state == "idle"


def test_hang_up_key_with_the_handset_lifted_gives_a_fresh_dial_tone():
    net, (a, b) = phones(2)
    connect(net, a, b)
    a.press("D")
    assert (a.state, a.tone()) == ("dial tone", "dial")
    net.run_until(net.now + 0.5)
    assert b.state == "ended"


def test_off_hook_without_dialling_times_out_to_the_error_tone():
    net, (a, _b) = phones(2)
    a.lift()
    net.run_until(net.now + 21)
    assert (a.state, a.tone()) == ("ended", "error")


def test_hanging_up_during_the_lookup_hangs_up_the_call_it_then_places():
    net, (a, b) = phones(2)
    a.lift()
    a.press("5552002#")
    a.put_down()  # before the lookup's answer arrives
    net.run_until(net.now + 2.0)
    assert a.state == "idle" and b.state == "idle"
    assert b.of(Ring) == []
    net.run_until_quiet_calls(net.now + 5)
    assert a.node.calls.calls() == []


def test_both_dialling_each_other_at_once_connects_exactly_one_call():
    net, (a, b) = phones(2)
    a.node.lookup("5552002", net.now)  # both know each other's SID: the calls cross at once
    b.node.lookup("5552001", net.now)
    net.run_until(net.now + 3.5)
    a.lift()
    b.lift()
    a.press("5552002#")
    b.press("5552001#")
    net.run_until(net.now + 2.0)
    assert (a.state, b.state) == ("in call", "in call")
    a_calls = [c for c in a.node.calls.calls() if c.local_state == S.INCALL]
    b_calls = [c for c in b.node.calls.calls() if c.local_state == S.INCALL]
    assert len(a_calls) == len(b_calls) == 1
    assert a_calls[0].local_session == b_calls[0].remote_session
    lower, higher = sorted((a, b), key=lambda s: s.node.sid)
    assert lower.node.calls.get(lower.phone.call).is_caller  # the lower SID's call was kept
    taken = [e for _t, e in higher.station.events if isinstance(e, IncomingCall)]
    assert [e.replaces is not None for e in taken] == [True]
    assert higher.of(RejectedWhileBusy) == [] and lower.of(RejectedWhileBusy) == []


def test_crossing_calls_connect_even_when_the_lower_sids_first_callprep_is_lost():
    net, stations = phones(2)
    lower, higher = sorted(stations, key=lambda s: s.node.sid)
    lower.node.lookup(higher.node.number, net.now)
    higher.node.lookup(lower.node.number, net.now)
    net.run_until(net.now + 3.5)
    start = net.now
    deliver = higher.node.receive

    def lossy(data, source, now):  # the lower SID's first datagrams to the higher one are lost
        if source == lower.station.address and now < start + 0.05:
            return
        deliver(data, source, now)

    higher.node.receive = lossy
    lower.lift()
    higher.lift()
    lower.press(higher.node.number + "#")
    net.run_until(start + 0.1)
    higher.press(lower.node.number + "#")
    net.run_until(start + 3.0)
    assert "ended" in higher.states()  # its call was refused first (a moment of busy tone)
    assert (lower.state, higher.state) == ("in call", "in call")
    live = [c for s in stations for c in s.node.calls.calls() if c.local_state == S.INCALL]
    assert len(live) == 2


def test_status_snapshot_names_the_state_and_the_number():
    net, (a, b) = phones(2)
    connect(net, a, b)
    status = a.phone.status()
    assert (status.state, status.number, status.off_hook, status.lifted) == (
        "in call",
        "5552002",
        True,
        True,
    )
    assert status.call == a.phone.call and status.last_number == "5552002"


def test_keys_that_mean_nothing_are_ignored_and_counted():
    phone = Phone()
    for key in "123#BCx":  # on-hook: digits, redial with nothing dialled, mute, not a key
        phone.key(key, 0.0)
    assert phone.state is PhoneState.IDLE
    assert phone.status().ignored_inputs == 7
    assert phone.next_action() is None


def test_settings_refuse_bad_keys_and_speed_dials():
    with pytest.raises(ValueError, match="call_key"):
        PhoneSettings(call_key="5")
    with pytest.raises(ValueError, match="must differ"):
        PhoneSettings(call_key="A", redial_key="A")
    with pytest.raises(ValueError, match="speed dial '1'"):
        PhoneSettings(speed_dials={"1": "12"})


def test_a_phone_joins_a_network_late():
    net, (a,) = phones(1)
    b = add_phone(net, "5552002")
    net.run_until(net.now + 2.0)
    connect(net, a, b)
    assert (a.state, b.state) == ("in call", "in call")


def test_every_tone_the_phone_asks_for_exists_in_the_tone_table():
    from hw.soundcard.tones import CALL_PROGRESS
    from vomp.phone import END_TONES, INDICATORS

    asked = {i.tone for i in INDICATORS.values()} - {None, "end"}
    asked |= {tone for tone in END_TONES.values() if tone is not None}
    assert asked <= CALL_PROGRESS.keys()
    assert set(END_TONES) >= set(EndReason)  # every way a call ends has its tone
