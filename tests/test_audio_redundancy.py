"""The 0x70 redundant payload: byte layout, total parser (hypothesis), packer and negotiation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vomp.media.redundancy import (
    InnerFrame,
    PayloadError,
    RedundancyPacker,
    RedundantPayload,
    pack,
    parse,
)


def test_layout_of_a_two_copy_payload():
    payload = RedundantPayload(
        20, (InnerFrame(-2, b"AA"), InnerFrame(-1, b"B"), InnerFrame(0, b"CC"))
    )
    assert pack(payload) == bytes([0x12, 20, 0xFE, 2]) + b"AA" + bytes([0xFF, 1]) + b"B\x00CC"
    assert parse(pack(payload)) == payload


def test_long_frames_use_the_two_byte_length():
    big = bytes(300)
    data = pack(RedundantPayload(20, (InnerFrame(-1, big), InnerFrame(0, b"x"))))
    assert data[3:5] == (0x8000 | 300).to_bytes(2, "big")
    assert parse(data).frames[0].data == big


def test_inner_frames_are_placed_relative_to_the_packet_time():
    payload = RedundantPayload(
        20, (InnerFrame(-3, b"a"), InnerFrame(-1, b"b"), InnerFrame(0, b"c"))
    )
    assert payload.timed_frames(1000) == [(940, b"a"), (980, b"b"), (1000, b"c")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "shorter"),
        (b"\x10", "shorter"),
        (b"\x20\x14\x00x", "version"),
        (b"\x10\x00\x00x", "frame_ms 0"),
        (b"\x10\x14\x00", "empty"),
        (b"\x11\x14\x00\x05ab", "past the end"),
        (b"\x11\x14\x00\x01a\x00b", "increase"),
        (b"\x11\x14\xff\x80\x05" + b"a" * 5 + b"\x00b", "shortest"),
        (b"\x11\x14\xff", "length"),
    ],
)
def test_malformed_payloads_are_refused_with_a_reason(data, reason):
    with pytest.raises(PayloadError, match=reason):
        parse(data)


@given(st.binary(max_size=600))
def test_parser_is_total_and_canonical(data):
    try:
        payload = parse(data)
    except PayloadError:
        return
    assert pack(payload) == data


frames = st.lists(
    st.tuples(st.integers(-128, 127), st.binary(min_size=1, max_size=400)),
    min_size=1,
    max_size=16,
    unique_by=lambda f: f[0],
)


@given(
    st.integers(1, 255),
    frames,
    st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4),
    st.integers(0, 2000),
)
def test_parser_survives_damaged_valid_payloads(frame_ms, raw, flips, cut):
    data = bytearray(
        pack(RedundantPayload(frame_ms, tuple(InnerFrame(o, d) for o, d in sorted(raw))))
    )
    for where, value in flips:
        data[where % len(data)] = value
    data = data[: max(0, len(data) - cut % 8)]
    try:
        payload = parse(bytes(data))
    except PayloadError:
        return
    assert pack(payload) == bytes(data)


@given(st.integers(1, 255), frames)
def test_pack_then_parse_gives_the_payload_back(frame_ms, raw):
    payload = RedundantPayload(frame_ms, tuple(InnerFrame(o, d) for o, d in sorted(raw)))
    assert parse(pack(payload)) == payload


def test_packer_repeats_the_frames_at_the_configured_distances():
    packer = RedundancyPacker((1, 3))
    payloads = [parse(packer.pack(bytes([n]))) for n in range(5)]
    assert [f.offset for f in payloads[0].frames] == [0]
    assert [(f.offset, f.data) for f in payloads[4].frames] == [
        (-3, b"\x01"),
        (-1, b"\x03"),
        (0, b"\x04"),
    ]


def test_packer_refuses_offsets_it_cannot_express():
    with pytest.raises(ValueError):
        RedundancyPacker((2, 1))
    with pytest.raises(ValueError):
        RedundancyPacker((0,))
