"""Two whole handsets on Debian's kernel: `handset daemon` with a managed mesh (hwsim radios,
batman-adv), an snd-aloop sound card and a gpio-sim keypad each, RPi.GPIO's API (rpi-lgpio)
scanning the keys. Keys pressed through gpio-sim on node0 dial node1 across the mesh; node1's
ringer line rings; its hook goes off; audio flows both ways; node0's hook goes down and the
call ends on both. The daemons are driven only through their hardware and read only through
the `handset` CLI and their logs.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

from lab.daemons import Daemon, phone_in, start_daemon

pytestmark = pytest.mark.vm

ROWS, COLUMNS, HOOK, RINGER, LED = [5, 6, 13, 19], [12, 16, 20, 21], 26, 17, 27
LAYOUT = ["123A", "456B", "789C", "*0#D"]
NUMBERS = ["5559100", "5559101"]
FIGURES = Path("/job/figures.txt")
SLOW = 90.0  # Python under TCG is 7-16 times slower than on the host: waits are generous


def config(node, number: str, directory: Path) -> str:
    return f"""\
[handset]
number = "{number}"
name = "bench {node.name}"
state_dir = "{directory / "state"}"

[mesh]
mode = "managed"
interface = "{node.ifname}"
orig_interval_ms = 250

[audio]
backend = "alsa"
capture = "plughw:CARD={node.card},DEV=0"
playback = "plughw:CARD={node.card},DEV=0"
realtime_priority = 0
codecs = ["mulaw"]          # Opus both ways is more than one TCG vCPU does for two handsets

[keypad]
backend = "rpi-gpio"
layout = "4x4"
rows = {ROWS}
columns = {COLUMNS}
hook = {HOOK}
ringer = {RINGER}
led = {LED}
scan_settle_ms = 50

[control]
socket = "{directory / "control.sock"}"
"""


def start(node, number: str, directory: Path) -> Daemon:
    node.gpio.pull(HOOK, up=True)  # on the cradle: the hook contact is open
    env = {
        "RPI_LGPIO_CHIP": str(node.gpio.number),
        "RPI_LGPIO_REVISION": "a020d3",
        "LG_WD": str(directory),  # lgpio makes FIFOs in its working directory; not on 9p
    }
    return start_daemon(
        node.name,
        number,
        directory,
        namespace=node.netns,
        config=config(node, number, directory),
        env=env,
        start_timeout=SLOW,
    )


def test_keys_on_one_handset_ring_the_other_across_the_mesh_and_the_call_carries_audio(bench):
    from vmbench.guest import MatrixKeypad

    nodes = bench.nodes(2, audio=True, gpio_lines=28)
    with tempfile.TemporaryDirectory() as tmp:
        handsets = [
            start(node, number, Path(tmp) / node.name)
            for node, number in zip(nodes, NUMBERS, strict=True)
        ]
        keypad = MatrixKeypad(nodes[0].gpio, ROWS, COLUMNS, LAYOUT)
        try:
            scenario(nodes, handsets, keypad)
        except AssertionError as failure:
            logs = "\n".join(f"--- {h.name} ---\n{h.log()[-2500:]}" for h in handsets)
            raise AssertionError(f"{failure}\n{logs}") from None
        finally:
            keypad.close()
            for handset in handsets:
                handset.stop()


def scenario(nodes, handsets: list[Daemon], keypad) -> None:
    caller, callee = handsets
    for handset in handsets:
        handset.wait_for("a neighbour over the mesh", lambda s: s["peers"] >= 1, SLOW, 1.0)
    assert all(h.status()["mesh"]["ready"] for h in handsets)

    nodes[0].gpio.pull(HOOK, up=False)  # node0's handset lifted
    caller.wait_for("the dial tone", phone_in("dial tone"), SLOW, 0.5)
    for count, key in enumerate([*callee.number, "#"], start=1):
        keypad.press(key)  # held until the daemon logs it: a scan under TCG takes its time
        assert until(lambda n=count: len(caller.logged_at("key ")) >= n), f"key {key} unseen"
        keypad.release(key)
        time.sleep(1.2)  # the scanner must see the release, or a repeated digit is one hold
    assert keys_seen(caller) == [*callee.number, "#"]
    ringing = callee.wait_for("the ring", phone_in("ringing in"), SLOW, 0.5)
    assert ringing["phone"]["number"] == caller.number
    assert caller.status()["phone"]["digits"] in ("", callee.number)
    assert until(lambda: nodes[1].gpio.value(RINGER) == 1), "node1's ringer line never rang"

    nodes[1].gpio.pull(HOOK, up=False)  # node1's handset lifted: answers
    for handset in handsets:
        handset.wait_for("the call", phone_in("in call"), SLOW, 0.5)
    for handset in handsets:
        handset.wait_for(
            "audio from the far end",
            lambda s: s.get("call", {}).get("audio", {}).get("frames_received", 0) > 25,
            SLOW,
            1.0,
        )
    assert nodes[1].gpio.value(RINGER) == 0  # the ringer stops once answered

    nodes[0].gpio.pull(HOOK, up=True)  # node0 hangs up
    caller.wait_for("the phone back on-hook", phone_in("idle"), SLOW, 0.5)
    ended = callee.wait_for("the far end's hang-up", phone_in("ended"), SLOW, 0.5)
    assert ended["phone"]["last_end"] == "ended by the far end"

    [calling] = caller.logged_at("-> calling")
    [rings] = callee.logged_at("-> ringing in")
    note("vm_call_setup_ms", 1000 * (rings - calling), "ms")


def note(name: str, value: float, unit: str) -> None:
    """A measured figure: printed, and written where bench/vm_call_setup_bench.py finds it."""
    line = f"{name} {value:.0f} {unit}"
    print(line, flush=True)
    if FIGURES.parent.is_dir():
        with FIGURES.open("a") as figures:
            figures.write(line + "\n")


def keys_seen(handset: Daemon) -> list[str]:
    return json.loads(handset.cli("keys", "--json").stdout)["pressed"]


def until(condition, timeout: float = SLOW) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
