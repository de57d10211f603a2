"""Inside the VM: handset nodes with real radios, sound cards and GPIO chips, for bench tests.

A Node is one handset: its own network namespace holding its own mac80211_hwsim radio (moved there
with nl80211 SET_WIPHY_NETNS), optionally its own snd-aloop card (ALSA is not namespaced, so a
node's card is simply named after it) and its own gpio-sim chip. All hwsim radios share one medium;
`Bench.nodes(..., topology="line")` drops, at each radio's ingress, frames from every radio that is
not its neighbour in the line (tc u32 on the source MAC), so the two ends only meet through batman.

The helpers shell out to modprobe and tc freely (they set up the test, they are not under test);
the code under test (hw/mesh) must use pyroute2 alone.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CONFIGFS_GPIO_SIM = Path("/sys/kernel/config/gpio-sim")


def in_guest() -> bool:
    return os.environ.get("VMBENCH_GUEST") == "1"


def sh(*argv: str, check: bool = True, netns: str | None = None) -> str:
    """Run a command (in `netns` if given) and return its stdout; raise with its stderr."""
    if netns:
        argv = ("ip", "netns", "exec", netns, *argv)
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} -> {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def modprobe(module: str, *params: str) -> None:
    sh("modprobe", module, *params)


def rmmod(module: str) -> None:
    """Unload if loaded (tests reload modules with new parameters)."""
    if Path("/sys/module", module.replace("-", "_")).exists():
        sh("modprobe", "-r", module)


@dataclass
class GpioSimChip:
    """A simulated GPIO chip. The program under test opens `chip_path` (/dev/gpiochipN, or
    RPi.GPIO through rpi-lgpio with RPI_LGPIO_CHIP=`number`); the test plays the outside world:
    `pull(line, up)` drives an input, `value(line)` reads what the program drives as output."""

    name: str
    num_lines: int
    chip_name: str = ""  # gpiochipN
    dev_name: str = ""  # gpio-sim.N

    @property
    def chip_path(self) -> str:
        return f"/dev/{self.chip_name}"

    @property
    def number(self) -> int:
        return int(self.chip_name.removeprefix("gpiochip"))

    def _line_dir(self, line: int) -> Path:
        return Path("/sys/devices/platform", self.dev_name, self.chip_name, f"sim_gpio{line}")

    def pull(self, line: int, up: bool) -> None:
        (self._line_dir(line) / "pull").write_text("pull-up" if up else "pull-down")

    def value(self, line: int) -> int:
        return int((self._line_dir(line) / "value").read_text())

    @classmethod
    def create(cls, name: str, num_lines: int, line_names: list[str] | None = None) -> GpioSimChip:
        modprobe("gpio-sim")
        top = CONFIGFS_GPIO_SIM / name
        bank = top / "bank0"
        bank.mkdir(parents=True)
        (bank / "num_lines").write_text(str(num_lines))
        for index, line_name in enumerate(line_names or []):
            line = bank / f"line{index}"
            line.mkdir()
            (line / "name").write_text(line_name)
        (top / "live").write_text("1")
        chip = cls(name, num_lines)
        chip.chip_name = (bank / "chip_name").read_text().strip()
        chip.dev_name = (top / "dev_name").read_text().strip()
        return chip

    def remove(self) -> None:
        top = CONFIGFS_GPIO_SIM / self.name
        if not top.exists():
            return
        (top / "live").write_text("0")
        for line in sorted((top / "bank0").glob("line*")):
            line.rmdir()
        (top / "bank0").rmdir()
        top.rmdir()


class MatrixKeypad:
    """A scanned key matrix wired to a GpioSimChip: the program under test drives the row lines
    (outputs, one row active at a time) and reads the column lines (inputs); while a key is held,
    its column follows its row, as the switch would connect them. Active low by default: columns
    idle pulled up and read low when the held key's row is driven low.

    A background thread watches the rows (polling sysfs; gpio-sim has no output events), so a
    scan must hold each row for a few milliseconds (TCG is slow: give it 20 ms or more).
    """

    def __init__(
        self,
        chip: GpioSimChip,
        rows: list[int],
        cols: list[int],
        layout: list[str],
        active_low: bool = True,
    ) -> None:
        if len(layout) != len(rows) or any(len(keys) != len(cols) for keys in layout):
            raise ValueError(f"layout {layout} does not fit {len(rows)} rows x {len(cols)} cols")
        self.chip, self.rows, self.cols, self.active_low = chip, rows, cols, active_low
        self.where = {key: (r, c) for r, keys in enumerate(layout) for c, key in enumerate(keys)}
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._applied: dict[int, bool] = {}
        self._thread = threading.Thread(target=self._follow_rows, daemon=True)
        for col in cols:
            self._set_col(col, active=False)
        self._thread.start()

    def press(self, key: str) -> None:
        if key not in self.where:
            raise KeyError(f"no key {key!r} on this keypad")
        with self._lock:
            self.held.add(key)

    def release(self, key: str) -> None:
        with self._lock:
            self.held.discard(key)

    def tap(self, key: str, hold: float = 0.3) -> None:
        self.press(key)
        time.sleep(hold)
        self.release(key)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _set_col(self, col: int, active: bool) -> None:
        if self._applied.get(col) != active:
            # active low: an active column is pulled down; idle columns float up
            self.chip.pull(col, up=(active != self.active_low))
            self._applied[col] = active

    def _follow_rows(self) -> None:
        active_level = 0 if self.active_low else 1
        while not self._stop.is_set():
            driven = {
                r for r, line in enumerate(self.rows) if self.chip.value(line) == active_level
            }
            with self._lock:
                keys = [self.where[k] for k in self.held]
            for c, col in enumerate(self.cols):
                self._set_col(col, active=any(r in driven and kc == c for r, kc in keys))
            time.sleep(0.001)


@dataclass
class Node:
    """One handset: a network namespace with one Wi-Fi radio (phy + interface) in it."""

    index: int
    name: str  # node0, node1, ...
    netns: str
    phy: str  # phyN (the name does not change when it moves)
    wiphy: int  # nl80211 wiphy index
    ifname: str  # the radio's interface inside `netns`, e.g. wlan0
    mac: str
    card: str | None = None  # ALSA card id when audio was asked for: hw:CARD=<card>
    gpio: GpioSimChip | None = None
    blocked: list[str] = field(default_factory=list)  # MACs this radio cannot hear

    def sh(self, *argv: str, check: bool = True) -> str:
        return sh(*argv, check=check, netns=self.netns)

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], **kwargs)

    @contextmanager
    def inside(self) -> Iterator[None]:
        """Run the block with this thread in the node's netns (sockets opened there stay there)."""
        from pyroute2 import netns

        netns.pushns(self.netns)
        try:
            yield
        finally:
            netns.popns()

    @property
    def alsa_device(self) -> str:
        """Playback here is captured on `alsa_peer_device` (snd-aloop's crossed substreams)."""
        return f"hw:CARD={self.card},DEV=0"

    @property
    def alsa_peer_device(self) -> str:
        return f"hw:CARD={self.card},DEV=1"

    def block(self, mac: str) -> None:
        """Make this radio deaf to `mac` (frames dropped at ingress). Re-apply after the radio's
        interface is deleted and re-created; a type change or down/up keeps it."""
        self.sh("tc", "qdisc", "replace", "dev", self.ifname, "ingress")
        self.sh(
            "tc", "filter", "add", "dev", self.ifname, "parent", "ffff:", "protocol", "all",
            "prio", "1", "u32", "match", "ether", "src", mac, "action", "drop",
        )  # fmt: skip
        if mac not in self.blocked:
            self.blocked.append(mac)

    def unblock(self, mac: str) -> None:
        """Let this radio hear `mac` again (drop every filter, put the others back)."""
        self.blocked = [m for m in self.blocked if m != mac]
        self.sh("tc", "filter", "del", "dev", self.ifname, "parent", "ffff:", check=False)
        self.reapply_blocks()

    def reapply_blocks(self) -> None:
        for mac in list(self.blocked):
            self.block(mac)


class Bench:
    """Creates nodes and removes everything it created at `close()` (the fixture calls it)."""

    def __init__(self) -> None:
        self.created: list[Node] = []
        self.chips: list[GpioSimChip] = []

    def nodes(
        self,
        count: int,
        topology: str = "full",
        audio: bool = False,
        gpio_lines: int = 0,
        gpio_line_names: list[str] | None = None,
    ) -> list[Node]:
        """`count` nodes; topology "full" (everyone hears everyone) or "line" (node i hears only
        i-1 and i+1). Call once per test: it reloads mac80211_hwsim (and snd-aloop)."""
        if topology not in ("full", "line"):
            raise ValueError(f"unknown topology {topology!r}: use 'full' or 'line'")
        self.close()
        from pyroute2 import IW, netns

        modprobe("batman-adv")
        modprobe("mac80211_hwsim", f"radios={count}")
        if audio:
            cards = ",".join(f"node{i}" for i in range(count))
            modprobe("snd-aloop", "enable=" + ",".join(["1"] * count), f"id={cards}")
        radios = _wait_for_radios(count)
        with IW() as iw:
            for index, (wiphy, phy, ifname, mac) in enumerate(radios):
                name = f"node{index}"
                ns = f"vmb-{name}"
                netns.create(ns)
                fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
                try:
                    iw.set_wiphy_netns_by_fd(wiphy, fd)
                finally:
                    os.close(fd)
                node = Node(index, name, ns, phy, wiphy, ifname, mac)
                if audio:
                    node.card = name
                self.created.append(node)
        for node in self.created:
            node.sh("ip", "link", "set", "lo", "up")
            if gpio_lines:
                node.gpio = GpioSimChip.create(node.name, gpio_lines, gpio_line_names)
                self.chips.append(node.gpio)
        if topology == "line":
            for node in self.created:
                for other in self.created:
                    if abs(other.index - node.index) > 1:
                        node.block(other.mac)
        return list(self.created)

    def close(self) -> None:
        from pyroute2 import netns

        for chip in self.chips:
            chip.remove()
        self.chips.clear()
        for node in self.created:
            if node.netns in netns.listnetns():
                netns.remove(node.netns)
        self.created.clear()
        # Deleting a netns hands its wiphys back to the initial one asynchronously.
        for module in ("batman-adv", "mac80211_hwsim", "snd-aloop"):
            for _ in range(50):
                try:
                    rmmod(module)
                    break
                except RuntimeError:
                    time.sleep(0.1)


def _wait_for_radios(count: int, timeout: float = 20.0) -> list[tuple[int, str, str, str]]:
    """(wiphy index, phy name, interface, MAC) of each hwsim radio, once all have an interface."""
    from pyroute2 import IW

    deadline = time.monotonic() + timeout
    while True:
        with IW() as iw:
            found = []
            for msg in iw.get_interfaces_dump():
                found.append(
                    (
                        msg.get_attr("NL80211_ATTR_WIPHY"),
                        f"phy{msg.get_attr('NL80211_ATTR_WIPHY')}",
                        msg.get_attr("NL80211_ATTR_IFNAME"),
                        msg.get_attr("NL80211_ATTR_MAC"),
                    )
                )
        if len(found) >= count:
            return sorted(found)[:count]
        if time.monotonic() > deadline:
            raise RuntimeError(f"expected {count} hwsim radios, nl80211 shows {found}")
        time.sleep(0.2)
