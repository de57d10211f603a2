"""The handset's side of the sound: the real AudioEngine's pipes, its engine loop run here on a
scripted card, and a hand-driven clock (one `period()` is one period of the card)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from firmware.handset_audio import HandsetAudio
from hw.soundcard.devices import PcmSettings
from hw.soundcard.engine import AudioEngine, EngineSettings
from hw.soundcard.engine_process import piped_loop
from hw.soundcard.fake_pcm import FakeBackend, FakeCard
from vomp.events import AudioFrameReceived
from vomp.media import MULAW, OPUS, OPUS_REDUNDANT

SETTINGS = PcmSettings(capture_device="fake", playback_device="fake")
PERIOD = SETTINGS.period_bytes  # 10 ms of 16 kHz mono S16_LE
SILENCE = bytes(PERIOD)


def speech(n: int) -> bytes:
    """A loud period that differs from period to period."""
    return bytes((i * 37 + n * 11) % 256 for i in range(PERIOD))


class Harness:
    """One handset: HandsetAudio on an AudioEngine whose engine-process loop runs in-line."""

    def __init__(self) -> None:
        self.engine = AudioEngine(EngineSettings(pcm=SETTINGS, backend="fake"))
        self.card = FakeCard()
        self.now_ns = 100 * 10**9
        self.sent: list[tuple[int, int, bytes, int]] = []
        self.audio = HandsetAudio(self.engine, self.send, clock=lambda: self.now_ns / 1e9)
        self.fresh_engine_process()

    def fresh_engine_process(self) -> None:
        """What the supervisor does after a device loss: a new loop (and call) on the pipes."""
        backend = FakeBackend(self.card)
        self.loop = piped_loop(
            SETTINGS,
            backend.open_capture(SETTINGS),
            backend.open_playback(SETTINGS),
            self.engine.pipes,
            self.engine.call_path_idle,
            lambda: self.now_ns,
        )
        self.loop.prime()
        self.engine._retell_call()

    def send(self, call: int, codec: int, payload: bytes, duration_ms: int) -> None:
        self.sent.append((call, codec, payload, duration_ms))

    def period(self, pcm: bytes = SILENCE, advance_s: float = 0.01) -> bytes:
        """One card period; the handset then does what asyncio would wake it for."""
        self.now_ns += round(advance_s * 1e9)
        self.card.capture_periods.append(pcm)
        self.loop.run_period()
        self.audio._on_capture()
        self.audio._on_call_records()
        return self.card.played[-1]


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.engine.stop()


def test_in_a_call_the_engine_sends_one_frame_per_20_ms_and_plays_every_period(h):
    assert h.audio.start_call(7, (MULAW, OPUS, OPUS_REDUNDANT)) == OPUS_REDUNDANT
    for n in range(6):
        assert len(h.period(speech(n))) == PERIOD
    assert [(call, codec, ms) for call, codec, _, ms in h.sent] == [(7, OPUS_REDUNDANT, 20)] * 3
    assert h.audio.rounds == 0  # the handset was not woken for the periods themselves


def test_frames_one_handset_sends_the_other_one_plays():
    a, b = Harness(), Harness()
    try:
        a.audio.start_call(7, (OPUS,))
        b.audio.start_call(9, (OPUS,))
        heard, seq = [], 0
        for n in range(40):
            a.period(speech(n))
            for _, codec, payload, _ in a.sent:
                b.audio.on_event(AudioFrameReceived(9, codec, 20 * seq, seq, payload))
                seq += 1
            a.sent.clear()
            heard.append(b.period())
        assert not any(heard[0]) and any(heard[-1])  # silence until the first frame, then sound
        b.period(advance_s=0.2)  # statistics come every 10 frames
        assert b.audio.stats()["packets_received"] >= 10
    finally:
        a.engine.stop()
        b.engine.stop()


def test_a_peer_without_a_shared_codec_gets_no_call_audio(h):
    assert h.audio.start_call(7, (99,)) is None
    assert h.audio.call is None
    for _ in range(4):
        h.period(speech(1))
    assert h.sent == []


def test_outside_a_call_the_tone_plays_and_a_key_beep_mixes_over_it_then_ends(h):
    assert not any(h.period())  # silence until a tone is asked for
    h.audio.play_tone("dial")
    h.period()
    dial = h.period()
    h.audio.key_pressed("5")
    h.period()
    beeped = h.period()
    assert any(dial) and beeped != dial  # mixed while the beep lasts
    for _ in range(12):
        h.period()
    assert h.audio._keypad is None


def test_a_key_beep_in_a_call_is_mixed_over_the_call_audio(h):
    h.audio.start_call(7, (OPUS,))
    assert not any(h.period())  # nothing received yet: the call plays silence
    h.audio.key_pressed("5")
    h.period()
    assert any(h.period())


def test_muted_the_engine_sends_silence_and_the_mute_outlives_the_call(h):
    h.audio.set_mute(True)
    h.audio.start_call(7, (OPUS,))
    for n in range(4):
        h.period(speech(n))
    quiet = Harness()
    try:
        quiet.audio.start_call(7, (OPUS,))
        for _ in range(4):
            quiet.period(SILENCE)
        assert [p for _, _, p, _ in h.sent] == [p for _, _, p, _ in quiet.sent]
    finally:
        quiet.engine.stop()


def test_after_the_device_came_back_one_frame_carries_the_whole_gap_in_its_duration(h):
    h.audio.start_call(7, (OPUS,))
    for n in range(4):
        h.period(speech(n))
    sent_before = len(h.sent)
    h.fresh_engine_process()  # the engine was restarted; 0.5 s passed without audio
    h.period(advance_s=0.51)
    h.period()
    durations = [ms for *_, ms in h.sent[sent_before:]]
    assert durations == [20 + 500]
    assert h.audio.gaps_bridged_ms == 500
    h.period()
    h.period()
    assert [ms for *_, ms in h.sent[-1:]] == [20]  # then back to one frame per 20 ms


def test_call_statistics_merge_with_the_device_and_count_on_across_a_fresh_engine(h):
    h.audio.start_call(7, (OPUS,))
    for n in range(22):
        h.period(speech(n))
    stats = h.audio.stats()
    assert {"device_reopens", "device_xruns", "jitter_ms"} <= set(stats)
    assert stats["frames_sent"] == 10  # reported every 10 frames
    h.fresh_engine_process()
    for n in range(22):
        h.period(speech(n))
    assert h.audio.stats()["frames_sent"] == 20
    final = h.audio.end_call()
    assert final["codec_sent"] == OPUS and h.audio.call is None


def test_the_engine_is_told_to_stop_handing_audio_over_while_nothing_needs_it(h):
    h.period()  # no tone or beep: the first round finds the call path idle
    assert h.engine.call_path_idle()
    h.audio.key_pressed("5")
    assert not h.engine.call_path_idle()
    while h.audio._keypad is not None:
        h.period()
    assert h.engine.call_path_idle()
    h.audio.start_call(1, (OPUS_REDUNDANT,))  # the engine runs the call without us
    assert h.engine.call_path_idle()
    h.audio.end_call()
    assert h.engine.call_path_idle()
