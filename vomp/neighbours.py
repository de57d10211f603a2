"""One-hop neighbours (SPEC §9): who we hear, their sequence numbers, and what we owe them.

batman-adv does multi-hop routing below us, so every peer on the mesh is a direct overlay
neighbour; this table is all the "routing" we do. We never advertise routes and never forward.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

TICK_INTERVAL = 0.5  # s: broadcast tick and link-state to every neighbour (§9.1, §9.3 REC)
ACK_SOON_DELAY = 0.05  # s: ack an ACK_SOON frame well within servald's ~100 ms wish (§9.4)
NEIGHBOUR_EXPIRY = 12.0  # s: longer than servald's idle tick (5 s) so a quiet peer does not flap
LINK_TIMEOUT = 2.5  # s: servald's reachable_timeout; silent longer, the link counts as down
FRAME_WINDOW = 64  # frames remembered per sender for de-duplication (§9.2)
ACK_MASK_BITS = 32
# Neighbours kept; a stranger flooding made-up SIDs evicts only strangers. Each gets a link-state
# frame every tick, and all frames share one 8-bit frame seq: 128 of them between two frames to
# a call's peer still leave its 64-frame de-dup window unmistakable (§9.2).
NEIGHBOUR_LIMIT = 128
CLAIM_LIMIT = 64  # "this SID is also over here" claims kept until one proves itself


class FrameSeqWindow:
    """§9.2 de-dup: newest frame seq N from one packet sender plus a 64-bit "seen" mask.

    Bit d of the mask stands for seq N-1-d. This is the algorithm of the spec, step for step.
    """

    def __init__(self) -> None:
        self.newest: int | None = None
        self.mask = 0

    def accept(self, seq: int) -> bool:
        """True if `seq` is new (and remember it), False for a duplicate."""
        if self.newest is None:
            self.newest = seq
            return True
        if seq == self.newest:
            return False
        d = (self.newest - 1 - seq) % 256
        if d < FRAME_WINDOW:
            if self.mask & (1 << d):
                return False
            self.mask |= 1 << d
            return True
        gap = (seq - self.newest - 1) % 256
        mask = 0 if gap >= FRAME_WINDOW else ((self.mask << 1) | 1) << gap
        self.mask = mask & ((1 << FRAME_WINDOW) - 1)
        self.newest = seq
        return True


class PacketSeqAcks:
    """The packet seqs heard from a neighbour on one link, as ack_seq + 32-bit mask (§9.3).

    Bit k of the mask set means seq (ack_seq-1-k) was heard too. On the first seq heard we mark
    the 32 before it as heard (§9.4 REC): servald only starts numbering after our first ack, so
    those were never sent, and a sparse mask would make servald think the link is lossy.
    """

    def __init__(self) -> None:
        self.ack_seq: int | None = None
        self.mask = 0

    def heard(self, seq: int) -> None:
        if self.ack_seq is None:
            self.ack_seq, self.mask = seq, (1 << ACK_MASK_BITS) - 1
            return
        ahead = (seq - self.ack_seq) % 256
        if ahead == 0:
            return
        if ahead < 128:
            self.mask = (((self.mask << 1) | 1) << (ahead - 1)) & ((1 << ACK_MASK_BITS) - 1)
            self.ack_seq = seq
            return
        back = (self.ack_seq - 1 - seq) % 256
        if back < ACK_MASK_BITS:
            self.mask |= 1 << back


@dataclass
class Neighbour:
    """Everything we know about one peer we hear directly."""

    sid: bytes
    address: object
    interface: int
    last_heard: float
    version: int = 0
    unicast_acks: PacketSeqAcks = field(default_factory=PacketSeqAcks)
    broadcast_acks: PacketSeqAcks = field(default_factory=PacketSeqAcks)
    frames: FrameSeqWindow = field(default_factory=FrameSeqWindow)
    ack_due_at: float | None = None
    # True once a fresh crypto_box from this SID arrived from `address`: only such a frame
    # proves the peer is there, as anyone can write any SID into a packet header.
    confirmed: bool = False


class NeighbourTable:
    """Neighbours by SID, with expiry, plus our own outgoing sequence counters.

    A neighbour's address is where we first heard it. A packet claiming its SID from another
    address does not move it (that would let anyone redirect a call with a bare header): it
    is kept apart as a *claim*, with its own sequence state, until a frame authenticated by
    that SID arrives from there (`confirm`), which moves the neighbour.
    """

    def __init__(self, rng: random.Random) -> None:
        self._by_sid: dict[bytes, Neighbour] = {}
        self._claims: dict[tuple[bytes, object], Neighbour] = {}
        # §9.2 REC: a random start, so a quick restart is not mistaken for duplicates.
        self._frame_seq = rng.randrange(256)
        self._packet_seq: dict[object, int] = {}
        self.evicted: list[Neighbour] = []  # strangers pushed out by newcomers, for PeerLost

    def __contains__(self, sid: object) -> bool:
        return sid in self._by_sid

    def __iter__(self):
        return iter(list(self._by_sid.values()))

    def __len__(self) -> int:
        return len(self._by_sid)

    @property
    def claims(self) -> int:
        return len(self._claims)

    def claim_sids(self) -> set[bytes]:
        return {sid for sid, _address in self._claims}

    def get(self, sid: bytes) -> Neighbour | None:
        return self._by_sid.get(sid)

    def heard(
        self,
        sid: bytes,
        address: object,
        *,
        interface: int,
        version: int,
        seq: int | None,
        unicast: bool,
        now: float,
    ) -> tuple[Neighbour | None, bool]:
        """Record a packet from `sid`; returns (record, True if it is a new neighbour).

        The record is the neighbour itself, or a claim when the packet came from another
        address; None when the table is full of confirmed neighbours.
        """
        neighbour = self._by_sid.get(sid)
        is_new = False
        if neighbour is not None and neighbour.address != address:
            neighbour = self._claim(sid, address, interface, now)
        elif neighbour is None:
            if len(self._by_sid) >= NEIGHBOUR_LIMIT and not self._evict_stranger():
                return None, False
            neighbour = Neighbour(sid, address, interface, now)
            self._by_sid[sid] = neighbour
            is_new = True
        self._refresh(neighbour, interface, version, seq, unicast, now)
        return neighbour, is_new

    def confirm(self, sid: bytes, address: object) -> bool:
        """A fresh authenticated frame from `sid` came from `address`: it is really there.
        Returns True if that moved the neighbour to this address."""
        claim = self._claims.pop((sid, address), None)
        neighbour = self._by_sid.get(sid)
        if claim is not None:
            claim.confirmed = True
            claim.version = max(claim.version, neighbour.version if neighbour else 0)
            self._by_sid[sid] = claim
            return True
        if neighbour is not None and neighbour.address == address:
            neighbour.confirmed = True
        return False

    def _claim(self, sid: bytes, address: object, interface: int, now: float) -> Neighbour:
        claim = self._claims.get((sid, address))
        if claim is None:
            claim = Neighbour(sid, address, interface, now)
            self._claims[(sid, address)] = claim
            if len(self._claims) > CLAIM_LIMIT:
                del self._claims[next(iter(self._claims))]
        return claim

    @staticmethod
    def _refresh(neighbour, interface, version, seq, unicast, now) -> None:
        if now - neighbour.last_heard > LINK_TIMEOUT:
            # The link went down: the peer may have restarted and renumbered (§9.2), so old
            # frame seqs and packet seqs say nothing about the new ones.
            neighbour.frames = FrameSeqWindow()
            neighbour.unicast_acks = PacketSeqAcks()
            neighbour.broadcast_acks = PacketSeqAcks()
        neighbour.interface = interface
        neighbour.last_heard = now
        neighbour.version = max(neighbour.version, version)
        if seq is not None:
            (neighbour.unicast_acks if unicast else neighbour.broadcast_acks).heard(seq)

    def _evict_stranger(self) -> bool:
        """Make room by dropping the longest-silent unconfirmed neighbour, if there is one."""
        strangers = [n for n in self._by_sid.values() if not n.confirmed]
        if not strangers:
            return False
        oldest = min(strangers, key=lambda n: n.last_heard)
        del self._by_sid[oldest.sid]
        self.evicted.append(oldest)
        return True

    def expire(self, now: float) -> list[Neighbour]:
        """Drop and return neighbours not heard for NEIGHBOUR_EXPIRY seconds (claims too)."""
        gone = [n for n in self._by_sid.values() if now - n.last_heard >= NEIGHBOUR_EXPIRY]
        for n in gone:
            del self._by_sid[n.sid]
        for key in [k for k, c in self._claims.items() if now - c.last_heard >= NEIGHBOUR_EXPIRY]:
            del self._claims[key]
        gone += self.evicted
        self.evicted = []
        return gone

    def forget_packet_seqs(self, keep: set[object]) -> None:
        """Drop our packet counters for addresses no longer in use (all but `keep`)."""
        for destination in [d for d in self._packet_seq if d not in keep]:
            del self._packet_seq[destination]

    @property
    def packet_seq_destinations(self) -> int:
        return len(self._packet_seq)

    def next_frame_seq(self) -> int:
        seq = self._frame_seq
        self._frame_seq = (seq + 1) % 256
        return seq

    def next_packet_seq(self, destination: object) -> int:
        """Our packet seq for one destination address (a peer's address or BROADCAST)."""
        seq = (self._packet_seq.get(destination, -1) + 1) % 256
        self._packet_seq[destination] = seq
        return seq
