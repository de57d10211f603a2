"""Factor-of-two rate change between the handset's 16 kHz audio and 8 kHz µ-law.

A windowed-sinc low-pass (cut-off 3.6 kHz) keeps the aliasing out going down and the images out
going up. Each object keeps the filter history so consecutive frames join without clicks.
"""

from __future__ import annotations

import numpy as np

_TAPS = 48


def _lowpass(taps: int, cutoff: float) -> np.ndarray:
    """Windowed-sinc FIR; `cutoff` is a fraction of the (high) sample rate."""
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    return h / h.sum()


_FILTER = _lowpass(_TAPS, 3600 / 16000)


class Downsampler:
    """16 kHz → 8 kHz s16le, streaming (any even-length chunks)."""

    def __init__(self) -> None:
        self._history = np.zeros(_TAPS - 1)

    def process(self, pcm: bytes) -> bytes:
        x = np.concatenate([self._history, np.frombuffer(pcm, dtype="<i2")])
        self._history = x[len(x) - (_TAPS - 1) :]
        y = np.convolve(x, _FILTER, mode="valid")[::2]
        return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()


class Upsampler:
    """8 kHz → 16 kHz s16le, streaming."""

    def __init__(self) -> None:
        self._history = np.zeros(_TAPS - 1)

    def process(self, pcm: bytes) -> bytes:
        narrow = np.frombuffer(pcm, dtype="<i2")
        stuffed = np.zeros(2 * len(narrow))
        stuffed[::2] = narrow
        x = np.concatenate([self._history, stuffed])
        self._history = x[len(x) - (_TAPS - 1) :]
        y = 2 * np.convolve(x, _FILTER, mode="valid")
        return np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()
