"""The engine's per-period loop against a scripted card: pacing rules, xruns, unplug."""

from __future__ import annotations

import dataclasses
from collections import deque

import pytest

from hw.soundcard.device_loop import SETTLE_WINDOW_PERIODS, DeviceLoop
from hw.soundcard.devices import DeviceGoneError, DeviceMismatchError, PcmSettings, load_backend
from hw.soundcard.engine_process import open_devices
from hw.soundcard.fake_pcm import FakeBackend, FakeCard

SETTINGS = PcmSettings(
    capture_device="fake",
    playback_device="fake",
    period_frames=160,
    periods=4,
    playback_prefill_periods=2,
)
PERIOD = SETTINGS.period_bytes
SILENCE = bytes(PERIOD)


def period(n: int) -> bytes:
    return bytes([n % 251 + 1]) * PERIOD


class Harness:
    def __init__(
        self, card: FakeCard, consumer_room: int = 1000, wait_for_reply=None, idle=lambda: False
    ) -> None:
        backend = FakeBackend(card)
        self.card = card
        self.delivered: list[bytes] = []
        self.to_play = bytearray()
        self.room = consumer_room
        self.now = 0
        self.loop = DeviceLoop(
            backend.open_capture(SETTINGS),
            backend.open_playback(SETTINGS),
            SETTINGS,
            self.deliver,
            self.fetch,
            self.clock,
            wait_for_reply,
            idle,
        )

    def deliver(self, data: bytes) -> bool:
        if len(self.delivered) >= self.room:
            return False
        self.delivered.append(data)
        return True

    def fetch(self) -> bytes:
        data, self.to_play[:] = bytes(self.to_play), b""
        return data

    def clock(self) -> int:
        self.now += 10_000_000
        return self.now


def test_prime_queues_the_prefill_cushion_as_silence():
    h = Harness(FakeCard())
    h.loop.prime()
    assert h.card.played == [SILENCE, SILENCE]


def test_each_captured_period_is_delivered_and_one_queued_period_is_played():
    card = FakeCard(capture_periods=deque(period(i) for i in range(5)))
    h = Harness(card)
    for i in range(5):
        h.to_play += period(100 + i)
        h.loop.run_period()
    assert h.delivered == [period(i) for i in range(5)]
    assert card.played == [period(100 + i) for i in range(5)]
    assert h.loop.counters.periods == 5
    assert h.loop.counters.playback_starved == 0


def test_partial_playback_audio_waits_for_a_whole_period_and_silence_fills_in():
    h = Harness(FakeCard())
    h.to_play += period(7)[: PERIOD // 2]
    h.loop.run_period()
    h.to_play += period(7)[PERIOD // 2 :]
    h.loop.run_period()
    assert h.card.played == [SILENCE, period(7)]
    assert h.loop.counters.playback_starved == 1


def test_capture_overrun_is_counted_and_skips_the_playback_write():
    h = Harness(FakeCard(capture_faults={1: "xrun"}))
    for _ in range(3):
        h.loop.run_period()
    assert h.loop.counters.capture_xruns == 1
    assert h.loop.counters.periods == 2
    assert h.card.writes == 2  # no write for the overrun period: the delay does not grow


def test_playback_underrun_is_counted_and_the_cushion_is_rebuilt_to_its_steady_depth():
    h = Harness(FakeCard(playback_faults={0: "xrun"}))
    h.to_play += period(3)
    h.loop.run_period()
    assert h.loop.counters.playback_xruns == 1
    # prefill 2: one period of silence, then the audio itself makes the second
    assert h.card.played == [SILENCE, period(3)]


def test_audio_queued_beyond_the_limit_is_trimmed_oldest_first():
    h = Harness(FakeCard())
    for i in range(10):
        h.to_play += period(i)
    h.loop.run_period()
    # limit = 2 periods queued; the 8 oldest go, the older of the two kept plays now
    assert h.loop.counters.playback_trimmed == 8
    assert h.card.played == [period(8)]


def test_a_period_left_queued_by_a_late_handoff_is_won_back_after_a_window():
    h = Harness(FakeCard())
    h.to_play += period(0) + period(1)  # a late handoff: two periods arrive at once
    h.loop.run_period()
    for i in range(2, 2 + SETTLE_WINDOW_PERIODS):
        h.to_play += period(i)  # then one in, one out: a period of extra delay for good
        h.loop.run_period()
    assert h.loop.counters.playback_trimmed == 1
    h.to_play += period(99)
    h.loop.run_period()
    # the delay is back to one period: what was queued now is what plays now
    assert h.card.played[-1] == period(99)


def test_a_full_consumer_costs_a_counted_drop_not_a_stall():
    h = Harness(FakeCard(), consumer_room=2)
    for _ in range(5):
        h.loop.run_period()
    assert len(h.delivered) == 2
    assert h.loop.counters.capture_dropped == 3
    assert h.loop.counters.periods == 5


def test_an_unplugged_device_raises_device_gone():
    h = Harness(FakeCard(capture_faults={2: "gone"}))
    h.loop.run_period()
    h.loop.run_period()
    with pytest.raises(DeviceGoneError):
        h.loop.run_period()


def test_period_timing_is_measured_between_captures():
    h = Harness(FakeCard())
    for _ in range(3):
        h.loop.run_period()
    assert h.loop.counters.period_interval_last_us == 10_000
    assert h.loop.counters.period_interval_max_us == 10_000
    assert h.loop.counters.period_late == 0


def test_backend_is_chosen_by_name_or_environment(monkeypatch):
    assert isinstance(load_backend("fake"), FakeBackend)
    monkeypatch.setenv("HANDSET_AUDIO_BACKEND", "fake")
    assert isinstance(load_backend(), FakeBackend)
    monkeypatch.setenv("HANDSET_AUDIO_BACKEND", "pulse")
    with pytest.raises(ValueError, match=r"HANDSET_AUDIO_BACKEND.*alsa, fake"):
        load_backend()


def test_fake_card_at_another_rate_is_a_mismatch():
    with pytest.raises(DeviceMismatchError):
        FakeBackend(FakeCard(granted_rate=48000)).open_capture(SETTINGS)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"period_frames": 320}, "20 ms; use 5-10 ms periods"),
        ({"period_frames": 40}, "2.5 ms"),
        ({"periods": 2, "playback_prefill_periods": 1}, "at least 3"),
        ({"playback_prefill_periods": 4}, "fewer than the 4 periods"),
    ],
)
def test_settings_outside_the_latency_rules_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        PcmSettings(**changes)


def test_engine_runs_on_the_fake_backend_as_a_silent_card_that_keeps_time():
    from hw.soundcard.engine import AudioEngine, EngineSettings
    from lab.virtual_audio import wait_until

    with AudioEngine(EngineSettings(pcm=SETTINGS, backend="fake")) as engine:
        assert wait_until(lambda: engine.stats().periods >= 10, 10)
        captured = engine.read_capture()
        stats = engine.stats()
    assert captured and not any(captured)  # whole periods of silence
    assert stats.state == "running" and stats.reopens == 0


def test_an_engine_too_slow_to_start_gets_twice_the_time_each_attempt_until_it_runs():
    """Fifty engines starting at once on two cores take longer than the startup allowance:
    killing each attempt after the same allowance would never let one run."""
    from hw.soundcard.engine import AudioEngine, EngineSettings
    from lab.virtual_audio import wait_until

    # far too little for a Python process to start: only a growing allowance gets it there
    settings = EngineSettings(
        pcm=SETTINGS, backend="fake", startup_timeout_s=0.02, reopen_backoff_s=(0.01, 0.02)
    )
    with AudioEngine(settings) as engine:
        assert wait_until(lambda: engine.stats().periods >= 10, 60)
        stats = engine.stats()
    assert stats.state == "running" and stats.reopens >= 1


def test_counters_left_half_written_by_a_killed_engine_can_still_be_read():
    import os
    import struct

    from hw.soundcard.counters import SHM_SIZE, DeviceCounters, SharedCounters

    fd = os.memfd_create("counters-test")
    os.ftruncate(fd, SHM_SIZE)
    shared = SharedCounters(fd)
    shared.publish(DeviceCounters(periods=41))
    struct.pack_into("<q", shared._map, 0, 3)  # the writer died between its two stores
    assert shared.read().periods == 41
    os.close(fd)


def test_a_reply_that_comes_while_the_loop_waits_is_played_in_the_same_period():
    card = FakeCard(capture_periods=deque(period(n) for n in range(5)))
    waits: list[float] = []

    def call_path_answers(seconds: float) -> None:
        waits.append(seconds)
        harness.to_play += harness.delivered[-1]  # the call path's echo of what it was given

    harness = Harness(card, wait_for_reply=call_path_answers)
    harness.loop.prime()
    for _ in range(5):
        harness.loop.run_period()
    assert card.played[SETTINGS.playback_prefill_periods :] == [period(n) for n in range(5)]
    assert waits and all(0 < w < SETTINGS.period_ms / 1000 for w in waits)
    assert harness.loop.counters.playback_starved == 0


def test_without_a_reply_in_time_the_answer_plays_a_period_later():
    card = FakeCard(capture_periods=deque(period(n) for n in range(5)))
    harness = Harness(card, wait_for_reply=lambda seconds: None)  # the wait times out
    harness.loop.prime()
    for _ in range(5):
        harness.loop.run_period()
        harness.to_play += harness.delivered[-1]  # the answer comes after the write
    prefill = SETTINGS.playback_prefill_periods
    assert card.played[prefill:] == [SILENCE] + [period(n) for n in range(4)]


def test_while_the_call_path_is_idle_nothing_is_handed_over_and_silence_is_no_starvation():
    card = FakeCard(capture_periods=deque(period(n) for n in range(6)))
    idle = [True]
    harness = Harness(card, idle=lambda: idle[0])
    harness.loop.prime()
    for _ in range(3):
        harness.loop.run_period()
    assert harness.delivered == []
    assert card.played[SETTINGS.playback_prefill_periods :] == [SILENCE] * 3
    assert harness.loop.counters.playback_starved == 0
    idle[0] = False
    harness.loop.run_period()
    assert harness.delivered == [period(3)]


def test_a_card_that_refuses_5_ms_periods_is_opened_again_at_10_ms():
    card = FakeCard(min_period_frames=160)
    five_ms = dataclasses.replace(SETTINGS, period_frames=80)
    capture, playback, used = open_devices(FakeBackend(card), five_ms)
    assert used.period_ms == 10.0
    assert capture.period_frames == playback.period_frames == 160  # type: ignore[attr-defined]


def test_a_card_that_refuses_10_ms_periods_too_fails_with_its_own_reason():
    card = FakeCard(granted_rate=8000)
    five_ms = dataclasses.replace(SETTINGS, period_frames=80)
    with pytest.raises(DeviceMismatchError, match="8000 Hz"):
        open_devices(FakeBackend(card), five_ms)
