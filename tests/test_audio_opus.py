"""The Opus wrapper against real libopus: round trip, FEC from the next packet, PLC."""

import numpy as np
import pytest
from audio_signals import RATE, best_correlation, voiced

from vomp.media.opus import OpusDecoder, OpusEncoder, OpusPacketError, OpusSettings

FRAME = RATE // 50  # 20 ms


def _frames(signal: np.ndarray) -> list[bytes]:
    return [signal[i : i + FRAME].tobytes() for i in range(0, len(signal) - FRAME + 1, FRAME)]


def _pcm(chunks: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(chunks), dtype="<i2")


def test_round_trip_keeps_the_waveform():
    signal = voiced(2.0)
    enc, dec = OpusEncoder(), OpusDecoder()
    out = _pcm([dec.decode(enc.encode(f)) for f in _frames(signal)])
    assert len(out) == len(signal)
    corr, lag = best_correlation(signal, out, max_lag=300)
    assert corr > 0.85  # SILK keeps the spectrum, not the exact phase
    assert lag == pytest.approx(enc.lookahead_ms * RATE / 1000, abs=2)


def test_encoder_settings_reach_libopus():
    enc = OpusEncoder(OpusSettings(bitrate=24000, complexity=5, min_expected_loss_percent=3))
    assert enc._enc.bitrate == 24000
    assert enc._enc.complexity == 5
    assert enc._enc.inband_fec == 1
    assert enc._enc.dtx == 0
    assert enc.expected_loss_percent == 3
    enc.set_measured_loss(0.17)
    assert enc._enc.packet_loss_perc == 17


def test_fec_from_the_next_packet_beats_concealment():
    signal = voiced(1.0)
    frames = _frames(signal)
    enc = OpusEncoder(OpusSettings(min_expected_loss_percent=20))
    packets = [enc.encode(f) for f in frames]
    lost = 25
    assert OpusDecoder.may_carry_fec(packets[lost + 1])

    def decode_with(rebuild) -> np.ndarray:
        dec = OpusDecoder()
        out = [dec.decode(p) for p in packets[:lost]]
        out.append(rebuild(dec))
        return _pcm(out)[-FRAME:]

    via_fec = decode_with(lambda dec: dec.decode_fec(packets[lost + 1], FRAME))
    via_plc = decode_with(lambda dec: dec.conceal(FRAME))
    clean = OpusDecoder()
    reference = _pcm([clean.decode(p) for p in packets[: lost + 1]])[-FRAME:]

    def err(x: np.ndarray) -> float:
        return float(np.mean((x.astype(float) - reference) ** 2))

    assert len(via_fec) == len(via_plc) == FRAME
    assert err(via_fec) < 0.5 * err(via_plc)


def test_concealment_has_the_asked_length_and_continues_the_signal():
    signal = voiced(1.0)
    enc, dec = OpusEncoder(), OpusDecoder()
    out = [dec.decode(enc.encode(f)) for f in _frames(signal)[:20]]
    hidden = dec.conceal(FRAME)
    assert len(hidden) == 2 * FRAME
    last, first = np.frombuffer(out[-1], "<i2"), np.frombuffer(hidden, "<i2")
    step = abs(int(first[0]) - int(last[-1]))
    typical = np.abs(np.diff(last.astype(int))).max()
    assert step <= 2 * typical  # no click at the joint
    assert np.abs(first).mean() > 0.2 * np.abs(last).mean()  # continues, not silence
    assert len(dec.conceal(FRAME // 2)) == FRAME  # any 2.5 ms multiple
    assert len(dec.conceal(16)) == 2 * 40  # 1 ms asked: libopus makes 2.5 ms at least
    assert len(dec.conceal(100_000)) == 2 * 1920  # and 120 ms at most


def test_garbage_is_refused_with_a_packet_error():
    dec = OpusDecoder()
    with pytest.raises(OpusPacketError):
        dec.samples_in(b"")
    with pytest.raises(OpusPacketError):
        dec.decode(b"\xff\xff\xff")
