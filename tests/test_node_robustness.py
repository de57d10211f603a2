"""A Node never raises on bad input: malformed, mutated, forged or replayed datagrams are counted
and dropped. Also: acks for ACK_SOON, key fetching for signed broadcasts, expiry and clock jumps."""

from __future__ import annotations

import copy
import functools
import json
import random

import pytest
import wire_vectors as wv
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.netsim import Network, events_of
from vomp import crypto, keymap, mdp, please_explain
from vomp.address import AddressBook
from vomp.dna import encode_dna_request
from vomp.events import CallEnded, PeerLost
from vomp.identity import Identity
from vomp.messages import CallState
from vomp.node import BROADCAST_ID_LIMIT, MAX_AUDIO_PAYLOAD, Node
from vomp.packet import ACK_SOON, MTU, Frame, Packet, encode_packet, parse_packet

CAPTURE = wv.vectors_dir() / "capture_shared.jsonl"  # servald's datagrams, to mutate
SAMPLES = [bytes.fromhex(json.loads(line)["hex"]) for line in CAPTURE.read_text().splitlines()]


def fresh_node() -> Node:
    return Node(Identity.from_seed(bytes(range(32))), "5552002", "Bob", rng=random.Random(0))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=1300))
def test_random_bytes_never_raise(data):
    node = fresh_node()
    node.receive(data, "peer", 1.0)
    node.datagrams_to_send(1.0)
    assert node.counters["internal_errors"] == 0


@settings(max_examples=400, deadline=None)
@given(
    index=st.integers(0, len(SAMPLES) - 1),
    flips=st.lists(st.tuples(st.integers(0, 1299), st.integers(1, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 1300),
)
def test_mutated_servald_datagrams_never_raise(index, flips, cut):
    data = bytearray(SAMPLES[index])
    for position, xor in flips:
        if data:
            data[position % len(data)] ^= xor
    node = copy.deepcopy(primed_node())  # one that already knows the peers and their keys
    node.receive(bytes(data[:cut]), "A", 1.0)
    node.handle_timer(1.0)
    node.datagrams_to_send(1.0)
    assert node.counters["internal_errors"] == 0


@functools.cache
def primed_node() -> Node:
    node = fresh_node()
    for sample in SAMPLES[:60]:
        node.receive(sample, "A", 0.5)
    return node


def pair():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    return net, a, b


def test_a_forged_vomp_frame_is_counted_and_dropped():
    net, a, b = pair()
    mallory = Identity.from_seed(bytes([9]) * 32)
    # Mallory claims to be A but boxes with her own key: B cannot open it.
    payload = mdp.seal(
        mdp.encode_content(12, 12, bytes.fromhex("02123400001202070000")),
        mdp.MdpMode.BOX,
        shared_key=bytes(32),
        nonce=bytes(24),
    )
    frame = Frame.to_peer(a.node.sid, b.node.sid, payload, crypto_flags=0x30, frame_seq=200)
    data = encode_packet(Packet(a.node.sid, [frame]))
    b.node.receive(data, ("10.0.0.99", 4110), net.now)
    assert b.node.counters["dropped_DecryptError"] == 1
    assert b.node.calls.calls() == []
    assert mallory.sid not in b.node.neighbours


def test_our_own_packets_coming_back_are_ignored():
    net, a, _b = pair()
    for data, _dest in a.node.datagrams_to_send(net.now) or []:
        a.node.receive(data, a.address, net.now)
    a.node.handle_timer(net.now + 0.5)
    for data, _dest in a.node.datagrams_to_send(net.now + 0.5):
        a.node.receive(data, a.address, net.now + 0.5)
    assert a.node.counters["own_packets"] > 0
    assert a.node.sid not in a.node.neighbours


def signed_lookup_from(stranger: Identity) -> bytes:
    content = mdp.encode_content(10, 40000, encode_dna_request("5552002"))
    payload = mdp.seal(content, mdp.MdpMode.SIGNED, ed_secret=stranger.ed_secret)
    frame = Frame.local_broadcast(stranger.sid, payload, crypto_flags=0x20, frame_seq=1)
    return encode_packet(Packet(stranger.sid, [frame]))


def test_a_signed_request_from_an_unknown_key_waits_for_the_key_then_is_dropped():
    node = fresh_node()
    stranger = Identity.from_seed(bytes([7]) * 32)
    node.receive(signed_lookup_from(stranger), "S", 0.0)
    assert node.counters["keymap_requests_sent"] >= 1
    assert node.counters["frames_held_for_key"] == 1 and node.counters["dna_answered"] == 0
    node.handle_timer(2.5)  # no key came: the frame is given up
    assert node.counters["dropped_missing_sign_key"] == 1


def test_a_signed_request_is_answered_as_soon_as_the_key_map_reply_arrives():
    node = fresh_node()
    stranger = Identity.from_seed(bytes([7]) * 32)
    node.receive(signed_lookup_from(stranger), "S", 0.0)
    key = crypto.shared_key(node.sid, stranger.box_secret)
    reply = mdp.seal(
        mdp.encode_content(1, 1, keymap.encode_reply(stranger)),
        mdp.MdpMode.BOX,
        shared_key=key,
        nonce=bytes(24),
    )
    frame = Frame.to_peer(stranger.sid, node.sid, reply, crypto_flags=0x30, frame_seq=2)
    node.receive(encode_packet(Packet(stranger.sid, [frame])), "S", 0.1)
    assert node.counters["dna_answered"] == 1
    assert node.counters["dropped_missing_sign_key"] == 0


def test_an_ack_soon_frame_is_acked_within_100ms():
    node = fresh_node()
    peer = Identity.from_seed(bytes([5]) * 32)
    node.receive(encode_packet(Packet(peer.sid, [], flags=1, seq=1)), "P", 0.0)
    node.handle_timer(0.0)
    node.datagrams_to_send(0.0)
    frame = Frame.local_broadcast(peer.sid, mdp.encode_content(99, 99, b""), frame_seq=3)
    frame.flags |= ACK_SOON
    node.receive(encode_packet(Packet(peer.sid, [frame], flags=1, seq=2)), "P", 0.1)
    assert node.next_timer() <= 0.2
    node.handle_timer(node.next_timer())
    sent = node.datagrams_to_send(node.next_timer())
    assert any(dest == "P" for _data, dest in sent)


def test_a_silent_peer_is_lost_and_a_clock_jump_times_the_call_out():
    net, a, b = pair()
    call = a.node.dial(b.node.sid, net.now)
    net.run_until(net.now + 0.1)
    assert a.node.calls.get(call).remote_state == CallState.NOCALL
    net.stations.remove(b)  # B vanishes
    a.node.handle_timer(net.now + 100.0)  # and the clock jumps
    sent = a.node.datagrams_to_send(net.now + 100.0)
    assert [e.sid for e in events_of_node(a.node, PeerLost)] == [b.node.sid]
    assert a.node.calls.calls() == []
    assert any(dest == b.address for _data, dest in sent)  # the final 0x66 still goes out


def events_of_node(node, kind):
    out = []
    while (event := node.next_event()) is not None:
        if isinstance(event, kind):
            out.append(event)
    return out


def test_call_ended_by_timeout_is_reported():
    net, a, b = pair()
    b.node.calls.can_ring = True
    call = a.node.dial(b.node.sid, net.now)
    net.run_until(net.now + 40.0)  # nobody rings or answers: ring timeout
    ended = events_of(a, CallEnded)
    assert [(e.call, e.timed_out) for e in ended] == [(call, True)]


def test_audio_frames_fill_datagrams_up_to_the_mtu_and_no_further():
    net, a, b = pair()
    calls = []
    net.at(net.now, lambda: calls.append(a.node.dial(b.node.sid, net.now)))
    net.run_until(net.now + 0.1)
    [call] = calls
    [b_call] = b.node.calls.calls()
    net.at(net.now, lambda: b.node.ring(b_call.call_id, net.now))
    net.at(net.now, lambda: b.node.answer(b_call.call_id, net.now))
    net.run_until(net.now + 0.1)
    assert a.node.calls.get(call).local_state == CallState.INCALL
    for _ in range(12):
        assert a.node.send_audio(call, 2, bytes(MAX_AUDIO_PAYLOAD), 20)
    sent = a.node.datagrams_to_send(net.now)
    assert len(sent) == 12 and max(len(d) for d, _ in sent) == MTU
    for _ in range(12):
        a.node.send_audio(call, 2, bytes(100), 20)
    sent = a.node.datagrams_to_send(net.now)
    assert 1 < len(sent) < 12 and all(len(d) <= MTU for d, _ in sent)
    with pytest.raises(ValueError, match="does not fit one datagram"):
        a.node.send_audio(call, 2, bytes(MAX_AUDIO_PAYLOAD + 1), 20)


def test_frames_for_other_nodes_are_neither_processed_nor_forwarded():
    node = fresh_node()
    peer = Identity.from_seed(bytes([5]) * 32)
    other = Identity.from_seed(bytes([6]) * 32)
    node.receive(encode_packet(Packet(peer.sid, [], flags=1, seq=1)), "P", 0.0)
    node.datagrams_to_send(0.0)
    payload = mdp.seal(
        mdp.encode_content(12, 12, b"\x02"),
        mdp.MdpMode.BOX,
        shared_key=bytes(32),
        nonce=bytes(24),
    )
    frame = Frame.to_peer(peer.sid, other.sid, payload, crypto_flags=0x30, frame_seq=9)
    node.receive(encode_packet(Packet(peer.sid, [frame], flags=1, seq=2)), "P", 0.1)
    assert node.counters["frames_not_for_us"] == 1
    assert all(other.sid not in data for data, _dest in node.datagrams_to_send(0.1))


def test_please_explain_for_a_third_node_is_answered_with_its_full_sid():
    node = fresh_node()
    asker = Identity.from_seed(bytes([5]) * 32)
    third = Identity.from_seed(bytes([6]) * 32)
    node.receive(encode_packet(Packet(third.sid, [], flags=1, seq=1)), "T", 0.0)
    node.receive(encode_packet(Packet(asker.sid, [], flags=1, seq=1)), "Q", 0.0)
    node.datagrams_to_send(0.0)
    request = please_explain.encode_please_explain(
        [please_explain.ExplainRequest(third.sid[:2]), please_explain.ExplainRequest(node.sid[:1])]
    )
    frame = Frame.to_peer(asker.sid, node.sid, request, type=0x60, frame_seq=4)
    node.receive(encode_packet(Packet(asker.sid, [frame], flags=1, seq=2)), "Q", 0.1)
    [data] = [d for d, t in node.datagrams_to_send(0.1) if t == "Q"]
    book = AddressBook()
    for sid in (asker.sid, node.sid):
        book.learn(sid)
    parsed = parse_packet(data, book, learn=False).packet
    assert parsed.sender == node.sid  # our full SID in the header answers for us
    [answer] = [f for f in parsed.frames if f.type == 0x60]
    assert answer.destination == asker.sid
    assert please_explain.parse_please_explain(answer.payload) == [
        please_explain.ExplainAnswer(third.sid)
    ]


def test_a_flood_of_broadcast_ids_is_remembered_only_up_to_the_limit():
    node = fresh_node()
    peer = Identity.from_seed(bytes([5]) * 32)
    for i in range(BROADCAST_ID_LIMIT + 500):
        frame = Frame(
            0x03, peer.sid, None, b"", frame_seq=i % 256, broadcast_id=i.to_bytes(8, "big"), ttl=31
        )
        node.receive(encode_packet(Packet(peer.sid, [frame])), "P", 0.0)
    assert len(node._seen_broadcast_ids) == BROADCAST_ID_LIMIT
    assert node.counters["internal_errors"] == 0
