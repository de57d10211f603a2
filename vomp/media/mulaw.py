"""G.711 µ-law (VoMP codec 2): the codec every servald peer can decode.

Written here from the G.711 definition because Python's `audioop` is deprecated and gone in 3.13.
The 16-bit input is biased by 132 (33 in the 14-bit domain), the segment is the position of the
top set bit, and the byte is the inverted sign|segment|mantissa.
"""

from __future__ import annotations

import numpy as np

from vomp.media.resample import Downsampler, Upsampler

_BIAS = 0x84
_CLIP = 32635


def _encode_one(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, _CLIP) + _BIAS
    segment = magnitude.bit_length() - 8  # 0..7: magnitude is 0x84..0x7FFF
    mantissa = (magnitude >> (segment + 3)) & 0x0F
    return ~(sign | (segment << 4) | mantissa) & 0xFF


def _decode_one(byte: int) -> int:
    byte = ~byte & 0xFF
    segment = (byte >> 4) & 0x07
    magnitude = (((byte & 0x0F) << 3) + _BIAS) << segment
    magnitude -= _BIAS
    return -magnitude if byte & 0x80 else magnitude


# Lookup tables make a 20 ms frame one numpy gather each way.
_ENCODE = np.array([_encode_one(s) for s in range(-32768, 32768)], dtype=np.uint8)
_DECODE = np.array([_decode_one(b) for b in range(256)], dtype=np.int16)


def encode(pcm: bytes) -> bytes:
    """s16le PCM → µ-law bytes, one byte per sample."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    return _ENCODE[samples + 32768].tobytes()


def decode(ulaw: bytes) -> bytes:
    """µ-law bytes → s16le PCM."""
    return _DECODE[np.frombuffer(ulaw, dtype=np.uint8)].astype("<i2").tobytes()


class MulawEncoder:
    """The handset's 16 kHz PCM → 8 kHz µ-law frames for servald peers."""

    def __init__(self) -> None:
        self._down = Downsampler()

    def encode(self, pcm: bytes) -> bytes:
        return encode(self._down.process(pcm))


class MulawDecoder:
    """µ-law frames → 16 kHz PCM, with the simplest concealment: fade the last frame out."""

    FADE = 0.5  # per concealed frame: -6 dB, so three frames reach near-silence

    def __init__(self) -> None:
        self._up = Upsampler()
        self._last = np.zeros(0, dtype=np.int16)
        self._gain = 1.0

    def decode(self, ulaw: bytes) -> bytes:
        pcm = self._up.process(decode(ulaw))
        self._last = np.frombuffer(pcm, dtype="<i2")
        self._gain = 1.0
        return pcm

    def conceal(self, samples: int) -> bytes:
        self._gain *= self.FADE
        if len(self._last) == 0:
            return bytes(2 * samples)
        reps = -(-samples // len(self._last))
        out = np.tile(self._last, reps)[:samples] * self._gain
        return out.astype("<i2").tobytes()
