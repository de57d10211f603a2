"""Runs the phone (vomp.phone, sans-IO) on the live handset: inputs in, actions carried out.

Inputs: the node's events, keypad keys, the hook switch, the phone's one timer and control
commands. Actions: node commands (through the transport, so their datagrams leave at once),
tones and call audio on HandsetAudio, the ringer and the LED outputs, and log lines. This is
the only place that turns a phone action into something physical, so the phone's table is all
a reviewer needs to read to know what the handset does.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from firmware.event_log import EventLog
from firmware.handset_audio import HandsetAudio
from firmware.transport import NodeProtocol
from vomp.events import EndReason, Event
from vomp.phone import (
    Action,
    HangUp,
    Phone,
    PhoneStateChanged,
    PlayKeyTone,
    PlayTone,
    RejectedWhileBusy,
    SetLed,
    SetMute,
    SetRinger,
    SetVolume,
    StartCallAudio,
    StopCallAudio,
    StopTone,
    run_node_command,
)

KEYS_KEPT = 50


class Output(Protocol):
    """A ringer (True/False) or an LED ("off" | "on" | "blink"); see firmware.indicators."""

    def set(self, value: str | bool) -> None: ...

    def close(self) -> None: ...


class PhoneDriver:
    def __init__(
        self,
        phone: Phone,
        protocol: NodeProtocol,
        audio: HandsetAudio | None,
        events: EventLog,
        ringer: Output | None = None,
        led: Output | None = None,
    ) -> None:
        self.phone = phone
        self.protocol = protocol
        self.audio = audio
        self.events = events
        self.ringer = ringer
        self.led = led
        self.ringing = False
        self.led_pattern = "off"
        self.tone: str | None = None
        self.keys: deque[str] = deque(maxlen=KEYS_KEPT)
        self.last_call_audio: dict[str, object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # -- inputs

    def node_event(self, event: Event) -> None:
        self.phone.node_event(event, self.protocol.now())
        self._drain()

    def key(self, key: str) -> None:
        self.keys.append(key)
        self.events.event(f"key {key}", key=key)
        self.phone.key(key, self.protocol.now())
        self._drain()

    def hook(self, off_hook: bool) -> None:
        self.events.event(f"hook {'off' if off_hook else 'on'}", hook="off" if off_hook else "on")
        self.phone.hook(off_hook, self.protocol.now())
        self._drain()

    def control(self, command: str, *args: str) -> None:
        """A control command (dial, answer, hang_up, redial); raises PhoneError if refused."""
        try:
            getattr(self.phone, command)(*args, self.protocol.now())
        finally:
            self._drain()

    # -- actions

    def _drain(self) -> None:
        while (action := self.phone.next_action()) is not None:
            self._carry_out(action)
        self._arm_timer()

    def _carry_out(self, action: Action) -> None:
        if self.protocol.command(lambda node, now: run_node_command(node, action, now)):
            return
        if isinstance(action, PhoneStateChanged):
            self.events.event(
                f"phone {action.old} -> {action.new} ({action.why})",
                phone_state=action.new,
                call_id=self.phone.call,
                number=self.phone.number or None,
            )
            if action.new in ("ended", "wait on-hook") and self.phone.end is not None:
                self.events.event(
                    f"call ended: {self.phone.end.value}", end_reason=self.phone.end.name
                )
        elif isinstance(action, RejectedWhileBusy):
            self.events.event(
                f"rejected call {action.call} from {action.caller_number or '?'}: busy",
                logging.WARNING,
                call_id=action.call,
                peer_sid=action.remote_sid,
                number=action.caller_number,
            )
        elif isinstance(action, PlayTone | StopTone):
            self.tone = action.name if isinstance(action, PlayTone) else None
            self._play(self.tone)
        elif isinstance(action, PlayKeyTone):
            if self.audio is not None:
                self.audio.key_pressed(action.key)
        elif isinstance(action, SetRinger):
            self.ringing = action.on
            if self.ringer is not None:
                self.ringer.set(action.on)
            else:  # no bell: ring on the speaker, under any tone the phone asks for
                self._play(self.tone or ("ring" if action.on else None))
        elif isinstance(action, SetLed):
            self.led_pattern = action.pattern
            if self.led is not None:
                self.led.set(action.pattern)
        elif isinstance(action, StartCallAudio):
            self._start_call_audio(action.call)
        elif isinstance(action, StopCallAudio):
            self._stop_call_audio(action.call)
        elif isinstance(action, SetMute):
            if self.audio is not None:
                self.audio.set_mute(action.on)
            self.events.event(f"microphone {'muted' if action.on else 'on'}")
        elif isinstance(action, SetVolume) and self.audio is not None:
            self.audio.set_volume(action.level, self.phone.settings.volume)

    def _play(self, tone: str | None) -> None:
        if self.audio is not None:
            self.audio.play_tone(tone)

    def _start_call_audio(self, call: int) -> None:
        state = self.protocol.node.calls.get(call)
        if self.audio is None or state is None:
            return
        if self.audio.start_call(call, state.remote_codecs) is None:
            offered = ", ".join(f"{c:#04x}" for c in state.remote_codecs)
            self.events.event(
                f"call {call}: no shared codec; far end offers [{offered}]",
                logging.WARNING,
                call_id=call,
            )
            self.protocol.command(
                lambda node, now: run_node_command(
                    node, HangUp(call, EndReason.NO_SHARED_CODEC), now
                )
            )

    def _stop_call_audio(self, call: int) -> None:
        if self.audio is None or self.audio.call != call:
            return
        stats = self.audio.end_call()
        self.last_call_audio = stats
        self.events.event(
            f"call {call} audio: codec {stats.get('codec_sent')} sent {stats.get('frames_sent')} "
            f"received {stats.get('packets_received')} lost {stats.get('lost')} concealed "
            f"{stats.get('concealed')} jitter {_figure(stats, 'jitter_ms'):.1f} ms "
            f"playout {_figure(stats, 'playout_delay_ms'):.0f} ms",
            call_id=call,
        )

    # -- the phone's one timer

    def _arm_timer(self) -> None:
        when = self.phone.next_timer()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            delay = max(0.0, when - self.protocol.now())
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.phone.handle_timer(self.protocol.now())
        self._drain()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _figure(stats: dict[str, object], key: str) -> float:
    """A numeric statistic, 0 when absent."""
    value = stats.get(key)
    return float(value) if isinstance(value, int | float) else 0.0
