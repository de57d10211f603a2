"""What each control-socket command does on the running handset (see firmware.control_protocol).

Call commands go to the phone, exactly as keys and the hook do, so a call placed from the CLI
behaves as one dialled on the keypad; the rest read the handset's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import TYPE_CHECKING, Any

from firmware.control_protocol import Request
from firmware.control_server import CommandFailed
from vomp.dna import is_valid_did
from vomp.dna_lookup import LOOKUP_TIMEOUT
from vomp.identity import format_sid
from vomp.messages import CallState
from vomp.phone import PhoneError

if TYPE_CHECKING:
    from firmware.daemon import Handset
    from vomp.call import Call

TEST_TONE_S = 1.0
TEST_KEYPAD_S = 10.0
TEST_ECHO_S = 3.0


class ControlCommands:
    def __init__(self, handset: Handset) -> None:
        self.handset = handset

    async def handle(self, request: Request) -> dict[str, Any]:
        command = getattr(self, f"_{request.command}")
        return await command(**request.args)

    def _phone(self, command: str, *args: str) -> None:
        driver = self.handset.driver
        if driver is None:
            raise CommandFailed("the phone is not running yet")
        try:
            driver.control(command, *args)
        except PhoneError as error:
            raise CommandFailed(str(error)) from None

    async def _status(self) -> dict[str, Any]:
        handset, node = self.handset, self.handset.node
        phone = handset.phone.status()
        result: dict[str, Any] = {
            "state": phone.state,
            "number": handset.config.handset.number,
            "name": handset.config.handset.name,
            "sid": format_sid(node.sid),
            "peers": len(node.neighbours),
            "phone": dataclasses.asdict(phone),
            "rejected": node.rejected,
            "counters": dict(node.counters),
            "mesh": self._mesh_status(),
        }
        call = self._current_call()
        if call is not None:
            result["call"] = self._call_status(call)
        return result

    async def _dial(self, number: str) -> dict[str, Any]:
        self._phone("dial", number)
        phone = self.handset.phone
        return {"number": phone.number, "call": phone.call, "state": phone.state.value}

    async def _answer(self) -> dict[str, Any]:
        self._phone("answer")
        return {"call": self.handset.phone.call}

    async def _hangup(self) -> dict[str, Any]:
        call = self.handset.phone.call
        self._phone("hang_up")
        return {"call": call, "state": self.handset.phone.state.value}

    async def _lookup(self, number: str) -> dict[str, Any]:
        if number not in ("", "*") and not is_valid_did(number):
            raise CommandFailed(f"cannot look up {number!r}: use 5 to 31 of 0-9 * # +")
        protocol = self.handset.protocol
        if protocol is None:
            raise CommandFailed("the network is not up yet")
        future, answers = self.handset.lookups.wait(number)
        try:
            protocol.command(lambda n, now: n.lookup(number, now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, LOOKUP_TIMEOUT + 1.0)
        finally:
            self.handset.lookups.forget(number)
        unique = {answer.sid: answer for answer in answers}
        return {
            "number": number,
            "answers": [
                {"sid": format_sid(a.sid), "did": a.did, "name": a.name} for a in unique.values()
            ],
        }

    async def _peers(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "peers": [
                {
                    "sid": format_sid(n.sid),
                    "address": str(n.address),
                    "last_heard_s": round(now - n.last_heard, 1),
                }
                for n in self.handset.node.neighbours
            ]
        }

    async def _calls(self) -> dict[str, Any]:
        return {"calls": [self._call_status(call) for call in self.handset.node.calls.calls()]}

    async def _mesh(self) -> dict[str, Any]:
        return self._mesh_status()

    async def _audio(self) -> dict[str, Any]:
        audio, driver = self.handset.audio, self.handset.driver
        if audio is None or driver is None:
            raise CommandFailed("audio is not running")
        engine = self.handset.engine
        return {
            "backend": self.handset.config.audio.backend,
            "engine_pid": engine.pid if engine is not None else None,
            "engine_cpu_s": engine.process_cpu_seconds() if engine is not None else 0.0,
            "tone": driver.tone,
            "muted": audio.muted,
            "stats": audio.stats(),
            "last_call": driver.last_call_audio,
        }

    async def _keys(self) -> dict[str, Any]:
        driver = self.handset.driver
        phone = self.handset.phone
        return {
            "backend": self.handset.config.keypad.backend,
            "pressed": list(driver.keys) if driver else [],
            "lifted": phone.lifted,
            "ringer": driver.ringing if driver else False,
            "led": driver.led_pattern if driver else "off",
        }

    async def _log(self) -> dict[str, Any]:
        recent = self.handset.recent
        return {"lines": list(recent.lines) if recent else []}

    async def _test(self, what: str) -> dict[str, Any]:
        handset = self.handset
        if handset.phone.state.value != "idle" or handset.audio is None:
            raise CommandFailed(f"the phone is {handset.phone.state.value}; test when idle")
        audio = handset.audio
        if what == "tone":
            audio.play_tone("dial")
            await asyncio.sleep(TEST_TONE_S)
            audio.play_tone(None)
            return {"what": what, "played": "dial", "seconds": TEST_TONE_S}
        if what == "keypad":
            driver = handset.driver
            before = len(driver.keys) if driver else 0
            await asyncio.sleep(TEST_KEYPAD_S)
            pressed = list(driver.keys)[before:] if driver else []
            return {"what": what, "seconds": TEST_KEYPAD_S, "pressed": pressed}
        audio.echo_peak, audio.echo = 0, True
        try:
            await asyncio.sleep(TEST_ECHO_S)
        finally:
            audio.echo = False
        return {"what": what, "seconds": TEST_ECHO_S, "microphone_peak": audio.echo_peak}

    # -- what status shows

    def _current_call(self) -> Call | None:
        calls = self.handset.node.calls
        ours = calls.get(self.handset.phone.call) if self.handset.phone.call else None
        if ours is not None:
            return ours
        live = [c for c in calls.calls() if c.local_state < CallState.CALLENDED]
        return live[0] if live else None

    def _call_status(self, call: Call) -> dict[str, Any]:
        started = self.handset.call_started_at.get(call.call_id)
        status: dict[str, Any] = {
            "id": call.call_id,
            "state": CallState(call.local_state).name,
            "remote_state": CallState(call.remote_state).name,
            "peer_number": call.remote_number,
            "peer_sid": format_sid(call.remote_sid),
            "duration_s": round(time.monotonic() - started, 1) if started else 0.0,
            "codec": None,
        }
        audio = self.handset.audio
        if audio is not None and audio.call == call.call_id:
            stats = audio.stats()
            status["codec"] = stats.get("codec_sent")
            status["audio"] = {
                "frames_sent": stats.get("frames_sent", 0),
                "frames_received": stats.get("packets_received", 0),
                "lost": stats.get("lost", 0),
                "concealed": stats.get("concealed", 0),
                "jitter_ms": stats.get("jitter_ms", 0.0),
                "playout_delay_ms": stats.get("playout_delay_ms", 0.0),
            }
        return status

    def _mesh_status(self) -> dict[str, Any]:
        """The manager's own report (ready, address, heals: when, how long, what) plus mode."""
        mode = "managed" if self.handset.config.mesh.mode == "ibss" else "unmanaged"
        return {"mode": mode, **self.handset.mesh.status.report()}
