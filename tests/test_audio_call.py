"""CallAudio end to end with real libopus: redundancy, FEC, µ-law, bad input, statistics."""

import numpy as np
import pytest
from audio_signals import best_correlation, voiced, worst_window_correlation
from hypothesis import example, given, settings
from hypothesis import strategies as st

from lab.audio_netsim import GilbertLoss, Link, PatternLoss, RandomLoss, run_one_way
from vomp.media import MULAW, OPUS, OPUS_REDUNDANT, AudioConfig, CallAudio
from vomp.media.redundancy import parse


def _call(codec: int, link: Link, seconds: float = 3.0, config: AudioConfig | None = None):
    sender, receiver = CallAudio(codec, config), CallAudio(codec, config)
    out = run_one_way(sender, receiver, voiced(seconds).tobytes(), link)
    return sender, receiver, np.frombuffer(out, dtype="<i2")


@pytest.mark.parametrize("burst", [1, 2, 3])
def test_redundancy_rebuilds_bursts_without_concealment_once_the_buffer_has_seen_one(burst):
    # One loss at 1 s tells the buffer to wait for copies; the first burst teaches it how long.
    taught = {50} | {100 + i for i in range(burst)}
    _, _, clean = _call(OPUS_REDUNDANT, Link())
    _, first, _ = _call(OPUS_REDUNDANT, Link(loss=PatternLoss(taught)))
    lost = taught | {130 + i for i in range(burst)}
    _, receiver, out = _call(OPUS_REDUNDANT, Link(loss=PatternLoss(lost)))
    s = receiver.stats
    assert s.lost == len(lost)
    assert s.concealed <= burst  # the first loss, and the first burst but for its last frame
    assert s.concealed == first.stats.concealed  # the second burst is rebuilt whole
    assert s.recovered_redundancy + s.recovered_fec == len(lost) - s.concealed
    # Around the second burst the audio is what the lossless call played, give or take a shift.
    assert worst_window_correlation(clean, out, 38400, 48000) > 0.93


def test_the_buffer_waits_less_for_scattered_losses_than_for_bursts():
    scattered = {50 + 10 * i for i in range(10)}
    bursts = {50 + 30 * i + k for i in range(4) for k in range(3)}
    _, sparse, _ = _call(OPUS_REDUNDANT, Link(loss=PatternLoss(scattered)))
    _, bursty, _ = _call(OPUS_REDUNDANT, Link(loss=PatternLoss(bursts)))
    assert sparse.jitter_buffer.wait_frames < bursty.jitter_buffer.wait_frames
    assert sparse.stats.concealed <= 1
    assert sparse.stats.target_delay_ms < bursty.stats.target_delay_ms


def test_plain_opus_uses_the_next_packets_fec_for_a_single_loss():
    _, receiver, _ = _call(OPUS, Link(loss=PatternLoss({40, 80, 120})))
    s = receiver.stats
    assert s.lost == 3
    assert s.recovered_fec >= 2  # the first loss may come before the buffer waits for FEC
    assert s.recovered_redundancy == 0


def test_redundant_packets_carry_the_configured_copies_at_one_packet_per_20ms():
    sender = CallAudio(OPUS_REDUNDANT, AudioConfig(redundancy_offsets=(1, 2)))
    out = sender.capture(voiced(0.2).tobytes())
    assert len(out) == 10
    assert all(o.duration_ms == 20 and o.codec == OPUS_REDUNDANT for o in out)
    assert [f.offset for f in parse(out[-1].payload).frames] == [-2, -1, 0]


def test_mulaw_call_keeps_the_waveform():
    _, receiver, out = _call(MULAW, Link())
    assert receiver.stats.frames_played > 140
    corr, _ = best_correlation(voiced(3.0)[8000:24000], out[8000:25000], max_lag=1000)
    assert corr > 0.95


def test_seeded_loss_jitter_and_duplicates_give_the_same_bytes_every_run():
    def run():
        link = Link(loss=GilbertLoss(0.1, 3, seed=4), jitter_ms=30, duplicate_rate=0.05, seed=4)
        return _call(OPUS_REDUNDANT, link, seconds=2.0)

    (_, r1, out1), (_, r2, out2) = run(), run()
    assert np.array_equal(out1, out2)
    assert r1.stats == r2.stats
    assert r1.stats.duplicate > 0 and r1.stats.lost > 0


def test_jittery_lossy_link_is_mostly_rebuilt():
    link = Link(loss=RandomLoss(0.2, seed=9), jitter_ms=40, duplicate_rate=0.02, seed=9)
    _, receiver, _ = _call(OPUS_REDUNDANT, link, seconds=6.0)
    s = receiver.stats
    assert s.lost > 40
    assert s.concealed <= 0.15 * s.lost
    assert s.lost == s.recovered_fec + s.recovered_redundancy + s.concealed


def test_bad_payloads_are_counted_and_dropped_without_stopping_the_call():
    receiver = CallAudio(OPUS_REDUNDANT)
    receiver.receive(OPUS_REDUNDANT, 0, b"\x20junk", 0.0)
    receiver.receive(OPUS_REDUNDANT, 0, b"", 0.0)
    receiver.receive(OPUS, 20, b"", 0.0)
    receiver.receive(MULAW, 40, b"", 0.0)
    receiver.receive(MULAW, 40, b"\xff" * 8, 0.0)  # 1 ms: shorter than any VoIP frame
    receiver.receive(0x33, 60, b"abc", 0.0)
    assert receiver.stats.malformed == 5
    assert receiver.stats.unsupported_codec == 1
    assert len(receiver.playback(160, 0.1)) == 320


def test_playback_returns_exactly_what_the_sound_card_asks_for():
    receiver = CallAudio(OPUS)
    assert [len(receiver.playback(n, 0.0)) for n in (1, 80, 160, 441, 960)] == [
        2,
        160,
        320,
        882,
        1920,
    ]


def test_statistics_report_delay_and_counts():
    sender, receiver = CallAudio(OPUS_REDUNDANT), CallAudio(OPUS_REDUNDANT)
    receiver.device_latency_ms = 15
    run_one_way(sender, receiver, voiced(3.0).tobytes(), Link(transit_ms=30), tail_ms=200)
    s = receiver.stats.as_dict()
    assert sender.stats.frames_sent == 160 and sender.stats.bytes_sent > 0
    assert s["packets_received"] >= 157  # the last few are still in flight
    assert s["loss_fraction"] == 0
    # frame 20 + lookahead 6.5 + buffer (under a frame here) + device 15; network unknown (0)
    assert 41.5 <= s["end_to_end_delay_ms"] < 41.5 + 20


def test_measured_loss_raises_the_encoders_expected_loss():
    _, receiver, _ = _call(OPUS, Link(loss=RandomLoss(0.3, seed=3)))
    floor = receiver.config.opus.min_expected_loss_percent
    receiver.capture(voiced(0.1).tobytes())
    assert receiver._opus_encoder.expected_loss_percent > floor + 10


def test_servald_mode_sends_160_mulaw_bytes_per_20ms():
    out = CallAudio(MULAW).capture(voiced(0.1).tobytes())
    assert [(o.codec, len(o.payload), o.duration_ms) for o in out] == [(MULAW, 160, 20)] * 5


def test_a_peer_sending_40ms_opus_frames_is_played_in_full():
    from vomp.media.opus import OpusEncoder

    enc, receiver = OpusEncoder(), CallAudio(OPUS)
    signal = voiced(1.0)
    for n in range(25):
        packet = enc.encode(signal[n * 640 : (n + 1) * 640].tobytes())
        receiver.receive(OPUS, n * 40, packet, n * 0.04 + 0.045)
    out = b"".join(receiver.playback(320, 0.05 + n * 0.02) for n in range(48))
    assert receiver.stats.frames_played >= 23 and receiver.stats.lost == 0
    assert len(out) == 48 * 640


@pytest.mark.parametrize("ppm", [-1500, 1500])
def test_sound_card_drift_is_absorbed_in_the_pauses(ppm):
    talk = voiced(1.0)
    pause = np.zeros(8000, dtype="<i2")
    speech = np.concatenate([talk, pause] * 20)  # 30 s: 45 ms of drift if nothing corrected it
    sender, receiver = CallAudio(OPUS_REDUNDANT), CallAudio(OPUS_REDUNDANT)
    run_one_way(sender, receiver, speech.tobytes(), Link(), receiver_clock_ppm=ppm)
    s = receiver.stats
    assert s.playout_delay_ms <= 25
    if ppm < 0:  # frames dropped, or sound trimmed in pauses: at least 40 of the 45 ms
        assert s.dropped * 20 + s.trimmed_ms >= 40
    else:
        assert s.stretched >= 2
    assert s.lost == 0


def test_algorithmic_delay_is_a_frame_plus_the_codec_lookahead():
    assert CallAudio(OPUS).algorithmic_delay_ms == pytest.approx(26.5)
    assert CallAudio(MULAW).algorithmic_delay_ms == pytest.approx(22.9375)


def test_a_far_fetched_copy_offset_cannot_make_the_buffer_wait_past_its_cap():
    from vomp.media.opus import OpusEncoder
    from vomp.media.redundancy import InnerFrame, RedundantPayload, pack

    packet = OpusEncoder().encode(voiced(0.02).tobytes())
    payload = pack(RedundantPayload(20, (InnerFrame(-128, packet), InnerFrame(0, packet))))
    receiver = CallAudio(OPUS_REDUNDANT)
    receiver.receive(OPUS_REDUNDANT, 5000, payload, 0.0)
    assert receiver.jitter_buffer.recovery_frames * 20 <= receiver.config.jitter.max_delay_ms


@given(
    st.lists(
        st.tuples(
            st.sampled_from([MULAW, OPUS, OPUS_REDUNDANT, 0x20, 0]),
            st.integers(0, 4000),
            st.binary(max_size=300),
        ),
        max_size=30,
    )
)
@settings(max_examples=60, deadline=None)
@example([(OPUS, 0, b"\x00"), (MULAW, 1, bytes(8))])  # 1 ms µ-law slot, then Opus concealment
def test_any_received_bytes_are_played_or_counted_never_raised(frames):
    receiver = CallAudio(OPUS_REDUNDANT)
    for n, (codec, time_ms, payload) in enumerate(frames):
        receiver.receive(codec, time_ms, payload, n * 0.02)
        assert len(receiver.playback(160, n * 0.02 + 0.01)) == 320
    s = receiver.stats
    assert s.packets_received == len(frames)
    assert s.lost == s.recovered_fec + s.recovered_redundancy + s.concealed
