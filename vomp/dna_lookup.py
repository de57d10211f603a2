"""DNA number lookups (SPEC §11) as a client: retry schedule, reply matching, answer cache.

servald's client re-sends a lookup about 250, 375, 500, 750, 1000 ms apart (x1.5 from 125 ms,
rounded to its 125 ms poll) until the timeout, because a broadcast may be lost and a server whose
key we lack drops the first copy (§10). We follow the same schedule so servald treats us alike,
but stop re-sending once the number has been answered (a `*` lookup goes on: it wants everyone).

Answers are kept per (number, SID): one SID's answer never replaces another's, and neither the
answers per lookup nor the cache can grow without bound. The first SID heard for a number is
remembered as its owner, so that a later, different claimant can be flagged instead of trusted.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, field

FIRST_GAPS = (0.25, 0.375, 0.5, 0.75, 1.0)  # s between sends; later gaps keep growing x1.5
LOOKUP_TIMEOUT = 3.0  # s, servald's default
ANSWER_TTL = 60.0  # s an answer stays in the cache
CLIENT_PORT_MIN = 32768
ANSWERS_PER_LOOKUP = 32  # replies counted for one lookup ('*' asks everyone in range)
CACHED_NUMBERS = 64
OWNERS_REMEMBERED = 256
WILDCARDS = ("", "*")


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
    answered_by: set[bytes] = field(default_factory=set)

    @property
    def is_wildcard(self) -> bool:
        return self.number in WILDCARDS

    @property
    def answered(self) -> bool:
        return bool(self.answered_by)


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
        self._cache: OrderedDict[str, dict[bytes, Answer]] = OrderedDict()
        self._owners: OrderedDict[str, bytes] = OrderedDict()

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
            if lookup.answered and not lookup.is_wildcard:
                continue
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
        times = [
            lk.deadline if lk.answered and not lk.is_wildcard else min(lk.next_send_at, lk.deadline)
            for lk in self._running.values()
        ]
        return min(times, default=None)

    def running(self, port: int) -> Lookup | None:
        return self._running.get(port)

    def answer(self, port: int, sid: bytes, uri: str, did: str, name: str, now: float):
        """A reply (already checked) to client `port`; returns (number looked up, first time
        this SID answered it). (None, False) if no lookup runs there or it has enough answers."""
        lookup = self._running.get(port)
        if lookup is None:
            return None, False
        first = sid not in lookup.answered_by
        if first and len(lookup.answered_by) >= ANSWERS_PER_LOOKUP:
            return None, False
        lookup.answered_by.add(sid)
        answers = self._cache.setdefault(did, {})
        self._cache.move_to_end(did)
        answers[sid] = Answer(sid, uri, did, name, now + ANSWER_TTL)
        while len(answers) > ANSWERS_PER_LOOKUP:
            del answers[next(iter(answers))]
        while len(self._cache) > CACHED_NUMBERS:
            self._cache.popitem(last=False)
        return lookup.number, first

    def owner(self, number: str) -> bytes | None:
        """The first SID that answered for `number` (None: nobody yet)."""
        return self._owners.get(number)

    def claim(self, number: str, sid: bytes) -> bytes:
        """`sid` answered for `number`: remember it if it is the first; returns the owner
        (the earlier SID when `sid` is a different, later claimant)."""
        owner = self._owners.setdefault(number, sid)
        self._owners.move_to_end(number)
        while len(self._owners) > OWNERS_REMEMBERED:
            self._owners.popitem(last=False)
        return owner

    def trust(self, number: str, sid: bytes) -> None:
        """The user says `sid` now owns `number` (a new handset for an old number)."""
        self._owners[number] = sid

    def number_of(self, sid: bytes, now: float) -> str:
        """The number a recent, unexpired answer gave for `sid` ('' when none did)."""
        for answers in self._cache.values():
            for answer in answers.values():
                if answer.sid == sid and answer.expires_at > now and answer.did:
                    return answer.did
        return ""

    def cached(self, number: str, now: float) -> list[Answer]:
        """Answers for `number` that have not expired, its owner's first."""
        answers = self._cache.get(number, {})
        for sid in [s for s, a in answers.items() if a.expires_at <= now]:
            del answers[sid]
        owner = self._owners.get(number)
        return sorted(answers.values(), key=lambda a: a.sid != owner)

    def cached_sids(self, now: float) -> set[bytes]:
        return {sid for answers in self._cache.values() for sid in answers}

    def expire(self, now: float) -> None:
        for number in list(self._cache):
            if not self.cached(number, now):
                del self._cache[number]
