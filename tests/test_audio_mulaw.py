"""G.711 µ-law: known code points from the standard, and the round trip's bounded error."""

import struct

import numpy as np

from vomp.media import mulaw
from vomp.media.mulaw import MulawDecoder, MulawEncoder


def _enc(value: int) -> int:
    return mulaw.encode(struct.pack("<h", value))[0]


def _dec(byte: int) -> int:
    return struct.unpack("<h", mulaw.decode(bytes([byte])))[0]


def test_known_code_points_match_g711():
    assert _enc(0) == 0xFF
    assert _enc(-1) == 0x7F
    assert _enc(32767) == 0x80
    assert _enc(-32768) == 0x00
    assert _enc(1000) == 0xCE
    assert _enc(-1000) == 0x4E
    assert _dec(0x80) == 32124
    assert _dec(0x00) == -32124
    assert _dec(0xFF) == 0
    assert _dec(0x7F) == 0
    assert _dec(0xCE) == 988
    assert _dec(0xF0) == 120  # segment 0, mantissa 15


def test_decoding_is_monotonic_and_symmetric():
    positive = [_dec(b) for b in range(0xFF, 0x7F, -1)]
    assert positive == sorted(positive)
    assert all(_dec(b) == -_dec(b | 0x80) for b in range(0x80))


def test_every_code_survives_decode_then_encode():
    for byte in range(256):
        again = _enc(_dec(byte))
        assert again == (0xFF if byte == 0x7F else byte)  # 0x7F is "negative zero"


def test_round_trip_error_stays_within_half_a_step_of_the_segment():
    x = np.arange(-32768, 32768, 7, dtype=np.int16)
    y = np.frombuffer(mulaw.decode(mulaw.encode(x.tobytes())), dtype="<i2").astype(int)
    clipped = np.clip(x.astype(int), -32124, 32124)
    error = np.abs(y - clipped)
    # Step size grows with the segment: 8 at the bottom, 1024 at the top (G.711 table).
    assert np.all(error <= np.maximum(8, np.abs(clipped) // 16 + 8))


def test_resampled_mulaw_path_keeps_a_tone():
    t = np.arange(16000) / 16000
    tone = (8000 * np.sin(2 * np.pi * 700 * t)).astype("<i2")
    enc, dec = MulawEncoder(), MulawDecoder()
    out = b"".join(
        dec.decode(enc.encode(tone[i : i + 320].tobytes())) for i in range(0, 16000, 320)
    )
    y = np.frombuffer(out, dtype="<i2").astype(float)[1000:]
    x = tone.astype(float)
    corr = max(np.corrcoef(x[1000 - d : 16000 - d], y)[0, 1] for d in range(0, 60))
    assert corr > 0.99


def test_mulaw_concealment_fades_and_keeps_length():
    dec = MulawDecoder()
    dec.decode(mulaw.encode((np.ones(160, dtype="<i2") * 8000).tobytes()))
    first, second = dec.conceal(320), dec.conceal(320)
    assert len(first) == len(second) == 640
    level = [np.abs(np.frombuffer(p, dtype="<i2")).mean() for p in (first, second)]
    assert level[1] < level[0]
