"""One handset for the network-namespace tests: a real Node on the real asyncio UDP transport.

Run inside a namespace (`ip netns exec NS python lab/netns_peer.py ...`). The caller looks the
callee's number up, dials, exchanges audio, and hangs up; the callee answers. Each prints one JSON
line with what it saw and exits; every wait is bounded so a broken network fails, never hangs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

from firmware.transport import start
from vomp.codecs import Codec
from vomp.events import (
    AudioFrameReceived,
    CallEnded,
    CallStateChanged,
    DnaAnswer,
    DnaLookupFinished,
    PeerFound,
)
from vomp.identity import Identity
from vomp.messages import CallState
from vomp.node import Node

FRAMES = 10


class StampedQueue(asyncio.Queue):
    """The transport's event queue, noting when each event was queued: the moment its
    datagram was processed, not the later moment this script got round to reading it."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: dict[int, float] = {}

    def put_nowait(self, item) -> None:
        self.stamps[id(item)] = time.monotonic()
        super().put_nowait(item)


class Peer:
    def __init__(self, protocol, budget: float) -> None:
        self.protocol = protocol
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + budget
        self.seen: list[object] = []
        # CLOCK_MONOTONIC is one clock for every namespace on the host, so the bench can
        # subtract a frame's send time in one process from its arrival time in the other.
        self.sent_at: list[float] = []
        self.heard_at: list[float] = []
        self.answered_at: float | None = None

    async def wait_for(self, predicate, what: str):
        while True:
            for event in self.seen:
                if predicate(event):
                    return event
            remaining = self.deadline - self.loop.time()
            if remaining <= 0:
                raise TimeoutError(f"timed out waiting for {what}")
            try:
                event = await asyncio.wait_for(self.protocol.next_event(), remaining)
            except TimeoutError:
                continue
            self.note(event)

    def note(self, event) -> None:
        self.seen.append(event)
        if isinstance(event, AudioFrameReceived):
            self.heard_at.append(self.protocol.events.stamps.pop(id(event)))
        if isinstance(event, DnaAnswer) and self.answered_at is None:
            self.answered_at = time.monotonic()
        self.react(event)

    def react(self, event) -> None:
        """The callee's "user": ring and pick up as soon as the caller rings out."""

    async def send_audio(self, call: int, tag: bytes) -> None:
        for i in range(FRAMES):
            payload = tag + bytes([i]) * 159
            self.sent_at.append(time.monotonic())
            self.protocol.command(lambda n, now, p=payload: n.send_audio(call, Codec.MULAW, p, 20))
            await asyncio.sleep(0.02)

    async def quiet_wait(self, condition, seconds: float) -> None:
        """Collect events for up to `seconds`, stopping early once `condition()` holds."""
        end = min(self.deadline, self.loop.time() + seconds)
        while not condition() and (remaining := end - self.loop.time()) > 0:
            try:
                event = await asyncio.wait_for(self.protocol.next_event(), remaining)
            except TimeoutError:
                return
            self.note(event)

    async def deleted(self) -> bool:
        """Whether the call left the table soon (a lost final 0x66 leaves it to time out)."""
        await self.quiet_wait(lambda: any(isinstance(e, CallEnded) for e in self.seen), 3.0)
        return any(isinstance(e, CallEnded) and not e.timed_out for e in self.seen)

    def times(self) -> dict[str, list[float]]:
        return {"sent_at": self.sent_at, "heard_at": self.heard_at}

    def audio(self) -> list[list]:
        return [
            [e.time_ms, e.seq, e.payload.hex()]
            for e in self.seen
            if isinstance(e, AudioFrameReceived)
        ]


class Callee(Peer):
    def react(self, event) -> None:
        if (
            isinstance(event, CallStateChanged)
            and event.remote_state == CallState.RINGINGOUT
            and event.local_state < CallState.RINGINGIN
        ):
            self.protocol.command(
                lambda n, now: (n.ring(event.call, now), n.answer(event.call, now))
            )


async def run_callee(peer: Callee) -> dict:
    incall = await peer.wait_for(
        lambda e: isinstance(e, CallStateChanged) and e.local_state == CallState.INCALL, "INCALL"
    )
    await peer.send_audio(incall.call, b"B")
    await peer.wait_for(ended_locally, "the caller's hang-up")
    return {"audio": peer.audio(), "deleted": await peer.deleted(), **peer.times()}


async def run_caller(peer: Peer, number: str) -> dict:
    await peer.wait_for(lambda e: isinstance(e, PeerFound), "a neighbour")
    answer = None
    asked_at = time.monotonic()
    for _attempt in range(3):  # a lookup is 3 s of retries; under heavy loss try again
        peer.protocol.command(lambda n, now: n.lookup(number, now))
        await peer.wait_for(
            lambda e: isinstance(e, DnaAnswer | DnaLookupFinished), f"a DNA answer for {number}"
        )
        answer = next((e for e in peer.seen if isinstance(e, DnaAnswer)), None)
        if answer is not None:
            break
        peer.seen = [e for e in peer.seen if not isinstance(e, DnaLookupFinished)]
    if answer is None:
        raise TimeoutError(f"nobody answered a lookup of {number}")
    dialled_at = time.monotonic()
    call = peer.protocol.command(lambda n, now: n.dial(answer.sid, now))
    await peer.wait_for(
        lambda e: isinstance(e, CallStateChanged) and e.local_state == CallState.INCALL,
        "the callee to answer",
    )
    incall_at = time.monotonic()
    await peer.send_audio(call, b"A")
    await peer.quiet_wait(lambda: len(peer.audio()) >= FRAMES, 2.0)  # lost frames never come
    peer.protocol.command(lambda n, now: n.hang_up(call, now))
    await peer.wait_for(ended_locally, "the call to end")
    return {
        "dna": [answer.sid.hex(), answer.did, answer.name],
        "audio": peer.audio(),
        "deleted": await peer.deleted(),
        "lookup_s": peer.answered_at - asked_at,
        "setup_s": incall_at - dialled_at,
        **peer.times(),
    }


def ended_locally(event) -> bool:
    return isinstance(event, CallStateChanged) and event.local_state == CallState.CALLENDED


async def main(args: argparse.Namespace) -> dict:
    identity = Identity.from_seed(bytes.fromhex(args.seed))
    node = Node(identity, args.number, args.role, rng=random.Random(args.seed))
    protocol = await start(node, interface=args.interface, port=args.port)
    early, protocol.events = protocol.events, StampedQueue()
    while not early.empty():  # anything queued before the swap (no await in between)
        protocol.events.put_nowait(early.get_nowait())
    try:
        if args.role == "callee":
            result = await run_callee(Callee(protocol, args.budget))
        else:
            result = await run_caller(Peer(protocol, args.budget), args.call)
        # let the last status datagrams leave before the socket closes
        await asyncio.sleep(0.3)
    finally:
        protocol.close()
    result["sid"] = node.sid.hex()
    result["counters"] = dict(node.counters)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["caller", "callee"])
    parser.add_argument("--seed", required=True)
    parser.add_argument("--number", required=True)
    parser.add_argument("--call", help="number the caller dials")
    parser.add_argument("--interface", required=True)
    parser.add_argument("--port", type=int, default=4110)
    parser.add_argument("--budget", type=float, default=25.0)
    arguments = parser.parse_args()
    try:
        print(json.dumps(asyncio.run(main(arguments))), flush=True)
    except TimeoutError as exc:
        print(json.dumps({"error": str(exc)}), flush=True)
        sys.exit(1)
