"""The daemon's keypad wiring, with the recording pin backend: a hook lifted and keys held on
the simulated matrix reach the phone through the real scanner; the LED and the phone's state
follow, and `keys` (over the control socket) shows what was pressed. In one process, on
loopback, with silent `fake` audio."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from firmware.config import parse
from firmware.control_protocol import Request
from firmware.daemon import Handset
from firmware.event_log import EventLog
from hw.gpio.recording import RecordingInputPin, SimulatedMatrix
from hw.mesh import MeshManager
from vomp.identity import Identity
from vomp.node import Node

ROWS, COLUMNS, HOOK, LED = [5, 6, 13, 19], [12, 16, 20], 26, 27


def config(tmp_path: Path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text = f"""
[handset]
number = "5551234"
state_dir = "{tmp_path}"
port = {port}
[mesh]
mode = "unmanaged"
interface = "lo"
[audio]
backend = "fake"
realtime_priority = 0
[keypad]
backend = "recording"
layout = "4x3"
rows = {ROWS}
columns = {COLUMNS}
hook = {HOOK}
led = {LED}
[control]
socket = "{tmp_path / "control.sock"}"
"""
    return parse(text, tmp_path / "handset.toml")


def test_keys_and_hook_on_the_recording_pins_drive_the_phone(tmp_path):
    async def scenario():
        cfg = config(tmp_path)
        node = Node(Identity.generate(), "5551234", "")
        handset = Handset(cfg, node, MeshManager(cfg.mesh), EventLog())
        stop = asyncio.get_running_loop().create_future()
        await handset.start(stop)
        run = asyncio.create_task(handset.run(stop))
        try:
            pins = handset.pins
            matrix = SimulatedMatrix(pins, ROWS, COLUMNS, ["123", "456", "789", "*0#"])
            hook = pins.pins[HOOK]
            assert isinstance(hook, RecordingInputPin)
            hook.drive_low()  # lifted: the hook contact closes to ground
            await until(lambda: handset.phone.state.value == "dial tone")
            for key in "5550000#":
                matrix.press(key)
                await asyncio.sleep(0.08)
                matrix.release(key)
                await asyncio.sleep(0.08)
            await until(lambda: handset.phone.state.value in ("calling", "ended"))
            keys = await handset.commands.handle(Request.make("keys"))
            led_levels = [level for _t, level in pins.pins[LED].history]
            return keys, led_levels
        finally:
            stop.set_result(None)
            await run
            await handset.close()

    keys, led_levels = asyncio.run(scenario())
    assert keys["pressed"] == list("5550000#")
    assert keys["lifted"] is True and keys["led"] == "on"
    assert led_levels[-1] is True  # on while in use


async def until(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)
