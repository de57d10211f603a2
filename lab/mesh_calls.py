"""What the mesh bench tests share: managers for bench nodes, polls, and a VoMP handset.

Used inside the VM only (tests/vm/test_mesh_*.py). A `Handset` is the project's VoMP Node on its
asyncio UDP transport bound to bat0 in a node's namespace; it logs events and the arrival time of
every audio frame, so a test can measure how long the audio stopped while the mesh healed.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from ipaddress import IPv4Address
from pathlib import Path

from firmware.transport import SERVAL_PORT, NodeProtocol, open_socket
from hw.mesh import MeshConfig, MeshManager
from hw.mesh.addressing import candidate_addresses
from hw.mesh.config import DEFAULT_PREFIX
from vmbench.guest import Node
from vomp.codecs import Codec
from vomp.events import AudioFrameReceived, CallStateChanged, DnaAnswer, Event
from vomp.identity import Identity
from vomp.messages import CallState
from vomp.node import Node as VompNode

ROUTE_TIMEOUT = 120.0
REPAIR_TIMEOUT = 90.0
# Repairs must be driven by netlink events: the backstop poll is far longer than any wait here.
POLL_INTERVAL_S = 600.0
FRAME_INTERVAL_S = 0.1  # one audio frame per 100 ms each way: Python under TCG is slow
# Figures written here come back to the host (bench/mesh_heal_bench.py prints them).
FIGURES = Path("/job/figures.txt")


def identity(node: Node) -> bytes:
    """The handset identity a bench node's manager derives its bat0 MAC and address from."""
    return f"bench {node.name}".encode()


def config(node: Node, **settings) -> MeshConfig:
    return MeshConfig(netns=node.netns, poll_interval_s=POLL_INTERVAL_S, **settings)


def managers(
    nodes: list[Node], identities: list[bytes] | None = None, **settings
) -> list[MeshManager]:
    """One manager per node, each with `identities[i]` (default: `identity(node)`)."""
    chosen = identities or [identity(n) for n in nodes]
    return [
        MeshManager(config(n, **settings), identity=who)
        for n, who in zip(nodes, chosen, strict=True)
    ]


def first_address(node: Node, prefix=DEFAULT_PREFIX) -> IPv4Address:
    return next(candidate_addresses(identity(node), prefix))


def note(name: str, value: float, unit: str) -> None:
    """A measured figure for the report (speed is reported, never asserted as a goal)."""
    line = f"{name} {value:.1f} {unit}"
    print(line, flush=True)
    if FIGURES.parent.is_dir():
        with FIGURES.open("a") as figures:
            figures.write(line + "\n")


async def until(check: Callable[[], object], timeout: float, what: str, every: float = 0.5):
    """Poll `check` (plain or async) until it returns something true; fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        await asyncio.sleep(every)


async def best_next_hop(manager: MeshManager, originator: str) -> str | None:
    for entry in await manager.originators():
        if entry.address == originator and entry.best:
            return entry.next_hop
    return None


def pings(node: Node, address: IPv4Address) -> bool:
    return " 1 received" in node.sh("ping", "-c", "1", "-W", "3", str(address), check=False)


async def eventually_pings(node: Node, address: IPv4Address, timeout: float = ROUTE_TIMEOUT):
    async def check():
        return await asyncio.to_thread(pings, node, address)

    await until(check, timeout, f"ping {node.name} -> {address}")


class Running:
    """Managers running their loops (repair and merge watch) until `stop()`."""

    def __init__(self, all_managers: list[MeshManager]) -> None:
        self.managers = all_managers
        self.tasks = {id(m): asyncio.create_task(m.run()) for m in all_managers}

    async def ready(self, timeout: float = 60) -> None:
        await until(lambda: all(m.status.ready for m in self.managers), timeout, "managers ready")

    async def stop_one(self, manager: MeshManager) -> None:
        task = self.tasks.pop(id(manager))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await manager.close()

    def start_one(self, manager: MeshManager) -> None:
        self.managers.append(manager)
        self.tasks[id(manager)] = asyncio.create_task(manager.run())

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        for m in self.managers:
            await m.close()


def heal_moment(manager: MeshManager) -> float:
    """The manager's last heal, on the monotonic clock (the status keeps wall-clock time)."""
    assert manager.status.last_heal_at is not None
    return time.monotonic() - (time.time() - manager.status.last_heal_at)


class Handset:
    """One end of a call: the project's Node on its asyncio UDP transport, bound to bat0 in
    the node's namespace, with an event log, frame arrival times and a "user" who answers."""

    def __init__(self, protocol: NodeProtocol, number: str, answers: bool) -> None:
        self.protocol = protocol
        self.number = number
        self.answers = answers
        self.events: list[Event] = []
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, sequence number)
        self._pump = asyncio.create_task(self._collect())

    @classmethod
    async def start(cls, node: Node, manager: MeshManager, number: str, answers: bool = False):
        endpoint = await manager.endpoint()
        handset = VompNode(Identity.generate(), number, f"bench {node.name}")
        with node.inside():  # the socket belongs to the namespace it is created in
            sock = open_socket(SERVAL_PORT, endpoint.ifname)
        loop = asyncio.get_running_loop()
        broadcast = (str(endpoint.broadcast), SERVAL_PORT)
        _, protocol = await loop.create_datagram_endpoint(
            lambda: NodeProtocol(handset, broadcast), sock=sock
        )
        return cls(protocol, number, answers)

    @property
    def node(self) -> VompNode:
        return self.protocol.node

    async def _collect(self) -> None:
        while True:
            event = await self.protocol.next_event()
            self.events.append(event)
            if isinstance(event, AudioFrameReceived):
                seq = int.from_bytes(event.payload[1:5], "big")
                self.arrivals.append((time.monotonic(), seq))
            if (
                self.answers
                and isinstance(event, CallStateChanged)
                and event.remote_state == CallState.RINGINGOUT
                and event.local_state < CallState.RINGINGIN
            ):
                self.protocol.command(
                    lambda n, now, c=event.call: (n.ring(c, now), n.answer(c, now))
                )

    async def wait_for(self, predicate: Callable[[Event], bool], what: str, timeout: float = 90):
        def found():
            return next((e for e in self.events if predicate(e)), None)

        return await until(found, timeout, what)

    def heard(self, call: int) -> list[int]:
        """Sequence numbers (from the payloads) of the audio frames that arrived on `call`."""
        return [
            int.from_bytes(e.payload[1:5], "big")
            for e in self.events
            if isinstance(e, AudioFrameReceived) and e.call == call
        ]

    def first_arrival_after(self, moment: float) -> float | None:
        return next((t for t, _ in self.arrivals if t > moment), None)

    def longest_silence(self, start: float, end: float) -> tuple[float, float]:
        """The longest time without a frame arriving between `start` and `end`, and the moment
        it ended (the arrival after it, or `end`)."""
        times = [start, *(t for t, _ in self.arrivals if start < t < end), end]
        return max((b - a, b) for a, b in itertools.pairwise(times))

    def close(self) -> None:
        self._pump.cancel()
        self.protocol.close()


async def talk(handset: Handset, call: int, tag: bytes, sent: list[int]) -> None:
    """Send a µ-law frame every FRAME_INTERVAL_S, its sequence number in the payload."""
    seq = 0
    while True:
        payload = tag + seq.to_bytes(4, "big") + bytes(155)
        if handset.protocol.command(
            lambda n, now, p=payload: n.send_audio(call, Codec.MULAW, p, 20)
        ):
            sent.append(seq)
            seq += 1
        await asyncio.sleep(FRAME_INTERVAL_S)


def in_call(call: int | None = None) -> Callable[[Event], bool]:
    """Both sides of `call` (or of any call) report INCALL."""

    def predicate(event: Event) -> bool:
        return (
            isinstance(event, CallStateChanged)
            and (call is None or event.call == call)
            and event.local_state == CallState.INCALL
            and event.remote_state == CallState.INCALL
        )

    return predicate


# A lookup lasts 3 s by default (servald's); Python under TCG may need longer for the first
# key exchange with a peer two hops away, so the bench's lookups keep asking, as a user would.
LOOKUP_S = 15.0


async def look_up(handset: Handset, number: str, timeout: float = 90) -> DnaAnswer:
    """Look `number` up over the mesh, asking again each LOOKUP_S until `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        handset.protocol.command(lambda n, now: n.lookup(number, now, timeout=LOOKUP_S))
        try:
            return await handset.wait_for(
                lambda e: isinstance(e, DnaAnswer) and e.did == number, "DNA answer", LOOKUP_S
            )
        except AssertionError:
            if time.monotonic() > deadline:
                counters = dict(handset.node.counters)
                raise AssertionError(
                    f"no DNA answer for {number} within {timeout:.0f} s; counters {counters}"
                ) from None


class Call:
    """A call between two handsets with both talking: `caller_call` and `callee_call` are each
    side's call id; `sent_*` the sequence numbers each side sent."""

    def __init__(self, caller: Handset, callee: Handset, caller_call: int, callee_call: int):
        self.caller, self.callee = caller, callee
        self.caller_call, self.callee_call = caller_call, callee_call
        self.sent_by_caller: list[int] = []
        self.sent_by_callee: list[int] = []
        self.talkers = [
            asyncio.create_task(talk(caller, caller_call, b"A", self.sent_by_caller)),
            asyncio.create_task(talk(callee, callee_call, b"B", self.sent_by_callee)),
        ]

    @classmethod
    async def place(cls, caller: Handset, callee: Handset) -> Call:
        """Look the callee's number up over the mesh, dial its SID, wait until both talk."""
        answer = await look_up(caller, callee.number)
        assert answer.sid == callee.node.sid
        caller_call = caller.protocol.command(lambda n, now: n.dial(answer.sid, now))
        await caller.wait_for(in_call(caller_call), "INCALL at the caller")
        incoming = await callee.wait_for(in_call(), "INCALL at the callee")
        call = cls(caller, callee, caller_call, incoming.call)
        await until(call.both_ways(10), 60, "audio both ways")
        return call

    def both_ways(self, frames: int) -> Callable[[], bool]:
        return lambda: (
            len(self.callee.heard(self.callee_call)) >= frames
            and len(self.caller.heard(self.caller_call)) >= frames
        )

    def sent_marks(self) -> tuple[int, int]:
        return len(self.sent_by_caller), len(self.sent_by_callee)

    def heard_since(self, marks: tuple[int, int]) -> Callable[[], bool]:
        """Frames each side sent after `marks` (from `sent_marks()`) arrived at the other."""
        return lambda: (
            any(s >= marks[0] for s in self.callee.heard(self.callee_call))
            and any(s >= marks[1] for s in self.caller.heard(self.caller_call))
        )

    def longest_silence(self, start: float, end: float) -> float:
        return max(self.caller.longest_silence(start, end), self.callee.longest_silence(start, end))

    def resumed_after(self, moment: float) -> float | None:
        """When frames flowed both ways again after `moment`, or None if they have not."""
        times = [h.first_arrival_after(moment) for h in (self.caller, self.callee)]
        return None if None in times else max(t for t in times if t is not None)

    async def stop_talking(self) -> None:
        for task in self.talkers:
            task.cancel()
        await asyncio.gather(*self.talkers, return_exceptions=True)
