"""PLEASE_EXPLAIN payloads (SPEC §8, frame type 0x60): "who is this prefix?" and answers."""

from __future__ import annotations

from dataclasses import dataclass

from nacl.exceptions import CryptoError

from vomp import address as addr
from vomp.identity import SID_LEN, SIGN_KEY_LEN, sid_from_sign_key
from vomp.wire import ParseError, Reader


@dataclass(frozen=True, slots=True)
class ExplainRequest:
    """'Which SID(s) start with these bytes?'"""

    prefix: bytes


@dataclass(frozen=True, slots=True)
class ExplainAnswer:
    """'This SID exists' (0x20), or with its sign key (0xFB, SID derived from the key)."""

    sid: bytes
    sign_key: bytes | None = None


@dataclass(frozen=True, slots=True)
class ExplainWhoAreYou:
    """0xFD: point-to-point "who are you?" (never on UDP; parsed so we can ignore it)."""


ExplainEntry = ExplainRequest | ExplainAnswer | ExplainWhoAreYou


def parse_please_explain(
    payload: bytes, book: addr.AddressBook | None = None
) -> list[ExplainEntry]:
    """The entries of a payload. With `book`, 0xFB keys are converted through it (known keys
    cost nothing, others count against its per-datagram allowance; those over it are left out).
    """
    reader = Reader(payload)
    entries: list[ExplainEntry] = []
    while reader.remaining:
        code = reader.u8("explain entry")
        if addr.ABBREV_MIN <= code <= addr.ABBREV_MAX:
            entries.append(ExplainRequest(reader.take(code, "explain prefix")))
        elif code == addr.CODE_FULL:
            entries.append(ExplainAnswer(reader.take(SID_LEN, "explained SID")))
        elif code == addr.CODE_SIGNKEY:
            key = reader.take(SIGN_KEY_LEN, "explained sign key")
            if (
                book is not None
                and book.conversions_left is not None
                and book.conversions_left <= 0
            ):
                continue  # over this datagram's allowance of curve conversions
            try:
                sid = book.sid_of_sign_key(key) if book is not None else sid_from_sign_key(key)
            except CryptoError as exc:
                raise ParseError("explained sign key is not a valid Ed25519 key") from exc
            if sid is None:
                raise ParseError("explained sign key is not a valid Ed25519 key")
            entries.append(ExplainAnswer(sid, key))
        elif code == addr.CODE_P2P_YOU:
            entries.append(ExplainWhoAreYou())
        else:
            raise ParseError(f"invalid PLEASE_EXPLAIN entry code 0x{code:02x}")
    return entries


def encode_please_explain(entries: list[ExplainEntry]) -> bytes:
    out = bytearray()
    for entry in entries:
        if isinstance(entry, ExplainRequest):
            out += addr.abbreviated(entry.prefix).encode()
        elif isinstance(entry, ExplainAnswer):
            if entry.sign_key is not None:
                out += addr.signkey(entry.sign_key).encode()
            else:
                out += addr.full(entry.sid).encode()
        else:
            out.append(addr.CODE_P2P_YOU)
    return bytes(out)
