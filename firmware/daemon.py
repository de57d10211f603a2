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
import functools
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

from firmware import config as config_file
from firmware import keyring, status_view
from firmware.config import EX_CONFIG, Config, ConfigError
from firmware.control_commands import ControlCommands
from firmware.control_protocol import Request
from firmware.control_server import ControlServer
from firmware.event_log import EventLog, RecentLines, abridged, setup
from firmware.handset_audio import HandsetAudio
from firmware.indicators import LedIndicator, RingerIndicator
from firmware.phone_driver import PhoneDriver
from firmware.service_manager import ServiceManager, service_manager, watchdog_interval
from firmware.transport import NodeProtocol, start
from hw.backends import PINS
from hw.gpio import PinFactory
from hw.keypad import HookChange, Keypad, KeyPress, scan_forever
from hw.led import Led
from hw.mesh import BroadcastEndpoint, MeshManager
from hw.ringer import GpioRinger, Ringer
from hw.soundcard.devices import PcmSettings
from hw.soundcard.engine import AudioEngine, EngineSettings
from hw.soundcard.realtime import become_realtime
from vomp.events import (
    AudioFrameReceived,
    CallEnded,
    CallStateChanged,
    DnaAnswer,
    DnaLookupFinished,
    Event,
    IncomingCall,
    NumberClaimConflict,
    PacketDropped,
    PeerFound,
    PeerLost,
)
from vomp.identity import KeyringEntry, KeyringError
from vomp.messages import CallState
from vomp.node import Node
from vomp.phone import Phone, PhoneSettings

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
    try:  # a keyring that exists but holds no identity must stop us, not be replaced
        load_or_create_identity(config.keyring_path, config.handset.number, config.handset.name)
    except KeyringError as error:
        log.error("%s", error)
        return EX_CONFIG
    faulthandler.enable()  # the watchdog's SIGABRT puts every thread's stack in the journal
    return asyncio.run(serve(config, recent))


def load_or_create_identity(path: Path, number: str, name: str) -> KeyringEntry:
    """The keyring's first identity with the configured number and name (created on first start)."""
    return keyring.load_or_create(path, number, name)


async def serve(config: Config, recent: RecentLines | None = None) -> int:
    events = EventLog()
    entry = load_or_create_identity(config.keyring_path, config.handset.number, config.handset.name)
    codecs = tuple(config_file.CODECS[name] for name in config.audio.codecs)
    node = Node(entry.identity, config.handset.number, config.handset.name, codecs=codecs)
    events.event(
        f"handset {abridged(node.sid)} number {config.handset.number} starting",
        sid=node.sid,
        number=config.handset.number,
    )
    mesh = MeshManager(config.mesh, identity=node.sid)
    handset = Handset(config, node, mesh, events, recent)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
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
            line = status_view.one_line(await handset.commands.handle(Request.make("status")))
            if not handset.announced_ready:
                manager.ready(line)
                handset.announced_ready = True
            manager.status(line)
        else:
            manager.extend_start(START_EXTENSION_S)
            manager.status(f"starting: mesh {handset.mesh.status.waiting_for or 'coming up'}")
        await asyncio.sleep(interval)


class Handset:
    """The running handset: everything the daemon owns, started and stopped in order."""

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
        self.phone = Phone(
            PhoneSettings(
                speed_dials=dict(config.speed_dial),
                auto_answer=config.handset.auto_answer,
                hook_switch=config.keypad.hook is not None,
            )
        )
        self.protocol: NodeProtocol | None = None
        self.engine: AudioEngine | None = None
        self.audio: HandsetAudio | None = None
        self.driver: PhoneDriver | None = None
        self.control: ControlServer | None = None
        self._mesh_task: asyncio.Task[None] | None = None
        self._keypad_task: asyncio.Task[None] | None = None
        self.pins: PinFactory | None = None
        self.keypad: Keypad | None = None
        self.lookups = LookupWaiters()
        self.call_started_at: dict[int, float] = {}
        self.commands = ControlCommands(self)
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
        ringer, led = self._start_pins()
        self.driver = PhoneDriver(
            self.phone, self.protocol, self.audio, self.events, ringer=ringer, led=led
        )
        if self.keypad is not None:
            self._keypad_task = asyncio.create_task(
                scan_forever(
                    self.keypad,
                    self._keypad_input,
                    settle_s=self.config.keypad.scan_settle_ms / 1000,
                )
            )
        control = self.config.control
        self.control = ControlServer(control.socket, self.commands.handle, control.group)
        await self.control.start()
        self.events.event(f"control socket {control.socket}")

    async def _bring_up_mesh(self, stop: asyncio.Future[None]) -> BroadcastEndpoint | None:
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
            if settings.output is not None:
                settings.output.parent.mkdir(parents=True, exist_ok=True)
        else:
            capture, playback = settings.capture, settings.playback
        pcm = PcmSettings(
            capture_device=capture,
            playback_device=playback,
            rate=rate,
            period_frames=rate * settings.period_ms // 1000,
            playback_prefill_periods=settings.prefill_periods,
        )
        priority = settings.realtime_priority
        if priority:
            # before the engine starts, so its supervisor thread takes the same priority
            become_realtime(priority)
        engine_settings = EngineSettings(
            pcm=pcm, backend=settings.backend, realtime_priority=priority + 10 if priority else 0
        )
        self.engine = AudioEngine(engine_settings)
        self.engine.start()
        codecs = tuple(config_file.CODECS[name] for name in settings.codecs)
        self.audio = HandsetAudio(self.engine, self._send_audio, codecs=codecs)
        self.audio.attach(asyncio.get_running_loop())
        if self.protocol is not None:
            self.protocol.audio_sink = self.audio.on_event  # the call's audio, without a queue
        self.events.event(f"audio: {settings.backend} capture {capture!r} playback {playback!r}")

    def _start_pins(self) -> tuple[RingerIndicator | None, LedIndicator | None]:
        """Keypad, hook switch, ringer and LED on the configured pin backend (none: no pins;
        the phone is then driven by the control socket and rings on the speaker)."""
        settings = self.config.keypad
        if settings.backend == "none":
            return None, None
        self.pins = PINS.load(settings.backend)()
        if settings.rows or settings.hook is not None:
            self.keypad = Keypad(
                self.pins,
                list(settings.rows),
                list(settings.columns),
                settings.layout,
                hook=settings.hook,
                hook_lifted=settings.hook_lifted,
            )
        ringer = led = None
        if settings.ringer is not None:
            ringer = RingerIndicator(Ringer([GpioRinger(self.pins.output(settings.ringer))]))
        if settings.led is not None:
            led = LedIndicator(Led(self.pins.output(settings.led)))
        self.events.event(
            f"keypad: {settings.backend} {settings.layout} rows {list(settings.rows)} columns "
            f"{list(settings.columns)} hook {settings.hook} ringer {settings.ringer} "
            f"led {settings.led}"
        )
        return ringer, led

    def _keypad_input(self, found: KeyPress | HookChange) -> None:
        if self.driver is None:
            return
        if isinstance(found, KeyPress):
            self.driver.key(found.key)
        else:
            self.driver.hook(found.lifted)

    def _send_audio(self, call: int, codec: int, payload: bytes, duration_ms: int) -> None:
        assert self.protocol is not None
        self.protocol.command(lambda n, now: n.send_audio(call, codec, payload, duration_ms))

    async def run(self, stop: asyncio.Future[None]) -> None:
        assert self.protocol is not None
        while not stop.done():
            getter = asyncio.ensure_future(self.protocol.next_event())
            waiting: set[asyncio.Future[Any]] = {getter, stop}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            self.on_event(getter.result())

    async def close(self) -> None:
        if self.control is not None:
            await self.control.close()
        if self._keypad_task is not None:
            self._keypad_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keypad_task
        if self.driver is not None:
            self.driver.close()
            for indicator in (self.driver.ringer, self.driver.led):
                if indicator is not None:
                    indicator.set(False if indicator is self.driver.ringer else "off")
                    indicator.close()
        if self.pins is not None:
            self.pins.close()
        if self.protocol is not None:
            for call in self.node.calls.calls():
                if call.local_state < CallState.CALLENDED:
                    self.protocol.command(functools.partial(_hang_up, call.call_id))
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
        self.log_event(event)
        self.lookups.on_event(event)
        if isinstance(event, CallStateChanged):
            self.call_started_at.setdefault(event.call, time.monotonic())
        elif isinstance(event, CallEnded):
            self.call_started_at.pop(event.call, None)
        if self.driver is not None:
            self.driver.node_event(event)

    def log_event(self, event: Event) -> None:
        log = self.events.event
        if isinstance(event, PeerFound):
            log(f"peer found {abridged(event.sid)} at {event.address}", peer_sid=event.sid)
        elif isinstance(event, PeerLost):
            log(f"peer lost {abridged(event.sid)}", peer_sid=event.sid)
        elif isinstance(event, DnaAnswer):
            log(
                f"lookup {event.number or '*'}: {event.did} {event.name!r} is "
                f"{abridged(event.sid)}",
                number=event.did,
                peer_sid=event.sid,
            )
        elif isinstance(event, DnaLookupFinished) and not event.answered:
            log(f"lookup {event.number}: nobody has this number", number=event.number)
        elif isinstance(event, NumberClaimConflict):
            log(
                f"number {event.number} claimed by {abridged(event.claimant)}, but "
                f"{abridged(event.owner)} answered for it first: calls by number go to the first "
                f"(a new handset for that number, or someone taking it)",
                logging.WARNING,
                number=event.number,
                peer_sid=event.claimant,
            )
        elif isinstance(event, IncomingCall):
            log(
                f"call {event.call} from {event.caller_number or '?'} {abridged(event.remote_sid)}",
                call_id=event.call,
                peer_sid=event.remote_sid,
                number=event.caller_number,
            )
        elif isinstance(event, CallStateChanged):
            local, remote = CallState(event.local_state), CallState(event.remote_state)
            reason = f": {event.end_detail or event.end_reason.value}" if event.end_reason else ""
            log(
                f"call {event.call} {local.name}/{remote.name} with "
                f"{event.remote_number or '?'} {abridged(event.remote_sid)}{reason}",
                call_id=event.call,
                peer_sid=event.remote_sid,
                number=event.remote_number,
                state=local.name,
            )
        elif isinstance(event, CallEnded):
            log(
                f"call {event.call} gone: {event.detail or event.reason.value}",
                call_id=event.call,
                peer_sid=event.remote_sid,
                end_reason=event.reason.name,
            )


class LookupWaiters:
    """`handset lookup` requests waiting for their lookup to finish, with the answers so far."""

    def __init__(self) -> None:
        self._waiting: dict[str, tuple[asyncio.Future[None], list[DnaAnswer]]] = {}

    def wait(self, number: str) -> tuple[asyncio.Future[None], list[DnaAnswer]]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[number] = (future, [])
        return self._waiting[number]

    def forget(self, number: str) -> None:
        self._waiting.pop(number, None)

    def on_event(self, event: Event) -> None:
        if isinstance(event, DnaAnswer) and event.number in self._waiting:
            self._waiting[event.number][1].append(event)
        elif isinstance(event, DnaLookupFinished) and event.number in self._waiting:
            future = self._waiting[event.number][0]
            if not future.done():
                future.set_result(None)


def _hang_up(call: int, node: Node, now: float) -> None:
    node.hang_up(call, now)
