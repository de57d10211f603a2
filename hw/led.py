"""The status LED: off, on, or blinking (a call ringing in), on one output pin.

Like hw/ringer.py, the blink is applied here without a clock: `update(now)` sets the pin for
`now` and says when to call again.
"""

from __future__ import annotations

from hw.gpio import OutputPin

PATTERNS = ("off", "on", "blink")
BLINK_S = 0.5  # half a period: on 0.5 s, off 0.5 s


class Led:
    def __init__(self, pin: OutputPin) -> None:
        self._pin = pin
        self.pattern = "off"
        self._since = 0.0
        pin.off()

    def set_pattern(self, pattern: str, now: float) -> float | None:
        """Show `pattern` from `now`; returns when `update` must next run (None: never)."""
        if pattern not in PATTERNS:
            raise ValueError(f"LED pattern {pattern!r}: use one of {', '.join(PATTERNS)}")
        self.pattern, self._since = pattern, now
        return self.update(now)

    def update(self, now: float) -> float | None:
        if self.pattern != "blink":
            self._pin.write(self.pattern == "on")
            return None
        phase = int((now - self._since) // BLINK_S)
        self._pin.write(phase % 2 == 0)
        return self._since + (phase + 1) * BLINK_S
