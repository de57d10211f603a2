"""The ringer and the LED on the event loop: each applies its cadence (hw/ringer.py, hw/led.py,
clock-free) and says when it next needs `update(now)`; this module keeps that one timer each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from hw.led import Led
from hw.ringer import Ringer


class _Timed:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None

    def _after(self, when: float | None, update: Callable[[float], float | None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            delay = max(0.0, when - self._clock())
            self._timer = asyncio.get_running_loop().call_later(
                delay, lambda: self._after(update(self._clock()), update)
            )

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


class RingerIndicator(_Timed):
    """`set(True)` rings with the ringer's cadence until `set(False)`."""

    def __init__(self, ringer: Ringer, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.ringer = ringer

    def set(self, value: str | bool) -> None:
        now = self._clock()
        if value:
            self.ringer.start(now)
            self._after(self.ringer.update(now), self.ringer.update)
        else:
            self.ringer.stop()
            self._after(None, self.ringer.update)


class LedIndicator(_Timed):
    """`set("off" | "on" | "blink")`."""

    def __init__(self, led: Led, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.led = led

    def set(self, value: str | bool) -> None:
        self._after(self.led.set_pattern(str(value), self._clock()), self.led.update)
