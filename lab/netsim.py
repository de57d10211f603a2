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
        # (when, order, action, the one station it touches or None for "any of them")
        self._queue: list[tuple[float, int, Callable[[], None], Station | None]] = []
        self._order = itertools.count()
        # Each station's next timer, re-read only when something touched that station: with
        # a hundred nodes, asking all of them after every delivery would cost more than the
        # nodes' own work. Stations are known by id() (tests remove them from `stations`);
        # timer entries are (when, rank, id, version), and stale versions are skipped.
        self._timers: list[tuple[float, int, int, int]] = []
        self._version: dict[int, int] = {}
        self._rank: dict[int, int] = {}  # list order, kept when earlier stations are removed
        self._live: dict[int, Station] = {}
        self._dirty: set[int] = set()

    def add(self, number: str, *, seed: int | None = None, **node_kw) -> Station:
        index = len(self.stations)
        node_seed = seed if seed is not None else 1000 + index
        identity = Identity.from_seed(random.Random(node_seed).randbytes(32))
        node = Node(identity, number, f"Node {index}", rng=random.Random(node_seed), **node_kw)
        station = Station(node, (f"10.0.0.{index + 1}", 4110))
        self.stations.append(station)
        return station

    def at(self, when: float, action: Callable[[], None], touches: Station | None = None) -> None:
        """Run `action` at `when`; `touches` names the one station it acts on, if only one."""
        heapq.heappush(self._queue, (when, next(self._order), action, touches))

    # ------------------------------------------------------------------------ running
    def run_until(self, end: float) -> None:
        self._touch_all()  # commands may have been given to any node since the last run:
        self._settle()  # what they queued goes out now, as a transport sends it at once
        self._reread_timers()
        while True:
            when, station = self._next()
            if when is None or when > end:
                self.now = end
                return
            self.now = max(self.now, when)
            if station is None:
                _, _, action, touches = heapq.heappop(self._queue)
                action()
                if touches is None:
                    self._touch_all()
                else:
                    self._dirty.add(id(touches))
            else:
                station.node.handle_timer(self.now)
                after = station.node.next_timer()
                assert after is None or after > self.now, "handle_timer left a timer due"
                self._dirty.add(id(station))
            self._settle()
            self._reread_timers()

    def run_until_quiet_calls(self, end: float) -> None:
        """Run until no station has a call left, or `end`."""
        step = 1.0
        while self.now < end and any(s.node.calls.calls() for s in self.stations):
            self.run_until(min(end, self.now + step))

    def _touch_all(self) -> None:
        """Stations may have been added, removed or given commands: look at all of them."""
        self._live = {id(station): station for station in self.stations}
        for station in self.stations:
            self._rank.setdefault(id(station), len(self._rank))
        self._dirty.update(self._live)

    def _reread_timers(self) -> None:
        for key in self._dirty:
            station = self._live.get(key)
            if station is None:
                continue
            version = self._version[key] = self._version.get(key, 0) + 1
            timer = station.node.next_timer()
            if timer is not None:
                heapq.heappush(self._timers, (timer, self._rank[key], key, version))
        self._dirty.clear()

    def _next(self) -> tuple[float | None, Station | None]:
        """The next thing to happen: a queued action wins a tie with a timer, and of two
        timers due at once the earlier station's runs first."""
        timers = self._timers
        while timers and (
            timers[0][2] not in self._live or timers[0][3] != self._version[timers[0][2]]
        ):
            heapq.heappop(timers)
        queued = self._queue[0][0] if self._queue else None
        if timers and (queued is None or timers[0][0] < queued):
            when, _rank, key, _version = heapq.heappop(timers)
            self._version[key] += 1  # it runs now, and is re-read afterwards
            return when, self._live[key]
        return queued, None

    def _settle(self) -> None:
        """Collect what every touched node wants to send and every event, until nothing
        changes (a node nothing touched has nothing to send)."""
        handled = False
        for station in [s for s in self.stations if id(s) in self._dirty]:
            for data, destination in station.node.datagrams_to_send(self.now):
                self._transmit(station, data, destination)
            while (event := station.node.next_event()) is not None:
                station.events.append((self.now, event))
                for handler in station.handlers:
                    handler(station, event, self.now)
                    handled = True
        if handled:  # handlers may have issued commands to any node
            self._touch_all()
            for station in self.stations:
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
                action = self._deliver_action(target, data, sender.address)
                self.at(self.now + delay, action, touches=target)

    def _deliver_action(self, target: Station, data: bytes, source: tuple[str, int]):
        def deliver() -> None:
            target.node.receive(data, source, self.now)

        return deliver


def events_of(station: Station, kind: type) -> list:
    return [e for _, e in station.events if isinstance(e, kind)]
