"""A sound card made of WAV files: the microphone plays a file (looped), the earpiece writes one.

For a laptop with no USB card, for demos and for tests that check what a person would hear:
it plugs in where `fake` does (the engine process opens it by name), so the whole real call
path — engine, HandsetAudio, CallAudio — runs unchanged and only the device is different.
The capture side keeps time like a card's clock. The device names are the file paths
(`capture_device` = input WAV, `playback_device` = output WAV; "" for silence / discard).

The output is a valid WAV after every period: its header's sizes are rewritten as it grows,
because the engine process is killed, not asked, when the handset stops.
"""

from __future__ import annotations

import os
import struct
import time
import wave

from hw.soundcard.devices import SAMPLE_BYTES, DeviceMismatchError, PcmSettings, Xrun

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")


class FileCapture:
    def __init__(self, settings: PcmSettings) -> None:
        self.period_frames = settings.period_frames
        self._period_bytes = settings.period_bytes
        self._period_s = settings.period_frames / settings.rate
        self._samples = (
            _read_wav(settings.capture_device, settings) if settings.capture_device else b""
        )
        self._offset = 0
        self._next_period_at = time.monotonic() + self._period_s

    def read(self) -> bytes | Xrun:
        time.sleep(max(0.0, self._next_period_at - time.monotonic()))
        self._next_period_at += self._period_s
        if not self._samples:
            return bytes(self._period_bytes)
        out = bytearray()
        while len(out) < self._period_bytes:
            piece = self._samples[self._offset : self._offset + self._period_bytes - len(out)]
            out += piece
            self._offset = (self._offset + len(piece)) % len(self._samples)
        return bytes(out)

    def close(self) -> None:
        pass


class FilePlayback:
    def __init__(self, settings: PcmSettings) -> None:
        self.period_frames = settings.period_frames
        self._fd: int | None = None
        self._data_bytes = 0
        if settings.playback_device:
            self._fd = os.open(
                settings.playback_device, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644
            )
            self._rate, self._channels = settings.rate, settings.channels
            os.write(self._fd, self._header())

    def _header(self) -> bytes:
        block = self._channels * SAMPLE_BYTES
        return _HEADER.pack(
            b"RIFF", 36 + self._data_bytes, b"WAVE", b"fmt ", 16, 1, self._channels,
            self._rate, self._rate * block, block, 8 * SAMPLE_BYTES, b"data", self._data_bytes,
        )  # fmt: skip

    def write(self, period: bytes) -> Xrun | None:
        if self._fd is not None:
            os.write(self._fd, period)
            self._data_bytes += len(period)
            os.pwrite(self._fd, self._header(), 0)
        return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class FileBackend:
    def open_capture(self, settings: PcmSettings) -> FileCapture:
        return FileCapture(settings)

    def open_playback(self, settings: PcmSettings) -> FilePlayback:
        return FilePlayback(settings)


def _read_wav(path: str, settings: PcmSettings) -> bytes:
    try:
        with wave.open(path, "rb") as wav:
            shape = (wav.getframerate(), wav.getnchannels(), wav.getsampwidth())
            frames = wav.readframes(wav.getnframes())
    except (OSError, EOFError, wave.Error) as error:
        raise DeviceMismatchError(f"{path}: not a readable WAV file ({error})") from None
    wanted = (settings.rate, settings.channels, SAMPLE_BYTES)
    if shape != wanted:
        raise DeviceMismatchError(
            f"{path} is {shape[0]} Hz, {shape[1]} channel(s), {8 * shape[2]}-bit; "
            f"the handset needs {wanted[0]} Hz, {wanted[1]} channel(s), 16-bit"
        )
    return frames
