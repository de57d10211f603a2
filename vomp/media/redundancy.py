"""The redundant payload (VoMP codec 0x70): each packet repeats the last frames it sent.

Opus FEC covers one lost packet; mesh links lose them in bursts. Repeating the previous 1-2
encoded frames in every packet lets the receiver rebuild a burst of 2 lost packets exactly, at
the cost of bytes (cheap on the mesh), not packets (expensive).

Byte layout, version 1 (all integers big-endian)::

    byte 0   0x10 | (count - 1)   high nibble: version (1); low nibble: frames in the packet, 1..16
    byte 1   frame_ms             duration of every inner frame, 1..255 ms
    then `count` frames, oldest first, each:
      offset   i8                 frame's media time = packet media time + offset * frame_ms
      length   1 or 2 bytes       0..127 as one byte; 128..32767 as u16 with the top bit set;
                                  absent on the last frame, which runs to the end of the payload
      data     `length` bytes     one Opus packet (never empty)

VoMP gives each packet a media time in ms (SPEC §12.6, rebuilt to 32 bits); inner frames are
placed relative to it, so the sender stamps the packet with its newest frame (offset 0) and the
repeats get offsets -1, -2. Offsets must increase strictly. Encodings are canonical (shortest
length form), so `pack(parse(b)) == b` for every payload `parse` accepts. Unknown versions are
refused: a version 2 sender must also offer plain Opus.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

VERSION = 1
MAX_FRAMES = 16
MAX_FRAME_LEN = 0x7FFF


class PayloadError(ValueError):
    """A redundant payload that breaks the layout; the receiver counts it and drops it."""


@dataclass(frozen=True)
class InnerFrame:
    offset: int
    """Media time of this frame relative to the packet's, in frames."""
    data: bytes


@dataclass(frozen=True)
class RedundantPayload:
    frame_ms: int
    frames: tuple[InnerFrame, ...]

    def timed_frames(self, packet_time_ms: int) -> list[tuple[int, bytes]]:
        """(media time ms, Opus packet) for each inner frame, oldest first."""
        return [(packet_time_ms + f.offset * self.frame_ms, f.data) for f in self.frames]


def _length_bytes(n: int) -> bytes:
    return bytes([n]) if n < 0x80 else (0x8000 | n).to_bytes(2, "big")


def pack(payload: RedundantPayload) -> bytes:
    """Serialise; ValueError for a payload the layout cannot express."""
    frames = payload.frames
    if not 1 <= len(frames) <= MAX_FRAMES:
        raise ValueError(f"a redundant payload holds 1..{MAX_FRAMES} frames, not {len(frames)}")
    if not 1 <= payload.frame_ms <= 255:
        raise ValueError(f"frame_ms {payload.frame_ms} is outside 1..255")
    out = bytearray([VERSION << 4 | (len(frames) - 1), payload.frame_ms])
    previous = None
    for i, frame in enumerate(frames):
        if not -128 <= frame.offset <= 127:
            raise ValueError(f"offset {frame.offset} does not fit in a signed byte")
        if previous is not None and frame.offset <= previous:
            raise ValueError("frame offsets must increase strictly")
        if not 1 <= len(frame.data) <= MAX_FRAME_LEN:
            raise ValueError(f"inner frame of {len(frame.data)} bytes")
        previous = frame.offset
        out.append(frame.offset & 0xFF)
        if i < len(frames) - 1:
            out += _length_bytes(len(frame.data))
        out += frame.data
    return bytes(out)


def parse(data: bytes) -> RedundantPayload:
    """Parse a payload; PayloadError (never another exception) for anything malformed."""
    if len(data) < 2:
        raise PayloadError("redundant payload shorter than its 2-byte header")
    version, count = data[0] >> 4, (data[0] & 0x0F) + 1
    if version != VERSION:
        raise PayloadError(f"redundant payload version {version}, we read {VERSION}")
    frame_ms = data[1]
    if frame_ms == 0:
        raise PayloadError("redundant payload with frame_ms 0")
    pos = 2
    frames: list[InnerFrame] = []
    for i in range(count):
        if pos >= len(data):
            raise PayloadError(f"redundant payload ends before frame {i}")
        offset = data[pos] - 256 if data[pos] >= 0x80 else data[pos]
        pos += 1
        if frames and offset <= frames[-1].offset:
            raise PayloadError("redundant payload frame offsets do not increase")
        if i == count - 1:
            length = len(data) - pos
        else:
            if pos >= len(data):
                raise PayloadError(f"redundant payload ends inside frame {i}'s length")
            length = data[pos]
            pos += 1
            if length & 0x80:
                if pos >= len(data):
                    raise PayloadError(f"redundant payload ends inside frame {i}'s length")
                length = (length & 0x7F) << 8 | data[pos]
                pos += 1
                if length < 0x80:
                    raise PayloadError("redundant payload length not in its shortest form")
        if length == 0:
            raise PayloadError(f"redundant payload frame {i} is empty")
        if pos + length > len(data):
            raise PayloadError(f"redundant payload frame {i} runs past the end")
        frames.append(InnerFrame(offset, bytes(data[pos : pos + length])))
        pos += length
    return RedundantPayload(frame_ms, tuple(frames))


class RedundancyPacker:
    """Sender side: wraps each new frame with copies of frames sent `offsets` packets before.

    Offsets (1, 2) repeat the previous two frames. A burst of L lost packets is rebuilt when the
    largest offset is at least L, so (1, 3) reaches bursts of 3 with the same bytes, waiting one
    frame longer for the copy.
    """

    def __init__(self, offsets: tuple[int, ...] = (1, 2), frame_ms: int = 20) -> None:
        if len(offsets) >= MAX_FRAMES or any(not 1 <= o <= 128 for o in offsets):
            raise ValueError(f"redundancy offsets {offsets} must be 1..128, at most 15 of them")
        if list(offsets) != sorted(set(offsets)):
            raise ValueError(f"redundancy offsets {offsets} must increase strictly")
        self.offsets = offsets
        self.frame_ms = frame_ms
        self._history: deque[bytes] = deque(maxlen=max(offsets, default=0) + 1)

    def pack(self, frame: bytes) -> bytes:
        """The payload for the packet whose media time is `frame`'s."""
        self._history.appendleft(frame)
        inner = [
            InnerFrame(-o, self._history[o])
            for o in reversed(self.offsets)
            if o < len(self._history)
        ]
        inner.append(InnerFrame(0, frame))
        return pack(RedundantPayload(self.frame_ms, tuple(inner)))
