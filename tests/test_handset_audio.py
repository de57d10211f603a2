"""The call path's round logic, against a stand-in engine and a hand-driven clock."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware.handset_audio import HandsetAudio
from hw.soundcard.devices import PcmSettings
from hw.soundcard.engine import EngineSettings, EngineStats
from vomp.media import MULAW, OPUS, OPUS_REDUNDANT

PERIOD = 320  # 10 ms of 16 kHz mono S16_LE


@dataclass
class StandInEngine:
    """What HandsetAudio needs of an AudioEngine, with the pipes replaced by lists."""

    settings: EngineSettings = field(default_factory=lambda: EngineSettings(pcm=PcmSettings()))
    captured: list[bytes] = field(default_factory=list)
    played: list[bytes] = field(default_factory=list)
    reopens: int = 0
    capture_fd: int = -1
    idle: list[bool] = field(default_factory=list)
    """What the handset told the engine, in order."""

    def read_capture(self) -> bytes:
        return self.captured.pop(0) if self.captured else b""

    def write_playback(self, pcm: bytes) -> bool:
        self.played.append(pcm)
        return True

    def stats(self) -> EngineStats:
        return EngineStats(reopens=self.reopens)

    def set_idle(self, idle: bool) -> None:
        self.idle.append(idle)


class Harness:
    def __init__(self) -> None:
        self.engine = StandInEngine()
        self.sent: list[tuple[int, int, bytes, int]] = []
        self.now = 100.0
        self.audio = HandsetAudio(self.engine, self.send, clock=lambda: self.now)

    def send(self, call: int, codec: int, payload: bytes, duration_ms: int) -> None:
        self.sent.append((call, codec, payload, duration_ms))

    def round(self, pcm: bytes = bytes(PERIOD), advance_s: float = 0.01) -> bytes:
        self.now += advance_s
        self.engine.captured.append(pcm)
        self.audio._on_capture()
        return self.engine.played[-1]


def test_in_a_call_each_round_sends_whole_frames_and_plays_back_the_same_duration():
    h = Harness()
    assert h.audio.start_call(7, (MULAW, OPUS, OPUS_REDUNDANT)) is not None
    for _ in range(6):
        played = h.round()
        assert len(played) == PERIOD
    assert [(call, codec, ms) for call, codec, _, ms in h.sent] == [(7, OPUS_REDUNDANT, 20)] * 3


def test_a_peer_without_a_shared_codec_gets_no_call_audio():
    h = Harness()
    assert h.audio.start_call(7, (99,)) is None
    assert h.audio.call_audio is None


def test_outside_a_call_the_tone_plays_and_a_key_beep_mixes_over_it_then_ends():
    h = Harness()
    assert not any(h.round())  # silence until a tone is asked for
    h.audio.play_tone("dial")
    dial = h.round()
    h.audio.key_pressed("5")
    beeped = h.round()
    assert any(dial) and beeped != h.round()  # mixed while the beep lasts
    for _ in range(10):
        h.round()
    assert h.audio._keypad is None


def test_after_the_device_came_back_one_frame_carries_the_whole_gap_in_its_duration():
    h = Harness()
    h.audio.start_call(7, (OPUS,))
    for _ in range(4):
        h.round()
    sent_before = len(h.sent)
    h.engine.reopens = 1  # the engine was restarted; 0.5 s passed without audio
    h.round(advance_s=0.51)
    durations = [ms for *_, ms in h.sent[sent_before:]]
    assert durations == [20 + 500]
    assert h.audio.gaps_bridged_ms == 500
    h.round()
    h.round()
    assert [ms for *_, ms in h.sent[-1:]] == [20]  # then back to one frame per 20 ms


def test_statistics_merge_the_device_and_the_call():
    h = Harness()
    h.audio.start_call(7, (OPUS,))
    h.round()
    stats = h.audio.stats()
    assert {"device_reopens", "device_xruns", "frames_sent", "jitter_ms"} <= set(stats)
    final = h.audio.end_call()
    assert final["codec_sent"] == OPUS and h.audio.call_audio is None


def test_the_engine_is_told_to_stop_handing_audio_over_while_nothing_needs_it():
    h = Harness()
    h.round()  # no call, tone or beep: the first round finds the call path idle
    assert h.engine.idle == [True]
    h.audio.key_pressed("5")
    assert h.engine.idle == [True, False]
    while h.audio._keypad is not None:
        h.round()
    assert h.engine.idle == [True, False, True]
    h.audio.start_call(1, (OPUS_REDUNDANT,))
    h.audio.end_call()
    assert h.engine.idle == [True, False, True, False, True]
