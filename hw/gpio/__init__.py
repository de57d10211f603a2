"""GPIO pins behind one narrow seam, as gpiozero's pin factories: no device imports a GPIO library.

A `PinFactory` hands out `InputPin`s and `OutputPin`s by BCM number. Backends, chosen by name
(config `[keypad] backend`, or the `HANDSET_PINS` environment variable in tests), never by
trying imports:

- `rpi-gpio`: the RPi.GPIO API (`rpi-lgpio` on the Pi, and against gpio-sim on the VM bench).
- `recording`: pins that are objects with behaviour: inputs you `drive_low()`/`drive_high()`
  (or wire to a simulated key matrix), outputs that remember every level with its time.

Levels are booleans: True = high. Whether high means "pressed" or "lifted" is the device's
business (hw/keypad.py), not the pin's.
"""

from __future__ import annotations

from typing import Literal, Protocol

Pull = Literal["up", "down", "off"]


class InputPin(Protocol):
    number: int

    def read(self) -> bool: ...


class OutputPin(Protocol):
    """gpiozero's OutputDevice shape (`on`/`off`), which hw/ringer.py's GpioRinger uses."""

    number: int

    def write(self, high: bool) -> None: ...

    def on(self) -> None: ...

    def off(self) -> None: ...


class PinFactory(Protocol):
    def input(self, number: int, pull: Pull = "up") -> InputPin: ...

    def output(self, number: int, initial: bool = False) -> OutputPin: ...

    def close(self) -> None: ...


def pin_factory(name: str | None = None) -> PinFactory:
    """The backend called `name` (default: $HANDSET_PINS, else `recording`), freshly opened;
    hw.backends.PINS lists them."""
    from hw.backends import PINS

    factory: PinFactory = PINS.load(name)()
    return factory
