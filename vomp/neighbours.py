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


class NeighbourTable:
    """Neighbours by SID, with expiry, plus our own outgoing sequence counters."""

    def __init__(self, rng: random.Random) -> None:
        self._by_sid: dict[bytes, Neighbour] = {}
        # §9.2 REC: a random start, so a quick restart is not mistaken for duplicates.
        self._frame_seq = rng.randrange(256)
        self._packet_seq: dict[object, int] = {}

    def __contains__(self, sid: object) -> bool:
        return sid in self._by_sid

    def __iter__(self):
        return iter(list(self._by_sid.values()))

    def __len__(self) -> int:
        return len(self._by_sid)

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
    ) -> tuple[Neighbour, bool]:
        """Record a packet from `sid`; returns (neighbour, True if it is new)."""
        neighbour = self._by_sid.get(sid)
        is_new = neighbour is None
        if neighbour is None:
            neighbour = Neighbour(sid, address, interface, now)
            self._by_sid[sid] = neighbour
        elif now - neighbour.last_heard > LINK_TIMEOUT:
            # The link went down: the peer may have restarted and renumbered (§9.2), so old
            # frame seqs and packet seqs say nothing about the new ones.
            neighbour.frames = FrameSeqWindow()
            neighbour.unicast_acks = PacketSeqAcks()
            neighbour.broadcast_acks = PacketSeqAcks()
        neighbour.address = address
        neighbour.interface = interface
        neighbour.last_heard = now
        neighbour.version = max(neighbour.version, version)
        if seq is not None:
            (neighbour.unicast_acks if unicast else neighbour.broadcast_acks).heard(seq)
        return neighbour, is_new

    def expire(self, now: float) -> list[Neighbour]:
        """Drop and return neighbours not heard for NEIGHBOUR_EXPIRY seconds."""
        gone = [n for n in self._by_sid.values() if now - n.last_heard >= NEIGHBOUR_EXPIRY]
        for n in gone:
            del self._by_sid[n.sid]
        return gone

    def next_frame_seq(self) -> int:
        seq = self._frame_seq
        self._frame_seq = (seq + 1) % 256
        return seq

    def next_packet_seq(self, destination: object) -> int:
        """Our packet seq for one destination address (a peer's address or BROADCAST)."""
        seq = (self._packet_seq.get(destination, -1) + 1) % 256
        self._packet_seq[destination] = seq
        return seq
