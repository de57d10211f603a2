"""An in-memory link for `Node`s: no sockets, a simulated clock, faults chosen by the test.

Datagrams go through a `Faults` model (loss, duplication, delay -> reordering) driven by a seeded
Random, so every run replays exactly. The loop jumps the clock straight to the next thing that
happens (a delivery, a node timer or a scripted action), so 60 simulated seconds take
milliseconds.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from vomp.events import Event
from vomp.identity import Identity
from vomp.node import BROADCAST, Node


@dataclass
class Faults:
    loss: float = 0.0
    duplicate: float = 0.0
    min_delay: float = 0.001
    max_delay: float = 0.001
    broadcast_loss: float = 0.0  # extra loss for broadcasts (Wi-Fi sends them slow and unacked)


@dataclass
class Station:
    node: Node
    address: tuple[str, int]
    events: list[tuple[float, Event]] = field(default_factory=list)
    handlers: list[Callable[[Station, Event, float], None]] = field(default_factory=list)


class Network:
    """Stations on one broadcast segment, moved forward by `run_until`."""

    def __init__(self, faults: Faults | None = None, seed: int = 0) -> None:
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self.now = 0.0
        self.stations: list[Station] = []
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def add(self, number: str, *, seed: int | None = None, **node_kw) -> Station:
        index = len(self.stations)
        node_seed = seed if seed is not None else 1000 + index
        identity = Identity.from_seed(random.Random(node_seed).randbytes(32))
        node = Node(identity, number, f"Node {index}", rng=random.Random(node_seed), **node_kw)
        station = Station(node, (f"10.0.0.{index + 1}", 4110))
        self.stations.append(station)
        return station

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), action))

    # ------------------------------------------------------------------------ running
    def run_until(self, end: float) -> None:
        while True:
            when, kind = self._next()
            if when is None or when > end:
                self.now = end
                return
            self.now = max(self.now, when)
            if kind is None:
                _, _, action = heapq.heappop(self._queue)
                action()
            else:
                kind.node.handle_timer(self.now)
                after = kind.node.next_timer()
                assert after is None or after > self.now, "handle_timer left a timer due"
            self._settle()

    def run_until_quiet_calls(self, end: float) -> None:
        """Run until no station has a call left, or `end`."""
        step = 1.0
        while self.now < end and any(s.node.calls.calls() for s in self.stations):
            self.run_until(min(end, self.now + step))

    def _next(self):
        best: tuple[float | None, Station | None] = (None, None)
        if self._queue:
            best = (self._queue[0][0], None)
        for station in self.stations:
            timer = station.node.next_timer()
            if timer is not None and (best[0] is None or timer < best[0]):
                best = (timer, station)
        return best

    def _settle(self) -> None:
        """Collect what every node wants to send and every event, until nothing changes."""
        for station in self.stations:
            for data, destination in station.node.datagrams_to_send(self.now):
                self._transmit(station, data, destination)
            while (event := station.node.next_event()) is not None:
                station.events.append((self.now, event))
                for handler in station.handlers:
                    handler(station, event, self.now)
        for station in self.stations:  # handlers may have issued commands
            for data, destination in station.node.datagrams_to_send(self.now):
                self._transmit(station, data, destination)

    def _transmit(self, sender: Station, data: bytes, destination: object) -> None:
        targets = (
            [s for s in self.stations if s is not sender]
            if destination is BROADCAST
            else [s for s in self.stations if s.address == destination]
        )
        for target in targets:
            copies = 1
            if self.rng.random() < self.faults.duplicate:
                copies = 2
            for _ in range(copies):
                if self.rng.random() < self.faults.loss:
                    continue
                if destination is BROADCAST and self.rng.random() < self.faults.broadcast_loss:
                    continue
                delay = self.rng.uniform(self.faults.min_delay, self.faults.max_delay)
                self.at(self.now + delay, self._deliver_action(target, data, sender.address))

    def _deliver_action(self, target: Station, data: bytes, source: tuple[str, int]):
        def deliver() -> None:
            target.node.receive(data, source, self.now)

        return deliver


def events_of(station: Station, kind: type) -> list:
    return [e for _, e in station.events if isinstance(e, kind)]
