"""Call-progress tones, keypad tones and the ringer cadence."""

from __future__ import annotations

from array import array

import pytest

from hw.gpio.recording import RecordingPins
from hw.ringer import GpioRinger, RecordingRingerOutput, Ringer, SoundRinger
from hw.soundcard.tones import CALL_PROGRESS, ToneSource, dtmf_spec, mix
from lab.virtual_audio import power_at

RATE = 16000


def is_silent(pcm: bytes) -> bool:
    return not any(array("h", pcm))


@pytest.mark.parametrize("key", list("0123456789*#"))
def test_keypad_tone_holds_its_two_dtmf_frequencies_and_nothing_else(key):
    low, high = dtmf_spec(key).frequencies
    pcm = array("h", ToneSource.keypad(key).read(1600))  # 50 ms
    others = {697, 770, 852, 941, 1209, 1336, 1477, 1633} - {low, high}
    wanted = min(power_at(pcm, low), power_at(pcm, high))
    assert wanted > 100 * max(power_at(pcm, f) for f in others)


def test_keypad_tone_is_a_short_beep_then_silence():
    tone = ToneSource.keypad("5")
    assert not is_silent(tone.read(3200))  # 100 ms of beep
    assert tone.finished
    assert is_silent(tone.read(320))


def test_dial_tone_never_stops():
    tone = ToneSource.call_progress("dial")
    for _ in range(300):  # 3 s in 10 ms periods
        assert not is_silent(tone.read(320))


def test_busy_tone_is_half_a_second_on_half_a_second_off_repeating():
    tone = ToneSource.call_progress("busy")
    second = [tone.read(320) for _ in range(100)]
    assert not any(is_silent(p) for p in second[:50])
    assert all(is_silent(p) for p in second[50:])
    assert not is_silent(tone.read(320))


def test_ringback_is_two_seconds_on_four_off():
    tone = ToneSource.call_progress("ringback")
    cycle = [tone.read(320) for _ in range(600)]
    assert not any(is_silent(p) for p in cycle[:200])
    assert all(is_silent(p) for p in cycle[200:])


def test_call_ended_tone_plays_once():
    tone = ToneSource.call_progress("call_ended")
    tone.read(len(tone._cycle))
    assert tone.finished
    assert is_silent(tone.read(320))


def test_every_call_progress_tone_has_a_name_the_phone_uses():
    assert {"dial", "ringback", "busy", "error", "call_ended", "ring"} <= set(CALL_PROGRESS)
    with pytest.raises(ValueError, match="no call-progress tone 'beep'"):
        ToneSource.call_progress("beep")
    with pytest.raises(ValueError, match="no DTMF tone"):
        dtmf_spec("X")


def test_mix_adds_and_saturates_instead_of_wrapping():
    a = array("h", [30000, -30000, 100]).tobytes()
    b = array("h", [10000, -10000, 23]).tobytes()
    assert array("h", mix(a, b)).tolist() == [32767, -32768, 123]


def test_ringer_follows_the_cadence_on_every_output():
    recorded, pin = RecordingRingerOutput(), RecordingPins().output(17)
    ringer = Ringer([recorded, GpioRinger(pin)], on_s=2.0, off_s=4.0)
    ringer.start(now=100.0)
    assert ringer.update(101.0) == 102.0
    assert ringer.update(102.5) == 106.0
    assert ringer.update(106.1) == 108.0
    ringer.stop()
    assert recorded.history == [True, False, True, False]
    assert [level for _t, level in pin.history] == [False, True, False, True, False]
    assert ringer.update(107.0) is None


def test_sound_ringer_plays_ring_tone_only_while_ringing():
    speaker = SoundRinger()
    assert is_silent(speaker.read(320))
    speaker.set_ringing(True)
    assert not is_silent(speaker.read(320))
    speaker.set_ringing(False)
    assert is_silent(speaker.read(320))
