"""One way to choose the hardware behind every device kind, as gpiozero chooses pin factories.

Each kind (the sound card, the mesh's kernel side, the GPIO pins of keypad, hook, ringer and
LED) has a real backend and a test backend that records what was done to it. Which one runs
is chosen by name: the config file's `backend` key, else the kind's environment variable
(for tests that start programs without writing a config), else the kind's default. A name
that is not in the table is an error naming the choices; a backend module is imported only
when chosen, and never as a fallback for another one that failed to import.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UnknownBackend(ValueError):
    """A backend name that is not in the kind's table; the message lists the choices."""


@dataclass(frozen=True)
class BackendKind:
    kind: str
    env: str
    default: str
    backends: Mapping[str, str]
    """name -> "module:attribute" of the backend's class (or factory)."""

    def choose(self, configured: str | None = None) -> str:
        """The backend's name: `configured`, else $env, else the default."""
        name = configured or os.environ.get(self.env) or self.default
        if name not in self.backends:
            source = "the config" if configured else f"${self.env}"
            raise UnknownBackend(
                f"unknown {self.kind} backend {name!r} (from {source}); "
                f"choose one of {', '.join(sorted(self.backends))}"
            )
        return name

    def load(self, configured: str | None = None) -> Any:
        """The chosen backend's class (or factory), imported now."""
        module_name, attribute = self.backends[self.choose(configured)].split(":")
        return getattr(importlib.import_module(module_name), attribute)


AUDIO = BackendKind(
    "audio",
    "HANDSET_AUDIO_BACKEND",
    "alsa",
    {
        "alsa": "hw.soundcard.alsa_pcm:AlsaBackend",
        "file": "hw.soundcard.file_pcm:FileBackend",
        "fake": "hw.soundcard.fake_pcm:FakeBackend",
    },
)
MESH = BackendKind(
    "mesh",
    "HANDSET_MESH_BACKEND",
    "pyroute2",
    {"pyroute2": "hw.mesh.kernel:Pyroute2Backend", "fake": "hw.mesh.fake:FakeMeshBackend"},
)
PINS = BackendKind(
    "pins",
    "HANDSET_PINS",
    "recording",
    {"rpi-gpio": "hw.gpio.rpi:RpiGpioPins", "recording": "hw.gpio.recording:RecordingPins"},
)
"""The GPIO pins of the keypad, hook switch, ringer and LED (hw/gpio)."""
KINDS = {kind.kind: kind for kind in (AUDIO, MESH, PINS)}
