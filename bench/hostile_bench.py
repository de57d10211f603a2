"""What a hostile neighbour can get out of a Node: CPU per datagram and bytes out per byte in.

`hostile_worst_datagram_us` is the slowest datagram kind a stranger can send (the median of many
of each, against a node whose address book, neighbour table and key cache are full), with a
line per kind; `hostile_amplification_max` is the largest ratio of bytes we send to a spoofed
source address over 16 s to the bytes it sent us, with a line per request kind. Also: one timer
run with full tables, and the memory still held 300 s after a flood of 100k made-up SIDs.
Prints `name value unit` lines. Run: `make bench` (or .venv/bin/python bench/hostile_bench.py).
"""

from __future__ import annotations

import random
import statistics
import time
import tracemalloc
from collections.abc import Callable

from vomp import crypto, mdp, please_explain
from vomp.address import signkey
from vomp.dna import encode_dna_request
from vomp.identity import Identity
from vomp.keymap import encode_request
from vomp.messages import CallState, VompMessage, encode_vomp
from vomp.neighbours import NEIGHBOUR_LIMIT
from vomp.node import BOOK_LIMIT, Node
from vomp.packet import MTU, Frame, Packet, encode_packet

REPEATS = 200
STRANGERS = [Identity.from_seed(random.Random(7000 + i).randbytes(32)) for i in range(64)]


def victim() -> Node:
    return Node(Identity.from_seed(bytes(range(32))), "5552002", "Bob", rng=random.Random(0))


def full_node() -> Node:
    """A node whose tables a flood has filled: book, neighbours (all strangers), key cache."""
    node = victim()
    rng = random.Random(1)
    for _ in range(BOOK_LIMIT):
        node.book.learn(rng.randbytes(32))
    for i in range(NEIGHBOUR_LIMIT):
        node.receive(tick(rng.randbytes(32), i), (f"10.7.0.{i % 250}", 4110), 0.0)
    node.handle_timer(0.0)
    node.datagrams_to_send(0.0)
    while node.next_event():
        pass
    return node


def tick(sid: bytes, seq: int = 0) -> bytes:
    return encode_packet(Packet(sid, [], flags=1, seq=seq & 0xFF))


def boxed(sender: Identity, to: Node, port: int, body: bytes, seq: int) -> bytes:
    payload = mdp.seal(
        mdp.encode_content(port, port, body),
        mdp.MdpMode.BOX,
        shared_key=crypto.shared_key(to.sid, sender.box_secret),
        nonce=random.Random(seq).randbytes(24),
    )
    frame = Frame.to_peer(sender.sid, to.sid, payload, crypto_flags=0x30, frame_seq=seq & 0xFF)
    return encode_packet(Packet(sender.sid, [frame], flags=1, seq=seq & 0xFF))


def explain_prefixes(sender: Identity, to: Node, seq: int) -> bytes:
    """As many one-byte prefixes as one datagram holds: every SID we know matches one."""
    room = MTU - 37 - 40
    entries = [please_explain.ExplainRequest(bytes([i % 256])) for i in range(room // 2)]
    payload = please_explain.encode_please_explain(entries)
    frame = Frame.to_peer(sender.sid, to.sid, payload, type=0x60, frame_seq=seq & 0xFF)
    return encode_packet(Packet(sender.sid, [frame], flags=1, seq=seq & 0xFF))


def explain_signkeys(sender: Identity, to: Node, seq: int) -> bytes:
    """A PLEASE_EXPLAIN full of 0xFB statements: each one costs a curve conversion."""
    entries = [please_explain.ExplainAnswer(s.sid, s.sign_public) for s in STRANGERS[:33]]
    payload = please_explain.encode_please_explain(entries)
    frame = Frame.to_peer(sender.sid, to.sid, payload, type=0x60, frame_seq=seq & 0xFF)
    return encode_packet(Packet(sender.sid, [frame], flags=1, seq=seq & 0xFF))


def boxes_from_many(sender: Identity, to: Node, seq: int) -> bytes:
    """Six crypto_box frames, each from a different stranger: six key derivations asked."""
    frames = []
    for i, stranger in enumerate(STRANGERS[seq % 8 * 6 : seq % 8 * 6 + 6]):
        payload = mdp.seal(
            mdp.encode_content(12, 12, b"\x02"),
            mdp.MdpMode.BOX,
            shared_key=crypto.shared_key(to.sid, stranger.box_secret),
            nonce=random.Random(seq * 10 + i).randbytes(24),
        )
        frame = Frame(0x34, stranger.sid, to.sid, payload, frame_seq=(seq + i) & 0xFF)
        frames.append(frame)
    return encode_packet(Packet(sender.sid, frames, flags=1, seq=seq & 0xFF))


def signed_lookups(sender: Identity, to: Node, seq: int) -> bytes:
    """Signed DNA requests from 0xFB senders: a key conversion and a signature check each."""
    frames = []
    for i, stranger in enumerate(STRANGERS[seq % 8 * 4 : seq % 8 * 4 + 4]):
        content = mdp.encode_content(10, 40000 + i, encode_dna_request("5552002"))
        payload = mdp.seal(content, mdp.MdpMode.SIGNED, ed_secret=stranger.ed_secret)
        frame = Frame.local_broadcast(stranger.sid, payload, crypto_flags=0x20, frame_seq=i)
        frame.flags &= ~0x01  # its own source address, written as 0xFB + key
        frame.source_address = signkey(stranger.sign_public)
        frames.append(frame)
    return encode_packet(Packet(sender.sid, frames, flags=1, seq=seq & 0xFF))


def callprep(sender: Identity, to: Node, seq: int) -> bytes:
    message = VompMessage(
        1 + seq % 60000, 0, CallState.CALLPREP, CallState.NOCALL, (2,), "6660000", "5552002"
    )
    return boxed(sender, to, 12, encode_vomp(message), seq)


def keymap_request(sender: Identity, to: Node, seq: int) -> bytes:
    return boxed(sender, to, 1, encode_request(), seq)


def dna_request(sender: Identity, to: Node, seq: int) -> bytes:
    content = mdp.encode_content(10, 40000, encode_dna_request("5552002"))
    payload = mdp.seal(content, mdp.MdpMode.SIGNED, ed_secret=sender.ed_secret)
    frame = Frame.local_broadcast(sender.sid, payload, crypto_flags=0x20, frame_seq=seq & 0xFF)
    frame.flags &= ~0x01
    frame.source_address = signkey(sender.sign_public)
    return encode_packet(Packet(sender.sid, [frame], flags=1, seq=seq & 0xFF))


def junk(_sender: Identity, _to: Node, seq: int) -> bytes:
    return random.Random(seq).randbytes(MTU)


def new_sid_tick(_sender: Identity, _to: Node, seq: int) -> bytes:
    return tick(random.Random(seq).randbytes(32), seq)


Kind = Callable[[Identity, Node, int], bytes]
CPU_KINDS: dict[str, Kind] = {
    "tick_new_sid": new_sid_tick,
    "please_explain_prefixes": explain_prefixes,
    "please_explain_signkeys": explain_signkeys,
    "boxes_from_six_strangers": boxes_from_many,
    "signed_lookups_fb": signed_lookups,
    "callprep": callprep,
    "junk": junk,
}
AMPLIFICATION_KINDS: dict[str, Kind] = {
    "tick": lambda s, _to, seq: tick(s.sid, seq),
    "please_explain": explain_prefixes,
    "keymap_request": keymap_request,
    "dna_request": dna_request,
    "callprep": callprep,
}


def cost_us(kind: Kind) -> float:
    node = full_node()
    samples = []
    now = 1.0
    for seq in range(REPEATS):
        sender = STRANGERS[seq % len(STRANGERS)]
        data = kind(sender, node, seq)
        now += 0.01
        started = time.perf_counter()
        node.receive(data, (f"10.8.0.{seq % 250}", 4110), now)
        node.datagrams_to_send(now)
        samples.append(time.perf_counter() - started)
        while node.next_event():
            pass
    return statistics.median(samples) * 1e6


def amplification(kind: Kind) -> float:
    """Bytes sent to a spoofed source over 16 s, per byte it sent (one datagram)."""
    node = victim()
    node.handle_timer(0.0)
    node.datagrams_to_send(0.0)
    spoofed = ("10.9.9.9", 4110)
    data = kind(STRANGERS[0], node, 1)
    node.receive(data, spoofed, 0.0)
    out = sum(len(d) for d, dest in node.datagrams_to_send(0.0) if dest == spoofed)
    now = 0.0
    while (timer := node.next_timer()) is not None and timer < 16.0:
        now = max(now, timer)
        node.handle_timer(now)
        out += sum(len(d) for d, dest in node.datagrams_to_send(now) if dest == spoofed)
    return out / len(data)


def timer_run_us() -> float:
    """The slowest timer run of a node whose tables a flood has filled (median of 50)."""
    node = full_node()
    samples = []
    now = 0.0
    for i in range(50):
        now += 0.5
        for j in range(20):  # keep the flood going, so the tables stay full
            node.receive(tick(random.Random(i * 100 + j).randbytes(32)), f"10.6.{i}.{j}", now)
        started = time.perf_counter()
        node.handle_timer(now)
        node.datagrams_to_send(now)
        samples.append(time.perf_counter() - started)
        while node.next_event():
            pass
    return statistics.median(samples) * 1e6


def flood_memory_mb(sids: int = 100_000) -> tuple[float, float, float]:
    """(MB in, MB held 300 s after, slowest timer run in ms) for a flood of bare ticks from
    made-up SIDs and addresses (timer runs every 500 ms of the flood's own clock)."""
    node = victim()
    node.handle_timer(0.0)
    node.datagrams_to_send(0.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rng = random.Random(3)
    bytes_in = 0
    slowest = 0.0
    for i in range(sids):
        now = i * 0.0001
        data = tick(rng.randbytes(32), i)
        bytes_in += len(data)
        node.receive(data, (f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", 4110), now)
        if i % 5000 == 0:
            started = time.perf_counter()
            node.handle_timer(now)
            node.datagrams_to_send(now)
            slowest = max(slowest, time.perf_counter() - started)
            while node.next_event():
                pass
    now = sids * 0.0001
    end = now + 300.0
    while (timer := node.next_timer()) is not None and timer < end:
        now = max(now, timer)
        node.handle_timer(now)
        node.datagrams_to_send(now)
        while node.next_event():
            pass
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return bytes_in / 1e6, held / 1e6, slowest * 1e3


def main() -> None:
    costs = {name: cost_us(kind) for name, kind in CPU_KINDS.items()}
    for name, value in costs.items():
        print(f"hostile_datagram_us_{name} {value:.0f} us")
    print(f"hostile_worst_datagram_us {max(costs.values()):.0f} us")
    ratios = {name: amplification(kind) for name, kind in AMPLIFICATION_KINDS.items()}
    for name, value in ratios.items():
        print(f"hostile_amplification_{name} {value:.2f} x")
    print(f"hostile_amplification_max {max(ratios.values()):.2f} x")
    print(f"hostile_timer_run_full_tables_us {timer_run_us():.0f} us")
    flood_in, held, slowest = flood_memory_mb()
    print(f"hostile_flood_100k_sids_in {flood_in:.1f} MB")
    print(f"hostile_flood_memory_held_after_300s {held:.2f} MB")
    print(f"hostile_flood_slowest_timer_run {slowest:.1f} ms")


if __name__ == "__main__":
    main()
