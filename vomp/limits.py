"""Limits that keep a hostile neighbour from costing us memory, CPU or bandwidth.

Anyone in radio range can send us anything, from any address, claiming any SID. These small
sans-IO records (driven by `now`, never a clock) are what `Node` uses to bound what such a
stranger gets: a token bucket for rates, a count-capped memory for replays, a per-key interval
for "at most once per 500 ms", and a ledger of bytes in and out per source address so that an
address which has not proved it is there never gets more from us than it sent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take` spends them or says no."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self._at: float | None = None

    def take(self, now: float, amount: float = 1.0, keep: float = 0.0) -> bool:
        """Spend `amount` if that leaves at least `keep` tokens (kept for what matters more)."""
        if self._at is not None and now > self._at:
            self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        if self._at is None or now > self._at:
            self._at = now
        if self.tokens - amount >= keep:
            self.tokens -= amount
            return True
        return False


class RecentKeys:
    """The last `capacity` keys seen, oldest forgotten first: a replay memory capped by count."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[Hashable, None] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Remember `key`; False if it was already remembered (a replay)."""
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)


class OncePer:
    """At most one event per key per `interval` seconds, remembering at most `capacity` keys."""

    def __init__(self, interval: float, capacity: int) -> None:
        self.interval = interval
        self.capacity = capacity
        self._last: OrderedDict[Hashable, float] = OrderedDict()

    def allow(self, key: Hashable, now: float) -> bool:
        last = self._last.get(key)
        if last is not None and 0 <= now - last < self.interval:
            return False
        self._last[key] = now
        self._last.move_to_end(key)
        if len(self._last) > self.capacity:
            self._last.popitem(last=False)
        return True

    def expire(self, now: float) -> None:
        while self._last:
            key, last = next(iter(self._last.items()))
            if now - last < self.interval:
                break
            del self._last[key]

    def __len__(self) -> int:
        return len(self._last)


@dataclass
class AddressRecord:
    received: int = 0
    sent: int = 0
    last_heard: float = 0.0
    verified: bool = False


class AddressLedger:
    """Bytes heard from and sent to each source address.

    An address is verified once a fresh authenticated frame arrived from it (a crypto_box that
    opened, whose nonce we had not seen). Until then we send it at most what it sent us, or
    `budget` bytes, whichever is more, and all unverified addresses together share `rate`
    bytes per second beyond what each sent: a forged source address cannot turn us into an
    amplifier, and honest strangers pay for what they get with what they send. A verified
    address gets up to `verified_ratio` times what it sent: anyone can box a frame to us with
    an identity of its own from a forged address, so even that proof is not a blank cheque.
    (A real peer sends ticks and link-state all the time; calls the user placed or answered
    are not charged at all.)
    """

    def __init__(
        self,
        *,
        budget: int,
        verified_ratio: float,
        rate: float,
        burst: float,
        capacity: int,
        memory: float,
    ) -> None:
        self.budget = budget
        self.verified_ratio = verified_ratio
        self.capacity = capacity
        self.memory = memory
        self._records: OrderedDict[object, AddressRecord] = OrderedDict()
        self._shared = TokenBucket(rate, burst)

    def heard(self, address: object, nbytes: int, now: float) -> None:
        record = self._records.get(address)
        if record is None:
            record = self._records[address] = AddressRecord()
            if len(self._records) > self.capacity:
                self._evict()
        else:
            self._records.move_to_end(address)
        record.received += nbytes
        record.last_heard = now

    def verify(self, address: object, now: float) -> None:
        self.heard(address, 0, now)
        self._records[address].verified = True

    def is_verified(self, address: object) -> bool:
        record = self._records.get(address)
        return record is not None and record.verified

    def may_send(self, address: object, nbytes: int, now: float, *, keep: int = 0) -> bool:
        """Charge `nbytes` towards `address`; False (and nothing charged) if over budget.

        Only the bytes beyond what an unverified address sent us come from the shared rate:
        what it sent pays for the rest, so many honest strangers at once do not starve each
        other. `keep` bytes of the shared rate stay for what matters more (the exchange that
        proves an address: `Node`'s handshake).
        """
        record = self._records.get(address)
        if record is None:
            # never heard from (an address a local command chose): the fixed budget applies
            self.heard(address, 0, now)
            record = self._records[address]
        ratio = self.verified_ratio if record.verified else 1.0
        if record.sent + nbytes > max(record.received * ratio, self.budget):
            return False
        if not record.verified:
            gift = record.sent + nbytes - max(record.sent, record.received)
            if gift > 0 and not self._shared.take(now, gift, keep):
                return False
        record.sent += nbytes
        return True

    def expire(self, now: float) -> None:
        for address in [a for a, r in self._records.items() if now - r.last_heard >= self.memory]:
            del self._records[address]

    def _evict(self) -> None:
        """Forget the least recently heard unverified address (or, failing that, any)."""
        for address, record in self._records.items():
            if not record.verified:
                del self._records[address]
                return
        self._records.popitem(last=False)

    def __len__(self) -> int:
        return len(self._records)
