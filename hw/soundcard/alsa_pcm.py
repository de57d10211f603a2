"""The real sound-card backend: ALSA through pyalsaaudio, blocking reads and writes.

pyalsaaudio quietly takes whatever the card grants ("near" rates, other formats), so every
open reads `info()` back and refuses a stream that would play at the wrong speed or pitch.
A different period size is adapted to (the engine moves bytes, not periods) as long as it is
still 5-10 ms with at least 3 periods: that is all the latency budget needs.
"""

from __future__ import annotations

import errno

import alsaaudio

from hw.soundcard.devices import (
    XRUN,
    DeviceGoneError,
    DeviceMismatchError,
    PcmSettings,
    Xrun,
)


def _check_granted(device: str, direction: str, info: dict, settings: PcmSettings) -> int:
    """Return the granted period size in frames, or raise DeviceMismatchError."""
    wanted = {"rate": settings.rate, "channels": settings.channels, "format_name": "S16_LE"}
    wrong = {k: (v, info.get(k)) for k, v in wanted.items() if info.get(k) != v}
    if wrong:
        detail = ", ".join(f"{k} {got!r} instead of {want!r}" for k, (want, got) in wrong.items())
        raise DeviceMismatchError(
            f"{direction} device {device!r} opened with {detail}; use a 'plughw:' or 'plug:' "
            "device so ALSA converts, or set audio rate/channels to what the card supports"
        )
    period = int(info["period_size"])
    period_ms = 1000.0 * period / settings.rate
    if not 5.0 <= period_ms <= 10.0 or int(info["periods"]) < 3:
        raise DeviceMismatchError(
            f"{direction} device {device!r} granted {info['periods']} periods of {period} frames "
            f"({period_ms:g} ms); the engine needs 5-10 ms periods and at least 3 of them"
        )
    return period


def _open(kind: int, device: str, settings: PcmSettings) -> tuple[alsaaudio.PCM, int]:
    direction = "capture" if kind == alsaaudio.PCM_CAPTURE else "playback"
    try:
        pcm = alsaaudio.PCM(
            type=kind,
            mode=alsaaudio.PCM_NORMAL,
            device=device,
            rate=settings.rate,
            channels=settings.channels,
            format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=settings.period_frames,
            periods=settings.periods,
        )
    except alsaaudio.ALSAAudioError as exc:
        raise DeviceGoneError(f"cannot open {direction} device {device!r}: {exc}") from exc
    try:
        period = _check_granted(device, direction, pcm.info(), settings)
    except Exception:
        pcm.close()
        raise
    return pcm, period


class AlsaCapture:
    def __init__(self, pcm: alsaaudio.PCM, period_frames: int, device: str) -> None:
        self._pcm = pcm
        self.period_frames = period_frames
        self.device = device

    def read(self) -> bytes | Xrun:
        try:
            frames, data = self._pcm.read()
        except alsaaudio.ALSAAudioError as exc:
            raise DeviceGoneError(f"capture device {self.device!r} failed: {exc}") from exc
        if frames == -errno.EPIPE:
            return XRUN  # pyalsaaudio has already re-prepared the stream
        if frames < 0:
            raise DeviceGoneError(f"capture device {self.device!r} returned error {frames}")
        return data

    def close(self) -> None:
        self._pcm.close()


class AlsaPlayback:
    def __init__(self, pcm: alsaaudio.PCM, period_frames: int, device: str) -> None:
        self._pcm = pcm
        self.period_frames = period_frames
        self.device = device

    def write(self, period: bytes) -> Xrun | None:
        try:
            frames = self._pcm.write(period)
        except alsaaudio.ALSAAudioError as exc:
            raise DeviceGoneError(f"playback device {self.device!r} failed: {exc}") from exc
        if frames == -errno.EPIPE:
            return XRUN  # nothing was written; the stream is prepared again
        if frames < 0:
            raise DeviceGoneError(f"playback device {self.device!r} returned error {frames}")
        return None

    def close(self) -> None:
        self._pcm.close()


class AlsaBackend:
    """Opens ALSA PCMs by name (any ALSA device string: plughw:CARD=Device, plug:jack, ...)."""

    def open_capture(self, settings: PcmSettings) -> AlsaCapture:
        pcm, period = _open(alsaaudio.PCM_CAPTURE, settings.capture_device, settings)
        return AlsaCapture(pcm, period, settings.capture_device)

    def open_playback(self, settings: PcmSettings) -> AlsaPlayback:
        pcm, period = _open(alsaaudio.PCM_PLAYBACK, settings.playback_device, settings)
        return AlsaPlayback(pcm, period, settings.playback_device)
