"""The real pins: the RPi.GPIO API, BCM numbering.

On the Pi and on the VM bench this is `rpi-lgpio` (the RPi.GPIO API on lgpio, through the
kernel's GPIO character device, so it also drives gpio-sim; RPI_LGPIO_CHIP picks the chip).
Imported only when the `rpi-gpio` backend is chosen (hw.gpio.pin_factory).
"""

from __future__ import annotations

import RPi.GPIO as GPIO

from hw.gpio import Pull

_PULLS = {"up": GPIO.PUD_UP, "down": GPIO.PUD_DOWN, "off": GPIO.PUD_OFF}


class RpiInputPin:
    def __init__(self, number: int) -> None:
        self.number = number

    def read(self) -> bool:
        return bool(GPIO.input(self.number))


class RpiOutputPin:
    def __init__(self, number: int) -> None:
        self.number = number

    def write(self, high: bool) -> None:
        GPIO.output(self.number, GPIO.HIGH if high else GPIO.LOW)

    def on(self) -> None:
        self.write(True)

    def off(self) -> None:
        self.write(False)


class RpiGpioPins:
    """Pins set up through RPi.GPIO; `close()` returns every pin we set up to an input."""

    def __init__(self) -> None:
        GPIO.setwarnings(False)
        GPIO.setmode(GPIO.BCM)
        self._used: list[int] = []

    def input(self, number: int, pull: Pull = "up") -> RpiInputPin:
        GPIO.setup(number, GPIO.IN, pull_up_down=_PULLS[pull])
        self._used.append(number)
        return RpiInputPin(number)

    def output(self, number: int, initial: bool = False) -> RpiOutputPin:
        GPIO.setup(number, GPIO.OUT, initial=GPIO.HIGH if initial else GPIO.LOW)
        self._used.append(number)
        return RpiOutputPin(number)

    def close(self) -> None:
        if self._used:
            GPIO.cleanup(self._used)
            self._used = []
