"""Cost of a Node's hot paths: sending and receiving one VoMP audio frame, and the 500 ms tick.

Prints `name value unit` lines. Run: `make bench` (or .venv/bin/python bench/node_bench.py).
"""

from __future__ import annotations

import random
import time

from vomp.codecs import Codec
from vomp.events import IncomingCall
from vomp.identity import Identity
from vomp.node import BROADCAST, Node

FRAMES = 2000


def exchange(a: Node, b: Node, now: float) -> None:
    """Move datagrams both ways until both nodes are quiet (addresses are the node names)."""
    for _ in range(10):
        moved = False
        for src, dst, name in ((a, b, "a"), (b, a, "b")):
            for data, dest in src.datagrams_to_send(now):
                if dest is BROADCAST or dest == ("b" if name == "a" else "a"):
                    dst.receive(data, name, now)
                    moved = True
        if not moved:
            return


def connected_call() -> tuple[Node, Node, int]:
    rng = random.Random(1)
    a = Node(Identity.from_seed(rng.randbytes(32)), "5552001", rng=rng)
    b = Node(Identity.from_seed(rng.randbytes(32)), "5552002", rng=rng)
    for now in (0.0, 0.5, 1.0):
        a.handle_timer(now)
        b.handle_timer(now)
        exchange(a, b, now)
    call = a.dial(b.sid, 1.0)
    exchange(a, b, 1.0)
    incoming = next(e for e in iter(b.next_event, None) if isinstance(e, IncomingCall))
    b.ring(incoming.call, 1.0)
    b.answer(incoming.call, 1.0)
    exchange(a, b, 1.0)
    return a, b, call


def main() -> None:
    a, b, call = connected_call()
    payload = bytes(160)
    datagrams = []
    start = time.perf_counter()
    for _ in range(FRAMES):
        a.send_audio(call, Codec.MULAW, payload, 20)
        datagrams += a.datagrams_to_send(1.0)
    send_us = (time.perf_counter() - start) / FRAMES * 1e6
    start = time.perf_counter()
    for data, _dest in datagrams:
        b.receive(data, "a", 1.0)
    receive_us = (time.perf_counter() - start) / len(datagrams) * 1e6
    start = time.perf_counter()
    for i in range(200):
        b.handle_timer(1.0 + 0.5 * (i + 1))
        b.datagrams_to_send(1.0 + 0.5 * (i + 1))
    tick_us = (time.perf_counter() - start) / 200 * 1e6
    print(f"node_send_audio_frame {send_us:.1f} us")
    print(f"node_receive_audio_frame {receive_us:.1f} us")
    print(f"node_tick_one_neighbour {tick_us:.1f} us")


if __name__ == "__main__":
    main()
