"""VoMP version 2 messages (SPEC §12.1, MDP port 12, crypto_box) and audio numbering (§12.6).

Every message is a snapshot of both call states; depending on the states it also carries the
codec list (+ numbers from the caller) or one audio frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from vomp.wire import ParseError, Reader, u16

VOMP_VERSION = 2


class CallState(IntEnum):
    NOCALL = 1
    CALLPREP = 2
    RINGINGOUT = 3
    RINGINGIN = 4
    INCALL = 5
    CALLENDED = 6


# 20 ms per unit of the time field.
TIME_UNIT_MS = 20
AUDIO_HEADER_LEN = 5


@dataclass(frozen=True, slots=True)
class VompAudio:
    codec: int
    time_field: int
    seq_field: int
    data: bytes


@dataclass(frozen=True, slots=True)
class VompMessage:
    """One VoMP message. codecs is None when the message carries no codec list."""

    sender_session: int
    recipient_session: int
    sender_state: int
    recipient_state: int
    codecs: tuple[int, ...] | None = None
    caller_number: str | None = None
    called_number: str | None = None
    audio: VompAudio | None = None
    version: int = VOMP_VERSION

    @property
    def state_byte(self) -> int:
        return (self.recipient_state << 4) | self.sender_state

    @property
    def carries_codecs(self) -> bool:
        """Both nibbles below RINGINGOUT: the codec list belongs in the message (REQ)."""
        return self.sender_state < CallState.RINGINGOUT and self.recipient_state < 3


def _state(value: int, what: str) -> int:
    if not CallState.NOCALL <= value <= CallState.CALLENDED:
        raise ParseError(f"VoMP {what} {value} is not a call state (1..6)")
    return value


def parse_vomp(body: bytes) -> VompMessage:
    reader = Reader(body)
    version = reader.u8("VoMP version")
    if version != VOMP_VERSION:
        raise ParseError(f"VoMP version {version} (only 2 is understood)")
    sender_session = reader.u16("sender session")
    recipient_session = reader.u16("recipient session")
    states = reader.u8("VoMP states")
    sender_state = _state(states & 0x0F, "sender state")
    recipient_state = _state(states >> 4, "recipient state")
    codecs = caller = called = audio = None
    if sender_state < CallState.RINGINGOUT and recipient_state < CallState.RINGINGOUT:
        if reader.remaining:
            codecs = tuple(reader.cstring("codec list"))
            if reader.remaining:
                caller = reader.cstring("caller number").decode("utf-8", errors="replace")
                called = reader.cstring("called number").decode("utf-8", errors="replace")
    elif sender_state == CallState.INCALL and reader.remaining:
        codec = reader.u8("audio codec")
        time_field = reader.u16("audio time")
        seq_field = reader.u16("audio seq")
        audio = VompAudio(codec, time_field, seq_field, reader.rest())
    return VompMessage(
        sender_session,
        recipient_session,
        sender_state,
        recipient_state,
        codecs,
        caller,
        called,
        audio,
        version,
    )


def encode_vomp(message: VompMessage) -> bytes:
    out = bytearray((message.version,))
    out += u16(message.sender_session) + u16(message.recipient_session)
    out.append(message.state_byte)
    if message.carries_codecs:
        if message.codecs is None:
            raise ValueError("both states below RINGINGOUT: the codec list is required")
        if any(not 0 < c < 256 for c in message.codecs):
            raise ValueError("codec numbers are 1..255")
        out += bytes(message.codecs) + b"\0"
        if message.caller_number is not None:
            for number in (message.caller_number, message.called_number or ""):
                if "\0" in number:
                    raise ValueError("numbers may not contain NUL")
                out += number.encode() + b"\0"
    if message.audio is not None:
        if message.sender_state != CallState.INCALL:
            raise ValueError("audio is only sent in INCALL")
        a = message.audio
        out.append(a.codec)
        out += u16(a.time_field & 0xFFFF) + u16(a.seq_field & 0xFFFF)
        out += a.data
    return bytes(out)


def _rebuild(reference: int, field: int) -> int:
    """servald's 16 -> 32-bit extension around a reference, in u32 arithmetic (SPEC §12.6)."""
    a = (reference & 0xFFFF0000) | field
    if (a + 0x8000) & 0xFFFFFFFF < reference:
        a = (a + 0x10000) & 0xFFFFFFFF
    if a > (reference + 0x8000) & 0xFFFFFFFF:
        a = (a - 0x10000) & 0xFFFFFFFF
    return a


class AudioNumbering:
    """Rebuilds 32-bit time/seq for one call and direction and spots replayed frames.

    References start at 0 (as servald's do) and only move forward. A media time is delivered
    at most once: a frame whose rebuilt time was delivered before, or lies more than `WINDOW`
    units (1.28 s) behind the newest delivered one, is a duplicate or a replay.
    """

    WINDOW = 64

    def __init__(self) -> None:
        self.ref_time = 0
        self.ref_seq = 0
        self._newest: int | None = None
        self._delivered: set[int] = set()

    def rebuild(self, time_field: int, seq_field: int) -> tuple[int, int]:
        """(time in 20 ms units, seq), both 32-bit; advances the references."""
        time = _rebuild(self.ref_time, time_field)
        seq = _rebuild(self.ref_seq, seq_field)
        if self.ref_time <= time and self.ref_seq <= seq:
            self.ref_time, self.ref_seq = time, seq
        return time, seq

    def accept(self, time_field: int, seq_field: int) -> tuple[int, int] | None:
        """(time_ms, seq) for a new frame, or None for a duplicate to drop."""
        time, seq = self.rebuild(time_field, seq_field)
        if self._newest is not None and (
            time in self._delivered or time <= self._newest - self.WINDOW
        ):
            return None
        if self._newest is None or time > self._newest:
            self._newest = time
            self._delivered = {t for t in self._delivered if t > time - self.WINDOW}
        self._delivered.add(time)
        return time * TIME_UNIT_MS, seq
