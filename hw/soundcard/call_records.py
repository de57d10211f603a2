"""The records the handset and the engine process exchange about a call, on two pipes.

Why records and not raw PCM: the call's audio runs inside the engine process (`EngineCall`),
so only compressed frames cross the process boundary, once per 20 ms frame each way, instead
of a period of PCM each way every period. The handset tells the engine about the call
(StartCall, EndCall, Mute, Gain) and hands it each received VoMP audio frame (ReceivedFrame);
the engine hands back each encoded frame to send (SentFrame) and, now and then, the call's
statistics (CallStats).

Wire form: a 3-byte header (kind, body length, little-endian) and the body. A record is
written with one write() of at most PIPE_BUF bytes, so it never interleaves with another;
the reader keeps a partial record until the rest arrives. A record of unknown kind or wrong
size is counted and dropped with whatever follows it in that read (the stream cannot be
trusted past it), never raised: both ends are ours, but a reader must not die of a bug on
the other side.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass

MAX_RECORD_BYTES = 4096
"""PIPE_BUF on Linux: a write of at most this many bytes to a pipe is atomic."""

_HEADER = struct.Struct("<BH")
_CALL = struct.Struct("<q")
_START = struct.Struct("<qB")
_RECEIVED = struct.Struct("<qBqd")
_SENT = struct.Struct("<qIBH")
_MUTE = struct.Struct("<B")
_GAIN = struct.Struct("<d")


@dataclass(frozen=True)
class StartCall:
    """Begin the call's audio, sending `codec`. Repeating it for the same call changes nothing."""

    call: int
    codec: int


@dataclass(frozen=True)
class EndCall:
    call: int


@dataclass(frozen=True)
class ReceivedFrame:
    """One VoMP audio frame of `call` as the node delivered it; `arrived` is the handset's
    monotonic clock (seconds) when the datagram came in, which the jitter buffer needs."""

    call: int
    codec: int
    time_ms: int
    arrived: float
    payload: bytes


@dataclass(frozen=True)
class Mute:
    on: bool


@dataclass(frozen=True)
class Gain:
    gain: float


@dataclass(frozen=True)
class SentFrame:
    """An encoded frame of `call` to send; `seq` counts from 0 in each engine process, so a 0
    after earlier frames says a fresh engine process took over (the device was reopened)."""

    call: int
    seq: int
    codec: int
    duration_ms: int
    payload: bytes


@dataclass(frozen=True)
class CallStats:
    """The call's AudioStats as a dict, as the engine process counted them."""

    call: int
    stats: dict[str, object]


Record = StartCall | EndCall | ReceivedFrame | Mute | Gain | SentFrame | CallStats

_KINDS = range(1, 8)
_START_KIND, _END_KIND, _RECEIVED_KIND, _MUTE_KIND, _GAIN_KIND, _SENT_KIND, _STATS_KIND = _KINDS


def encode(record: Record) -> bytes:
    """The record's wire form; ValueError if it would not fit one atomic pipe write."""
    match record:
        case StartCall(call, codec):
            kind, body = _START_KIND, _START.pack(call, codec)
        case EndCall(call):
            kind, body = _END_KIND, _CALL.pack(call)
        case ReceivedFrame(call, codec, time_ms, arrived, payload):
            kind, body = _RECEIVED_KIND, _RECEIVED.pack(call, codec, time_ms, arrived) + payload
        case Mute(on):
            kind, body = _MUTE_KIND, _MUTE.pack(on)
        case Gain(gain):
            kind, body = _GAIN_KIND, _GAIN.pack(gain)
        case SentFrame(call, seq, codec, duration_ms, payload):
            kind, body = _SENT_KIND, _SENT.pack(call, seq, codec, duration_ms) + payload
        case CallStats(call, stats):
            kind, body = _STATS_KIND, _CALL.pack(call) + json.dumps(stats).encode()
    if _HEADER.size + len(body) > MAX_RECORD_BYTES:
        raise ValueError(f"{type(record).__name__} of {len(body)} bytes is too long for a pipe")
    return _HEADER.pack(kind, len(body)) + body


def _decode(kind: int, body: bytes) -> Record | None:
    """The record of `kind` in `body`; None if the body does not fit that kind."""
    try:
        if kind == _START_KIND and len(body) == _START.size:
            return StartCall(*_START.unpack(body))
        if kind == _END_KIND and len(body) == _CALL.size:
            return EndCall(*_CALL.unpack(body))
        if kind == _RECEIVED_KIND and len(body) >= _RECEIVED.size:
            call, codec, time_ms, arrived = _RECEIVED.unpack_from(body)
            return ReceivedFrame(call, codec, time_ms, arrived, body[_RECEIVED.size :])
        if kind == _MUTE_KIND and len(body) == _MUTE.size:
            return Mute(bool(body[0]))
        if kind == _GAIN_KIND and len(body) == _GAIN.size:
            return Gain(*_GAIN.unpack(body))
        if kind == _SENT_KIND and len(body) >= _SENT.size:
            call, seq, codec, duration_ms = _SENT.unpack_from(body)
            return SentFrame(call, seq, codec, duration_ms, body[_SENT.size :])
        if kind == _STATS_KIND and len(body) >= _CALL.size:
            stats = json.loads(body[_CALL.size :])
            if isinstance(stats, dict):
                return CallStats(_CALL.unpack_from(body)[0], stats)
    except ValueError:  # json's errors are ValueErrors too
        return None
    return None


class RecordReader:
    """Turns the bytes read from a pipe, in whatever pieces they come, into records."""

    def __init__(self) -> None:
        self._pending = b""
        self.malformed = 0

    def feed(self, data: bytes) -> list[Record]:
        buffer = self._pending + data if self._pending else data
        records: list[Record] = []
        at = 0
        while len(buffer) - at >= _HEADER.size:
            kind, length = _HEADER.unpack_from(buffer, at)
            end = at + _HEADER.size + length
            if kind not in _KINDS or _HEADER.size + length > MAX_RECORD_BYTES:
                record = None
            elif end > len(buffer):
                break
            else:
                record = _decode(kind, buffer[at + _HEADER.size : end])
            if record is None:
                self.malformed += 1
                at = len(buffer)
                break
            records.append(record)
            at = end
        self._pending = buffer[at:]
        return records


def pipe_writes(records: list[bytes]) -> list[bytes]:
    """Encoded records joined into as few writes as keep each one atomic."""
    writes: list[bytes] = []
    for record in records:
        if writes and len(writes[-1]) + len(record) <= MAX_RECORD_BYTES:
            writes[-1] += record
        else:
            writes.append(record)
    return writes
