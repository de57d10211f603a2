"""Phones on real `Node`s on the in-memory network (lab/netsim.py): a person's view of a call.

Each `PhoneStation` joins a `Phone` to a netsim `Station`: node events go into the phone, node
commands come back out through `run_node_command` (as the daemon does), and everything the user
would hear or see (tones, ringer, LED, call audio, volume, mute) is recorded with its time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import UnionType

from lab.netsim import Network, Station
from vomp.events import Event
from vomp.phone import (
    Action,
    Phone,
    PhoneSettings,
    PhoneStateChanged,
    PlayKeyTone,
    PlayTone,
    SetLed,
    SetRinger,
    StartCallAudio,
    StopTone,
    run_node_command,
)


@dataclass
class PhoneStation:
    net: Network
    station: Station
    phone: Phone
    actions: list[tuple[float, Action]] = field(default_factory=list)
    _timer: float | None = None

    # ------------------------------------------------------------------ the user
    def lift(self) -> None:
        self.do(lambda now: self.phone.hook(True, now))

    def put_down(self) -> None:
        self.do(lambda now: self.phone.hook(False, now))

    def press(self, keys: str) -> None:
        for key in keys:
            self.do(lambda now, k=key: self.phone.key(k, now))

    def do(self, command) -> None:
        """Run `command(now)` on the phone now, then carry out what it asks."""
        command(self.net.now)
        self._drain(self.net.now)

    # ------------------------------------------------------------------ what happened
    @property
    def state(self) -> str:
        return self.phone.state.value

    @property
    def node(self):
        return self.station.node

    def of(self, kind: type | UnionType) -> list:
        return [a for _t, a in self.actions if isinstance(a, kind)]

    def tone(self) -> str | None:
        """The call-progress tone playing now (None: silence)."""
        playing = None
        for _t, action in self.actions:
            if isinstance(action, PlayTone):
                playing = action.name
            elif isinstance(action, StopTone):
                playing = None
        return playing

    def tones(self) -> list[str | None]:
        return [a.name if isinstance(a, PlayTone) else None for a in self.of(PlayTone | StopTone)]

    def ringing(self) -> bool:
        return bool(self.of(SetRinger)) and self.of(SetRinger)[-1].on

    def led(self) -> str:
        leds = self.of(SetLed)
        return leds[-1].pattern if leds else "off"

    def states(self) -> list[str]:
        return [a.new for a in self.of(PhoneStateChanged)]

    def keys_beeped(self) -> str:
        return "".join(a.key for a in self.of(PlayKeyTone))

    def audio_started(self) -> list[int]:
        return [a.call for a in self.of(StartCallAudio)]

    # ------------------------------------------------------------------ plumbing
    def _node_event(self, _station: Station, event: Event, now: float) -> None:
        self.phone.node_event(event, now)
        self._drain(now)

    def _timer_due(self) -> None:
        self._timer = None
        self.phone.handle_timer(self.net.now)
        self._drain(self.net.now)

    def _drain(self, now: float) -> None:
        while (action := self.phone.next_action()) is not None:
            self.actions.append((now, action))
            run_node_command(self.node, action, now)
        when = self.phone.next_timer()
        if when is not None and when != self._timer:
            self._timer = when
            self.net.at(when, self._timer_due)


def add_phone(net: Network, number: str, settings: PhoneSettings | None = None, **kw):
    station = net.add(number, **kw)
    phone_station = PhoneStation(net, station, Phone(settings))
    station.handlers.append(phone_station._node_event)
    return phone_station


def phones(n: int, settings: PhoneSettings | None = None, **net_kw):
    """A network with `n` phones, numbers 5552001..., that have found each other."""
    net = Network(**net_kw)
    stations = [add_phone(net, f"555200{i + 1}", settings) for i in range(n)]
    net.run_until(2.0)
    return net, stations
