"""Primitive wire encodings (SPEC §2): fixed big-endian integers, varints, cstrings.

Every parser in vomp/ reads through `Reader`, so a short or malformed datagram always
surfaces as `ParseError` (never IndexError/struct.error) and callers need one except clause.
"""

from __future__ import annotations

# servald's varints carry 32-bit values (ports); five 7-bit groups hold them.
VARINT_MAX_BYTES = 5
VARINT_MAX = 0xFFFFFFFF


class ParseError(ValueError):
    """The bytes do not follow the wire format; the message says what and where."""


class Reader:
    """A cursor over bytes whose every read either succeeds or raises ParseError."""

    __slots__ = ("data", "end", "offset")

    def __init__(self, data: bytes, offset: int = 0, end: int | None = None) -> None:
        self.data = bytes(data)
        self.offset = offset
        self.end = len(self.data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.offset

    def _need(self, n: int, what: str) -> None:
        if n < 0 or self.offset + n > self.end:
            raise ParseError(
                f"truncated: {what} needs {n} bytes at offset {self.offset}, {self.remaining} left"
            )

    def u8(self, what: str = "u8") -> int:
        self._need(1, what)
        value = self.data[self.offset]
        self.offset += 1
        return value

    def u16(self, what: str = "u16") -> int:
        self._need(2, what)
        value = int.from_bytes(self.data[self.offset : self.offset + 2], "big")
        self.offset += 2
        return value

    def u32(self, what: str = "u32") -> int:
        self._need(4, what)
        value = int.from_bytes(self.data[self.offset : self.offset + 4], "big")
        self.offset += 4
        return value

    def take(self, n: int, what: str = "bytes") -> bytes:
        self._need(n, what)
        value = self.data[self.offset : self.offset + n]
        self.offset += n
        return value

    def peek_u8(self, what: str = "u8") -> int:
        self._need(1, what)
        return self.data[self.offset]

    def varint(self, what: str = "varint") -> int:
        """Unsigned little-endian base-128; longer than 5 bytes or above 2**32-1 is an error."""
        start = self.offset
        value = 0
        for shift in range(0, 7 * VARINT_MAX_BYTES, 7):
            byte = self.u8(what)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if value > VARINT_MAX:
                    raise ParseError(f"{what} at offset {start} exceeds 32 bits")
                return value
        raise ParseError(f"{what} at offset {start} is longer than {VARINT_MAX_BYTES} bytes")

    def cstring(self, what: str = "cstring") -> bytes:
        """Bytes up to a NUL (the NUL is consumed, not returned)."""
        nul = self.data.find(b"\0", self.offset, self.end)
        if nul < 0:
            raise ParseError(f"{what} at offset {self.offset} has no terminating NUL")
        value = self.data[self.offset : nul]
        self.offset = nul + 1
        return value

    def rest(self) -> bytes:
        value = self.data[self.offset : self.end]
        self.offset = self.end
        return value

    def sub(self, n: int, what: str = "sub-block") -> Reader:
        """A reader over the next n bytes (consumed here), sharing offsets with this one."""
        self._need(n, what)
        inner = Reader.__new__(Reader)
        inner.data = self.data
        inner.offset = self.offset
        inner.end = self.offset + n
        self.offset += n
        return inner


def encode_varint(n: int) -> bytes:
    """Shortest varint for 0 <= n <= 2**32-1 (`0` -> 00, `47095` -> f7 ef 02)."""
    if not 0 <= n <= VARINT_MAX:
        raise ValueError(f"varint out of range: {n}")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def u8(n: int) -> bytes:
    return n.to_bytes(1, "big")


def u16(n: int) -> bytes:
    return n.to_bytes(2, "big")


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")
