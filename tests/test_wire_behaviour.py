"""Address resolution, frame skipping, MTU and VoMP audio numbering, as SPEC §4-§6, §12.6 say."""

from __future__ import annotations

import pytest
import wire_vectors as wv

from vomp import address as addr
from vomp import linkstate
from vomp.address import AddressBook
from vomp.messages import AudioNumbering
from vomp.packet import (
    CIPHERED,
    MTU,
    Frame,
    Packet,
    PacketTooLarge,
    encode_packet,
    parse_packet,
)
from vomp.wire import ParseError

A = bytes.fromhex("5294CB677F0B92E7814AF63D2298658218399D40C359ABE078512337DB530C5E")
B = bytes.fromhex("A4CC73A6EACB57BBD6F9679DFC42231DD118C8C618BBDDD22761D5032F61E959")


def _book(*sids: bytes) -> AddressBook:
    book = AddressBook()
    for sid in sids:
        book.learn(sid)
    return book


def test_prefix_resolves_only_when_exactly_one_known_sid_matches():
    book = _book(A, B, b"\x52\x95" + bytes(30))
    assert book.resolve_prefix(b"\xa4") == B
    assert book.resolve_prefix(b"\x52") is None  # two SIDs start with 52
    assert book.resolve_prefix(b"\x52\x94") == A
    assert book.resolve_prefix(b"\x99") is None
    assert book.matches(b"\x52") == [A, b"\x52\x95" + bytes(30)]


def test_frame_with_unknown_prefix_is_skipped_and_reported_while_others_are_kept():
    # B's header in full; frame 1 to unknown prefix 99; frame 2 a local broadcast.
    data = (
        bytes.fromhex("0101") + addr.full(B).encode() + b"\x00"
        + bytes.fromhex("0501 99 01 0000")
        + bytes.fromhex("07 02 0000")
    )  # fmt: skip
    parsed = parse_packet(data, _book(A), learn=False)
    assert parsed.unknown_prefixes == [b"\x99"]
    assert [f.frame_seq for f in parsed.skipped_frames] == [1]
    assert [f.frame_seq for f in parsed.frames] == [2]
    assert parsed.packet.sender == B  # the full SID is known even though not learnt


def test_full_sids_and_sign_keys_are_learnt_when_asked_to():
    signer = wv.identities()["S_P"]
    book = AddressBook()
    data = bytes.fromhex("0101") + addr.signkey(signer.sign_public).encode() + b"\x00"
    assert parse_packet(data, book).packet.sender == signer.sid
    assert signer.sid in book and book.sign_key(signer.sid) == signer.sign_public
    parse_packet(bytes.fromhex("0101") + addr.full(A).encode() + b"\x00", book)
    assert book.resolve_prefix(A[:1]) == A


def test_unknown_sender_leaves_same_sender_frames_unresolved():
    data = bytes.fromhex("01 01 02 5294 00 07 01 0000")
    parsed = parse_packet(data, AddressBook())
    assert parsed.packet.sender is None and parsed.unknown_prefixes == [A[:2]]
    assert parsed.frames == [] and len(parsed.skipped_frames) == 1


def test_previous_carries_across_frames_and_linkstate_has_its_own_context():
    vector = next(v for _n, v in wv.all_vectors() if v["id"] == "addr-previous-0xfe")
    book = _book(A, B)
    parsed = parse_packet(bytes.fromhex(vector["packet_hex"]), book, learn=False)
    _first, ls_frame, third = parsed.packet.frames
    assert third.destination_address.code == addr.CODE_PREVIOUS and third.destination == A
    records, unknown = linkstate.parse_linkstate(ls_frame.payload[1:], ls_frame.source, book)
    assert unknown == [] and records[0].transmitter.code == addr.CODE_SELF
    assert records[0].transmitter_sid == B  # SELF = the frame source, in link-state


def test_previous_after_an_unknown_address_does_not_resolve_to_an_older_one():
    data = (
        bytes.fromhex("0101") + addr.full(B).encode() + b"\x00"
        + bytes.fromhex("0501 99 01 0000") + bytes.fromhex("05fe 02 0000")
    )  # fmt: skip
    parsed = parse_packet(data, _book(A, B))
    assert parsed.frames == [] and len(parsed.skipped_frames) == 2


@pytest.mark.parametrize("code", [0x00, 0x21, 0x80, 0xFA])
def test_invalid_address_codes_stop_the_packet(code):
    with pytest.raises(ParseError, match="invalid address code"):
        parse_packet(bytes([1, 1, code]) + bytes(40), AddressBook())


@pytest.mark.parametrize(
    "data",
    [
        "",
        "02",
        "0103",
        "0101",
        "010120",
        "0101ff00",
        "0101fe00",
        "010102a4cc0007",
        "0101025294000701ffff",
    ],
)
def test_malformed_headers_and_truncated_frames_raise_parse_error(data):
    with pytest.raises(ParseError):
        parse_packet(bytes.fromhex(data), _book(A, B))


def test_packets_over_the_1200_byte_mtu_are_refused():
    header = len(encode_packet(Packet(A, [], seq=0)))
    frame_overhead = 1 + 33 + 1 + 2
    fits = Frame.to_peer(A, B, bytes(MTU - header - frame_overhead), frame_seq=1)
    assert len(encode_packet(Packet(A, [fits], seq=0))) == MTU
    too_big = Frame.to_peer(A, B, bytes(MTU - header - frame_overhead + 1), frame_seq=1)
    with pytest.raises(PacketTooLarge):
        encode_packet(Packet(A, [too_big], seq=0))


def test_ciphered_without_signed_is_never_sent():
    with pytest.raises(ValueError, match="CIPHERED"):
        encode_packet(Packet(A, [Frame.to_peer(A, B, b"x", crypto_flags=CIPHERED, frame_seq=1)]))


def test_audio_numbering_wraps_past_65535_as_in_the_spec_example():
    numbering = AudioNumbering()
    seq = 0
    for field in [*range(0, 65536, 1000), 65535, 100]:
        _time, seq = numbering.rebuild(field, field)
    assert seq == 65636


def test_audio_numbering_first_field_above_0x8000_is_servalds_negative_value():
    assert AudioNumbering().rebuild(0x9000, 0x9000) == (0xFFFF9000, 0xFFFF9000)


def test_late_frames_keep_the_reference():
    numbering = AudioNumbering()
    numbering.rebuild(10, 10)
    assert numbering.rebuild(5, 5) == (5, 5)
    assert (numbering.ref_time, numbering.ref_seq) == (10, 10)


def test_an_audio_time_already_delivered_is_never_delivered_again():
    # servald forgets all but the last 16 times; a replayed datagram must not play twice here
    numbering = AudioNumbering()
    assert numbering.accept(0, 0) == (0, 0)
    assert numbering.accept(1, 1) == (20, 1)
    assert numbering.accept(1, 2) is None  # same time as a delivered frame: duplicate
    for t in range(3, 200):
        assert numbering.accept(t, t) is not None
    assert numbering.accept(1, 1) is None  # long gone, still never again
    assert numbering.accept(2, 2) is None  # never delivered, but older than the window
    assert numbering.accept(199 - AudioNumbering.WINDOW + 1, 500) is None  # delivered before


def test_a_late_audio_frame_within_the_window_is_still_delivered():
    numbering = AudioNumbering()
    for t in (0, 1, 3, 4, 5):
        assert numbering.accept(t, t) is not None
    assert numbering.accept(2, 2) == (40, 2)  # reordered, not a duplicate
