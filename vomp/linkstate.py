"""Link-state records (SPEC §9.3, MDP port 2, cleartext): neighbour acks and route adverts.

Addresses inside the payload use a fresh decode context whose sender (0xFF) is the frame
source. We only ever send neighbour records: receiver SELF, transmitter = the neighbour.
"""

from __future__ import annotations

from dataclasses import dataclass

from vomp import address as addr
from vomp.address import Address, AddressBook, DecodeContext
from vomp.wire import Reader, u8, u32

HAS_INTERFACE = 0x01
NO_PATH = 0x02
BROADCAST = 0x04
UNICAST = 0x08
HAS_ACK = 0x10
HAS_DROP_RATE = 0x20

FLAG_NAMES = (
    (HAS_INTERFACE, "HAS_INTERFACE"),
    (NO_PATH, "NO_PATH"),
    (BROADCAST, "BROADCAST"),
    (UNICAST, "UNICAST"),
    (HAS_ACK, "HAS_ACK"),
    (HAS_DROP_RATE, "HAS_DROP_RATE"),
)

# servald keeps link-state payloads to this size; so do we.
MAX_PAYLOAD = 400


@dataclass(frozen=True, slots=True)
class LinkRecord:
    """'transmitter can deliver to receiver', with the ack state of that link."""

    flags: int
    receiver: Address
    version: int = 1
    transmitter: Address | None = None
    interface: int | None = None
    ack_seq: int | None = None
    ack_mask: int | None = None
    drop_rate: int | None = None
    offset: int = 0
    raw: bytes = b""

    @property
    def receiver_sid(self) -> bytes | None:
        return self.receiver.sid

    @property
    def transmitter_sid(self) -> bytes | None:
        return self.transmitter.sid if self.transmitter else None

    @property
    def is_neighbour_record(self) -> bool:
        """A record about the advertiser's own link (receiver SELF), as opposed to a route."""
        return self.receiver.code == addr.CODE_SELF

    @property
    def acked_seqs(self) -> list[int]:
        """ack_seq, then every seq (ack_seq-1-k) mod 256 whose mask bit k is set."""
        if self.ack_seq is None:
            return []
        mask = self.ack_mask or 0
        seqs = [self.ack_seq]
        seqs += [(self.ack_seq - 1 - k) & 0xFF for k in range(32) if mask >> k & 1]
        return seqs


def neighbour_record(
    transmitter_sid: bytes,
    interface: int,
    *,
    unicast: bool = True,
    ack_seq: int | None = None,
    ack_mask: int = 0,
) -> LinkRecord:
    """What we send per neighbour: receiver SELF, full transmitter SID, its interface."""
    flags = HAS_INTERFACE | (UNICAST if unicast else BROADCAST)
    if ack_seq is not None:
        flags |= HAS_ACK
    return LinkRecord(
        flags,
        addr.self_address(),
        1,
        addr.full(transmitter_sid),
        interface,
        ack_seq,
        ack_mask if ack_seq is not None else None,
    )


def parse_linkstate(
    body: bytes, frame_source: bytes | None, book: AddressBook, *, learn: bool = True
) -> tuple[list[LinkRecord], list[bytes]]:
    """Records and the unresolved prefixes met; a record with unknown addresses keeps sid=None."""
    ctx = DecodeContext(book, sender=frame_source, learn=learn)
    reader = Reader(body)
    records = []
    while reader.remaining:
        start = reader.offset
        length = reader.peek_u8("record length")
        if length == 0:
            break
        rec = reader.sub(length, "link-state record")
        rec.u8()
        flags = rec.u8("record flags")
        receiver = ctx.read(rec, "record receiver")
        version = rec.u8("record version")
        transmitter = None if flags & NO_PATH else ctx.read(rec, "record transmitter")
        interface = rec.u8("record interface") if flags & HAS_INTERFACE else None
        ack_seq = ack_mask = None
        if flags & HAS_ACK:
            ack_seq = rec.u8("ack seq")
            ack_mask = rec.u32("ack mask")
        drop_rate = rec.u8("drop rate") if flags & HAS_DROP_RATE else None
        records.append(
            LinkRecord(
                flags,
                receiver,
                version,
                transmitter,
                interface,
                ack_seq,
                ack_mask,
                drop_rate,
                start,
                body[start : start + length],
            )
        )
    return records, ctx.unknown_prefixes


def encode_record(record: LinkRecord) -> bytes:
    flags = record.flags
    out = bytearray()
    out += record.receiver.encode()
    out += u8(record.version)
    if not flags & NO_PATH:
        if record.transmitter is None:
            raise ValueError("a record without NO_PATH needs a transmitter")
        out += record.transmitter.encode()
    if flags & HAS_INTERFACE:
        out += u8(record.interface or 0)
    if flags & HAS_ACK:
        if record.ack_seq is None:
            raise ValueError("HAS_ACK needs ack_seq")
        out += u8(record.ack_seq) + u32(record.ack_mask or 0)
    if flags & HAS_DROP_RATE:
        out += u8(record.drop_rate or 0)
    length = len(out) + 2
    if length > 0xFF:
        raise ValueError("link-state record too long")
    return bytes((length, flags)) + bytes(out)


def encode_linkstate(records: list[LinkRecord]) -> bytes:
    body = b"".join(encode_record(r) for r in records)
    if len(body) > MAX_PAYLOAD:
        raise ValueError(f"link-state body of {len(body)} bytes exceeds {MAX_PAYLOAD}")
    return body
