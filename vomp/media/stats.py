"""Per-call audio statistics, one mutable record the pipeline updates and the service reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AudioStats:
    """Counters since the call's audio started; times in ms.

    A media slot whose own packet did not arrive by its playout time is `lost`; each lost slot is
    then either rebuilt (`recovered_redundancy`, `recovered_fec`) or `concealed` (PLC), so
    lost == recovered_redundancy + recovered_fec + concealed. `stretched`/`dropped` count frames
    the jitter buffer inserted or skipped to move its delay (jitter, clock drift).
    """

    codec_sent: int | None = None
    codec_received: int | None = None
    frames_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0
    bytes_received: int = 0
    frames_played: int = 0
    lost: int = 0
    recovered_fec: int = 0
    recovered_redundancy: int = 0
    concealed: int = 0
    late: int = 0
    duplicate: int = 0
    malformed: int = 0
    unsupported_codec: int = 0
    stretched: int = 0
    dropped: int = 0
    trimmed_ms: int = 0
    """Sound skipped in quiet moments to remove a surplus delay smaller than a frame."""
    resyncs: int = 0
    pauses: int = 0
    """Times the sender went quiet for longer than the buffer's pause limit (not counted as loss
    beyond that limit)."""
    jitter_ms: float = 0.0
    """RFC 3550 interarrival jitter of the packets' own frames."""
    buffer_ms: float = 0.0
    """Media waiting in the jitter buffer ahead of the playout point."""
    playout_delay_ms: float = 0.0
    """How long the fastest recent packet waits before it is played (the buffer's own delay)."""
    target_delay_ms: float = 0.0
    """The delay the buffer is steering towards (jitter cover + wait for redundancy/FEC)."""
    end_to_end_delay_ms: float = 0.0
    """Estimate: frame + codec lookahead + network (if known) + buffer + device latency."""

    @property
    def loss_fraction(self) -> float:
        slots = self.frames_played + self.lost
        return self.lost / slots if slots else 0.0

    def as_dict(self) -> dict[str, object]:
        # Every field is a number, so the instance's own dict is the whole record (asdict's
        # deep copy cost 25 µs, five times a second in the engine process).
        return {**vars(self), "loss_fraction": round(self.loss_fraction, 4)}
