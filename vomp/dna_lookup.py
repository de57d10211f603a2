"""DNA number lookups (SPEC §11) as a client: retry schedule, reply matching, answer cache.

servald's client re-sends a lookup about 250, 375, 500, 750, 1000 ms apart (x1.5 from 125 ms,
rounded to its 125 ms poll) until the timeout, because a broadcast may be lost and a server whose
key we lack drops the first copy (§10). We follow the same schedule so servald treats us alike.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST_GAPS = (0.25, 0.375, 0.5, 0.75, 1.0)  # s between sends; later gaps keep growing x1.5
LOOKUP_TIMEOUT = 3.0  # s, servald's default
ANSWER_TTL = 60.0  # s an answer stays in the cache
CLIENT_PORT_MIN = 32768


@dataclass(frozen=True)
class Answer:
    sid: bytes
    uri: str
    did: str
    name: str
    expires_at: float


@dataclass
class Lookup:
    number: str
    port: int
    started_at: float
    deadline: float
    next_send_at: float
    sends: int = 0
    uris: set[str] = field(default_factory=set)


def gap_after(sends: int) -> float:
    """Seconds from send number `sends` (1 = the first) to the next one."""
    if sends <= len(FIRST_GAPS):
        return FIRST_GAPS[sends - 1]
    return FIRST_GAPS[-1] * 1.5 ** (sends - len(FIRST_GAPS))


class DnaLookups:
    """Running lookups by client port, plus the answers heard recently."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._running: dict[int, Lookup] = {}
        self._cache: dict[str, dict[str, Answer]] = {}

    def start(self, number: str, now: float, timeout: float = LOOKUP_TIMEOUT) -> Lookup:
        """Begin a lookup (or return the one already running for this number)."""
        for lookup in self._running.values():
            if lookup.number == number:
                return lookup
        port = self._rng.randrange(CLIENT_PORT_MIN, 0x10000)
        while port in self._running:
            port = self._rng.randrange(CLIENT_PORT_MIN, 0x10000)
        lookup = Lookup(number, port, now, now + timeout, now)
        self._running[port] = lookup
        return lookup

    def due(self, now: float) -> list[Lookup]:
        """Lookups whose next (re)send is due; each call advances their schedule."""
        sending = []
        for lookup in self._running.values():
            if lookup.next_send_at <= now < lookup.deadline:
                lookup.sends += 1
                lookup.next_send_at = now + gap_after(lookup.sends)
                sending.append(lookup)
        return sending

    def finished(self, now: float) -> list[Lookup]:
        """Remove and return lookups past their deadline."""
        done = [lk for lk in self._running.values() if now >= lk.deadline]
        for lookup in done:
            del self._running[lookup.port]
        return done

    def next_timer(self) -> float | None:
        times = [min(lk.next_send_at, lk.deadline) for lk in self._running.values()]
        return min(times, default=None)

    def answer(self, port: int, sid: bytes, uri: str, did: str, name: str, now: float):
        """A reply to client `port`; returns (number looked up, first time this URI was heard)."""
        lookup = self._running.get(port)
        if lookup is None:
            return None, False
        first = uri not in lookup.uris
        lookup.uris.add(uri)
        self._cache.setdefault(lookup.number, {})[uri] = Answer(
            sid, uri, did, name, now + ANSWER_TTL
        )
        return lookup.number, first

    def number_of(self, sid: bytes, now: float) -> str:
        """The number a recent, unexpired answer gave for `sid` ('' when none did)."""
        for answers in self._cache.values():
            for answer in answers.values():
                if answer.sid == sid and answer.expires_at > now and answer.did:
                    return answer.did
        return ""

    def cached(self, number: str, now: float) -> list[Answer]:
        """Answers for `number` that have not expired."""
        answers = self._cache.get(number, {})
        for uri in [u for u, a in answers.items() if a.expires_at <= now]:
            del answers[uri]
        return list(answers.values())
