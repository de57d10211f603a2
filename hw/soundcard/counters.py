"""The device counters, declared once, and the seqlocked shared page that carries them.

The engine process is the one writer: after every period it publishes its `DeviceCounters` in
a shared-memory page guarded by a sequence number (odd while a write is in progress), so the
supervisor reads a consistent snapshot without a lock the real-time loop could wait on. Each
field says how it carries over when a fresh engine process takes over after a device loss:
summed, the largest kept, or the newest process's value.
"""

from __future__ import annotations

import mmap
import operator
import struct
import time
from dataclasses import dataclass, field, fields
from typing import Any

SUM = "sum"
MAX = "max"
LATEST = "latest"


def _counter(across_restarts: str) -> Any:
    return field(default=0, metadata={"across_restarts": across_restarts})


@dataclass
class DeviceCounters:
    """Device-side audio statistics; every field is an integer so it fits shared memory."""

    periods: int = _counter(SUM)
    capture_xruns: int = _counter(SUM)
    playback_xruns: int = _counter(SUM)
    capture_dropped: int = _counter(SUM)
    playback_starved: int = _counter(SUM)
    playback_trimmed: int = _counter(SUM)
    period_interval_max_us: int = _counter(MAX)
    period_interval_last_us: int = _counter(LATEST)
    period_late: int = _counter(SUM)
    call_records_dropped: int = _counter(SUM)
    """Encoded frames (or statistics) the handset's full pipe refused: a stalled call path."""
    realtime: int = _counter(LATEST)
    heartbeat_ns: int = _counter(LATEST)

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(DeviceCounters)]

    def values(self) -> tuple[int, ...]:
        return _values_of(self)

    def continued_from(self, earlier: DeviceCounters) -> DeviceCounters:
        """These counters (of the current engine process) on top of the totals of the
        processes before it."""
        merged = DeviceCounters()
        for f in fields(DeviceCounters):
            mine, theirs = getattr(self, f.name), getattr(earlier, f.name)
            rule = f.metadata["across_restarts"]
            value = mine + theirs if rule == SUM else max(mine, theirs) if rule == MAX else mine
            setattr(merged, f.name, value)
        return merged


_values_of = operator.attrgetter(*DeviceCounters.names())
"""Every counter's value in field order, in one call: the engine publishes after each period."""
_LAYOUT = struct.Struct(f"<q{len(DeviceCounters.names())}q")  # sequence number, then counters
_SEQUENCE = struct.Struct("<q")
SHM_SIZE = mmap.PAGESIZE
_IDLE_AT = SHM_SIZE - 8
"""The one word the parent writes: nonzero while the call path wants no audio (no call, tone or
beep). It lies outside the counters, so a fresh engine process finds it as the parent left it."""


class SharedCounters:
    """DeviceCounters in a shared mapping: one writer (engine), readers retry torn reads."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, SHM_SIZE)
        self._seq = 0

    def publish(self, counters: DeviceCounters) -> None:
        self._seq += 1  # odd: write in progress
        _SEQUENCE.pack_into(self._map, 0, self._seq)
        _LAYOUT.pack_into(self._map, 0, self._seq, *counters.values())
        self._seq += 1
        _SEQUENCE.pack_into(self._map, 0, self._seq)

    def read(self) -> DeviceCounters:
        """A consistent snapshot; if the writer died mid-write (killed), its last values."""
        values: list[int] = []
        for _ in range(1000):
            seq, *values = _LAYOUT.unpack_from(self._map, 0)
            if seq % 2 == 0 and _SEQUENCE.unpack_from(self._map, 0)[0] == seq:
                return DeviceCounters(*values)
            time.sleep(0)
        return DeviceCounters(*values)

    def clear(self) -> None:
        self._map[: _LAYOUT.size] = bytes(_LAYOUT.size)

    def set_call_path_idle(self, idle: bool) -> None:
        """(Parent) Whether the call path wants captured audio and sends playback."""
        _SEQUENCE.pack_into(self._map, _IDLE_AT, int(idle))

    def call_path_idle(self) -> bool:
        """(Engine) Read once a period: an idle call path is not woken, silence plays."""
        return _SEQUENCE.unpack_from(self._map, _IDLE_AT)[0] != 0
