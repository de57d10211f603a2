"""The phone: what a person does with a handset, as a sans-IO state machine (like h11's _state).

Rules this module keeps:
- Everything that decides what the phone does lives here: the `TRANSITIONS` table, the few
  joint rules listed below, and `INDICATORS` (what the user hears and sees in each state).
- Nothing here touches a socket, a GPIO pin, a sound card or a clock. Inputs come in with `now`;
  what should happen comes out of `next_action()` as small frozen dataclasses, which the daemon
  carries out (node commands on the `Node`, tones on the audio engine, the ringer, the LED).
- Key presses and the hook never raise: a key that means nothing in a state is ignored (and
  counted). Control commands (`dial`, `answer`, ...) raise `PhoneError` with a sentence a CLI
  can print when the phone's state does not allow them.

Theory of operation. Raw inputs (keys, hook edges, VoMP events, timeouts, control commands) are
first *classified* into an `Input` using the phone's data (which call is ours, whether the number
is complete); then `TRANSITIONS[(state, input)]` gives the next state and the effects (`Do`) to
run. A pair that is not in the table is ignored. On every state change the phone compares
`INDICATORS` of the old and new state and emits what changed (tone, ringer, LED, call audio).
Each state has at most one timeout (`_timeout_for`), re-armed on entry (and on each digit).

Joint rules that are not rows of the table:
1. An incoming call while the phone is not IDLE is rejected at once (reason BUSY_HERE) and
   reported with `RejectedWhileBusy` -- unless it replaces our own outgoing call to the same
   peer (simultaneous dial, see vomp.call; that call is live, or was just refused for this
   one), which the phone takes instead and answers.
2. VoMP events about calls other than the phone's current one are ignored, except that an
   outgoing call the phone no longer wants (the user hung up during the lookup) is hung up.
3. Volume up/down works in every state; the hook flag follows the hook switch in every state.
4. When the handset is not lifted (no hook switch, or a call made or answered by a control
   command), the end tone's timeout puts the phone back on-hook. A call that ends while the
   phone is not in use (still ringing) leaves it IDLE: nobody listens for an end tone.
5. The hang-up key with the handset lifted is a flash: on-hook, then at once a fresh dial tone.

API (what the daemon calls; every `now` is seconds on a monotonic clock):

    phone = Phone(PhoneSettings(speed_dials={"1": "5551234"}, auto_answer=False))
    phone.key("5", now)              # '0'-'9', '*', '#', 'A'-'D'
    phone.hook(True, now)            # hook switch: True = handset lifted (off-hook)
    phone.node_event(event, now)     # every vomp.events.Event from Node.next_event()
    phone.dial("5551234", now)       # control commands; raise PhoneError when not allowed
    phone.answer(now); phone.hang_up(now); phone.reject(now); phone.redial(now)
    phone.set_mute(True, now); phone.volume_up(now); phone.volume_down(now)
    phone.handle_timer(now)          # at or after phone.next_timer() (None: no timer)
    while (action := phone.next_action()) is not None: ...   # drain after every input
    phone.status()                   # PhoneStatus snapshot for `handset status`

Actions: node commands `Dial(number)` (Node.dial: lookup, then call), `Ring(call)`,
`Answer(call)`, `HangUp(call, reason)`; sound `PlayTone(name)` (a name of
hw.soundcard.tones.CALL_PROGRESS), `StopTone()`, `PlayKeyTone(key)` (a short DTMF beep);
`SetRinger(on)`, `SetLed(pattern)` ("off" | "on" | "blink"), `StartCallAudio(call)`,
`StopCallAudio(call)`, `SetMute(on)`, `SetVolume(level)`; and for the log
`PhoneStateChanged(old, new, why)` and `RejectedWhileBusy(call, remote_sid, caller_number)`.
`run_node_command(node, action, now)` carries out the node commands on a `vomp.node.Node` (and
returns False for every other action), so the daemon and the tests do it the same way.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vomp.call import CallError
from vomp.dna import is_valid_did
from vomp.events import (
    CallEnded,
    CallStateChanged,
    DnaLookupFinished,
    EndReason,
    Event,
    IncomingCall,
)
from vomp.messages import CallState

if TYPE_CHECKING:
    from vomp.node import Node

__all__ = [
    "TRANSITIONS",
    "Action",
    "Answer",
    "Dial",
    "HangUp",
    "Input",
    "LocalEnd",
    "Phone",
    "PhoneError",
    "PhoneSettings",
    "PhoneState",
    "PhoneStateChanged",
    "PhoneStatus",
    "PlayKeyTone",
    "PlayTone",
    "RejectedWhileBusy",
    "Ring",
    "SetLed",
    "SetMute",
    "SetRinger",
    "SetVolume",
    "StartCallAudio",
    "StopCallAudio",
    "StopTone",
    "run_node_command",
]

DIAL_KEYS = frozenset("0123456789*")  # '#' sends; it is never part of a number we dial
KEYS = frozenset("0123456789*#ABCD")


class PhoneError(ValueError):
    """A control command that the phone's state does not allow; the message says why."""


@dataclass(frozen=True)
class PhoneSettings:
    """How this handset behaves; the daemon fills it from the config file."""

    speed_dials: dict[str, str] = field(default_factory=dict)  # "1" -> "5551234"
    auto_answer: bool = False
    auto_answer_after_s: float = 2.0  # rings this long first, so the caller hears ring-back
    hook_switch: bool = True  # False: call/hang-up keys on the matrix instead
    inter_digit_timeout_s: float = 4.0
    dial_tone_timeout_s: float = 20.0  # off-hook and no digit: error tone
    call_setup_timeout_s: float = 20.0  # dialled and nothing came back (lookup + dial ~18 s)
    end_tone_s: float = 10.0  # busy/error/ended tone, then silence (or on-hook, no hook switch)
    call_key: str = "A"  # send the digits; off-hook; answer
    redial_key: str = "B"
    mute_key: str = "C"  # in a call
    hang_up_key: str = "D"  # on-hook; reject a ringing call
    volume_down_key: str = "*"  # in a call only (outside a call '*' is a digit)
    volume_up_key: str = "#"  # in a call only (outside a call '#' sends)
    volume: int = 7
    volume_max: int = 10

    def __post_init__(self) -> None:
        for name in ("call_key", "redial_key", "mute_key", "hang_up_key"):
            key = getattr(self, name)
            if key and key not in KEYS - DIAL_KEYS - {"#"}:
                raise ValueError(f"{name} = {key!r}: use one of A, B, C, D, or '' for none")
        functions = [self.call_key, self.redial_key, self.mute_key, self.hang_up_key]
        used = [key for key in functions if key]
        if len(used) != len(set(used)):
            raise ValueError(
                f"call_key, redial_key, mute_key and hang_up_key must differ, got {functions}"
            )
        for name in ("volume_down_key", "volume_up_key"):
            key = getattr(self, name)
            if key and key not in KEYS:
                raise ValueError(f"{name} = {key!r}: use a key of the keypad, or '' for none")
        for short, number in self.speed_dials.items():
            if not short or any(c not in DIAL_KEYS for c in short):
                raise ValueError(f"speed dial {short!r}: the key must be digits (0-9 or *)")
            if not is_valid_did(number):
                raise ValueError(
                    f"speed dial {short!r} = {number!r}: use 5 to 31 characters of 0-9 * # +"
                )
        if not 0 <= self.volume <= self.volume_max:
            raise ValueError(f"volume {self.volume}: use 0 to {self.volume_max}")


# ------------------------------------------------------------------------------------ actions
class Action:
    """Base class of everything `Phone.next_action()` returns."""


@dataclass(frozen=True)
class Dial(Action):
    """Node.dial(number): look the number up and call the first answer."""

    number: str


@dataclass(frozen=True)
class Ring(Action):
    """Node.ring(call): tell the caller we are ringing."""

    call: int


@dataclass(frozen=True)
class Answer(Action):
    """Node.answer(call)."""

    call: int


@dataclass(frozen=True)
class HangUp(Action):
    """Node.hang_up(call, reason): hang up, cancel or reject."""

    call: int
    reason: EndReason = EndReason.HUNG_UP


@dataclass(frozen=True)
class PlayTone(Action):
    """Play a call-progress tone (a key of hw.soundcard.tones.CALL_PROGRESS) until StopTone."""

    name: str


@dataclass(frozen=True)
class StopTone(Action):
    """Silence the call-progress tone."""


@dataclass(frozen=True)
class PlayKeyTone(Action):
    """A short DTMF beep for a pressed key, over whatever else plays."""

    key: str


@dataclass(frozen=True)
class SetRinger(Action):
    on: bool


@dataclass(frozen=True)
class SetLed(Action):
    pattern: str  # "off" | "on" | "blink"


@dataclass(frozen=True)
class StartCallAudio(Action):
    """Connect microphone and earpiece to this call."""

    call: int


@dataclass(frozen=True)
class StopCallAudio(Action):
    call: int


@dataclass(frozen=True)
class SetMute(Action):
    on: bool


@dataclass(frozen=True)
class SetVolume(Action):
    level: int  # 0 .. PhoneSettings.volume_max


@dataclass(frozen=True)
class PhoneStateChanged(Action):
    """For the log: the phone moved from `old` to `new` because of `why`."""

    old: str
    new: str
    why: str


@dataclass(frozen=True)
class RejectedWhileBusy(Action):
    """For the log: a second incoming call was rejected (the phone was busy)."""

    call: int
    remote_sid: bytes
    caller_number: str


# ------------------------------------------------------------------------------ the table
class PhoneState(enum.Enum):
    IDLE = "idle"  # on-hook, quiet
    DIAL_TONE = "dial tone"  # off-hook, no digit yet
    DIGITS = "digits"  # collecting a number
    CALLING = "calling"  # number sent: lookup and call set-up, silent
    RINGING_OUT = "ringing out"  # the far end rings: ring-back
    IN_CALL = "in call"
    INCOMING = "incoming"  # a call arrived; waiting for the caller to ring out (one round trip)
    RINGING_IN = "ringing in"  # the ringer rings
    ENDED = "ended"  # off-hook after a call or a failed attempt: the tone says why
    WAIT_ON_HOOK = "wait on-hook"  # the end tone is over; silent until the handset goes down


class Input(enum.Enum):
    OFF_HOOK = "off-hook"  # the hook switch, the call key outside dialling, a control answer
    ON_HOOK = "on-hook"  # the hook switch, the hang-up key, a control hang-up
    DIGIT = "digit"
    NUMBER_COMPLETE = "number complete"  # '#', the call key or the inter-digit timeout
    NUMBER_INVALID = "number invalid"  # the same, but too short or not a number
    DIAL = "dial"  # a control dial, redial or the call key with no digits (redial)
    TIMEOUT = "timeout"  # the state's own timeout
    CALL_PLACED = "our call placed"
    LOOKUP_FAILED = "no such number"
    FAR_END_RINGING = "far end ringing"
    ANSWERED = "answered"
    CALL_ENDED = "call ended"
    CALL_GONE = "call ended before it was answered here"
    INCOMING_CALL = "incoming call"
    REPLACED = "our call replaced by the far end's (simultaneous dial)"
    CALLER_READY = "caller ringing out, on-hook"
    CALLER_READY_OFF_HOOK = "caller ringing out, off-hook"
    REJECT = "reject"
    MUTE = "mute"


class Do(enum.Enum):
    """Effects of a transition, run in the order listed."""

    ADD_DIGIT = "add the digit, beep"
    PLACE_CALL = "Dial(number)"
    ADOPT_CALL = "remember our outgoing call"
    TAKE_INCOMING = "remember the incoming call"
    RING = "Ring(call)"
    ANSWER = "Answer(call)"
    HANG_UP = "HangUp(call)"
    REJECT = "HangUp(call, DECLINED)"
    TOGGLE_MUTE = "SetMute(not muted)"


S, In = PhoneState, Input
TRANSITIONS: dict[tuple[PhoneState, Input], tuple[PhoneState, tuple[Do, ...]]] = {
    (S.IDLE, In.OFF_HOOK): (S.DIAL_TONE, ()),
    (S.IDLE, In.DIAL): (S.CALLING, (Do.PLACE_CALL,)),
    (S.IDLE, In.INCOMING_CALL): (S.INCOMING, (Do.TAKE_INCOMING,)),
    #
    (S.DIAL_TONE, In.DIGIT): (S.DIGITS, (Do.ADD_DIGIT,)),
    (S.DIAL_TONE, In.DIAL): (S.CALLING, (Do.PLACE_CALL,)),
    (S.DIAL_TONE, In.TIMEOUT): (S.ENDED, ()),
    (S.DIAL_TONE, In.ON_HOOK): (S.IDLE, ()),
    #
    (S.DIGITS, In.DIGIT): (S.DIGITS, (Do.ADD_DIGIT,)),
    (S.DIGITS, In.NUMBER_COMPLETE): (S.CALLING, (Do.PLACE_CALL,)),
    (S.DIGITS, In.NUMBER_INVALID): (S.ENDED, ()),
    (S.DIGITS, In.DIAL): (S.CALLING, (Do.PLACE_CALL,)),
    (S.DIGITS, In.ON_HOOK): (S.IDLE, ()),
    #
    (S.CALLING, In.CALL_PLACED): (S.CALLING, (Do.ADOPT_CALL,)),
    (S.CALLING, In.FAR_END_RINGING): (S.RINGING_OUT, ()),
    (S.CALLING, In.ANSWERED): (S.IN_CALL, ()),  # a far end that answers without ringing
    (S.CALLING, In.LOOKUP_FAILED): (S.ENDED, ()),
    (S.CALLING, In.CALL_ENDED): (S.ENDED, ()),
    (S.CALLING, In.TIMEOUT): (S.ENDED, (Do.HANG_UP,)),
    (S.CALLING, In.REPLACED): (S.INCOMING, (Do.TAKE_INCOMING,)),
    (S.CALLING, In.ON_HOOK): (S.IDLE, (Do.HANG_UP,)),
    #
    (S.RINGING_OUT, In.ANSWERED): (S.IN_CALL, ()),
    (S.RINGING_OUT, In.CALL_ENDED): (S.ENDED, ()),
    (S.RINGING_OUT, In.REPLACED): (S.INCOMING, (Do.TAKE_INCOMING,)),
    (S.RINGING_OUT, In.ON_HOOK): (S.IDLE, (Do.HANG_UP,)),
    #
    (S.IN_CALL, In.MUTE): (S.IN_CALL, (Do.TOGGLE_MUTE,)),
    (S.IN_CALL, In.CALL_ENDED): (S.ENDED, ()),
    (S.IN_CALL, In.ON_HOOK): (S.IDLE, (Do.HANG_UP,)),
    #
    (S.INCOMING, In.CALLER_READY): (S.RINGING_IN, (Do.RING,)),
    (S.INCOMING, In.CALLER_READY_OFF_HOOK): (S.IN_CALL, (Do.ANSWER,)),
    (S.INCOMING, In.OFF_HOOK): (S.INCOMING, ()),  # answered as soon as the caller rings out
    (S.INCOMING, In.CALL_GONE): (S.IDLE, ()),
    (S.INCOMING, In.CALL_ENDED): (S.ENDED, ()),  # lifted, or our call it replaced
    (S.INCOMING, In.REJECT): (S.IDLE, (Do.REJECT,)),
    (S.INCOMING, In.ON_HOOK): (S.IDLE, (Do.REJECT,)),
    #
    (S.RINGING_IN, In.OFF_HOOK): (S.IN_CALL, (Do.ANSWER,)),
    (S.RINGING_IN, In.TIMEOUT): (S.IN_CALL, (Do.ANSWER,)),  # auto-answer, after ringing
    (S.RINGING_IN, In.REJECT): (S.IDLE, (Do.REJECT,)),
    (S.RINGING_IN, In.CALL_GONE): (S.IDLE, ()),  # the caller gave up
    #
    (S.ENDED, In.TIMEOUT): (S.WAIT_ON_HOOK, ()),
    (S.ENDED, In.REPLACED): (S.INCOMING, (Do.TAKE_INCOMING,)),  # our call was refused for it
    (S.ENDED, In.DIAL): (S.CALLING, (Do.PLACE_CALL,)),
    (S.ENDED, In.ON_HOOK): (S.IDLE, ()),
    #
    (S.WAIT_ON_HOOK, In.DIAL): (S.CALLING, (Do.PLACE_CALL,)),
    (S.WAIT_ON_HOOK, In.ON_HOOK): (S.IDLE, ()),
}
del S, In


@dataclass(frozen=True)
class Indicators:
    """What the user hears and sees in a state. tone "end": the tone for why it ended."""

    tone: str | None = None
    ringer: bool = False
    led: str = "on"
    call_audio: bool = False


INDICATORS: dict[PhoneState, Indicators] = {
    PhoneState.IDLE: Indicators(led="off"),
    PhoneState.DIAL_TONE: Indicators(tone="dial"),
    PhoneState.DIGITS: Indicators(),
    PhoneState.CALLING: Indicators(),
    PhoneState.RINGING_OUT: Indicators(tone="ringback"),
    PhoneState.IN_CALL: Indicators(call_audio=True),
    PhoneState.INCOMING: Indicators(led="off"),
    PhoneState.RINGING_IN: Indicators(ringer=True, led="blink"),
    PhoneState.ENDED: Indicators(tone="end"),
    PhoneState.WAIT_ON_HOOK: Indicators(),
}


class LocalEnd(enum.Enum):
    """Why an attempt ended before (or without) a VoMP call."""

    NO_SUCH_NUMBER = "no such number: nobody answered the lookup"
    INVALID_NUMBER = "not a number: use 5 to 31 digits, or a speed dial"
    DIAL_TONE_TIMEOUT = "off-hook without dialling"
    SETUP_TIMEOUT = "the call could not be set up in time"


# The tone the caller hears for each way a call or attempt ends (None: silence).
END_TONES: dict[EndReason | LocalEnd, str | None] = {
    EndReason.BUSY: "busy",
    EndReason.REJECTED: "busy",
    EndReason.BUSY_HERE: "busy",
    EndReason.DECLINED: "busy",
    EndReason.ENDED_BY_FAR_END: "call_ended",
    EndReason.CANCELLED: "call_ended",
    EndReason.NO_ANSWER: "call_ended",
    EndReason.HUNG_UP: "call_ended",
    EndReason.NETWORK_LOST: "error",
    EndReason.NO_REPLY: "error",
    EndReason.NO_SHARED_CODEC: "error",
    EndReason.CANNOT_RING: "error",
    EndReason.SIMULTANEOUS_DIAL: "error",
    EndReason.PROTOCOL: "error",
    LocalEnd.NO_SUCH_NUMBER: "error",
    LocalEnd.INVALID_NUMBER: "error",
    LocalEnd.DIAL_TONE_TIMEOUT: "error",
    LocalEnd.SETUP_TIMEOUT: "error",
}


@dataclass(frozen=True)
class PhoneStatus:
    """A snapshot for `handset status`; the daemon adds the node's view of the call."""

    state: str
    off_hook: bool  # in use
    lifted: bool  # the hook switch
    digits: str
    number: str  # the number dialled, or the caller's number
    call: int | None
    muted: bool
    volume: int
    last_number: str  # what redial dials
    last_end: str  # why the last call or attempt ended ('' before the first)
    rejected_while_busy: int
    ignored_inputs: int


# ------------------------------------------------------------------------------ the machine
class Phone:
    """One handset's user-facing behaviour. See the module docstring for the API."""

    def __init__(self, settings: PhoneSettings | None = None) -> None:
        self.settings = settings or PhoneSettings()
        self.state = PhoneState.IDLE
        self.lifted = False  # the hook switch: the handset is up
        self.off_hook = False  # the phone is in use (lifted, call key, control command)
        self.digits = ""
        self.number = ""
        self.call: int | None = None
        self.muted = False
        self.volume = self.settings.volume
        self.last_number = ""
        self.end: EndReason | LocalEnd | None = None
        self.rejected_while_busy = 0
        self.ignored = 0
        self._timer_at: float | None = None
        self._actions: deque[Action] = deque()
        # what the input being handled carries (a key, a number, a call, a reason)
        self._key = ""
        self._incoming: IncomingCall | None = None
        self._ended_call: int | None = None  # in ENDED: the call whose end we play

    # ------------------------------------------------------------------ outputs
    def next_action(self) -> Action | None:
        return self._actions.popleft() if self._actions else None

    def next_timer(self) -> float | None:
        return self._timer_at

    def status(self) -> PhoneStatus:
        return PhoneStatus(
            state=self.state.value,
            off_hook=self.off_hook,
            lifted=self.lifted,
            digits=self.digits,
            number=self.number,
            call=self.call,
            muted=self.muted,
            volume=self.volume,
            last_number=self.last_number,
            last_end=self.end.value if self.end is not None else "",
            rejected_while_busy=self.rejected_while_busy,
            ignored_inputs=self.ignored,
        )

    # ------------------------------------------------------------- user inputs
    def key(self, key: str, now: float) -> None:
        """One key press (debounced, no repeat: the keypad device does that)."""
        key = key.upper()
        if key not in KEYS:
            self.ignored += 1
            return
        s = self.settings
        state = self.state
        self._key = key
        if state is PhoneState.IN_CALL and key in (s.volume_up_key, s.volume_down_key):
            self._change_volume(+1 if key == s.volume_up_key else -1)
        elif key == s.hang_up_key:
            if state in (PhoneState.RINGING_IN, PhoneState.INCOMING):
                self._fire(Input.REJECT, now)
            else:
                self._fire(Input.ON_HOOK, now)
                if self.lifted:  # joint rule 5
                    self._off_hook(now)
        elif key == s.call_key:
            if state in (PhoneState.DIAL_TONE, PhoneState.DIGITS):
                self._send_digits(now)
            else:
                self._off_hook(now)
        elif key == s.redial_key:
            self._redial(now, strict=False)
        elif key == s.mute_key:
            self._fire(Input.MUTE, now)
        elif key == "#" and state is PhoneState.DIGITS:
            self._send_digits(now)
        elif key in DIAL_KEYS:
            if state is PhoneState.IDLE and not s.hook_switch:  # typing starts a call
                self._off_hook(now)
            self._fire(Input.DIGIT, now)
        else:
            self.ignored += 1

    def hook(self, off_hook: bool, now: float) -> None:
        """The hook switch moved (True: handset lifted). A repeated state is no edge."""
        if off_hook == self.lifted:
            return
        self.lifted = off_hook
        if off_hook:
            self._off_hook(now)
        else:
            self._fire(Input.ON_HOOK, now)

    # --------------------------------------------------------- control commands
    def dial(self, number: str, now: float) -> None:
        """Dial `number` (or a speed-dial key) as if the handset were lifted and it typed."""
        number = self.settings.speed_dials.get(number, number)
        if not is_valid_did(number):
            raise PhoneError(f"cannot dial {number!r}: use 5 to 31 characters of 0-9 * # +")
        self._fire(Input.DIAL, now, strict="dial", number=number)

    def redial(self, now: float) -> None:
        self._redial(now, strict=True)

    def answer(self, now: float) -> None:
        if self.state not in (PhoneState.RINGING_IN, PhoneState.INCOMING):
            raise PhoneError(f"no call is ringing: the phone is {self.state.value}")
        self._off_hook(now)

    def hang_up(self, now: float) -> None:
        """End whatever the phone does: a call, a ringing call (rejected), dialling, a tone."""
        if self.state is PhoneState.IDLE:
            raise PhoneError("no call to hang up: the phone is idle")
        if self.state in (PhoneState.RINGING_IN, PhoneState.INCOMING):
            self._fire(Input.REJECT, now, strict="hang up")
        else:
            self._fire(Input.ON_HOOK, now, strict="hang up")

    def reject(self, now: float) -> None:
        self._fire(Input.REJECT, now, strict="reject")

    def set_mute(self, on: bool, now: float) -> None:
        if self.state is not PhoneState.IN_CALL:
            raise PhoneError(f"cannot mute: the phone is {self.state.value}, not in a call")
        if on != self.muted:
            self._fire(Input.MUTE, now, strict="mute")

    def volume_up(self, now: float) -> None:
        self._change_volume(+1)

    def volume_down(self, now: float) -> None:
        self._change_volume(-1)

    # ---------------------------------------------------------------- timers
    def handle_timer(self, now: float) -> None:
        if self._timer_at is None or now < self._timer_at:
            return
        self._timer_at = None
        if self.state is PhoneState.DIGITS:
            self._send_digits(now)
        elif self.state is PhoneState.ENDED and not self.lifted:
            self._fire(Input.ON_HOOK, now)  # joint rule 4
        else:
            if self.state is PhoneState.DIAL_TONE:
                self.end = LocalEnd.DIAL_TONE_TIMEOUT
            elif self.state is PhoneState.CALLING:
                self.end = LocalEnd.SETUP_TIMEOUT
            self._fire(Input.TIMEOUT, now)

    # ------------------------------------------------------------ node events
    def node_event(self, event: Event, now: float) -> None:
        """Feed every event of the Node; those that do not concern the phone are ignored."""
        if isinstance(event, IncomingCall):
            self._incoming_call(event, now)
        elif isinstance(event, CallStateChanged):
            self._call_state_changed(event, now)
        elif isinstance(event, CallEnded):
            if event.call == self.call:
                self.end = event.reason
                self._fire(Input.CALL_ENDED if self.off_hook else Input.CALL_GONE, now)
        elif isinstance(event, DnaLookupFinished) and self._is_our_failed_lookup(event):
            self.end = LocalEnd.NO_SUCH_NUMBER
            self._fire(Input.LOOKUP_FAILED, now)

    def _is_our_failed_lookup(self, event: DnaLookupFinished) -> bool:
        waiting = self.state is PhoneState.CALLING and self.call is None
        return waiting and not event.answered and event.number == self.number

    def _incoming_call(self, event: IncomingCall, now: float) -> None:
        replaces_ours = event.replaces is not None and event.replaces in (
            self.call,
            self._ended_call,
        )
        if replaces_ours:
            self._incoming = event
            self._fire(Input.REPLACED, now)
        elif self.state is PhoneState.IDLE:
            self._incoming = event
            self._fire(Input.INCOMING_CALL, now)
        else:  # joint rule 1
            self.rejected_while_busy += 1
            self._actions.append(HangUp(event.call, EndReason.BUSY_HERE))
            self._actions.append(
                RejectedWhileBusy(event.call, event.remote_sid, event.caller_number)
            )

    def _call_state_changed(self, event: CallStateChanged, now: float) -> None:
        local, remote = event.local_state, event.remote_state
        if event.call != self.call:
            placed = (
                self.state is PhoneState.CALLING
                and self.call is None
                and local == CallState.CALLPREP
                and event.remote_number in ("", self.number)
            )
            if placed:
                self._fire(Input.CALL_PLACED, now, call=event.call)
            elif local == CallState.CALLPREP:  # joint rule 2: an attempt the user gave up
                self._actions.append(HangUp(event.call))
            return
        if local == CallState.CALLENDED:
            self.end = event.end_reason or EndReason.HUNG_UP
            self._fire(Input.CALL_ENDED if self.off_hook else Input.CALL_GONE, now)
        elif local == CallState.INCALL and self.state is not PhoneState.IN_CALL:
            self._fire(Input.ANSWERED, now)
        elif remote == CallState.RINGINGIN and local == CallState.RINGINGOUT:
            self._fire(Input.FAR_END_RINGING, now)
        elif remote == CallState.RINGINGOUT and local < CallState.RINGINGIN:
            ready = Input.CALLER_READY_OFF_HOOK if self.off_hook else Input.CALLER_READY
            self._fire(ready, now)

    # ----------------------------------------------------------- classifiers
    def _off_hook(self, now: float) -> None:
        self.off_hook = True
        self._fire(Input.OFF_HOOK, now)

    def _send_digits(self, now: float) -> None:
        if not self.digits:
            self._redial(now, strict=False)
            return
        number = self.settings.speed_dials.get(self.digits, self.digits)
        if is_valid_did(number):
            self._fire(Input.NUMBER_COMPLETE, now, number=number)
        else:
            self.end = LocalEnd.INVALID_NUMBER
            self._fire(Input.NUMBER_INVALID, now)

    def _redial(self, now: float, *, strict: bool) -> None:
        if not self.last_number:
            if strict:
                raise PhoneError("nothing to redial: no number dialled yet")
            self.ignored += 1
            return
        self._fire(Input.DIAL, now, strict="redial" if strict else "", number=self.last_number)

    # ------------------------------------------------------------ the engine
    def _fire(
        self,
        what: Input,
        now: float,
        *,
        strict: str = "",
        number: str = "",
        call: int | None = None,
    ) -> None:
        """Run TRANSITIONS[(state, what)]. `strict` names a control command: raise if absent."""
        if what is Input.ON_HOOK:
            self.off_hook = False  # joint rule 3, whatever the table does with it
        row = TRANSITIONS.get((self.state, what))
        if row is None:
            if strict:
                raise PhoneError(f"cannot {strict}: the phone is {self.state.value}")
            self.ignored += 1
            return
        new_state, effects = row
        if number:
            self.number = number
        for effect in effects:
            self._run(effect, now, call)
        self._enter(new_state, what, now)

    def _run(self, effect: Do, now: float, call: int | None) -> None:
        if effect is Do.ADD_DIGIT:
            self.digits += self._key
            self._actions.append(PlayKeyTone(self._key))
            self._timer_at = now + self.settings.inter_digit_timeout_s
        elif effect is Do.PLACE_CALL:
            self.call = None
            self.off_hook = True
            self.last_number = self.number
            self.end = None
            self._actions.append(Dial(self.number))
        elif effect is Do.ADOPT_CALL:
            self.call = call
        elif effect is Do.TAKE_INCOMING:
            assert self._incoming is not None
            self.call = self._incoming.call
            self.number = self._incoming.caller_number
            self.end = None
        elif effect is Do.RING:
            self._actions.append(Ring(self._current()))
        elif effect is Do.ANSWER:
            self.off_hook = True
            self._actions.append(Answer(self._current()))
        elif effect is Do.HANG_UP:
            if self.call is not None:
                self._actions.append(HangUp(self.call))
        elif effect is Do.REJECT:
            self._actions.append(HangUp(self._current(), EndReason.DECLINED))
        elif effect is Do.TOGGLE_MUTE:
            self.muted = not self.muted
            self._actions.append(SetMute(self.muted))

    def _enter(self, new: PhoneState, why: Input, now: float) -> None:
        old = self.state
        if new is old:
            return
        before, after = INDICATORS[old], INDICATORS[new]
        self.state = new
        self._actions.append(PhoneStateChanged(old.value, new.value, why.value))
        if before.call_audio and not after.call_audio and self.call is not None:
            self._actions.append(StopCallAudio(self.call))
            if self.muted:
                self.muted = False
                self._actions.append(SetMute(False))
        tone = self._tone(after)
        if self._tone(before) != tone:
            self._actions.append(PlayTone(tone) if tone else StopTone())
        if before.ringer != after.ringer:
            self._actions.append(SetRinger(after.ringer))
        if before.led != after.led:
            self._actions.append(SetLed(after.led))
        if after.call_audio and not before.call_audio and self.call is not None:
            self._actions.append(StartCallAudio(self.call))
        if new in (PhoneState.IDLE, PhoneState.DIAL_TONE):
            self.digits = ""
        if new is PhoneState.IDLE:
            self.off_hook = False
        self._ended_call = self.call if new is PhoneState.ENDED else None
        if new in (PhoneState.IDLE, PhoneState.ENDED, PhoneState.WAIT_ON_HOOK):
            self.call = None
            self._incoming = None
        if new is PhoneState.IDLE:
            self.number = ""
        if new is not PhoneState.DIGITS:
            self._timer_at = self._timeout_for(new, now)

    def _tone(self, indicators: Indicators) -> str | None:
        if indicators.tone == "end":
            return END_TONES.get(self.end) if self.end is not None else "error"
        return indicators.tone

    def _timeout_for(self, state: PhoneState, now: float) -> float | None:
        s = self.settings
        seconds = {
            PhoneState.DIAL_TONE: s.dial_tone_timeout_s,
            PhoneState.CALLING: s.call_setup_timeout_s,
            PhoneState.ENDED: s.end_tone_s,
            PhoneState.RINGING_IN: s.auto_answer_after_s if s.auto_answer else None,
        }.get(state)
        return None if seconds is None else now + seconds

    def _current(self) -> int:
        assert self.call is not None, f"no current call in state {self.state}"
        return self.call

    def _change_volume(self, step: int) -> None:
        level = min(self.settings.volume_max, max(0, self.volume + step))
        if level != self.volume:
            self.volume = level
            self._actions.append(SetVolume(level))


def run_node_command(node: Node, action: Action, now: float) -> bool:
    """Carry out `action` on `node` if it is a node command; False for any other action.

    A command that the call's state no longer allows (the far end hung up in the meantime)
    is dropped: the phone hears what happened from the node's events.
    """
    try:
        if isinstance(action, Dial):
            node.dial(action.number, now)
        elif isinstance(action, Ring):
            node.ring(action.call, now)
        elif isinstance(action, Answer):
            node.answer(action.call, now)
        elif isinstance(action, HangUp):
            node.hang_up(action.call, now, action.reason)
        else:
            return False
    except CallError:
        pass
    return True
