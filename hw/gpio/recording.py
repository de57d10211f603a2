"""The test backend: pins that are objects with behaviour and remember what happened to them.

As gpiozero's mock pins: a test drives an input (`drive_low()`, `drive_high()`, `release()`) or
holds a key of a `SimulatedMatrix`, and reads an output's `level` or its timestamped `history`,
so tests state what the devices did, not which functions were called. Time comes from the
factory's `clock` (time.monotonic unless a test passes its own).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hw.gpio import Pull


class RecordingInputPin:
    def __init__(self, number: int, pull: Pull, clock: Callable[[], float]) -> None:
        self.number = number
        self.pull = pull
        self._clock = clock
        self._driven: bool | None = None
        self.source: Callable[[], bool | None] | None = None  # a wire to something else
        self.history: list[tuple[float, bool]] = [(clock(), self.read())]

    def read(self) -> bool:
        if self._driven is not None:
            return self._driven
        if self.source is not None and (level := self.source()) is not None:
            return level
        return self.pull == "up"

    def drive_low(self) -> None:
        self._drive(False)

    def drive_high(self) -> None:
        self._drive(True)

    def release(self) -> None:
        """Stop driving: the pull (or what the pin is wired to) decides again."""
        self._drive(None)

    def _drive(self, level: bool | None) -> None:
        self._driven = level
        self.history.append((self._clock(), self.read()))


class RecordingOutputPin:
    def __init__(self, number: int, initial: bool, clock: Callable[[], float]) -> None:
        self.number = number
        self.level = initial
        self._clock = clock
        self.history: list[tuple[float, bool]] = [(clock(), initial)]

    def write(self, high: bool) -> None:
        if high != self.level:
            self.level = high
            self.history.append((self._clock(), high))

    def on(self) -> None:
        self.write(True)

    def off(self) -> None:
        self.write(False)


class RecordingPins:
    """Hands out recording pins; `pins[number]` finds one again (a pin is set up only once)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.pins: dict[int, RecordingInputPin | RecordingOutputPin] = {}
        self.closed = False

    def input(self, number: int, pull: Pull = "up") -> RecordingInputPin:
        pin = RecordingInputPin(number, pull, self.clock)
        self._claim(number, pin)
        return pin

    def output(self, number: int, initial: bool = False) -> RecordingOutputPin:
        pin = RecordingOutputPin(number, initial, self.clock)
        self._claim(number, pin)
        return pin

    def close(self) -> None:
        self.closed = True

    def _claim(self, number: int, pin: RecordingInputPin | RecordingOutputPin) -> None:
        if number in self.pins:
            raise ValueError(f"GPIO {number} is already in use")
        self.pins[number] = pin


class SimulatedMatrix:
    """A key matrix wired between recording pins: while a key is held, its column pin reads
    the level of its row pin (several rows: low wins, as wired-AND); otherwise its pull."""

    def __init__(
        self, pins: RecordingPins, rows: list[int], columns: list[int], layout: list[str]
    ) -> None:
        self.held: set[str] = set()
        self._where = {key: (r, c) for r, keys in enumerate(layout) for c, key in enumerate(keys)}
        self._pins, self._rows = pins, rows
        for c, number in enumerate(columns):
            column = pins.pins[number]
            if not isinstance(column, RecordingInputPin):
                raise ValueError(f"column GPIO {number} is not an input")
            column.source = self._column_level(c)

    def press(self, key: str) -> None:
        if key not in self._where:
            raise KeyError(f"no key {key!r} on this keypad")
        self.held.add(key)

    def release(self, key: str) -> None:
        self.held.discard(key)

    def _column_level(self, column: int) -> Callable[[], bool | None]:
        def level() -> bool | None:
            rows = [self._where[k][0] for k in self.held if self._where[k][1] == column]
            levels = []
            for r in rows:
                row = self._pins.pins[self._rows[r]]
                levels.append(row.level if isinstance(row, RecordingOutputPin) else row.read())
            return all(levels) if levels else None

        return level
