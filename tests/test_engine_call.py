"""The call's audio in the engine process: the records on its pipes (a total parser) and the
EngineCall state machine that runs CallAudio one period at a time."""

from __future__ import annotations

import gc

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hw.soundcard.call_records import (
    MAX_RECORD_BYTES,
    CallStats,
    EndCall,
    Gain,
    Mute,
    ReceivedFrame,
    RecordReader,
    SentFrame,
    StartCall,
    encode,
    pipe_writes,
)
from hw.soundcard.devices import PcmSettings
from hw.soundcard.engine_call import STATS_EVERY_FRAMES, EngineCall
from vomp.media import OPUS, OPUS_REDUNDANT

SETTINGS = PcmSettings(period_frames=80)  # 5 ms periods
PERIOD = SETTINGS.period_bytes
calls = st.integers(-(2**63), 2**63 - 1)
payloads = st.binary(max_size=1200)
records = st.one_of(
    st.builds(StartCall, calls, st.integers(0, 255)),
    st.builds(EndCall, calls),
    st.builds(
        ReceivedFrame,
        calls,
        st.integers(0, 255),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False),
        payloads,
    ),
    st.builds(Mute, st.booleans()),
    st.builds(Gain, st.floats(allow_nan=False)),
    st.builds(
        SentFrame,
        calls,
        st.integers(0, 2**32 - 1),
        st.integers(0, 255),
        st.integers(0, 2**16 - 1),
        payloads,
    ),
    st.builds(CallStats, calls, st.dictionaries(st.text(max_size=8), st.integers(), max_size=5)),
)


@given(st.lists(records, max_size=8), st.data())
def test_records_come_back_whole_however_the_pipe_splits_them(sent, data):
    stream = b"".join(pipe_writes([encode(r) for r in sent]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    reader = RecordReader()
    got = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        got += reader.feed(stream[start:end])
    assert got == sent and reader.malformed == 0


@given(st.binary(max_size=200))
@example(b"\x63\x00\x00")  # unknown kind
@example(b"\x01\x01\x00\x00")  # a StartCall too short
@example(b"\x07\xff\xff")  # longer than a pipe write can be
def test_any_bytes_are_records_or_counted_never_an_exception(data):
    reader = RecordReader()
    reader.feed(data)
    assert reader.malformed <= 1
    assert reader.feed(encode(Mute(True))) in ([Mute(True)], [])


def test_garbage_is_dropped_and_the_next_read_parses_again():
    reader = RecordReader()
    assert reader.feed(b"\x63\x00\x00" + encode(Mute(True))) == []
    assert reader.malformed == 1
    assert reader.feed(encode(Gain(0.5))) == [Gain(0.5)]


def test_a_record_longer_than_one_atomic_pipe_write_is_refused():
    with pytest.raises(ValueError, match="too long"):
        encode(ReceivedFrame(1, OPUS, 0, 0.0, bytes(MAX_RECORD_BYTES)))


def sent_frames(out: list[bytes]) -> list[SentFrame]:
    return [r for r in RecordReader().feed(b"".join(out)) if isinstance(r, SentFrame)]


def run(call: EngineCall, periods: int, pcm: bytes = bytes(PERIOD), now: float = 0.0):
    """`periods` rounds; the PCM played and the records handed over."""
    played, out = [], []
    for n in range(periods):
        pcm_out, records = call.round(pcm, now + n * 0.005)
        played.append(pcm_out)
        out += records
    return played, out


def test_outside_a_call_there_is_nothing_to_play_or_send():
    call = EngineCall(SETTINGS)
    assert call.round(bytes(PERIOD), 0.0) == (None, [])


def test_a_call_sends_a_numbered_frame_per_20_ms_and_its_statistics_now_and_then():
    call = EngineCall(SETTINGS)
    call.take(encode(StartCall(5, OPUS_REDUNDANT)))
    played, out = run(call, 4 * STATS_EVERY_FRAMES)
    assert all(len(p) == PERIOD for p in played)
    frames = sent_frames(out)
    assert [f.seq for f in frames] == list(range(STATS_EVERY_FRAMES))
    assert {(f.call, f.codec, f.duration_ms) for f in frames} == {(5, OPUS_REDUNDANT, 20)}
    stats = [r for r in RecordReader().feed(b"".join(out)) if isinstance(r, CallStats)]
    assert [s.stats["frames_sent"] for s in stats] == [STATS_EVERY_FRAMES]


def test_starting_the_same_call_again_changes_nothing_and_ending_it_stops_it():
    call = EngineCall(SETTINGS)
    call.take(encode(StartCall(5, OPUS)))
    run(call, 8)
    call.take(encode(StartCall(5, OPUS)))  # told again after a reopen that did not happen
    assert [f.seq for f in sent_frames(run(call, 4)[1])] == [2]
    call.take(encode(EndCall(4)))  # not this call
    assert call.audio is not None
    call.take(encode(EndCall(5)))
    assert call.audio is None


def test_frames_of_another_call_and_unknown_codecs_are_refused():
    call = EngineCall(SETTINGS)
    call.take(encode(StartCall(5, 0x55)))
    call.take(encode(ReceivedFrame(5, OPUS, 0, 0.0, b"\x08abc")))
    call.take(encode(SentFrame(5, 0, OPUS, 20, b"")))  # a record for the handset, not for us
    assert call.audio is None and call.refused == 3


def test_gain_scales_what_the_call_plays():
    loud, soft = EngineCall(SETTINGS), EngineCall(SETTINGS)
    for call in (loud, soft):
        call.take(encode(StartCall(5, OPUS)))
    soft.take(encode(Gain(0.5)))
    sender = EngineCall(SETTINGS)
    sender.take(encode(StartCall(1, OPUS)))
    tone = bytes((i * 37) % 256 for i in range(PERIOD))
    for n, frame in enumerate(sent_frames(run(sender, 16, tone)[1])):
        for call in (loud, soft):
            call.take(encode(ReceivedFrame(5, OPUS, 20 * n, 0.0, frame.payload)))
    peak_loud = max(
        abs(int.from_bytes(p[i : i + 2], "little", signed=True))
        for p in run(loud, 16)[0]
        for i in range(0, PERIOD, 2)
    )
    peak_soft = max(
        abs(int.from_bytes(p[i : i + 2], "little", signed=True))
        for p in run(soft, 16)[0]
        for i in range(0, PERIOD, 2)
    )
    assert peak_loud > 0 and abs(peak_soft - peak_loud / 2) <= 1


def test_a_call_leaves_no_garbage_cycles_for_the_collector_the_engine_keeps_off():
    sender, receiver = EngineCall(SETTINGS), EngineCall(SETTINGS)
    for call in (sender, receiver):
        call.take(encode(StartCall(1, OPUS_REDUNDANT)))
    tone = bytes((i * 37) % 256 for i in range(PERIOD))
    gc.collect()
    gc.disable()
    try:
        for n, frame in enumerate(sent_frames(run(sender, 400, tone)[1])):
            if n % 7 != 3:  # some lost: redundancy, FEC and concealment run too
                receiver.take(encode(ReceivedFrame(1, frame.codec, 20 * n, 0.0, frame.payload)))
            run(receiver, 4)
        # 400 frames: a cycle per frame would be hundreds; what remains is the one ctypes
        # buffer type opuslib_next's encoder makes (ctypes caches it only weakly).
        assert gc.collect() < 20
    finally:
        gc.enable()
