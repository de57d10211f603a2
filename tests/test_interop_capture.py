"""Our Node takes the place of servald B (or the probe P) in the live capture and must react as
SPEC §14 says: ask to explain, answer PLEASE_EXPLAIN, claim UNICAST in link-state, answer key-map
and DNA, and follow A's call to the end. servald's own answers in the capture are the reference.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass

import pytest
import wire_vectors as wv

from vomp import crypto, keymap, linkstate, mdp, please_explain
from vomp.address import AddressBook
from vomp.codecs import OUR_CODECS
from vomp.dna import parse_dna_reply
from vomp.events import (
    AudioFrameReceived,
    CallEnded,
    CallStateChanged,
    DnaAnswer,
    IncomingCall,
)
from vomp.identity import Identity
from vomp.messages import CallState, parse_vomp
from vomp.node import BROADCAST, Node
from vomp.packet import TYPE_DATA, TYPE_PLEASE_EXPLAIN, Frame, parse_packet

VECTORS = wv.vectors_dir()

S = CallState


class SessionRng(random.Random):
    """A seeded Random that hands out chosen VoMP session ids (and DNA client ports) first, so
    that servald's recorded messages, which name the ids servald picked, match our node's."""

    def __init__(self, sessions: list[int], ports: list[int] = ()) -> None:
        super().__init__(7)
        self._sessions = list(sessions)
        self._ports = list(ports)

    def randrange(self, start, stop=None, step=1):
        if (start, stop) == (1, 0x10000) and self._sessions:
            return self._sessions.pop(0)
        if (start, stop) == (32768, 0x10000) and self._ports:
            return self._ports.pop(0)
        return super().randrange(start, stop, step)


@dataclass
class Sent:
    t: float
    destination: object
    header_sender: bytes | None
    unicast: bool
    frames: list[tuple[Frame, int | None, int | None, bytes | None]]  # frame, dst, src, body


def identities() -> dict[str, Identity]:
    raw = json.loads((VECTORS / "identities.json").read_text())["identities"]
    return {k: Identity.from_seed(bytes.fromhex(v["ed25519_seed"])) for k, v in raw.items()}


def decode_ours(datagram: bytes, ids: dict[str, Identity]):
    """Parse what our node sent, opening every frame with the receiver's keys."""
    book = AddressBook()
    by_sid = {i.sid: i for i in ids.values()}
    for identity in ids.values():
        book.learn(identity.sid, identity.sign_public)
    parsed = parse_packet(datagram, book, learn=False)
    frames = []
    for frame in parsed.packet.frames:
        dst = src = body = None
        if frame.type == TYPE_DATA:
            mode = mdp.mode_of(frame.flags)
            if mode is mdp.MdpMode.BOX:
                key = crypto.shared_key(frame.source, by_sid[frame.destination].box_secret)
                content = crypto.box_open(frame.payload, key)
            elif mode is mdp.MdpMode.SIGNED:
                content = crypto.verify_signed(frame.payload, by_sid[frame.source].sign_public)
            else:
                content = frame.payload
            message = mdp.parse_content(content)
            dst, src, body = message.dst_port, message.src_port, message.body
        frames.append((frame, dst, src, body))
    return parsed.packet, frames


def captured_plaintexts(ids, sender: str, port: int) -> list[bytes]:
    """Bodies servald `sender` sent on MDP `port` (either direction) in the capture."""
    book = AddressBook()
    by_sid = {i.sid: i for i in ids.values()}
    for identity in ids.values():
        book.learn(identity.sid, identity.sign_public)
    bodies = []
    for line in (VECTORS / "capture_shared.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["from"] != sender:
            continue
        for frame in parse_packet(bytes.fromhex(row["hex"]), book, learn=False).packet.frames:
            if frame.type != TYPE_DATA or mdp.mode_of(frame.flags) is not mdp.MdpMode.BOX:
                continue
            key = crypto.shared_key(frame.source, by_sid[frame.destination].box_secret)
            message = mdp.parse_content(crypto.box_open(frame.payload, key))
            if port in (message.dst_port, message.src_port):
                bodies.append(message.body)
    return bodies


def replay(me: str, number: str, name: str, sessions=(), ports=(), on_event=None, actions=()):
    """Feed our node every datagram the capture delivered to `me`, and run the local `actions`
    ((time, fn(node, now)) pairs) at their times; return (node, sent, events, identities)."""
    ids = identities()
    node = Node(ids[me], number, name, rng=SessionRng(list(sessions), list(ports)))
    pending = sorted(actions, key=lambda a: a[0])
    rows = [
        json.loads(line) for line in (VECTORS / "capture_shared.jsonl").read_text().splitlines()
    ]
    rows = [r for r in rows if r["from"] != me and r["to"] in (me, "broadcast")]
    sent: list[Sent] = []
    events = []

    def collect(t: float) -> None:
        while (event := node.next_event()) is not None:
            events.append((t, event))
            if on_event:
                on_event(node, event, t)
        for data, destination in node.datagrams_to_send(t):
            packet, frames = decode_ours(data, ids)
            sent.append(Sent(t, destination, packet.sender, packet.unicast, frames))

    def run_timers(until: float) -> None:
        while (timer := node.next_timer()) is not None and timer <= until:
            node.handle_timer(timer)
            collect(timer)

    for row in rows:
        run_timers(row["t_rel_s"])
        while pending and pending[0][0] <= row["t_rel_s"]:
            when, action = pending.pop(0)
            run_timers(when)
            action(node, when)
            collect(when)
        node.receive(bytes.fromhex(row["hex"]), row["from"], row["t_rel_s"])
        collect(row["t_rel_s"])
    run_timers(rows[-1]["t_rel_s"] + 3.0)
    return node, sent, events, ids


def frames_to(sent: list[Sent], destination, frame_type=TYPE_DATA, port=None):
    return [
        (s, f, body)
        for s in sent
        if s.destination == destination
        for f, dst, _src, body in s.frames
        if f.type == frame_type and (port is None or dst == port)
    ]


@pytest.fixture(scope="module")
def as_b():
    def answer_when_ringing(node, event, t):
        if isinstance(event, CallStateChanged) and event.remote_state == S.RINGINGOUT:
            call = node.calls.get(event.call)
            if call and call.local_state < S.RINGINGIN:
                node.ring(event.call, t)
                node.answer(event.call, t)

    return replay("B", "5552002", "Bob Test", sessions=[0x97D2], on_event=answer_when_ringing)


def test_every_datagram_we_send_carries_our_full_sid_and_fits_the_mtu(as_b):
    node, sent, _events, ids = as_b
    assert sent and all(s.header_sender == ids["B"].sid for s in sent)
    assert node.counters["dropped_ParseError"] == 0


def test_we_ask_servald_to_explain_its_abbreviated_tick(as_b):
    _node, sent, _events, _ids = as_b
    first = [s for s in sent if s.t == 0.0]
    asks = {
        s.destination
        for s in first
        for f, *_ in s.frames
        if f.type == TYPE_PLEASE_EXPLAIN
        and please_explain.parse_please_explain(f.payload)
        == [please_explain.ExplainRequest(bytes.fromhex("5294"))]
    }
    assert asks == {BROADCAST, "A"}


def test_we_answer_servalds_please_explain_for_our_prefix(as_b):
    _node, sent, _events, ids = as_b
    answers = frames_to(sent, "A", TYPE_PLEASE_EXPLAIN)
    assert any(s.t == 0.21 and f.destination == ids["A"].sid for s, f, _ in answers)


def test_link_state_claims_unicast_with_servalds_interface_every_500ms(as_b):
    _node, sent, _events, ids = as_b
    records = []
    for s, _f, body in frames_to(sent, "A", port=mdp.PORT_LINKSTATE):
        book = AddressBook()
        book.learn(ids["A"].sid)
        book.learn(ids["B"].sid)
        recs, _ = linkstate.parse_linkstate(body, ids["B"].sid, book, learn=False)
        records += [(s.t, r) for r in recs]
    assert records
    for _t, r in records:
        assert r.is_neighbour_record and r.transmitter_sid == ids["A"].sid
        assert r.flags & linkstate.UNICAST and r.flags & linkstate.HAS_INTERFACE
        assert not r.flags & (linkstate.NO_PATH | linkstate.HAS_DROP_RATE)
        assert r.interface == 0
    times = [t for t, _ in records if t > 1.0]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 0.51
    # once servald numbers its unicast packets to us, the ack is truthful and complete
    acked = [r for t, r in records if t > 3.0]
    assert all(r.flags & linkstate.HAS_ACK and r.ack_mask == 0xFFFFFFFF for r in acked)


def test_we_answer_the_keymap_request_and_learn_servalds_key(as_b):
    node, sent, _events, ids = as_b
    replies = [
        keymap.parse_keymap(body) for _s, _f, body in frames_to(sent, "A", port=mdp.PORT_KEYMAP)
    ]
    assert any(r.is_reply and r.verify(ids["B"].sid) for r in replies)
    assert node.book.sign_key(ids["A"].sid) == ids["A"].sign_public


def test_we_reply_to_the_dna_lookup_exactly_as_servald_b_did(as_b):
    _node, sent, _events, ids = as_b
    ours = [body for _s, _f, body in frames_to(sent, "A") if body and b"|sid://" in body]
    servalds = [b for b in captured_plaintexts(ids, "B", mdp.PORT_DNA) if b"|sid://" in b]
    assert ours and ours[0] == servalds[0]
    assert parse_dna_reply(ours[0]).sid == ids["B"].sid
    assert len(ours) == 4  # one reply per retry servald sent (4.408, 4.659, 5.037, 5.541)


def test_we_follow_servalds_call_and_hear_every_audio_frame(as_b):
    node, sent, events, _ids = as_b
    ours = [parse_vomp(body) for _s, _f, body in frames_to(sent, "A", port=mdp.PORT_VOMP)]
    bytes_sent = [m.state_byte for m in ours]
    assert bytes_sent[0] == 0x21 and ours[0].codecs == OUR_CODECS
    assert ours[0].sender_session == 0x97D2 and ours[0].recipient_session == 0x575A
    assert [b for i, b in enumerate(bytes_sent) if i == 0 or b != bytes_sent[i - 1]] == [
        0x21,
        0x31,
        0x34,
        0x35,
        0x55,
        0x66,
    ]
    [incoming] = [e for _t, e in events if isinstance(e, IncomingCall)]
    assert (incoming.caller_number, incoming.called_number) == ("5552001", "5552002")
    vomp_vectors = json.loads((VECTORS / "vomp_call.json").read_text())["vectors"]
    expected = [
        (v["decoded"]["frames"][v["vomp_frame_index"]]["mdp"]["body"]["audio"])
        for v in vomp_vectors
        if v["from"] == "A"
        and v["decoded"]["frames"][v["vomp_frame_index"]]["mdp"]["body"]["kind"] == "audio"
    ]
    heard = [e for _t, e in events if isinstance(e, AudioFrameReceived)]
    assert [(e.time_ms, e.seq, e.payload.hex()) for e in heard] == [
        (a["reconstructed_time_ms"], a["reconstructed_seq"], a["audio_hex"]) for a in expected
    ]
    assert any(isinstance(e, CallEnded) and not e.timed_out for _t, e in events)
    assert node.calls.calls() == []


def test_as_the_probe_we_answer_servalds_lookup_of_our_number():
    node, sent, _events, ids = replay("P", "5552099", "Probe P")
    ours = [body for _s, _f, body in frames_to(sent, "A") if body and b"|sid://" in body]
    probes = [b for b in captured_plaintexts(ids, "P", mdp.PORT_DNA) if b"|sid://" in b]
    assert ours and ours[0] == probes[0]
    assert node.book.sign_key(ids["A"].sid) == ids["A"].sign_public


@pytest.fixture(scope="module")
def as_a():
    """Our node in servald A's place: it looks B up and calls it when A's user did."""
    calls: list[int | None] = []

    def hang_up(node, now):
        node.hang_up(calls[0], now)

    actions = [
        (4.40, lambda node, now: node.lookup("5552002", now, timeout=1.5)),
        (6.432, lambda node, now: calls.append(node.dial(bytes.fromhex(B_SID), now))),
        (9.419, hang_up),
    ]
    return replay("A", "5552001", "Alice Test", [0x575A], [47095], actions=actions)


B_SID = "A4CC73A6EACB57BBD6F9679DFC42231DD118C8C618BBDDD22761D5032F61E959"


def test_as_the_caller_our_lookup_is_answered_by_servalds_recorded_replies(as_a):
    _node, _sent, events, ids = as_a
    answers = [e for _t, e in events if isinstance(e, DnaAnswer)]
    assert [(a.sid, a.did, a.name) for a in answers] == [(ids["B"].sid, "5552002", "Bob Test")]


def test_as_the_caller_we_drive_servalds_recorded_callee_to_the_end(as_a):
    node, sent, events, _ids = as_a
    ours = [parse_vomp(body) for _s, _f, body in frames_to(sent, "B", port=mdp.PORT_VOMP)]
    first = ours[0]
    assert (first.state_byte, first.sender_session, first.recipient_session) == (0x12, 0x575A, 0)
    assert first.codecs == OUR_CODECS
    # dialled by SID, but the lookup just before named B's number, so the call carries it
    assert (first.caller_number, first.called_number) == ("5552001", "5552002")
    states = [m.state_byte for m in ours]
    assert [b for i, b in enumerate(states) if i == 0 or b != states[i - 1]] == [
        0x12,
        0x13,
        0x43,
        0x55,
        0x56,
        0x66,
    ]
    vomp_vectors = json.loads((VECTORS / "vomp_call.json").read_text())["vectors"]
    expected = [
        v["decoded"]["frames"][v["vomp_frame_index"]]["mdp"]["body"]["audio"]
        for v in vomp_vectors
        if v["from"] == "B"
        and v["decoded"]["frames"][v["vomp_frame_index"]]["mdp"]["body"]["kind"] == "audio"
    ]
    heard = [e for _t, e in events if isinstance(e, AudioFrameReceived)]
    assert [(e.time_ms, e.seq, e.payload.hex()) for e in heard] == [
        (a["reconstructed_time_ms"], a["reconstructed_seq"], a["audio_hex"]) for a in expected
    ]
    assert any(isinstance(e, CallEnded) and not e.timed_out for _t, e in events)
    assert node.calls.calls() == []
