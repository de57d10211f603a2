"""A neighbour in radio range is a stranger: each attack a hostile one can make, run in memory
against `Node`, with what it may get out of us asserted as a bound (frames delivered, bytes out
for bytes in, table sizes, operations per datagram), and a call under it that keeps >= 99 % of
its audio."""

from __future__ import annotations

import logging
import random
import tracemalloc
from types import SimpleNamespace

from hypothesis import example, given, settings
from hypothesis import strategies as st

from lab.netsim import Network, Station, events_of
from vomp import address, crypto, mdp, please_explain
from vomp.dna import dna_uri, encode_dna_reply
from vomp.events import AudioFrameReceived, CallStateChanged, DnaAnswer, NumberClaimConflict
from vomp.identity import Identity
from vomp.messages import CallState, VompMessage, encode_vomp
from vomp.neighbours import NEIGHBOUR_LIMIT
from vomp.node import (
    EXPLAIN_ANSWERS_MAX,
    PROVEN_RATIO,
    UNPROVEN_BUDGET,
    Node,
)
from vomp.packet import MTU, Frame, Packet, encode_packet, parse_packet

MALLORY = ("10.0.0.66", 4110)
TICK_LEN = 37


def stranger(i: int) -> Identity:
    return Identity.from_seed(random.Random(900_000 + i).randbytes(32))


def tick_from(sid: bytes, seq: int = 0) -> bytes:
    return encode_packet(Packet(sid, [], flags=1, seq=seq & 0xFF))


def boxed_from(
    sender: Identity, to_sid: bytes, dst_port: int, src_port: int, body: bytes, seq: int = 1
) -> bytes:
    """A packet from `sender` holding one crypto_box frame to `to_sid` (a fresh nonce per seq)."""
    key = crypto.shared_key(to_sid, sender.box_secret)
    payload = mdp.seal(
        mdp.encode_content(dst_port, src_port, body),
        mdp.MdpMode.BOX,
        shared_key=key,
        nonce=random.Random(seq).randbytes(24),
    )
    frame = Frame.to_peer(sender.sid, to_sid, payload, crypto_flags=0x30, frame_seq=seq & 0xFF)
    return encode_packet(Packet(sender.sid, [frame], flags=1, seq=seq & 0xFF))


class Tap:
    """Everything a network's stations send to addresses no station has (the attacker's)."""

    def __init__(self, net: Network) -> None:
        self.sent: list[tuple[bytes, object]] = []
        transmit = net._transmit

        def recording(sender: Station, data: bytes, destination: object) -> None:
            if destination not in [s.address for s in net.stations] and destination != "*":
                self.sent.append((data, destination))
            transmit(sender, data, destination)

        net._transmit = recording  # type: ignore[method-assign]

    def bytes_to(self, address: object) -> int:
        return sum(len(d) for d, dest in self.sent if dest == address)


def call_in_progress(net: Network, a: Station, b: Station) -> tuple[int, int]:
    """A calls B, B rings and answers; returns (A's call id, B's call id)."""
    calls: list[int] = []
    net.at(net.now, lambda: calls.append(a.node.dial(b.node.sid, net.now)))
    net.run_until(net.now + 0.2)
    [b_call] = b.node.calls.calls()
    net.at(net.now, lambda: b.node.ring(b_call.call_id, net.now))
    net.at(net.now, lambda: b.node.answer(b_call.call_id, net.now))
    net.run_until(net.now + 0.2)
    assert a.node.calls.get(calls[0]).local_state == CallState.INCALL
    return calls[0], b_call.call_id


def stream_audio(net: Network, sender: Station, call: int, seconds: float) -> int:
    """Schedule 20 ms audio frames from `sender` for `seconds`; returns how many."""
    frames = int(seconds * 50)
    start = net.now
    for i in range(frames):
        payload = i.to_bytes(4, "big") * 10
        net.at(start + i * 0.02, lambda p=payload: sender.node.send_audio(call, 2, p, 20))
    return frames


def audio_heard(station: Station) -> int:
    return len({e.payload for e in events_of(station, AudioFrameReceived)})


def call_pair(seed: int = 0) -> tuple[Network, Station, Station, int, int]:
    net = Network(seed=seed)
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    a_call, b_call = call_in_progress(net, a, b)
    return net, a, b, a_call, b_call


# ============================================================================ redirect
def test_bare_headers_claiming_the_peers_sid_never_redirect_its_call():
    net, a, b, _a_call, b_call = call_pair()
    tap = Tap(net)
    start = net.now
    for i in range(50):  # 10 Hz for 5 s, claiming to be A, from Mallory's address
        net.at(
            start + i * 0.1, lambda i=i: b.node.receive(tick_from(a.node.sid, i), MALLORY, net.now)
        )
    sent = stream_audio(net, b, b_call, 5.0)
    net.run_until(start + 6.0)
    assert audio_heard(a) >= 0.99 * sent
    assert b.node.neighbours.get(a.node.sid).address == a.address
    # Mallory got only key-map challenges a real peer there would answer: fewer bytes than
    # it sent, and no audio
    assert tap.bytes_to(MALLORY) <= 50 * TICK_LEN
    assert all(len(data) < 200 for data, dest in tap.sent if dest == MALLORY)


def test_a_peer_that_really_moved_is_followed_once_it_proves_itself():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    a.address = ("10.0.0.99", 4110)  # A's address changes; its ticks now come from there
    net.run_until(4.0)
    assert b.node.neighbours.get(a.node.sid).address == a.address
    assert b.node.counters["neighbour_moved"] == 1


# ============================================================================== replay
def test_old_audio_datagrams_replayed_in_a_live_call_are_never_delivered_again():
    net, a, b, _a_call, b_call = call_pair()
    recorded: list[bytes] = []
    deliver = net._deliver_action

    def recording(target, data, source):
        if target is a:
            recorded.append(data)
        return deliver(target, data, source)

    net._deliver_action = recording  # type: ignore[method-assign]
    sent = stream_audio(net, b, b_call, 8.0)
    net.run_until(net.now + 8.5)
    assert audio_heard(a) == sent
    heard_before = len(events_of(a, AudioFrameReceived))
    # 40 datagrams from the call's first seconds (older than any frame-seq window), replayed
    # from B's own address and from Mallory's
    for data in recorded[20:60]:
        a.node.receive(data, b.address, net.now)
        a.node.receive(data, MALLORY, net.now)
    net.run_until(net.now + 0.5)
    assert len(events_of(a, AudioFrameReceived)) == heard_before


def test_a_callprep_replayed_after_130_s_starts_no_call():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    captured: list[bytes] = []
    deliver = net._deliver_action
    net._deliver_action = lambda t, d, s: (t is b and captured.append(d), deliver(t, d, s))[1]
    call = a.node.dial(b.node.sid, net.now)
    net.run_until(net.now + 0.05)
    net._deliver_action = deliver
    a.node.hang_up(call, net.now)
    net.run_until(net.now + 5.0)
    assert b.node.calls.calls() == []
    net.stations.remove(a)  # A goes away; B forgets it as a neighbour
    net.run_until(net.now + 130.0)
    for data in captured:
        b.node.receive(data, a.address, net.now)
    net.run_until(net.now + 1.0)
    assert b.node.calls.calls() == []


# ================================================================= CPU and PLEASE_EXPLAIN
def node_knowing(count: int) -> Node:
    node = Node(Identity.from_seed(bytes(range(32))), "5552002", "Bob", rng=random.Random(0))
    rng = random.Random(1)
    for _ in range(count):
        node.book.learn(rng.randbytes(32))
    return node


def explain_request(asker: Identity, to_sid: bytes, prefixes: list[bytes], seq=4) -> bytes:
    request = please_explain.encode_please_explain(
        [please_explain.ExplainRequest(p) for p in prefixes]
    )
    frame = Frame.to_peer(asker.sid, to_sid, request, type=0x60, frame_seq=seq)
    return encode_packet(Packet(asker.sid, [frame], flags=1, seq=seq))


def test_a_please_explain_of_256_one_byte_prefixes_costs_linear_work_and_fits_one_datagram():
    node = node_knowing(32_000)
    looked_at = []
    matches = node.book.matches
    node.book.matches = lambda p, limit=None: looked_at.append(r := matches(p, limit)) or r
    asker = stranger(1)
    request = explain_request(asker, node.sid, [bytes([i]) for i in range(256)])
    node.receive(request, MALLORY, 0.0)
    out = node.datagrams_to_send(0.0)
    assert sum(len(r) for r in looked_at) <= EXPLAIN_ANSWERS_MAX + 256
    assert all(len(data) <= MTU for data, _dest in out)
    assert node.counters["internal_errors"] == 0
    # no amplification: what goes back to the asker is no more than its request
    assert sum(len(d) for d, dest in out if dest == MALLORY) <= max(len(request), UNPROVEN_BUDGET)


def test_please_explain_is_answered_to_one_sid_at_most_once_per_500_ms():
    node = node_knowing(100)
    asker = stranger(1)
    answered = []
    for i in range(10):  # 10 requests in 0.45 s, then one at 0.5 s
        node.receive(explain_request(asker, node.sid, [node.sid[:1]], seq=i), "Q", i * 0.05)
    answered.append(node.counters["please_explain_answered"])
    node.receive(explain_request(asker, node.sid, [node.sid[:1]], seq=11), "Q", 0.5)
    answered.append(node.counters["please_explain_answered"])
    assert answered == [1, 2]
    assert node.rejected["please_explain_too_often"] == 9


def test_we_ask_a_peer_to_explain_at_most_once_per_500_ms():
    node = node_knowing(0)
    peer = stranger(2)

    def abbreviated_packet(i: int) -> bytes:
        """servald at first contact: a frame to an abbreviated address we cannot resolve."""
        frame = Frame.to_peer(peer.sid, bytes(32), b"", frame_seq=i)
        frame.destination_address = address.abbreviated(bytes.fromhex("5294"))
        return encode_packet(Packet(peer.sid, [frame], flags=1, seq=i))

    for i in range(7):  # 7 such packets in 0.3 s
        node.receive(abbreviated_packet(i), "P", i * 0.05)
    assert node.counters["please_explain_asked"] == 1
    node.receive(abbreviated_packet(8), "P", 0.55)
    assert node.counters["please_explain_asked"] == 2


def test_an_unencodable_frame_is_counted_and_the_rest_of_the_batch_still_goes_out():
    node = node_knowing(0)
    peer = stranger(3)
    node.receive(tick_from(peer.sid), "P", 0.0)
    node.datagrams_to_send(0.0)
    # whatever queued it, a frame too big for any datagram must not take the others with it
    node._send_frame(peer.sid, Frame.to_peer(node.sid, peer.sid, bytes(70_000), type=0x60))
    node.handle_timer(0.5)
    out = node.datagrams_to_send(0.5)
    assert node.rejected["frame_unencodable"] == 1
    assert any(dest == "P" for _d, dest in out)  # the link-state to P still went


def test_key_derivations_and_signature_checks_for_strangers_are_capped():
    node = node_knowing(0)
    frames = []
    for i in range(6):  # one datagram, 6 boxed frames, each from a different stranger
        s = stranger(100 + i)
        payload = mdp.seal(
            mdp.encode_content(12, 12, b"\x02"),
            mdp.MdpMode.BOX,
            shared_key=crypto.shared_key(node.sid, s.box_secret),
            nonce=bytes(24),
        )
        f = Frame(0x30, s.sid, node.sid, payload, frame_seq=i)  # not SENDER_SAME: own source
        f.flags = 0x04 | 0x30
        frames.append(f)
    node.receive(encode_packet(Packet(stranger(99).sid, frames, flags=1, seq=1)), "M", 0.0)
    assert node.counters["crypto_key_derivations"] <= 4
    second = node.counters["crypto_key_derivations"]
    for t in range(200):  # then a second of such datagrams
        node.receive(encode_packet(Packet(stranger(99).sid, frames, flags=1, seq=t)), "M", t / 200)
    derived = node.counters["crypto_key_derivations"] - second
    assert derived <= 64 + 64
    assert node.rejected["crypto_budget"] > 0


# ================================================================== memory and amplification
def sizes(node: Node) -> dict[str, int]:
    return {
        "book": len(node.book) - 1,
        "neighbours": len(node.neighbours),
        "claims": node.neighbours.claims,
        "keymap_asked": len(node._keymap_asked),
        "packet_seqs": node.neighbours.packet_seq_destinations,
        "addresses": len(node._addresses),
        "keys": len(node._keys),
        "nonces": len(node._nonces),
        "call_addresses": len(node._call_address),
    }


def test_a_flood_of_made_up_sids_leaves_no_memory_behind_once_it_stops():
    node = node_knowing(0)
    node.handle_timer(0.0)
    node.datagrams_to_send(0.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rng = random.Random(5)
    peak_sizes: dict[str, int] = {}
    per_timer = []
    for i in range(10_000):
        now = i * 0.001  # 10k in 10 s
        node.receive(tick_from(rng.randbytes(32), i), (f"10.1.{i // 250}.{i % 250}", 4110), now)
        if i % 1000 == 0:
            node.handle_timer(now)
            per_timer.append(len(node.datagrams_to_send(now)))
            for k, v in sizes(node).items():
                peak_sizes[k] = max(peak_sizes.get(k, 0), v)
            while node.next_event():
                pass
    now = 10.0
    while now < 310.0:  # 300 s of silence, timers running
        now = max(now, node.next_timer())
        node.handle_timer(now)
        node.datagrams_to_send(now)
        while node.next_event():
            pass
        now += 0.001
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert max(per_timer) <= NEIGHBOUR_LIMIT + 10  # a tick, link-state to every neighbour
    assert peak_sizes["book"] <= 4096 and peak_sizes["neighbours"] <= NEIGHBOUR_LIMIT
    assert peak_sizes["addresses"] <= 1024 and peak_sizes["packet_seqs"] <= 1024 + 1
    assert sizes(node) == dict.fromkeys(sizes(node), 0) | {"packet_seqs": 1}  # BROADCAST's
    assert held < 2_000_000


def test_a_tick_from_a_made_up_sid_gets_no_more_than_the_fixed_budget_back():
    node = node_knowing(0)
    victim = ("10.9.9.9", 4110)
    node.receive(tick_from(stranger(7).sid), victim, 0.0)
    out = 0
    now = 0.0
    while now < 16.0:
        now = node.next_timer()
        node.handle_timer(now)
        out += sum(len(d) for d, dest in node.datagrams_to_send(now) if dest == victim)
    assert out <= UNPROVEN_BUDGET  # 256 / 37: under 7x, and it never grows
    assert out / TICK_LEN < 7


def test_a_boxed_request_from_a_strangers_own_identity_gets_at_most_four_times_back():
    node = node_knowing(0)
    victim = ("10.9.9.8", 4110)
    mallory = stranger(9)
    request = boxed_from(mallory, node.sid, 1, 1, b"\x02")  # a key-map request: it opens
    node.receive(request, victim, 0.0)
    out = 0
    now = 0.0
    while now < 16.0:
        out += sum(len(d) for d, dest in node.datagrams_to_send(now) if dest == victim)
        now = node.next_timer()
        node.handle_timer(now)
    assert out <= max(PROVEN_RATIO * len(request), UNPROVEN_BUDGET)


def test_a_callprep_that_only_rings_gets_at_most_four_times_its_size_back():
    node = node_knowing(0)
    victim = ("10.9.9.7", 4110)
    request = callprep_from(stranger(10), node, 0x4242, 1)
    node.receive(request, victim, 0.0)
    out = 0
    now = 0.0
    while now < 16.0:
        out += sum(len(d) for d, dest in node.datagrams_to_send(now) if dest == victim)
        now = node.next_timer()
        node.handle_timer(now)
    assert out <= PROVEN_RATIO * len(request)  # nobody answered: it rang, then timed out


def test_a_flood_of_spoofed_ticks_is_not_amplified():
    node = node_knowing(0)
    bytes_in = bytes_out = 0
    for i in range(5_000):
        now = i * 0.002
        data = tick_from(stranger(i % 50).sid if i % 2 else random.Random(i).randbytes(32))
        victim = (f"10.2.{i // 200}.{i % 200}", 4110)
        node.receive(data, victim, now)
        bytes_in += len(data)
        if node.next_timer() <= now:
            node.handle_timer(now)
        bytes_out += sum(len(d) for d, dest in node.datagrams_to_send(now) if dest != "*")
    assert bytes_out <= 7 * bytes_in


# ======================================================================== number theft
def lookup_pair() -> tuple[Network, Station, Station, Station]:
    net = Network()
    a, b, c = net.add("5552001"), net.add("5552002"), net.add("5552003")
    net.run_until(2.0)
    return net, a, b, c


def dna_reply_from(
    replier: Identity, to: Node, port: int, did: str, *, uri_sid: bytes | None = None, seq=9
) -> bytes:
    body = encode_dna_reply(replier.sid, did, "Mallory")
    if uri_sid is not None:
        body = body.replace(dna_uri(replier.sid, did).encode(), dna_uri(uri_sid, did).encode())
    return boxed_from(replier, to.sid, port, 10, body, seq)


def test_a_dna_reply_for_another_number_or_naming_another_sid_is_not_an_answer():
    node = node_knowing(0)
    mallory = stranger(8)
    node.receive(tick_from(mallory.sid), MALLORY, 0.0)
    node.lookup("5552002", 0.0)
    [lookup] = node.lookups._running.values()
    node.receive(dna_reply_from(mallory, node, lookup.port, "5559999", seq=1), MALLORY, 0.1)
    node.receive(
        dna_reply_from(mallory, node, lookup.port, "5552002", uri_sid=bytes(32), seq=2),
        MALLORY,
        0.2,
    )
    assert not [e for e in iter(node.next_event, None) if isinstance(e, DnaAnswer)]
    assert node.rejected["dna_reply_wrong_number"] == 1
    assert node.rejected["dna_reply_uri_not_its_sid"] == 1


def test_a_third_handset_claiming_a_known_number_is_flagged_and_does_not_get_the_call():
    net, a, b, c = lookup_pair()
    a.node.lookup("5552002", net.now)
    net.run_until(net.now + 3.5)
    assert [e.sid for e in events_of(a, DnaAnswer)] == [b.node.sid]
    # C starts answering for B's number, and answers first: B's replies are lost
    c.node.number = "5552002"
    net.stations.remove(b)
    net.run_until(net.now + 61.0)  # B's cached answer has expired
    call = a.node.dial("5552002", net.now)
    assert call is None
    net.run_until(net.now + 3.5)
    [conflict] = events_of(a, NumberClaimConflict)
    assert (conflict.owner, conflict.claimant) == (b.node.sid, c.node.sid)
    assert all(c_.remote_sid != c.node.sid for c_ in a.node.calls.calls())
    assert not [e for e in events_of(c, CallStateChanged)]


def test_the_daemon_logs_a_number_claimed_by_a_second_handset_as_a_warning():
    from firmware.daemon import Handset  # the edge that turns events into log lines

    logged: list[tuple[str, int]] = []
    log = SimpleNamespace(
        event=lambda message, level=logging.INFO, **_: logged.append((message, level))
    )
    conflict = NumberClaimConflict("5552002", b"\x01" * 32, b"\x02" * 32)
    Handset.log_event(SimpleNamespace(events=log), conflict)  # type: ignore[arg-type]
    [(message, level)] = logged
    assert level == logging.WARNING
    assert "number 5552002 claimed by" in message and "answered for it first" in message


def test_a_lookup_stops_resending_once_answered_but_a_star_lookup_does_not():
    net, a, b, _c = lookup_pair()
    a.node.lookup("5552002", net.now)
    net.run_until(net.now + 3.5)
    assert a.node.counters["dna_requests_sent"] == 1
    assert b.node.counters["dna_answered"] == 1
    a.node.lookup("*", net.now)
    net.run_until(net.now + 3.5)
    assert a.node.counters["dna_requests_sent"] == 1 + 6


def test_answers_to_a_star_lookup_are_capped():
    node = node_knowing(0)
    node.lookup("*", 0.0)
    [lookup] = node.lookups._running.values()
    for i in range(40):
        s = stranger(200 + i)
        node.receive(tick_from(s.sid), (f"10.3.0.{i}", 4110), 0.01)
        node.receive(
            dna_reply_from(s, node, lookup.port, f"55530{i:02}", seq=i),
            (f"10.3.0.{i}", 4110),
            0.02,
        )
    answers = [e for e in iter(node.next_event, None) if isinstance(e, DnaAnswer)]
    assert len(answers) == 32


# ========================================================================== call flood
def callprep_from(caller: Identity, to: Node, session: int, seq: int) -> bytes:
    message = VompMessage(
        session, 0, CallState.CALLPREP, CallState.NOCALL, (2,), "6660000", "5552002"
    )
    return boxed_from(caller, to.sid, 12, 12, encode_vomp(message), seq)


def test_a_real_caller_hears_busy_when_fake_calls_fill_the_table():
    net = Network()
    a, b = net.add("5552001"), net.add("5552002")
    net.run_until(2.0)
    for i in range(16):
        fake = stranger(300 + i)
        b.node.receive(callprep_from(fake, b.node, 100 + i, i), (f"10.4.0.{i}", 4110), net.now)
    call = a.node.dial(b.node.sid, net.now)
    net.run_until(net.now + 1.0)
    assert (
        a.node.calls.get(call) is None or a.node.calls.get(call).remote_state == CallState.CALLENDED
    )
    ended = [e for e in events_of(a, CallStateChanged) if e.remote_state == CallState.CALLENDED]
    assert ended


def test_spoofed_ticks_at_20_per_s_do_not_cost_the_call_its_audio():
    net, a, b, _a_call, b_call = call_pair()
    start = net.now
    for i in range(300):  # 20 spoofed ticks a second for 15 s, each a new SID and address
        sid = random.Random(i).randbytes(32)
        spoofed = (f"10.5.{i // 200}.{i % 200}", 4110)
        net.at(start + i * 0.05, lambda s=sid, f=spoofed: b.node.receive(tick_from(s), f, net.now))
    sent = stream_audio(net, b, b_call, 15.0)
    net.run_until(start + 16.0)
    assert audio_heard(a) >= 0.99 * sent


def test_strangers_with_identities_of_their_own_do_not_cost_the_call_its_audio():
    # each stranger proves its (forged) address with a crypto_box, so the budget for unproven
    # addresses does not hold it back: what protects the call's frame seqs is the cap on
    # neighbours and on frames for anyone but the call
    net, a, b, _a_call, b_call = call_pair()
    start = net.now
    strangers = [stranger(500 + i) for i in range(200)]
    for i in range(2000):  # 200 strangers, each asking for our key every second, for 10 s
        who = strangers[i % 200]
        source = (f"10.7.{i % 200 // 100}.{i % 100}", 4110)
        data = boxed_from(who, b.node.sid, 1, 1, b"\x02", seq=i)
        net.at(start + i * 0.005, lambda d=data, s=source: b.node.receive(d, s, net.now))
    sent = stream_audio(net, b, b_call, 10.0)
    net.run_until(start + 11.0)
    assert audio_heard(a) >= 0.99 * sent


# ====================================================================== flood shapes
KINDS = ("tick", "claim", "explain", "callprep", "junk")


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 40), st.integers(1, 30)), max_size=8)
)
@example([("claim", 0, 30), ("tick", 7, 30), ("explain", 3, 30)])
def test_a_call_keeps_its_audio_and_tables_stay_capped_under_any_flood_shape(shape):
    net, a, b, _a_call, b_call = call_pair()
    start = net.now
    when = start
    for kind, who, rate in shape:
        for j in range(rate):
            when += 1.0 / (rate * 2)
            net.at(when, flood_action(net, a, b, kind, who, j))
    sent = stream_audio(net, b, b_call, max(2.0, when - start))
    net.run_until(max(when, start + 2.0) + 0.5)
    assert audio_heard(a) >= 0.99 * sent
    assert len(b.node.neighbours) <= NEIGHBOUR_LIMIT and b.node.neighbours.claims <= 64
    assert b.node.counters["internal_errors"] == 0


def flood_action(net: Network, a: Station, b: Station, kind: str, who: int, j: int):
    source = (f"10.6.0.{who}", 4110)
    mallory = stranger(400 + who)

    def act() -> None:
        if kind == "tick":
            data = tick_from(mallory.sid, j)
        elif kind == "claim":
            data = tick_from(a.node.sid, j)
        elif kind == "explain":
            data = explain_request(mallory, b.node.sid, [bytes([k]) for k in range(64)], seq=j)
        elif kind == "callprep":
            data = callprep_from(mallory, b.node, 1000 + j, j)
        else:
            data = random.Random(j).randbytes(j * 7)
        b.node.receive(data, source, net.now)

    return act


def test_rejections_are_available_by_reason():
    node = node_knowing(0)
    node.receive(b"\x01\x01", "X", 0.0)
    assert node.rejected == {"ParseError": 1}
    _ = parse_packet  # keep the import for readers following the wire format
