"""A scripted sound card for unit tests: no clock, no ALSA, faults on demand.

Why it exists: xrun and unplug handling must be proven period by period, deterministically;
the real-device tests (ALSA file/null plugins, jackd) then prove the same code against ALSA.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from hw.soundcard.devices import XRUN, DeviceGoneError, DeviceMismatchError, PcmSettings, Xrun


@dataclass
class FakeCard:
    """One fake sound card: capture plays `capture_periods` in order (then silence), playback
    records what was written. `faults` maps a period index to "xrun" or "gone"."""

    capture_periods: deque[bytes] = field(default_factory=deque)
    played: list[bytes] = field(default_factory=list)
    capture_faults: dict[int, str] = field(default_factory=dict)
    playback_faults: dict[int, str] = field(default_factory=dict)
    granted_rate: int | None = None
    min_period_frames: int = 0
    """Shorter periods are refused, as a card that cannot do them."""
    paced: bool = False
    """Sleep out each period on capture, like a card's clock (for the engine process; scripted
    unit tests leave it off and run as fast as they like)."""
    record: bool = True
    """Keep every period written in `played` (scripted tests read it). The silent card a
    daemon runs on for hours keeps nothing: the list would grow by 32 kB a second."""
    opens: int = 0
    failing_opens: int = 0
    reads: int = 0
    writes: int = 0


class FakeCapture:
    def __init__(self, card: FakeCard, settings: PcmSettings) -> None:
        self._card = card
        self.period_frames = settings.period_frames
        self._silence = bytes(settings.period_bytes)
        self._period_s = settings.period_frames / settings.rate
        self._next_period_at = time.monotonic() + self._period_s

    def read(self) -> bytes | Xrun:
        if self._card.paced:
            time.sleep(max(0.0, self._next_period_at - time.monotonic()))
            self._next_period_at += self._period_s
        index = self._card.reads
        self._card.reads += 1
        fault = self._card.capture_faults.get(index)
        if fault == "gone":
            raise DeviceGoneError("fake capture unplugged")
        if fault == "xrun":
            return XRUN
        return self._card.capture_periods.popleft() if self._card.capture_periods else self._silence

    def close(self) -> None:
        pass


class FakePlayback:
    def __init__(self, card: FakeCard, settings: PcmSettings) -> None:
        self._card = card
        self.period_frames = settings.period_frames

    def write(self, period: bytes) -> Xrun | None:
        index = self._card.writes
        self._card.writes += 1
        fault = self._card.playback_faults.get(index)
        if fault == "gone":
            raise DeviceGoneError("fake playback unplugged")
        if fault == "xrun":
            return XRUN
        if self._card.record:
            self._card.played.append(bytes(period))
        return None

    def close(self) -> None:
        pass


class FakeBackend:
    """Loaded by name (HANDSET_AUDIO_BACKEND=fake, e.g. `make run` on a machine with no sound
    card) it is a silent card that keeps time; given a FakeCard, it plays that card's script."""

    def __init__(self, card: FakeCard | None = None) -> None:
        self.card = card or FakeCard(paced=True, record=False)

    def _open_check(self, settings: PcmSettings) -> None:
        self.card.opens += 1
        if self.card.failing_opens > 0:
            self.card.failing_opens -= 1
            raise DeviceGoneError("fake card not plugged in")
        if self.card.granted_rate not in (None, settings.rate):
            raise DeviceMismatchError(f"fake card runs at {self.card.granted_rate} Hz")
        if settings.period_frames < self.card.min_period_frames:
            raise DeviceMismatchError(
                f"fake card needs periods of {self.card.min_period_frames} frames or more"
            )

    def open_capture(self, settings: PcmSettings) -> FakeCapture:
        self._open_check(settings)
        return FakeCapture(self.card, settings)

    def open_playback(self, settings: PcmSettings) -> FakePlayback:
        self._open_check(settings)
        return FakePlayback(self.card, settings)
