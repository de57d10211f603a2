"""`handset daemon --config FILE`: the one process that is the phone, and the one place where the
handset's pieces are wired together.

Start-up, in order, so that a problem is reported before anything is changed:
  1. the config is read and checked completely (exit 78, nothing written, on any problem);
  2. the identity is loaded from the keyring in state_dir, or created on first start;
  3. the mesh is brought up (managed: IBSS + batman-adv, bat0's MAC and IPv4 derived from the
     identity) or the configured interface is taken as it is (unmanaged);
  4. the VoMP node is bound to UDP 4110 on the mesh interface;
  5. the sound card (audio backend), keypad/hook/ringer backends and the phone start;
  6. the control socket opens.
Then events flow: node -> phone/audio -> log; commands come from the socket and the keypad.
Tests, benches and the VM bench run this same daemon with test backends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from firmware import config as config_file
from firmware import status_view
from firmware.config import EX_CONFIG, Config, ConfigError
from firmware.control_protocol import Request
from firmware.control_server import CommandFailed, ControlServer
from firmware.event_log import EventLog, RecentLines, abridged, setup
from firmware.handset_audio import HandsetAudio
from firmware.keyring import load_keyring, save_keyring
from firmware.service_manager import ServiceManager, service_manager, watchdog_interval
from firmware.transport import NodeProtocol, start
from hw.mesh import MeshManager
from hw.soundcard.devices import PcmSettings
from hw.soundcard.engine import AudioEngine, EngineSettings
from hw.soundcard.realtime import become_realtime
from vomp.dna import is_valid_did
from vomp.dna_lookup import LOOKUP_TIMEOUT
from vomp.events import (
    AudioFrameReceived,
    CallEnded,
    CallStateChanged,
    DnaAnswer,
    DnaLookupFinished,
    Event,
    PacketDropped,
    PeerFound,
    PeerLost,
)
from vomp.identity import Identity, KeyringEntry, format_sid
from vomp.messages import CallState
from vomp.node import Node

log = logging.getLogger("handset")
STATUS_INTERVAL_S = 1.0
"""How often systemd's STATUS line is refreshed (and the watchdog fed, if more often than asked)."""
START_EXTENSION_S = 10.0
"""While the mesh comes up, each tick asks systemd for this much more start-up time."""
MESH_WAIT_LOG_S = 10.0
"""While the mesh is not up yet, say what it waits for this often."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="the handset's TOML file")
    parser.add_argument("--check", action="store_true", help="check the config and exit")


def run(args: argparse.Namespace) -> int:
    try:
        config = config_file.load(args.config)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return EX_CONFIG
    if args.check:
        print(f"{args.config}: ok")
        return 0
    recent = setup()
    faulthandler.enable()  # the watchdog's SIGABRT puts every thread's stack in the journal
    return asyncio.run(serve(config, recent))


def load_or_create_identity(path: Path, number: str, name: str) -> KeyringEntry:
    """The keyring's first identity with the configured number and name (created on first start)."""
    entries = load_keyring(path) if path.exists() else []
    entry = entries[0] if entries else KeyringEntry(Identity.generate(), None, "")
    updated = KeyringEntry(entry.identity, number, name)
    if not entries or updated != entry:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        save_keyring(path, [updated, *entries[1:]])
    return updated


async def serve(config: Config, recent: RecentLines | None = None) -> int:
    events = EventLog()
    entry = load_or_create_identity(config.keyring_path, config.handset.number, config.handset.name)
    node = Node(entry.identity, config.handset.number, config.handset.name)
    events.event(
        f"handset {abridged(node.sid)} number {config.handset.number} starting",
        sid=node.sid,
        number=config.handset.number,
    )
    mesh = MeshManager(config.mesh, identity=node.sid)
    handset = Handset(config, node, mesh, events, recent)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    manager = service_manager()
    supervisor = asyncio.create_task(supervise(handset, manager, stop))
    try:
        await handset.start(stop)
        if not stop.done():
            handset.ready.set()
            await handset.run(stop)
    finally:
        manager.stopping("stopping: hanging up calls")
        supervisor.cancel()
        await handset.close()
    return 0


async def supervise(handset: Handset, manager: ServiceManager, stop: asyncio.Future[None]) -> None:
    """Keep systemd told, from the event loop itself: the watchdog (a stalled loop stops the
    pings and gets the daemon restarted), READY once the phone is up, then a one-line STATUS."""
    interval = min(watchdog_interval() or STATUS_INTERVAL_S, STATUS_INTERVAL_S)
    while not stop.done():
        manager.watchdog()
        if handset.ready.is_set():
            line = status_view.one_line(await handset.handle(Request.make("status")))
            if not handset.announced_ready:
                manager.ready(line)
                handset.announced_ready = True
            manager.status(line)
        else:
            manager.extend_start(START_EXTENSION_S)
            manager.status(f"starting: mesh {handset.mesh.status.waiting_for or 'coming up'}")
        await asyncio.sleep(interval)


class Handset:
    """The running phone: what the daemon owns, and what the control socket asks about."""

    def __init__(
        self,
        config: Config,
        node: Node,
        mesh: MeshManager,
        events: EventLog,
        recent: RecentLines | None = None,
    ) -> None:
        self.config = config
        self.node = node
        self.mesh = mesh
        self.events = events
        self.recent = recent
        self.protocol: NodeProtocol | None = None
        self.engine: AudioEngine | None = None
        self.audio: HandsetAudio | None = None
        self.control: ControlServer | None = None
        self._mesh_task: asyncio.Task[None] | None = None
        self._lookups: dict[str, tuple[asyncio.Future[None], list[DnaAnswer]]] = {}
        self._started_at: dict[int, float] = {}
        self._dialling: str | None = None
        self.last_call_end: dict[str, Any] | None = None
        self.ready = asyncio.Event()  # set once the node is bound and the phone idle
        self.announced_ready = False

    # -- life cycle

    async def start(self, stop: asyncio.Future[None]) -> None:
        endpoint = await self._bring_up_mesh(stop)
        if endpoint is None:
            return
        self.protocol = await start(
            self.node,
            interface=endpoint.ifname,
            port=self.config.handset.port,
            broadcast=str(endpoint.broadcast),
        )
        self.events.event(
            f"listening on {endpoint.ifname} {endpoint.address} (broadcast {endpoint.broadcast})",
            interface=endpoint.ifname,
        )
        self._start_audio()
        control = self.config.control
        self.control = ControlServer(control.socket, self.handle, control.group)
        await self.control.start()
        self.events.event(f"control socket {control.socket}")

    async def _bring_up_mesh(self, stop: asyncio.Future[None]):
        mode = "managed" if self.config.mesh.mode == "ibss" else "unmanaged"
        said_at = 0.0
        while not stop.done():
            await self.mesh.converge()
            endpoint = await self.mesh.endpoint()
            if endpoint is not None:
                self.events.event(f"mesh ({mode}) up: {endpoint.ifname} {endpoint.address}")
                if mode == "managed":
                    self._mesh_task = asyncio.create_task(self.mesh.run())
                return endpoint
            now = time.monotonic()
            if now - said_at >= MESH_WAIT_LOG_S:
                self.events.event(
                    f"mesh ({mode}) not up yet: {self.mesh.status.waiting_for}", logging.WARNING
                )
                said_at = now
            await asyncio.wait({stop}, timeout=1.0)
        return None

    def _start_audio(self) -> None:
        settings = self.config.audio
        rate = config_file.AUDIO_RATE
        if settings.backend == "file":
            capture = str(settings.input or "")
            playback = str(settings.output or "")
        else:
            capture, playback = settings.capture, settings.playback
        pcm = PcmSettings(
            capture_device=capture,
            playback_device=playback,
            rate=rate,
            period_frames=rate * settings.period_ms // 1000,
        )
        if settings.realtime_priority:
            # before the engine starts, so its supervisor thread takes the same priority
            become_realtime(settings.realtime_priority)
        self.engine = AudioEngine(
            EngineSettings(
                pcm=pcm,
                backend=settings.backend,
                realtime_priority=settings.realtime_priority + 10
                if settings.realtime_priority
                else 0,
            )
        )
        self.engine.start()
        self.audio = HandsetAudio(self.engine, self._send_audio)
        self.audio.attach(asyncio.get_running_loop())
        self.events.event(f"audio: {settings.backend} capture {capture!r} playback {playback!r}")

    def _send_audio(self, call: int, codec: int, payload: bytes, duration_ms: int) -> None:
        assert self.protocol is not None
        self.protocol.command(lambda n, now: n.send_audio(call, codec, payload, duration_ms))

    async def run(self, stop: asyncio.Future[None]) -> None:
        assert self.protocol is not None
        while not stop.done():
            getter = asyncio.ensure_future(self.protocol.next_event())
            done, _ = await asyncio.wait({getter, stop}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            self.on_event(getter.result())

    async def close(self) -> None:
        if self.control is not None:
            await self.control.close()
        if self.protocol is not None:
            for call in self.node.calls.calls():
                if call.local_state < CallState.CALLENDED:
                    self.protocol.command(lambda n, now, c=call.call_id: n.hang_up(c, now))
            await asyncio.sleep(0.1)  # let the hang-ups leave
            self.protocol.close()
        if self.audio is not None:
            self.audio.detach(asyncio.get_running_loop())
        if self.engine is not None:
            self.engine.stop()
        if self._mesh_task is not None:
            self._mesh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mesh_task
        await self.mesh.close()
        self.events.event("handset stopped")

    # -- events from the node

    def on_event(self, event: Event) -> None:
        if isinstance(event, AudioFrameReceived):
            if self.audio is not None:
                self.audio.on_event(event)
            return
        if isinstance(event, PacketDropped):
            return  # counted by the node (status shows them); a flood must not bury the log
        if isinstance(event, PeerFound):
            self.events.event(
                f"peer found {abridged(event.sid)} at {event.address}", peer_sid=event.sid
            )
        elif isinstance(event, PeerLost):
            self.events.event(f"peer lost {abridged(event.sid)}", peer_sid=event.sid)
        elif isinstance(event, DnaAnswer):
            self.events.event(
                f"lookup {event.number}: {event.did} {event.name!r} is {abridged(event.sid)}",
                number=event.did,
                peer_sid=event.sid,
            )
            if event.number in self._lookups:
                self._lookups[event.number][1].append(event)
        elif isinstance(event, DnaLookupFinished):
            if event.number in self._lookups:
                future = self._lookups[event.number][0]
                if not future.done():
                    future.set_result(None)
            if not event.answered:
                self.events.event(
                    f"lookup {event.number}: nobody has this number", number=event.number
                )
                if self._dialling == event.number:
                    self._dialling = None
                    self._play_tone("error")
        elif isinstance(event, CallStateChanged):
            self._on_call_state(event)
        elif isinstance(event, CallEnded):
            self._started_at.pop(event.call, None)
            self.events.event(
                f"call {event.call} gone ({'timed out' if event.timed_out else 'closed'})",
                call_id=event.call,
                peer_sid=event.remote_sid,
            )

    def _on_call_state(self, event: CallStateChanged) -> None:
        local, remote = CallState(event.local_state), CallState(event.remote_state)
        self.events.event(
            f"call {event.call} {local.name}/{remote.name} with {event.remote_number or '?'} "
            f"{abridged(event.remote_sid)}",
            call_id=event.call,
            peer_sid=event.remote_sid,
            number=event.remote_number,
            state=local.name,
        )
        self._started_at.setdefault(event.call, time.monotonic())
        if local == CallState.RINGINGOUT:
            self._dialling = None
            self._play_tone("ringback")
        if remote == CallState.RINGINGOUT and local < CallState.RINGINGIN:
            self._command(lambda n, now: n.ring(event.call, now))
            if self.config.handset.auto_answer:
                self._command(lambda n, now: n.answer(event.call, now))
        if local == CallState.INCALL:
            self._start_call_audio(event)
        if local == CallState.CALLENDED:
            self._end_audio(event.call)

    def _start_call_audio(self, event: CallStateChanged) -> None:
        if self.audio is None or self.audio.call == event.call:
            return
        if self.audio.start_call(event.call, event.remote_codecs) is None:
            offered = ", ".join(f"0x{c:02x}" for c in event.remote_codecs)
            self.events.event(
                f"call {event.call}: no shared codec; far end offers [{offered}]",
                logging.WARNING,
                call_id=event.call,
            )
            self._command(lambda n, now: n.hang_up(event.call, now))

    def _end_audio(self, call: int) -> None:
        if self.audio is None or self.audio.call != call:
            return
        stats = self.audio.end_call()
        self.last_call_end = stats
        self.events.event(
            f"call {call} audio: sent {stats.get('frames_sent')} received "
            f"{stats.get('packets_received')} lost {stats.get('lost')} concealed "
            f"{stats.get('concealed')} jitter {stats.get('jitter_ms', 0):.1f} ms",
            call_id=call,
        )
        self._play_tone(None)

    def _play_tone(self, name: str | None) -> None:
        if self.audio is not None:
            self.audio.play_tone(name)

    def _command(self, action: Any) -> Any:
        assert self.protocol is not None
        return self.protocol.command(action)

    # -- the control socket

    async def handle(self, request: Request) -> dict[str, Any]:
        handler = getattr(self, f"_cmd_{request.command}", None)
        if handler is None:
            raise CommandFailed(f"{request.command}: not available on this handset")
        return await handler(**request.args)

    async def _cmd_status(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "state": self.phone_state(),
            "number": self.config.handset.number,
            "name": self.config.handset.name,
            "sid": format_sid(self.node.sid),
            "peers": len(self.node.neighbours),
            "rejected": {
                name.removeprefix("dropped_"): count
                for name, count in self.node.counters.items()
                if name.startswith("dropped_") and count
            },
            "counters": dict(self.node.counters),
            "mesh": self._mesh_status(),
        }
        current = self._current_call()
        if current is not None:
            result["call"] = self._call_status(current)
        return result

    async def _cmd_dial(self, number: str) -> dict[str, Any]:
        if not is_valid_did(number):
            raise CommandFailed(f"cannot dial {number!r}: use 5 to 31 characters of 0-9 * # +")
        if self._current_call() is not None:
            raise CommandFailed("already in a call; hang up first")
        self._dialling = number
        call = self._command(lambda n, now: n.dial(number, now))
        return {"number": number, "call": call}

    async def _cmd_answer(self) -> dict[str, Any]:
        for call in self.node.calls.calls():
            if call.local_state == CallState.RINGINGIN:
                self._command(lambda n, now, c=call.call_id: n.answer(c, now))
                return {"call": call.call_id}
        raise CommandFailed("no call is ringing")

    async def _cmd_hangup(self) -> dict[str, Any]:
        current = self._current_call()
        if current is None:
            raise CommandFailed("no call to hang up")
        self._command(lambda n, now: n.hang_up(current.call_id, now))
        return {"call": current.call_id}

    async def _cmd_lookup(self, number: str) -> dict[str, Any]:
        if number not in ("", "*") and not is_valid_did(number):
            raise CommandFailed(f"cannot look up {number!r}: use 5 to 31 of 0-9 * # +")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        answers: list[DnaAnswer] = []
        self._lookups[number] = (future, answers)
        try:
            self._command(lambda n, now: n.lookup(number, now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, LOOKUP_TIMEOUT + 1.0)
        finally:
            self._lookups.pop(number, None)
        unique = {a.sid: a for a in answers}
        return {
            "number": number,
            "answers": [
                {"sid": format_sid(a.sid), "did": a.did, "name": a.name} for a in unique.values()
            ],
        }

    async def _cmd_peers(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "peers": [
                {
                    "sid": format_sid(n.sid),
                    "address": str(n.address),
                    "last_heard_s": round(now - n.last_heard, 1),
                }
                for n in self.node.neighbours
            ]
        }

    async def _cmd_calls(self) -> dict[str, Any]:
        return {"calls": [self._call_status(call) for call in self.node.calls.calls()]}

    async def _cmd_mesh(self) -> dict[str, Any]:
        return self._mesh_status()

    async def _cmd_audio(self) -> dict[str, Any]:
        if self.audio is None:
            raise CommandFailed("audio is not running")
        return {
            "backend": self.config.audio.backend,
            "stats": self.audio.stats(),
            "last_call": self.last_call_end,
        }

    async def _cmd_keys(self) -> dict[str, Any]:
        return {"backend": self.config.keypad.backend, "pressed": []}

    async def _cmd_log(self) -> dict[str, Any]:
        return {"lines": list(self.recent.lines) if self.recent else []}

    async def _cmd_test(self, what: str) -> dict[str, Any]:
        if self._current_call() is not None:
            raise CommandFailed("in a call; test when idle")
        if what == "tone":
            self._play_tone("dial")
            await asyncio.sleep(1.0)
            self._play_tone(None)
            return {"what": what, "played": "dial", "seconds": 1.0}
        raise CommandFailed(f"test {what}: not available on this handset")

    # -- what status shows

    def phone_state(self) -> str:
        current = self._current_call()
        if current is None:
            return "dialling" if self._dialling else "idle"
        return {
            CallState.NOCALL: "dialling",
            CallState.CALLPREP: "dialling",
            CallState.RINGINGOUT: "ringing out",
            CallState.RINGINGIN: "ringing",
            CallState.INCALL: "in call",
        }.get(current.local_state, "ending")

    def _current_call(self):
        live = [c for c in self.node.calls.calls() if c.local_state < CallState.CALLENDED]
        return live[0] if live else None

    def _call_status(self, call) -> dict[str, Any]:
        started = self._started_at.get(call.call_id)
        status: dict[str, Any] = {
            "id": call.call_id,
            "state": CallState(call.local_state).name,
            "remote_state": CallState(call.remote_state).name,
            "peer_number": call.remote_number,
            "peer_sid": format_sid(call.remote_sid),
            "duration_s": round(time.monotonic() - started, 1) if started else 0.0,
            "codec": self.node.audio_codec(call.call_id),
        }
        if self.audio is not None and self.audio.call == call.call_id:
            stats = self.audio.stats()
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
        mode = "managed" if self.config.mesh.mode == "ibss" else "unmanaged"
        return {"mode": mode, **self.mesh.status.report()}
