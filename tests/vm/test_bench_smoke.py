"""The bench's own pieces work in the VM: radios, namespaces, the line topology, batman-adv,
snd-aloop and gpio-sim. If one of these fails, the mesh/audio/keypad bench tests cannot mean
anything, so they are checked here on their own, with stock tools where that is clearest."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm


def test_stock_kernel_loads_batman_adv_and_pyroute2_creates_bat0():
    from pyroute2 import IPRoute

    from vmbench.guest import modprobe

    modprobe("batman-adv")
    with IPRoute() as ipr:
        ipr.link("add", ifname="batsmoke0", kind="batadv")
        try:
            (link,) = ipr.link("get", ifname="batsmoke0")
            assert link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") == "batadv"
        finally:
            ipr.link("del", ifname="batsmoke0")


def test_each_node_gets_its_own_hwsim_radio_in_its_own_netns(bench):
    from pyroute2 import IPRoute

    nodes = bench.nodes(3)
    assert len({n.netns for n in nodes}) == 3
    assert len({n.mac for n in nodes}) == 3
    for node in nodes:
        with IPRoute(netns=node.netns) as ipr:
            names = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
        assert node.ifname in names
        phys = node.sh("iw", "phy")
        assert f"Wiphy {node.phy}" in phys
        assert phys.count("Wiphy ") == 1


def _join_mesh(node, address: str) -> None:
    """The mesh up with stock tools (the mesh manager is tested elsewhere, with pyroute2)."""
    node.sh("iw", "dev", node.ifname, "set", "type", "ibss")
    node.sh("ip", "link", "set", node.ifname, "mtu", "1560", "up")
    node.sh("iw", "dev", node.ifname, "ibss", "join", "vmbench", "2412", "HT20", "fixed-freq",
            "02:ca:fe:00:00:01")  # fmt: skip
    node.sh("ip", "link", "add", "bat0", "type", "batadv")
    node.sh("ip", "link", "set", node.ifname, "master", "bat0")
    node.sh("batctl", "meshif", "bat0", "bridge_loop_avoidance", "0")
    node.sh("batctl", "meshif", "bat0", "orig_interval", "200")
    node.sh("ip", "addr", "add", address, "dev", "bat0")
    node.sh("ip", "link", "set", "bat0", "up")


def _originators(node) -> dict[str, str]:
    """originator MAC -> next hop MAC, from `batctl o` (best routes, marked '*')."""
    table = node.sh("batctl", "meshif", "bat0", "o")
    return dict(re.findall(r"^\s*\*\s+(\S+)\s+\S+\s+\(\s*\d+\)\s+(\S+)", table, re.M))


def test_line_topology_makes_the_ends_talk_through_the_middle(line3):
    a, mid, b = line3
    for index, node in enumerate(line3):
        _join_mesh(node, f"10.99.0.{index + 1}/24")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        routes = _originators(a)
        if b.mac in routes and mid.mac in routes:
            break
        time.sleep(1)
    routes = _originators(a)
    assert routes.get(b.mac) == mid.mac, f"node0 should reach node2 via node1, has {routes}"
    neighbours = a.sh("batctl", "meshif", "bat0", "n")
    assert mid.mac in neighbours
    assert b.mac not in neighbours
    # Until the translation tables have spread, the first pings may go nowhere: allow 40 s.
    a.sh("ping", "-c", "1", "-w", "40", "10.99.0.3")


def test_snd_aloop_card_captures_what_was_played(bench):
    import alsaaudio

    node, other = bench.nodes(2, audio=True)
    cards = set(re.findall(r"\[(\S+)\s*\]", Path("/proc/asound/cards").read_text()))
    assert {node.card, other.card} <= cards
    rate, period = 16000, 320
    frame = bytes(range(256)) * 2 + bytes(128)  # 640 bytes = 320 S16_LE mono frames
    captured = bytearray()

    def pcm(kind, device):
        return alsaaudio.PCM(
            kind, device=device, channels=1, rate=rate, format=alsaaudio.PCM_FORMAT_S16_LE,
            periodsize=period, periods=4,
        )  # fmt: skip

    capture = pcm(alsaaudio.PCM_CAPTURE, node.alsa_peer_device)
    playback = pcm(alsaaudio.PCM_PLAYBACK, node.alsa_device)

    stop = threading.Event()

    def play():
        while not stop.is_set():
            playback.write(frame)

    # Capture runs from its first read whether or not anything plays yet, so read until the
    # played pattern shows up (a loaded TCG guest may start the player late), within 10 s.
    player = threading.Thread(target=play)
    player.start()
    deadline = time.monotonic() + 10
    while frame not in bytes(captured[-4 * len(frame) :]) and time.monotonic() < deadline:
        length, data = capture.read()
        if length > 0:
            captured += data
    stop.set()
    player.join()
    playback.close()
    capture.close()
    assert frame in bytes(captured)


def test_gpio_sim_line_follows_pulls_and_outputs_through_lgpio(bench):
    import lgpio

    (node,) = bench.nodes(1, gpio_lines=8)
    chip = node.gpio
    handle = lgpio.gpiochip_open(chip.number)
    try:
        lgpio.gpio_claim_input(handle, 0)
        chip.pull(0, up=True)
        assert lgpio.gpio_read(handle, 0) == 1
        chip.pull(0, up=False)
        assert lgpio.gpio_read(handle, 0) == 0
        lgpio.gpio_claim_output(handle, 5, 0)
        assert chip.value(5) == 0
        lgpio.gpio_write(handle, 5, 1)
        assert chip.value(5) == 1
    finally:
        lgpio.gpiochip_close(handle)


def test_rpi_gpio_api_drives_gpio_sim_through_rpi_lgpio(bench):
    (node,) = bench.nodes(1, gpio_lines=28)
    chip = node.gpio
    code = (
        "import RPi.GPIO as G, json, sys\n"
        "G.setmode(G.BCM)\n"
        "G.setup(17, G.IN)\n"
        "G.setup(27, G.OUT, initial=G.HIGH)\n"
        "print(json.dumps({'in17': G.input(17)}))\n"
        "sys.stdin.readline()\n"
        "G.cleanup()\n"
    )
    import subprocess

    chip.pull(17, up=True)
    env = dict(os.environ, RPI_LGPIO_CHIP=str(chip.number), RPI_LGPIO_REVISION="a020d3")
    proc = subprocess.Popen(
        ["python3", "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        seen = json.loads(proc.stdout.readline())
        assert seen == {"in17": 1}
        assert chip.value(27) == 1
    finally:
        proc.communicate("\n", timeout=60)
    assert proc.returncode == 0


def test_matrix_keypad_on_gpio_sim_answers_a_row_scan(bench):
    import lgpio

    from vmbench.guest import MatrixKeypad

    (node,) = bench.nodes(1, gpio_lines=8)
    rows, cols = [0, 1, 2, 3], [4, 5, 6, 7]
    keypad = MatrixKeypad(node.gpio, rows, cols, ["123A", "456B", "789C", "*0#D"])
    handle = lgpio.gpiochip_open(node.gpio.number)

    def scan() -> list[tuple[int, int]]:
        """What a keypad driver does: drive one row low at a time, read the columns."""
        found = []
        for r, row in enumerate(rows):
            lgpio.gpio_write(handle, row, 0)
            time.sleep(0.2)
            found += [(r, c) for c, col in enumerate(cols) if lgpio.gpio_read(handle, col) == 0]
            lgpio.gpio_write(handle, row, 1)
        return found

    try:
        for row in rows:
            lgpio.gpio_claim_output(handle, row, 1)
        for col in cols:
            lgpio.gpio_claim_input(handle, col)
        assert scan() == []
        keypad.press("6")
        assert scan() == [(1, 2)]
        keypad.press("*")
        assert scan() == [(1, 2), (3, 0)]
        keypad.release("6")
        keypad.release("*")
        assert scan() == []
    finally:
        keypad.close()
        lgpio.gpiochip_close(handle)
