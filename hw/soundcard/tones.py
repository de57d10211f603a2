"""Call-progress and keypad tones, generated on the handset.

Why locally: a mesh call has no exchange to send ring-back or busy, and the caller must hear
at once that the handset is alive and what it is doing. Frequencies and cadences follow the
North American precise tone plan (ITU-T E.180 supplement), which every user recognises;
keypad feedback uses the DTMF pairs, so it also sounds like a phone.

Tones are made once per rate as one whole cadence cycle of S16_LE samples and then read out a
period at a time, so playing a tone costs a slice, not a sine per sample, in the audio path.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from functools import cache

LEVEL = 0.22  # per component, of full scale: about -13 dBFS each, -7 dBFS for a pair

DTMF_ROWS = {
    "1": 697,
    "2": 697,
    "3": 697,
    "A": 697,
    "4": 770,
    "5": 770,
    "6": 770,
    "B": 770,
    "7": 852,
    "8": 852,
    "9": 852,
    "C": 852,
    "*": 941,
    "0": 941,
    "#": 941,
    "D": 941,
}
DTMF_COLUMNS = {
    "1": 1209,
    "4": 1209,
    "7": 1209,
    "*": 1209,
    "2": 1336,
    "5": 1336,
    "8": 1336,
    "0": 1336,
    "3": 1477,
    "6": 1477,
    "9": 1477,
    "#": 1477,
    "A": 1633,
    "B": 1633,
    "C": 1633,
    "D": 1633,
}


@dataclass(frozen=True)
class ToneSpec:
    """A tone: frequencies sounded together, and a cadence of (on_s, off_s) steps."""

    frequencies: tuple[float, ...]
    cadence: tuple[tuple[float, float], ...]
    repeat: bool


CALL_PROGRESS: dict[str, ToneSpec] = {
    "dial": ToneSpec((350, 440), ((1.0, 0.0),), repeat=True),
    "ringback": ToneSpec((440, 480), ((2.0, 4.0),), repeat=True),
    "busy": ToneSpec((480, 620), ((0.5, 0.5),), repeat=True),
    "error": ToneSpec((480, 620), ((0.25, 0.25),), repeat=True),  # "reorder": fast busy
    "call_ended": ToneSpec((480, 620), ((0.15, 0.1), (0.15, 0.1), (0.15, 0.4)), repeat=False),
    "ring": ToneSpec((440, 480), ((2.0, 4.0),), repeat=True),  # the ringer, on the speaker
}
KEYPAD_TONE_S = 0.1


def dtmf_spec(key: str) -> ToneSpec:
    key = key.upper()
    if key not in DTMF_ROWS:
        raise ValueError(f"no DTMF tone for key {key!r}; keys are 0-9, *, #, A-D")
    return ToneSpec((DTMF_ROWS[key], DTMF_COLUMNS[key]), ((KEYPAD_TONE_S, 0.0),), repeat=False)


@cache
def render(spec: ToneSpec, rate: int) -> bytes:
    """One whole cadence cycle of `spec` as mono S16_LE at `rate`."""
    amplitude = LEVEL * 32767
    steps = [2 * math.pi * f / rate for f in spec.frequencies]
    samples = array("h")
    n = 0
    for on_s, off_s in spec.cadence:
        on = round(on_s * rate)
        samples.extend(
            int(amplitude * sum(math.sin(step * i) for step in steps)) for i in range(n, n + on)
        )
        n += on
        samples.extend([0] * round(off_s * rate))
        n += round(off_s * rate)
    return samples.tobytes()


class ToneSource:
    """Reads a tone out in pieces of any size; a repeating tone loops, a single one ends."""

    def __init__(self, spec: ToneSpec, rate: int = 16000) -> None:
        self._cycle = render(spec, rate)
        self._repeat = spec.repeat
        self._offset = 0

    @classmethod
    def call_progress(cls, name: str, rate: int = 16000) -> ToneSource:
        if name not in CALL_PROGRESS:
            raise ValueError(f"no call-progress tone {name!r}; choose from {sorted(CALL_PROGRESS)}")
        return cls(CALL_PROGRESS[name], rate)

    @classmethod
    def keypad(cls, key: str, rate: int = 16000) -> ToneSource:
        return cls(dtmf_spec(key), rate)

    @property
    def finished(self) -> bool:
        return not self._repeat and self._offset >= len(self._cycle)

    def read(self, nbytes: int) -> bytes:
        """The next `nbytes` of tone (silence once a single tone has ended)."""
        out = bytearray()
        while len(out) < nbytes:
            if self._offset >= len(self._cycle):
                if not self._repeat:
                    out += bytes(nbytes - len(out))
                    break
                self._offset = 0
            piece = self._cycle[self._offset : self._offset + nbytes - len(out)]
            self._offset += len(piece)
            out += piece
        return bytes(out)


def mix(a: bytes, b: bytes) -> bytes:
    """Sum two equal-length S16_LE buffers with saturation (a keypad beep over call audio)."""
    left, right = array("h", a), array("h", b)
    return array(
        "h", [max(-32768, min(32767, x + y)) for x, y in zip(left, right, strict=True)]
    ).tobytes()
