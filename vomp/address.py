"""Overlay addresses (SPEC §4): the code byte, the address book and the decode context.

A received address may be abbreviated to a SID prefix, or refer to the packet sender (0xFF)
or to the previous address (0xFE); resolving it needs the set of SIDs we know (AddressBook)
and the per-packet DecodeContext. An address that cannot be resolved is not an error: the
frame holding it is skipped and its prefix is asked about with PLEASE_EXPLAIN.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from nacl.exceptions import CryptoError

from vomp.identity import SID_LEN, SIGN_KEY_LEN, sid_from_sign_key
from vomp.wire import ParseError, Reader

ABBREV_MIN = 0x01
ABBREV_MAX = 0x1F
CODE_FULL = 0x20
CODE_SIGNKEY = 0xFB
CODE_P2P_ME = 0xFC
CODE_P2P_YOU = 0xFD
CODE_PREVIOUS = 0xFE
CODE_SELF = 0xFF
UNKNOWN_PREFIXES_MAX = 32  # per packet: enough to ask about, too few to cost much to collect


@dataclass(frozen=True, slots=True)
class Address:
    """One address as it was (or will be) on the wire, plus the SID it resolved to.

    `code` is the first byte, `data` the bytes after it (prefix, SID or sign key).
    `sid` is None when the address could not be resolved.
    """

    code: int
    data: bytes = b""
    sid: bytes | None = None

    @property
    def is_abbreviation(self) -> bool:
        return ABBREV_MIN <= self.code <= ABBREV_MAX

    @property
    def sign_key(self) -> bytes | None:
        return self.data if self.code == CODE_SIGNKEY else None

    def encode(self) -> bytes:
        return bytes([self.code]) + self.data


def full(sid: bytes) -> Address:
    """0x20 + SID: what we put in every address we send."""
    if len(sid) != SID_LEN:
        raise ValueError(f"a SID is {SID_LEN} bytes, got {len(sid)}")
    return Address(CODE_FULL, bytes(sid), bytes(sid))


def signkey(sign_public: bytes) -> Address:
    """0xFB + Ed25519 key: tells the receiver our SID and our verification key at once."""
    if len(sign_public) != SIGN_KEY_LEN:
        raise ValueError(f"a sign key is {SIGN_KEY_LEN} bytes")
    return Address(CODE_SIGNKEY, bytes(sign_public), sid_from_sign_key(sign_public))


def self_address(sid: bytes | None = None) -> Address:
    """0xFF: the packet sender (in link-state: the frame source)."""
    return Address(CODE_SELF, b"", sid)


def previous(sid: bytes | None = None) -> Address:
    """0xFE: the address decoded just before in the same context (we only send it in tests)."""
    return Address(CODE_PREVIOUS, b"", sid)


def abbreviated(prefix: bytes, sid: bytes | None = None) -> Address:
    """1..31 leading bytes of a SID, as servald writes them (we only send it in tests)."""
    if not ABBREV_MIN <= len(prefix) <= ABBREV_MAX:
        raise ValueError("an abbreviation is 1..31 bytes")
    return Address(len(prefix), bytes(prefix), sid)


def encode_sid(sid: bytes) -> bytes:
    return full(sid).encode()


class AddressBook:
    """The SIDs we know (and their Ed25519 keys), for unique-prefix resolution (SPEC §4).

    At most `capacity` SIDs: once full, new SIDs are not learnt (a full SID in a header still
    resolves by itself) until the owner `forget`s the ones it no longer needs.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self._sorted: list[bytes] = []
        self._sign_keys: dict[bytes, bytes | None] = {}
        self._sid_of_key: dict[bytes, bytes] = {}
        self.refused = 0  # SIDs not learnt because the book was full
        # Curve conversions (0xFB key -> SID) still allowed; None: no limit. The owner resets
        # it per datagram, so a packet full of unknown 0xFB keys costs a bounded amount.
        self.conversions_left: int | None = None

    def learn(self, sid: bytes, sign_key: bytes | None = None) -> None:
        """Remember a SID; a sign key is only ever added, never replaced by None."""
        sid = bytes(sid)
        if len(sid) != SID_LEN:
            raise ValueError(f"a SID is {SID_LEN} bytes")
        if sid not in self._sign_keys:
            if self.capacity is not None and len(self._sorted) >= self.capacity:
                self.refused += 1
                return
            bisect.insort(self._sorted, sid)
            self._sign_keys[sid] = None
        if sign_key is not None:
            self._sign_keys[sid] = bytes(sign_key)
            self._sid_of_key[bytes(sign_key)] = sid

    def forget(self, sid: bytes) -> None:
        if sid in self._sign_keys:
            key = self._sign_keys.pop(sid)
            if key is not None:
                self._sid_of_key.pop(key, None)
            del self._sorted[bisect.bisect_left(self._sorted, sid)]

    def may_convert(self) -> bool:
        return self.conversions_left is None or self.conversions_left > 0

    def sid_of_sign_key(self, sign_key: bytes) -> bytes | None:
        """The SID of a 0xFB key: from the book if known, else converted while the
        per-datagram allowance lasts; None if the key is not a valid point or over budget."""
        known = self._sid_of_key.get(bytes(sign_key))
        if known is not None:
            return known
        if self.conversions_left is not None:
            if self.conversions_left <= 0:
                return None
            self.conversions_left -= 1
        try:
            return sid_from_sign_key(sign_key)
        except CryptoError:  # not a valid curve point: no SID can be derived
            return None

    def __contains__(self, sid: object) -> bool:
        return sid in self._sign_keys

    def __len__(self) -> int:
        return len(self._sorted)

    def __iter__(self):
        return iter(list(self._sorted))

    def sign_key(self, sid: bytes) -> bytes | None:
        return self._sign_keys.get(sid)

    def resolve_prefix(self, prefix: bytes) -> bytes | None:
        """The one known SID starting with `prefix`; None if none or several do."""
        i = bisect.bisect_left(self._sorted, prefix)
        if i >= len(self._sorted) or not self._sorted[i].startswith(prefix):
            return None
        if i + 1 < len(self._sorted) and self._sorted[i + 1].startswith(prefix):
            return None
        return self._sorted[i]

    def matches(self, prefix: bytes, limit: int | None = None) -> list[bytes]:
        """Known SIDs starting with `prefix`, at most `limit` (for answering PLEASE_EXPLAIN)."""
        i = bisect.bisect_left(self._sorted, prefix)
        found: list[bytes] = []
        while i < len(self._sorted) and self._sorted[i].startswith(prefix):
            if limit is not None and len(found) >= limit:
                break
            found.append(self._sorted[i])
            i += 1
        return found


@dataclass(slots=True)
class DecodeContext:
    """Per-packet address state: the sender (for 0xFF) and the previous address (for 0xFE).

    One context spans all frames of a packet; link-state payloads get a fresh one whose
    sender is the frame source. With `learn`, full SIDs and 0xFB keys go into the book.
    Prefixes that did not resolve collect in `unknown_prefixes` (for PLEASE_EXPLAIN).
    """

    book: AddressBook
    sender: bytes | None = None
    previous: bytes | None = None
    learn: bool = True
    unknown_prefixes: list[bytes] = field(default_factory=list)

    def fresh(self, sender: bytes | None) -> DecodeContext:
        """The context a link-state payload is decoded in (sharing the unknown list)."""
        return DecodeContext(self.book, sender, None, self.learn, self.unknown_prefixes)

    def read(self, reader: Reader, what: str = "address") -> Address:
        """Read and resolve one address; invalid codes raise ParseError."""
        code = reader.u8(what)
        if ABBREV_MIN <= code <= ABBREV_MAX:
            prefix = reader.take(code, what)
            sid = self.book.resolve_prefix(prefix)
            unknown = self.unknown_prefixes
            if sid is None and len(unknown) < UNKNOWN_PREFIXES_MAX and prefix not in unknown:
                unknown.append(prefix)
            return self._resolved(Address(code, prefix, sid))
        if code == CODE_FULL:
            sid = reader.take(SID_LEN, what)
            if self.learn:
                self.book.learn(sid)
            return self._resolved(Address(code, sid, sid))
        if code == CODE_SIGNKEY:
            key = reader.take(SIGN_KEY_LEN, what)
            sid = self.book.sid_of_sign_key(key)
            if sid is not None and self.learn:
                self.book.learn(sid, key)
            return self._resolved(Address(code, key, sid))
        if code in (CODE_P2P_ME, CODE_P2P_YOU):
            return self._resolved(Address(code, b"", None))
        if code == CODE_PREVIOUS:
            return self._resolved(Address(code, b"", self.previous))
        if code == CODE_SELF:
            return self._resolved(Address(code, b"", self.sender))
        raise ParseError(f"invalid address code 0x{code:02x} at offset {reader.offset - 1}")

    def _resolved(self, address: Address) -> Address:
        # An unresolved address is still "the previous one": a later 0xFE must not resolve
        # to the address before it.
        self.previous = address.sid
        return address
