"""MDP payloads (SPEC §7): port header, crypto mode and body of DATA frames.

content = varint(dst_port << 1 | same) [varint(src_port) unless same] ‖ body, and the frame
payload is that content boxed (unicast), signed (broadcast) or in clear (link-state).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from vomp import crypto
from vomp.packet import CIPHERED, SIGNED
from vomp.wire import ParseError, Reader, encode_varint

PORT_KEYMAP = 1
PORT_LINKSTATE = 2
PORT_STUN_REQUEST = 4
PORT_STUN = 5
PORT_PROBE = 6
PORT_ECHO = 7
PORT_TRACE = 8
PORT_DNA = 10
PORT_SERVICE_DISCOVERY = 11
PORT_VOMP = 12
PORT_RHIZOME_REQUEST_MANIFEST = 13
PORT_RHIZOME_RESPONSE = 14
PORT_DIRECTORY = 15
PORT_RHIZOME_MANIFEST_REQUEST = 16
PORT_RHIZOME_SYNC_BARS = 17
PORT_RHIZOME_SYNC_KEYS = 18
PORT_NO_REPLY = 0x3F
FIRST_CLIENT_PORT = 32768


class MdpMode(IntEnum):
    """How the content is protected; the value is the frame's crypto flag bits."""

    CLEAR = 0
    SIGNED = SIGNED
    BOX = CIPHERED | SIGNED


# The mode servald uses (and expects) for each service we send (SPEC §7 [REQ]).
SERVICE_MODE = {
    PORT_KEYMAP: MdpMode.BOX,
    PORT_LINKSTATE: MdpMode.CLEAR,
    PORT_VOMP: MdpMode.BOX,
}


def mode_for(dst_port: int, *, broadcast: bool) -> MdpMode:
    """The mode servald uses for a frame to `dst_port`: link-state in clear, broadcasts
    signed, everything addressed to one SID boxed (SPEC §7)."""
    if dst_port == PORT_LINKSTATE:
        return MdpMode.CLEAR
    return MdpMode.SIGNED if broadcast else MdpMode.BOX


def mode_of(frame_flags: int) -> MdpMode:
    bits = frame_flags & (CIPHERED | SIGNED)
    if bits == CIPHERED:
        raise ParseError("CIPHERED without SIGNED (servald discards these)")
    return MdpMode(bits)


@dataclass(frozen=True, slots=True)
class MdpMessage:
    dst_port: int
    src_port: int
    body: bytes
    port_header_length: int = 0


def parse_content(content: bytes) -> MdpMessage:
    """Split the (decrypted/verified) content into ports and body."""
    reader = Reader(content)
    first = reader.varint("MDP destination port")
    dst_port = first >> 1
    src_port = dst_port if first & 1 else reader.varint("MDP source port")
    header_length = reader.offset
    return MdpMessage(dst_port, src_port, reader.rest(), header_length)


MAX_PORT = 0x7FFFFFFF  # dst_port << 1 must fit the 32-bit varint


def encode_ports(dst_port: int, src_port: int) -> bytes:
    if not (0 <= dst_port <= MAX_PORT and 0 <= src_port <= MAX_PORT):
        raise ValueError(f"MDP ports are 0..{MAX_PORT}")
    if dst_port == src_port:
        return encode_varint(dst_port << 1 | 1)
    return encode_varint(dst_port << 1) + encode_varint(src_port)


def encode_content(dst_port: int, src_port: int, body: bytes) -> bytes:
    return encode_ports(dst_port, src_port) + bytes(body)


def seal(
    content: bytes,
    mode: MdpMode,
    *,
    shared_key: bytes | None = None,
    nonce: bytes | None = None,
    ed_secret: bytes | None = None,
) -> bytes:
    """The frame payload for `content` in `mode` (BOX needs key+nonce, SIGNED needs ed_secret)."""
    if mode is MdpMode.BOX:
        if shared_key is None:
            raise ValueError("a boxed frame needs the shared key")
        return crypto.box_seal(content, shared_key, nonce or crypto.random_nonce())
    if mode is MdpMode.SIGNED:
        if ed_secret is None:
            raise ValueError("a signed frame needs our Ed25519 secret")
        return crypto.sign_content(content, ed_secret)
    return bytes(content)


def open_payload(
    payload: bytes,
    mode: MdpMode,
    *,
    shared_key: bytes | None = None,
    sign_public: bytes | None = None,
) -> bytes:
    """The content of a frame payload; raises CryptoFailure if it does not authenticate.

    For SIGNED frames without a known sign key this raises crypto.MissingKey: servald drops
    such frames and asks for the key (§10); so should the caller.
    """
    if mode is MdpMode.BOX:
        if shared_key is None:
            raise MissingKey("no shared key for this crypto_box frame")
        return crypto.box_open(payload, shared_key)
    if mode is MdpMode.SIGNED:
        if sign_public is None:
            raise MissingKey("the source's sign key is unknown")
        return crypto.verify_signed(payload, sign_public)
    return bytes(payload)


class MissingKey(crypto.CryptoFailure):
    """We lack the key needed to open or verify this frame (ask for it, then retry)."""
