"""The real keypad backend on a real GPIO chip: hw/keypad.py scanning through RPi.GPIO
(rpi-lgpio, the `rpi-gpio` pin backend) reads keys held on a gpio-sim matrix, the hook switch,
and drives the ringer and LED lines, in Debian's kernel."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm

ROWS, COLUMNS, HOOK, RINGER, LED = [5, 6, 13, 19], [12, 16, 20, 21], 26, 17, 27
REPO = Path(__file__).resolve().parents[2]
LAYOUT = ["123A", "456B", "789C", "*0#D"]
# The handset side, in its own process: RPi.GPIO picks its chip from the environment at import.
SCANNER = f"""
import asyncio, json, sys
from hw.gpio import pin_factory
from hw.keypad import Keypad, scan_forever
from hw.led import Led
from hw.ringer import GpioRinger

pins = pin_factory("rpi-gpio")
keypad = Keypad(pins, {ROWS}, {COLUMNS}, "4x4", hook={HOOK})
Led(pins.output({LED})).set_pattern("on", 0.0)
GpioRinger(pins.output({RINGER})).set_ringing(True)
print(json.dumps({{"ready": True}}), flush=True)

def deliver(found):
    print(json.dumps({{"key": getattr(found, "key", None),
                       "lifted": getattr(found, "lifted", None)}}), flush=True)

async def main():
    # gpio-sim's keypad helper follows the rows by polling: hold each row 50 ms
    task = asyncio.create_task(scan_forever(keypad, deliver, settle_s=0.05))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    task.cancel()

asyncio.run(main())
pins.close()
"""


def test_rpi_gpio_keypad_reads_keys_and_hook_from_gpio_sim_and_drives_outputs(bench):
    from vmbench.guest import MatrixKeypad

    (node,) = bench.nodes(1, gpio_lines=28)
    chip = node.gpio
    chip.pull(HOOK, up=True)  # on the cradle: the hook contact is open
    keypad = MatrixKeypad(chip, ROWS, COLUMNS, LAYOUT)
    env = dict(os.environ, RPI_LGPIO_CHIP=str(chip.number), RPI_LGPIO_REVISION="a020d3")
    proc = subprocess.Popen(
        ["python3", "-c", SCANNER],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,  # `python3 -c` imports hw from its working directory
    )
    lines: queue.Queue[dict] = queue.Queue()

    def read() -> None:
        for line in proc.stdout:
            lines.put(json.loads(line))

    threading.Thread(target=read, daemon=True).start()

    def next_line(what: str) -> dict:
        try:
            return lines.get(timeout=60)
        except queue.Empty:
            raise AssertionError(f"the scanner reported nothing while waiting for {what}") from None

    try:
        assert next_line("start-up") == {"ready": True}
        assert (chip.value(LED), chip.value(RINGER)) == (1, 1)
        assert all(chip.value(row) == 1 for row in ROWS)  # idle rows are high
        seen = []
        for key in "5#D0":
            keypad.press(key)
            seen.append(next_line(f"key {key}"))
            time.sleep(0.5)  # held on: no repeat may come
            keypad.release(key)
            time.sleep(0.5)
        assert seen == [{"key": k, "lifted": None} for k in "5#D0"]
        chip.pull(HOOK, up=False)  # lifted: the contact closes to ground
        assert next_line("the hook") == {"key": None, "lifted": True}
        chip.pull(HOOK, up=True)
        assert next_line("the hook") == {"key": None, "lifted": False}
        assert lines.empty()
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=120)
        keypad.close()
    assert proc.returncode == 0
