"""The keypad and hook switch: GPIO levels in, timestamped key presses and hook changes out.

Why split this way: scanning is timing (drive a row, wait, read the columns, every few ms) and
lives at the edge (`scan_forever`, a small asyncio task the daemon starts); what the levels
*mean* -- which key, debounced, one press per hold, no repeat -- is pure logic fed with `now`
(`KeyMatrix`, `Debouncer`), tested without pins or clocks.

Wiring, as on rnphone-style keypads: rows are outputs, idle high, driven low one at a time;
columns are inputs with pull-ups, so a held key pulls its column low while its row is driven.
The hook switch is one input with a pull-up, its contact to ground closing when the handset is
lifted (as a telephone's hook switch closes the line); `hook_lifted="high"` is for the reverse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hw.gpio import InputPin, OutputPin, PinFactory

LAYOUTS: dict[str, tuple[str, ...]] = {
    "4x4": ("123A", "456B", "789C", "*0#D"),
    "4x3": ("123", "456", "789", "*0#"),
}
DEBOUNCE_S = 0.03  # a key or the hook must read the same for this long to count
SCAN_INTERVAL_S = 0.01
MAX_HELD = 2  # a scan with more keys held may show ghost keys (no diodes): it is skipped


@dataclass(frozen=True)
class KeyPress:
    key: str
    at: float


@dataclass(frozen=True)
class HookChange:
    lifted: bool
    at: float


class Debouncer:
    """Believes a new level once it has read the same for `hold_s`; glitches shorter than that
    are ignored. `feed` returns the new level when the believed one changes, else None."""

    def __init__(self, initial: bool, hold_s: float = DEBOUNCE_S) -> None:
        self.level = initial
        self.hold_s = hold_s
        self._candidate_since: float | None = None

    def feed(self, level: bool, now: float) -> bool | None:
        if level == self.level:
            self._candidate_since = None
            return None
        if self._candidate_since is None:
            self._candidate_since = now
        if now - self._candidate_since >= self.hold_s:
            self.level = level
            self._candidate_since = None
            return level
        return None


class KeyMatrix:
    """Which keys each scan found held -> debounced presses, one per hold (no key repeat)."""

    def __init__(self, layout: str, debounce_s: float = DEBOUNCE_S) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"keypad layout {layout!r}: use one of {', '.join(LAYOUTS)}")
        self.layout = LAYOUTS[layout]
        self.keys = frozenset("".join(self.layout))
        self._debounce_s = debounce_s
        self._keys: dict[str, Debouncer] = {}
        self.skipped_scans = 0

    def feed(self, held: frozenset[str], now: float) -> list[KeyPress]:
        if len(held) > MAX_HELD:
            self.skipped_scans += 1
            return []
        presses = []
        for key in sorted(held | self._keys.keys()):
            debouncer = self._keys.setdefault(key, Debouncer(False, self._debounce_s))
            if debouncer.feed(key in held, now) is True:
                presses.append(KeyPress(key, now))
        self._keys = {k: d for k, d in self._keys.items() if d.level or k in held}
        return presses


class Keypad:
    """The matrix and hook switch on pins from a factory (recording in tests, RPi.GPIO on a Pi)."""

    def __init__(
        self,
        pins: PinFactory,
        rows: list[int],
        columns: list[int],
        layout: str = "4x3",
        *,
        hook: int | None = None,
        hook_lifted: Literal["high", "low"] = "low",
        debounce_s: float = DEBOUNCE_S,
    ) -> None:
        self.matrix = KeyMatrix(layout, debounce_s)
        no_matrix = not rows and not columns  # a hook switch alone: dialling comes by control
        if not no_matrix and (
            len(rows) != len(self.matrix.layout)
            or any(len(keys) != len(columns) for keys in self.matrix.layout)
        ):
            raise ValueError(
                f"layout {layout} needs {len(self.matrix.layout)} rows and "
                f"{len(self.matrix.layout[0])} columns, got {len(rows)} and {len(columns)}"
            )
        self.rows: list[OutputPin] = [pins.output(n, initial=True) for n in rows]
        self.columns: list[InputPin] = [pins.input(n, pull="up") for n in columns]
        self.hook: InputPin | None = None
        self._lifted_level = hook_lifted == "high"
        self._hook = Debouncer(False, debounce_s)
        if hook is not None:
            self.hook = pins.input(hook, pull="up")

    def select_row(self, row: int) -> None:
        self.rows[row].write(False)

    def read_row(self, row: int) -> set[str]:
        """The keys of `row` held now (the row must be selected), and deselect it."""
        held = {self.matrix.layout[row][c] for c, pin in enumerate(self.columns) if not pin.read()}
        self.rows[row].write(True)
        return held

    def scan(self) -> frozenset[str]:
        """One whole scan without settling time (real wiring settles in microseconds)."""
        held: set[str] = set()
        for row in range(len(self.rows)):
            self.select_row(row)
            held |= self.read_row(row)
        return frozenset(held)

    def feed(self, held: frozenset[str], now: float) -> list[KeyPress | HookChange]:
        """The presses in one scan's result, then a hook change if the switch moved."""
        found: list[KeyPress | HookChange] = list(self.matrix.feed(held, now))
        if self.hook is not None:
            lifted = self._hook.feed(self.hook.read() == self._lifted_level, now)
            if lifted is not None:
                found.append(HookChange(lifted, now))
        return found


async def scan_forever(
    keypad: Keypad,
    deliver: Callable[[KeyPress | HookChange], None],
    *,
    interval_s: float = SCAN_INTERVAL_S,
    settle_s: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Scan every `interval_s` and hand each press or hook change to `deliver`, until cancelled.

    `settle_s` is how long a row is held before its columns are read: 0 for real wiring; a
    simulated keypad (gpio-sim on the VM bench, whose helper follows the rows by polling)
    needs tens of milliseconds.
    """
    while True:
        held: set[str] = set()
        for row in range(len(keypad.rows)):
            keypad.select_row(row)
            if settle_s:
                await asyncio.sleep(settle_s)
            held |= keypad.read_row(row)
        for found in keypad.feed(frozenset(held), clock()):
            deliver(found)
        await asyncio.sleep(interval_s)
