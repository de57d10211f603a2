"""Overlay packets and frames (SPEC §5-§6): one packet per UDP datagram, frames inside.

`parse_packet` resolves addresses against an AddressBook and keeps going past frames whose
addresses are unknown (they are reported, for PLEASE_EXPLAIN, and marked unresolved);
anything structurally broken raises ParseError, and the whole datagram should be dropped,
as servald stops parsing there too.

`encode_packet` writes what servald expects from us; every address may carry an explicit
wire form (`*_address`) so servald's own packets, abbreviations and 0xFE included, can be
reproduced byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vomp import address as addr
from vomp.address import Address, AddressBook, DecodeContext
from vomp.wire import ParseError, Reader, u8, u16

MTU = 1200

# Packet header flags (SPEC §5).
PACKET_UNICAST = 0x01
PACKET_HAS_INTERFACE = 0x02
PACKET_HAS_SEQ = 0x04

ENCAP_OVERLAY = 1
ENCAP_SINGLE = 2

# Frame flags (SPEC §6).
SENDER_SAME = 0x01
TO_BROADCAST = 0x02
ONE_HOP = 0x04
CIPHERED = 0x10
SIGNED = 0x20
ACK_SOON = 0x40
HAS_TYPE = 0x80

# Frame types.
TYPE_LEGACY_ACK = 0x20
TYPE_DATA = 0x30
TYPE_RHIZOME_ADVERT = 0x50
TYPE_PLEASE_EXPLAIN = 0x60

BROADCAST_ID_LEN = 8

PACKET_FLAG_NAMES = ((PACKET_UNICAST, "UNICAST"), (PACKET_HAS_INTERFACE, "HAS_INTERFACE"),
                     (PACKET_HAS_SEQ, "HAS_SEQ"))  # fmt: skip
FRAME_FLAG_NAMES = (
    (SENDER_SAME, "SENDER_SAME"),
    (TO_BROADCAST, "TO_BROADCAST"),
    (ONE_HOP, "ONE_HOP"),
    (CIPHERED, "CIPHERED"),
    (SIGNED, "SIGNED"),
    (ACK_SOON, "ACK_SOON"),
    (HAS_TYPE, "HAS_TYPE"),
)
TYPE_NAMES = {
    TYPE_DATA: "DATA",
    TYPE_PLEASE_EXPLAIN: "PLEASE_EXPLAIN",
    TYPE_RHIZOME_ADVERT: "RHIZOME_ADVERT",
    TYPE_LEGACY_ACK: "LEGACY_ACK",
}


class PacketTooLarge(ValueError):
    """An encoded packet would exceed the 1200-byte MTU servald enforces."""


def flag_names(flags: int, table: tuple[tuple[int, str], ...]) -> list[str]:
    return [name for bit, name in table if flags & bit]


@dataclass(slots=True)
class Frame:
    """One overlay frame. `flags` is the wire flag byte and says how the rest is encoded.

    source/destination/next_hop are resolved SIDs (None: unresolved, or no destination for a
    broadcast). The `*_address` fields hold the wire form when parsed; when encoding, None
    means "write the full SID" (and for the source with SENDER_SAME: write nothing).
    ttl/qos are None for ONE_HOP frames; frame_seq is None in version-0 packets.
    """

    flags: int
    source: bytes | None
    destination: bytes | None
    payload: bytes = b""
    type: int = TYPE_DATA
    frame_seq: int | None = None
    broadcast_id: bytes | None = None
    ttl: int | None = None
    qos: int | None = None
    next_hop: bytes | None = None
    source_address: Address | None = None
    destination_address: Address | None = None
    next_hop_address: Address | None = None
    offset: int | None = None

    @classmethod
    def to_peer(
        cls,
        source: bytes,
        destination: bytes,
        payload: bytes,
        *,
        crypto_flags: int = 0,
        ack_soon: bool = False,
        type: int = TYPE_DATA,
        frame_seq: int | None = None,
    ) -> Frame:
        """A frame for a direct neighbour: SENDER_SAME|ONE_HOP + full destination."""
        flags = SENDER_SAME | ONE_HOP | crypto_flags | (ACK_SOON if ack_soon else 0)
        return cls(flags, source, destination, payload, type, frame_seq)

    @classmethod
    def local_broadcast(
        cls,
        source: bytes,
        payload: bytes,
        *,
        crypto_flags: int = 0,
        ack_soon: bool = False,
        type: int = TYPE_DATA,
        frame_seq: int | None = None,
    ) -> Frame:
        """A frame for every neighbour: SENDER_SAME|TO_BROADCAST|ONE_HOP, no broadcast id."""
        flags = SENDER_SAME | TO_BROADCAST | ONE_HOP | crypto_flags | (ACK_SOON if ack_soon else 0)
        return cls(flags, source, None, payload, type, frame_seq)

    @property
    def is_broadcast(self) -> bool:
        return bool(self.flags & TO_BROADCAST)

    @property
    def one_hop(self) -> bool:
        return bool(self.flags & ONE_HOP)

    @property
    def sender_same(self) -> bool:
        return bool(self.flags & SENDER_SAME)

    @property
    def ciphered(self) -> bool:
        return bool(self.flags & CIPHERED)

    @property
    def signed(self) -> bool:
        return bool(self.flags & SIGNED)

    @property
    def ack_soon(self) -> bool:
        return bool(self.flags & ACK_SOON)

    @property
    def crypto_flags(self) -> int:
        return self.flags & (CIPHERED | SIGNED)

    @property
    def source_sid(self) -> bytes:
        """The source SID of a frame that is `resolved`; ValueError for one that is not."""
        if self.source is None:
            raise ValueError("the frame's source is not resolved")
        return self.source

    @property
    def resolved(self) -> bool:
        """Every address in the frame is known, so it may be processed (SPEC §6 rule 1)."""
        if self.source is None:
            return False
        if not self.is_broadcast and self.destination is None:
            return False
        return not (self.next_hop_address is not None and self.next_hop is None)


@dataclass(slots=True)
class Packet:
    """One datagram. `flags` holds UNICAST; HAS_INTERFACE/HAS_SEQ follow interface/seq."""

    sender: bytes | None
    frames: list[Frame] = field(default_factory=list)
    flags: int = 0
    interface: int | None = None
    seq: int | None = None
    version: int = 1
    encapsulation: int = ENCAP_OVERLAY
    sender_address: Address | None = None

    @property
    def unicast(self) -> bool:
        return bool(self.flags & PACKET_UNICAST)

    @property
    def is_tick(self) -> bool:
        return not self.frames


@dataclass(slots=True)
class ParsedPacket:
    """A parsed datagram: `packet.frames` holds every frame in order, resolved or not."""

    packet: Packet
    header_length: int
    unknown_prefixes: list[bytes]

    @property
    def frames(self) -> list[Frame]:
        """The frames that may be processed (all addresses known)."""
        return [f for f in self.packet.frames if f.resolved]

    @property
    def skipped_frames(self) -> list[Frame]:
        """Frames skipped for unknown addresses (their prefixes are in unknown_prefixes)."""
        return [f for f in self.packet.frames if not f.resolved]


def parse_packet(data: bytes, book: AddressBook, *, learn: bool = True) -> ParsedPacket:
    """Parse one datagram; with `learn`, full SIDs and sign keys seen go into `book`."""
    reader = Reader(data)
    version = reader.u8("packet version")
    if version > 1:
        raise ParseError(f"unsupported packet version {version}")
    encapsulation = reader.u8("encapsulation")
    if encapsulation not in (ENCAP_OVERLAY, ENCAP_SINGLE):
        raise ParseError(f"unknown encapsulation {encapsulation}")
    ctx = DecodeContext(book, learn=learn)
    sender_address = ctx.read(reader, "packet sender")
    if sender_address.code in (addr.CODE_SELF, addr.CODE_PREVIOUS):
        raise ParseError("packet sender cannot be SELF or PREVIOUS")
    ctx.sender = sender_address.sid
    flags = reader.u8("packet flags")
    interface = reader.u8("interface") if flags & PACKET_HAS_INTERFACE else None
    seq = reader.u8("packet seq") if flags & PACKET_HAS_SEQ else None
    packet = Packet(
        sender_address.sid, [], flags, interface, seq, version, encapsulation, sender_address
    )
    header_length = reader.offset
    while reader.remaining:
        packet.frames.append(_parse_frame(reader, ctx, version, encapsulation))
        if encapsulation == ENCAP_SINGLE:
            break
    return ParsedPacket(packet, header_length, ctx.unknown_prefixes)


def _parse_frame(reader: Reader, ctx: DecodeContext, version: int, encapsulation: int) -> Frame:
    offset = reader.offset
    flags = reader.u8("frame flags")
    source_address = None
    if flags & SENDER_SAME:
        source = ctx.sender
    else:
        source_address = ctx.read(reader, "frame source")
        source = source_address.sid
    broadcast_id = destination = destination_address = None
    next_hop = next_hop_address = None
    if flags & TO_BROADCAST:
        if not flags & ONE_HOP:
            broadcast_id = reader.take(BROADCAST_ID_LEN, "broadcast id")
    else:
        destination_address = ctx.read(reader, "frame destination")
        destination = destination_address.sid
        if not flags & ONE_HOP:
            next_hop_address = ctx.read(reader, "frame next hop")
            next_hop = next_hop_address.sid
    ttl = qos = None
    if not flags & ONE_HOP:
        ttl_qos = reader.u8("ttl/qos")
        ttl, qos = ttl_qos & 0x1F, (ttl_qos >> 5) & 0x03
    frame_type = reader.u8("frame type") if flags & HAS_TYPE else TYPE_DATA
    frame_seq = reader.u8("frame seq") if version >= 1 else None
    if encapsulation == ENCAP_OVERLAY:
        length = reader.u16("frame length")
        payload = reader.take(length, "frame payload")
    else:
        payload = reader.rest()
    return Frame(
        flags,
        source,
        destination,
        payload,
        frame_type,
        frame_seq,
        broadcast_id,
        ttl,
        qos,
        next_hop,
        source_address,
        destination_address,
        next_hop_address,
        offset,
    )


def encode_header(packet: Packet) -> bytes:
    if packet.sender_address is not None:
        sender = packet.sender_address
    elif packet.sender is not None:
        sender = addr.full(packet.sender)
    else:
        raise ValueError("a packet needs a sender")
    flags = packet.flags & ~(PACKET_HAS_INTERFACE | PACKET_HAS_SEQ)
    if packet.interface is not None:
        flags |= PACKET_HAS_INTERFACE
    if packet.seq is not None:
        flags |= PACKET_HAS_SEQ
    out = bytearray((packet.version, packet.encapsulation))
    out += sender.encode()
    out.append(flags)
    if packet.interface is not None:
        out += u8(packet.interface)
    if packet.seq is not None:
        out += u8(packet.seq)
    return bytes(out)


def encode_frame(frame: Frame, *, version: int = 1, encapsulation: int = ENCAP_OVERLAY) -> bytes:
    """One frame's bytes; `flags` decides the layout, addresses default to full SIDs."""
    flags = frame.flags
    if frame.type != TYPE_DATA:
        flags |= HAS_TYPE
    if flags & CIPHERED and not flags & SIGNED:
        raise ValueError("never send CIPHERED without SIGNED (servald discards it)")
    out = bytearray((flags,))
    if not flags & SENDER_SAME:
        out += _address(frame.source_address, frame.source, "source")
    if flags & TO_BROADCAST:
        if not flags & ONE_HOP:
            if frame.broadcast_id is None or len(frame.broadcast_id) != BROADCAST_ID_LEN:
                raise ValueError("a multi-hop broadcast frame needs an 8-byte broadcast id")
            out += frame.broadcast_id
    else:
        out += _address(frame.destination_address, frame.destination, "destination")
        if not flags & ONE_HOP:
            out += _address(frame.next_hop_address, frame.next_hop, "next hop")
    if not flags & ONE_HOP:
        ttl = 31 if frame.ttl is None else frame.ttl
        qos = 3 if frame.qos is None else frame.qos
        if not (0 <= ttl <= 0x1F and 0 <= qos <= 3):
            raise ValueError("ttl is 0..31 and qos 0..3")
        out.append(ttl | qos << 5)
    if flags & HAS_TYPE:
        out.append(frame.type)
    if version >= 1:
        if frame.frame_seq is None:
            raise ValueError("version-1 packets need a frame seq on every frame")
        out.append(frame.frame_seq & 0xFF)
    if encapsulation == ENCAP_OVERLAY:
        if len(frame.payload) > 0xFFFF:
            raise ValueError("frame payload longer than 65535 bytes")
        out += u16(len(frame.payload))
    out += frame.payload
    return bytes(out)


def _address(wire: Address | None, sid: bytes | None, what: str) -> bytes:
    if wire is not None:
        return wire.encode()
    if sid is None:
        raise ValueError(f"frame {what} missing")
    return addr.encode_sid(sid)


def encode_packet(packet: Packet, *, mtu: int = MTU) -> bytes:
    """The datagram for `packet`; raises PacketTooLarge beyond the MTU."""
    if packet.encapsulation == ENCAP_SINGLE and len(packet.frames) > 1:
        raise ValueError("SINGLE encapsulation carries one frame")
    sender = packet.sender
    if sender is None and packet.sender_address is not None:
        sender = packet.sender_address.sid
    out = bytearray(encode_header(packet))
    for frame in packet.frames:
        if (
            frame.flags & SENDER_SAME
            and None not in (frame.source, sender)
            and frame.source != sender
        ):
            raise ValueError("SENDER_SAME frame whose source is not the packet sender")
        out += encode_frame(frame, version=packet.version, encapsulation=packet.encapsulation)
    if len(out) > mtu:
        raise PacketTooLarge(f"packet of {len(out)} bytes exceeds the {mtu}-byte MTU")
    return bytes(out)
