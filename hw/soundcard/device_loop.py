"""One period of full-duplex sound-card work, repeated: the heart of the audio engine.

The capture read blocks until a period is in, so the sound card's clock sets the pace of the
whole handset. Each captured period is handed on without waiting (a full consumer costs a
counted drop, never a stall); the call path answers each with a period of playback, and the
loop waits a bounded part of a period (`reply_wait_periods`) for that answer, so that it is
written in the same period rather than the next, a period less delay. Then exactly one period
is written to playback: queued call audio if there is a whole period of it, else silence.
Playback stays `prefill` periods ahead of the hardware, which is the cushion that scheduling
jitter eats into; anything queued beyond `max_queued_periods` is old audio that would only add
delay, so it is dropped. One late handoff leaves a period queued for good (one in, one out
after that); so when a whole window of periods never ran the queue dry, one period is dropped
to win that delay back.
"""

from __future__ import annotations

from collections.abc import Callable

from hw.soundcard.counters import DeviceCounters
from hw.soundcard.devices import XRUN, CaptureStream, PcmSettings, PlaybackStream, Xrun
from hw.soundcard.tones import mix

SETTLE_WINDOW_PERIODS = 50
"""Periods (0.5 s at 10 ms) the playback queue must stay non-empty before one is dropped."""


class DeviceLoop:
    def __init__(
        self,
        capture: CaptureStream,
        playback: PlaybackStream,
        settings: PcmSettings,
        deliver: Callable[[bytes], bool],
        fetch: Callable[[], bytes],
        clock_ns: Callable[[], int],
        wait_for_reply: Callable[[float], object] | None = None,
        call_path_idle: Callable[[], bool] = lambda: False,
        call_round: Callable[[bytes], bytes | None] = lambda captured: None,
    ) -> None:
        """`wait_for_reply(seconds)` returns once the call path's answer can be fetched or
        the time is up; without it the loop never waits. While `call_path_idle()`, captured
        periods are not handed over and the silence played is not counted as starvation.
        `call_round(captured)` is the call's audio run here (EngineCall): the period of call
        audio to play, or None outside a call; the call path's own audio (a keypad beep) is
        mixed over it, and nobody waits for a reply."""
        self._call_path_idle = call_path_idle
        self._call_round = call_round
        self._capture = capture
        self._playback = playback
        self._deliver = deliver
        self._fetch = fetch
        self._wait_for_reply = wait_for_reply
        self._clock_ns = clock_ns
        frame_bytes = settings.channels * 2
        playback_frames = getattr(playback, "period_frames", settings.period_frames)
        self._period_bytes = playback_frames * frame_bytes
        capture_frames = getattr(capture, "period_frames", settings.period_frames)
        self._late_ns = int(2e9 * capture_frames / settings.rate)  # two periods: audibly late
        self._reply_wait_s = settings.reply_wait_periods * capture_frames / settings.rate
        self._prefill = settings.playback_prefill_periods
        self._max_queued = settings.max_queued_periods * self._period_bytes
        self._queued = bytearray()
        self._call_queued = bytearray()
        self._window_left = SETTLE_WINDOW_PERIODS
        self._window_min = 1 << 30
        self._last_read_ns: int | None = None
        self.counters = DeviceCounters()

    def prime(self, periods: int | None = None) -> None:
        """Queue the playback cushion; call once after opening, before the first period.

        The capture wait that follows plays one period of it, so after each write the card
        holds `prefill` periods: that is the steady state the cushion is."""
        silence = bytes(self._period_bytes)
        for _ in range(self._prefill if periods is None else periods):
            self._playback.write(silence)

    def run_period(self) -> None:
        counters = self.counters
        captured = self._capture.read()
        now = self._clock_ns()
        if self._last_read_ns is not None:
            interval = now - self._last_read_ns
            counters.period_interval_last_us = interval // 1000
            counters.period_interval_max_us = max(counters.period_interval_max_us, interval // 1000)
            counters.period_late += interval > self._late_ns
        self._last_read_ns = now
        counters.heartbeat_ns = now
        if isinstance(captured, Xrun):
            # No period was consumed, so writing one now would grow the playback delay.
            counters.capture_xruns += 1
            return
        counters.periods += 1
        idle = self._call_path_idle()
        call_audio = self._call_round(captured)
        if captured and not idle:
            if self._deliver(captured):
                wait = None if call_audio is not None else self._wait_for_reply
                if wait is not None and len(self._queued) < self._period_bytes:
                    wait(self._reply_wait_s)
            else:
                counters.capture_dropped += 1
        self._queued += self._fetch()
        excess = len(self._queued) - self._max_queued
        if excess > 0:
            whole = -(-excess // self._period_bytes) * self._period_bytes
            del self._queued[:whole]
            counters.playback_trimmed += whole // self._period_bytes
        call_period = self._call_period(call_audio)
        if len(self._queued) >= self._period_bytes:
            period = bytes(self._queued[: self._period_bytes])
            del self._queued[: self._period_bytes]
            if call_period is not None:
                period = mix(call_period, period)
        elif call_period is not None:
            period = call_period
        else:
            period = bytes(self._period_bytes)
            counters.playback_starved += not idle
        self._settle()
        if self._playback.write(period) is XRUN:
            counters.playback_xruns += 1
            # Back to the steady state: the period written now completes the cushion (one
            # more would add a period of delay for the rest of the call).
            self.prime(self._prefill - 1)
            self._playback.write(period)

    def _call_period(self, call_audio: bytes | None) -> bytes | None:
        """A playback period of the call's audio (captured periods may be sized otherwise)."""
        if call_audio is None:
            self._call_queued.clear()
            return None
        if not self._call_queued and len(call_audio) == self._period_bytes:
            return call_audio
        self._call_queued += call_audio
        if len(self._call_queued) < self._period_bytes:
            return None
        period = bytes(self._call_queued[: self._period_bytes])
        del self._call_queued[: self._period_bytes]
        return period

    def _settle(self) -> None:
        """Drop one period if the queue stayed at least a period deep for a whole window."""
        self._window_min = min(self._window_min, len(self._queued) // self._period_bytes)
        self._window_left -= 1
        if self._window_left > 0:
            return
        if self._window_min >= 1:
            del self._queued[: self._period_bytes]
            self.counters.playback_trimmed += 1
        self._window_left = SETTLE_WINDOW_PERIODS
        self._window_min = 1 << 30
