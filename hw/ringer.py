"""The ringer: tells the user a call is coming in, on a bell line and/or the speaker.

Why an interface: a handset may have a GPIO-driven buzzer or bell, only its earpiece/speaker,
or both; the phone logic just says "ring" or "stop" and calls `update(now)`. The cadence
(2 s on, 4 s off, like the ring-back the caller hears) is applied here, sans clock: time comes
in as `now`, so tests drive it without sleeping.
"""

from __future__ import annotations

from typing import Protocol

from hw.gpio import OutputPin
from hw.soundcard.tones import CALL_PROGRESS, ToneSource


class RingerOutput(Protocol):
    """One thing that can ring: on while the cadence says so, off otherwise."""

    def set_ringing(self, on: bool) -> None: ...


class GpioRinger:
    """Drives a bell or buzzer through one output pin (from a hw.gpio pin factory)."""

    def __init__(self, pin: OutputPin) -> None:
        self._pin = pin

    def set_ringing(self, on: bool) -> None:
        if on:
            self._pin.on()
        else:
            self._pin.off()


class SoundRinger:
    """Rings on the playback device: while on, `read()` gives ring tone for the engine."""

    def __init__(self, rate: int = 16000) -> None:
        self._rate = rate
        self._source: ToneSource | None = None

    def set_ringing(self, on: bool) -> None:
        if on and self._source is None:
            self._source = ToneSource(CALL_PROGRESS["ring"], self._rate)
        elif not on:
            self._source = None

    @property
    def ringing(self) -> bool:
        return self._source is not None

    def read(self, nbytes: int) -> bytes:
        return self._source.read(nbytes) if self._source else bytes(nbytes)


class RecordingRingerOutput:
    """Test backend: remembers every state change, in order."""

    def __init__(self) -> None:
        self.history: list[bool] = []

    def set_ringing(self, on: bool) -> None:
        self.history.append(on)

    @property
    def ringing(self) -> bool:
        return bool(self.history and self.history[-1])


class Ringer:
    """Applies the ring cadence to every output. `start(now)`, `update(now)`, `stop()`."""

    def __init__(self, outputs: list[RingerOutput], on_s: float = 2.0, off_s: float = 4.0) -> None:
        self._outputs = outputs
        self._on_s, self._off_s = on_s, off_s
        self._started: float | None = None
        self._on = False

    @property
    def active(self) -> bool:
        return self._started is not None

    def start(self, now: float) -> None:
        self._started = now
        self._set(True)

    def stop(self) -> None:
        self._started = None
        self._set(False)

    def update(self, now: float) -> float | None:
        """Apply the cadence at `now`; return when to call again (None when not ringing)."""
        if self._started is None:
            return None
        phase = (now - self._started) % (self._on_s + self._off_s)
        on = phase < self._on_s
        self._set(on)
        return now + ((self._on_s - phase) if on else (self._on_s + self._off_s - phase))

    def _set(self, on: bool) -> None:
        if on != self._on:
            self._on = on
            for output in self._outputs:
                output.set_ringing(on)
