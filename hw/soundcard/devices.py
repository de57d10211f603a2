"""The narrow seam between the handset and a sound card.

Why a seam: the call path must not care whether periods come from a USB card through
pyalsaaudio or from a scripted fake in a unit test. A backend is chosen by name from
configuration (hw.backends, like gpiozero's pin factories), never by try/except around an
import, so a missing pyalsaaudio is a loud error on a real handset and not a silent switch to a
fake.

Every stream moves whole periods of interleaved signed 16-bit little-endian samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hw.backends import AUDIO

SAMPLE_BYTES = 2  # S16_LE


class AudioDeviceError(Exception):
    """Base class for sound-card trouble."""


class DeviceMismatchError(AudioDeviceError):
    """The card opened but not with the settings asked for; reopening will not help."""


class DeviceGoneError(AudioDeviceError):
    """The card vanished or stopped answering (USB unplug, sound server died); retry later."""


@dataclass(frozen=True)
class PcmSettings:
    """What the call path needs from a sound card; the defaults fit a USB headset dongle.

    `plughw:` lets ALSA convert rate and format in the card's own plugin layer; a `hw:` name
    makes the engine fail loudly when the card cannot do 16 kHz mono itself.
    """

    capture_device: str = "plughw:CARD=Device"
    playback_device: str = "plughw:CARD=Device"
    rate: int = 16000
    channels: int = 1
    period_frames: int = 160
    periods: int = 4
    playback_prefill_periods: int = 2
    """Silence queued before the first write: the playback cushion against scheduling jitter,
    and the playback part of the mouth-to-ear floor."""
    max_queued_periods: int = 2
    """Call audio waiting in the engine beyond this is old and only adds delay: it is dropped.
    Two periods absorb one late handoff from the call path without growing the delay."""
    reply_wait_periods: float = 0.4
    """How long (in periods) the engine waits, after handing a captured period over, for the
    call path's period of playback. A reply in time is written in the same period and plays
    a period sooner; a later one is queued for the next period, as if there were no wait. The
    wait eats into the cushion's slack, so it stays well under one period."""

    def __post_init__(self) -> None:
        period_ms = self.period_ms
        if not 5.0 <= period_ms <= 10.0:
            raise ValueError(
                f"period of {self.period_frames} frames at {self.rate} Hz is {period_ms:g} ms; "
                "use 5-10 ms periods"
            )
        if self.periods < 3:
            raise ValueError(f"{self.periods} periods per buffer; use at least 3")
        if not 1 <= self.playback_prefill_periods < self.periods:
            raise ValueError(
                f"playback_prefill_periods={self.playback_prefill_periods} must be 1.."
                f"{self.periods - 1} (fewer than the {self.periods} periods in the buffer)"
            )

        if not 0.0 <= self.reply_wait_periods < 1.0:
            raise ValueError(
                f"reply_wait_periods={self.reply_wait_periods} must be 0 (no wait) up to 1"
            )
        if self.max_queued_periods < 1:
            raise ValueError(f"max_queued_periods={self.max_queued_periods} must be at least 1")

    @property
    def period_ms(self) -> float:
        return 1000.0 * self.period_frames / self.rate

    @property
    def period_bytes(self) -> int:
        return self.period_frames * self.channels * SAMPLE_BYTES


@dataclass(frozen=True)
class Xrun:
    """A read or write hit an overrun/underrun; the stream has already been re-prepared."""


XRUN = Xrun()


class CaptureStream(Protocol):
    def read(self) -> bytes | Xrun:
        """Block until one period is captured and return it (or XRUN after an overrun)."""

    def close(self) -> None: ...


class PlaybackStream(Protocol):
    def write(self, period: bytes) -> Xrun | None:
        """Queue one period, blocking while the buffer is full; XRUN if it had run dry."""

    def close(self) -> None: ...


class AudioBackend(Protocol):
    def open_capture(self, settings: PcmSettings) -> CaptureStream:
        """Open and verify; raises DeviceMismatchError or DeviceGoneError."""

    def open_playback(self, settings: PcmSettings) -> PlaybackStream: ...


def load_backend(name: str | None = None, **options: object) -> AudioBackend:
    """Build the backend named by `name`, else $HANDSET_AUDIO_BACKEND, else "alsa"
    (hw.backends.AUDIO lists them)."""
    backend_class = AUDIO.load(name)
    return backend_class(**options)
