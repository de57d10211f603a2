"""Encoders and parsers agree: what we encode parses back to the same values."""

from __future__ import annotations

import wire_vectors as wv
from hypothesis import given, settings
from hypothesis import strategies as st

from vomp import address as addr
from vomp import crypto, dna, keymap, linkstate, mdp, please_explain
from vomp.address import AddressBook, DecodeContext
from vomp.messages import CallState, VompAudio, VompMessage, encode_vomp, parse_vomp
from vomp.packet import (
    CIPHERED,
    SIGNED,
    TYPE_DATA,
    TYPE_PLEASE_EXPLAIN,
    Frame,
    Packet,
    encode_packet,
    parse_packet,
)
from vomp.wire import Reader, encode_varint

PROPS = settings(max_examples=150, deadline=None)
sids = st.binary(min_size=32, max_size=32)
u8s = st.integers(0, 255)


@PROPS
@given(st.integers(0, 2**32 - 1))
def test_varint_round_trips_in_the_shortest_form(n):
    data = encode_varint(n)
    assert Reader(data).varint() == n
    assert len(data) == max(1, (n.bit_length() + 6) // 7)


def test_varint_examples_from_the_spec():
    assert encode_varint(0).hex() == "00"
    assert encode_varint(10).hex() == "0a"
    assert encode_varint(47095).hex() == "f7ef02"


@PROPS
@given(sids, st.integers(1, 31))
def test_addresses_round_trip_through_a_decode_context(sid, prefix_len):
    book = AddressBook()
    book.learn(sid)
    wire = (
        addr.full(sid).encode()
        + addr.abbreviated(sid[:prefix_len]).encode()
        + addr.previous().encode()
        + addr.self_address().encode()
    )
    ctx = DecodeContext(book, sender=b"\x01" * 32)
    reader = Reader(wire)
    assert [ctx.read(reader).sid for _ in range(4)] == [sid, sid, sid, b"\x01" * 32]
    assert reader.remaining == 0


@st.composite
def frames(draw, sender):
    broadcast = draw(st.booleans())
    crypto_flags = draw(st.sampled_from([0, SIGNED, CIPHERED | SIGNED]))
    ftype = draw(st.sampled_from([TYPE_DATA, TYPE_PLEASE_EXPLAIN, 0x50]))
    payload = draw(st.binary(max_size=60))
    seq = draw(u8s)
    if broadcast:
        return Frame.local_broadcast(
            sender, payload, crypto_flags=crypto_flags, type=ftype, frame_seq=seq
        )
    return Frame.to_peer(
        sender, draw(sids), payload, crypto_flags=crypto_flags, type=ftype, frame_seq=seq,
        ack_soon=draw(st.booleans()),
    )  # fmt: skip


@st.composite
def packets(draw):
    sender = draw(sids)
    return Packet(
        sender,
        draw(st.lists(frames(sender), max_size=5)),
        flags=draw(st.sampled_from([0, 1])),
        interface=draw(st.none() | u8s),
        seq=draw(st.none() | u8s),
    )


@PROPS
@given(packets())
def test_packets_we_build_parse_back_to_the_same_fields(packet):
    data = encode_packet(packet)
    parsed = parse_packet(data, AddressBook())
    got = parsed.packet
    assert (got.sender, got.unicast, got.interface, got.seq, got.version) == (
        packet.sender,
        packet.unicast,
        packet.interface,
        packet.seq,
        1,
    )
    assert not parsed.skipped_frames and not parsed.unknown_prefixes
    assert len(got.frames) == len(packet.frames)
    for mine, theirs in zip(packet.frames, got.frames, strict=True):
        assert theirs.source == packet.sender
        assert theirs.destination == mine.destination
        assert theirs.is_broadcast == mine.is_broadcast and theirs.one_hop
        assert (theirs.type, theirs.frame_seq, theirs.payload) == (
            mine.type,
            mine.frame_seq,
            mine.payload,
        )
        assert theirs.crypto_flags == mine.crypto_flags and theirs.ack_soon == mine.ack_soon
    assert encode_packet(got) == data


@PROPS
@given(
    st.lists(
        st.tuples(sids, u8s, st.booleans(), st.none() | u8s, st.integers(0, 2**32 - 1)),
        max_size=8,
    )
)
def test_neighbour_records_round_trip_with_self_receiver(entries):
    records = [
        linkstate.neighbour_record(sid, iface, unicast=uni, ack_seq=ack, ack_mask=mask)
        for sid, iface, uni, ack, mask in entries
    ]
    me = b"\x07" * 32
    parsed, unknown = linkstate.parse_linkstate(
        linkstate.encode_linkstate(records), me, AddressBook()
    )
    assert unknown == []
    assert len(parsed) == len(records)
    for (sid, iface, uni, ack, mask), record in zip(entries, parsed, strict=True):
        assert record.receiver_sid == me and record.is_neighbour_record
        assert record.transmitter_sid == sid and record.interface == iface
        assert bool(record.flags & linkstate.UNICAST) == uni
        assert record.ack_seq == ack
        assert record.ack_mask == (mask if ack is not None else None)


calls = st.tuples(
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.sampled_from(list(CallState)),
    st.sampled_from(list(CallState)),
    st.lists(st.integers(1, 255), min_size=1, max_size=8, unique=True).map(sorted),
    st.from_regex(r"[0-9*#+]{5,31}", fullmatch=True),
    st.from_regex(r"[0-9*#+]{5,31}", fullmatch=True),
    st.tuples(u8s, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=200)),
)  # fmt: skip


@PROPS
@given(calls, st.booleans())
def test_vomp_messages_round_trip(call, with_numbers):
    s, r, ss, rs, codecs, caller, called, (codec, time, seq, data) = call
    both_early = ss < CallState.RINGINGOUT and rs < CallState.RINGINGOUT
    message = VompMessage(
        s,
        r,
        ss,
        rs,
        tuple(codecs) if both_early else None,
        caller if both_early and with_numbers else None,
        called if both_early and with_numbers else None,
        VompAudio(codec, time, seq, data) if ss == CallState.INCALL else None,
    )
    assert parse_vomp(encode_vomp(message)) == message


@PROPS
@given(
    st.from_regex(r"[0-9*#+]{5,31}", fullmatch=True),
    sids,
    st.from_regex(r"[ -{}~]{0,30}", fullmatch=True),
)
def test_dna_request_and_reply_round_trip(did, sid, name):
    request = dna.parse_dna_request(dna.encode_dna_request(did))
    assert request.did == did and request.nul_terminated and request.matches(did)
    reply = dna.parse_dna_reply(dna.encode_dna_reply(sid, did, name))
    assert (reply.sid, reply.did, reply.name) == (sid, did, name)
    assert reply.uri == f"sid://{sid.hex().upper()}/local/{did}" and reply.ends_with_bar


@PROPS
@given(st.lists(st.binary(min_size=1, max_size=31), max_size=5), st.lists(sids, max_size=3))
def test_please_explain_entries_round_trip(prefixes, answers):
    entries = [please_explain.ExplainRequest(p) for p in prefixes]
    entries += [please_explain.ExplainAnswer(s) for s in answers]
    assert (
        please_explain.parse_please_explain(please_explain.encode_please_explain(entries))
        == entries
    )


def test_signkey_explanations_round_trip_with_the_derived_sid():
    ident = wv.identities()["B"]
    entry = please_explain.ExplainAnswer(ident.sid, ident.sign_public)
    assert please_explain.parse_please_explain(please_explain.encode_please_explain([entry])) == [
        entry
    ]


def test_keymap_reply_we_send_verifies_for_our_sid_only():
    ident = wv.identities()["P"]
    reply = keymap.parse_keymap(keymap.encode_reply(ident))
    assert reply.is_reply and reply.sign_key == ident.sign_public
    assert reply.verify(ident.sid)
    assert not reply.verify(wv.identities()["A"].sid)
    assert keymap.parse_keymap(keymap.encode_request()).is_request


@PROPS
@given(st.integers(0, mdp.MAX_PORT), st.integers(0, mdp.MAX_PORT), st.binary(max_size=100))
def test_mdp_port_header_round_trips(dst, src, body):
    message = mdp.parse_content(mdp.encode_content(dst, src, body))
    assert (message.dst_port, message.src_port, message.body) == (dst, src, body)


def test_mdp_port_examples_from_the_spec():
    assert mdp.encode_ports(12, 12).hex() == "19"
    assert mdp.encode_ports(2, 2).hex() == "05"
    assert mdp.encode_ports(1, 1).hex() == "03"
    assert mdp.encode_ports(10, 47095).hex() == "14f7ef02"


@PROPS
@given(st.binary(max_size=300))
def test_boxed_and_signed_content_opens_back(content):
    a, b = wv.identities()["A"], wv.identities()["B"]
    key_ab = crypto.shared_key(b.sid, a.box_secret)
    nonce = crypto.random_nonce()
    assert nonce[0] & 0x80 == 0
    boxed = mdp.seal(content, mdp.MdpMode.BOX, shared_key=key_ab, nonce=nonce)
    assert len(boxed) == len(content) + crypto.BOX_OVERHEAD and boxed[:24] == nonce
    key_ba = crypto.shared_key(a.sid, b.box_secret)
    assert mdp.open_payload(boxed, mdp.MdpMode.BOX, shared_key=key_ba) == content
    signed = mdp.seal(content, mdp.MdpMode.SIGNED, ed_secret=a.ed_secret)
    assert mdp.open_payload(signed, mdp.MdpMode.SIGNED, sign_public=a.sign_public) == content


def test_each_service_is_sent_in_the_mode_servald_uses():
    assert mdp.mode_for(mdp.PORT_LINKSTATE, broadcast=False) is mdp.MdpMode.CLEAR
    assert mdp.mode_for(mdp.PORT_DNA, broadcast=True) is mdp.MdpMode.SIGNED
    for port in (mdp.PORT_DNA, mdp.PORT_VOMP, mdp.PORT_KEYMAP):
        assert mdp.mode_for(port, broadcast=False) is mdp.MdpMode.BOX
