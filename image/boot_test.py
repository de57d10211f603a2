"""Boot the built image as a Raspberry Pi 3 under QEMU and check what a user's first boot does.

`qemu-system-aarch64 -M raspi3b` runs the Pi 3's device tree and SD controller (no network, no
radio, no sound card), from a copy of the card with a test handset.toml written onto its FAT
partition: the daemon runs with an unmanaged mesh and fake audio there because that file says
so, not because the image is special. The serial console (ttyS1) is read for systemd's and the
first-boot unit's messages and talks to the diagnostics shell it opens.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from image import assemble, progress

QEMU = "qemu-system-aarch64"
DTB = "bcm2837-rpi-3-b.dtb"
FAT_OFFSET = assemble.FAT_START_MIB * assemble.MIB
TEST_HOSTNAME = "handset-imagetest"
TEST_NUMBER = "5550199"
# A throwaway public key: only checked to arrive in the diag user's authorized keys.
TEST_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhhbmRzZXQtaW1hZ2UtdGVzdC1rZXktMDAwMDAwMDAw image-test"
)
TEST_CONFIG = f"""\
# Written by the image boot test: no radio or sound card under QEMU.
[handset]
number = "{TEST_NUMBER}"
name = "Image test"

[mesh]
mode = "unmanaged"
interface = "lo"

[audio]
backend = "fake"

[keypad]
backend = "none"

[diag]
authorized_keys = ["{TEST_KEY}"]

[system]
hostname = "{TEST_HOSTNAME}"
wifi_country = "DE"
"""
# The same with two mistakes: the daemon must refuse to start, naming file, line and key, and the
# first-boot unit must skip the bad hostname; the rest still applies and the console still opens
# the diagnostics shell.
CONFIG_ERROR = TEST_CONFIG.replace(
    'name = "Image test"\n', 'name = "Image test"\ncolour = "red"\n'
).replace(f'hostname = "{TEST_HOSTNAME}"', 'hostname = "Kim\'s phone"')
CONFIG_ERROR_LINES = (
    re.compile(r"handset\.service: .*handset\.toml:\d+: \[handset\] colour: unknown key"),
    re.compile(r"handset-firstboot: error: .*handset\.toml:\d+: \[system\] hostname"),
    re.compile(r"handset-firstboot: root partition \S+ grown"),
    re.compile(r"handset-firstboot: 1 SSH key\(s\) for diag"),
)
# Printed by the image's handset-boot-report.service (rootfs/usr/lib/handset-image/boot-report).
BOOT_REPORT = re.compile(
    r"handset-image: multi-user reached at ([0-9.]+) s; (.*?); failed units: (.*)$", re.MULTILINE
)
HANDSET_READY = re.compile(r"handset\.service READY at ([0-9.]+) s")
FIRSTBOOT_LINES = (
    re.compile(r"handset-firstboot: root partition \S+ grown"),
    re.compile(r"handset-firstboot: SSH host keys generated"),
    re.compile(rf"handset-firstboot: hostname {TEST_HOSTNAME}"),
    re.compile(r"handset-firstboot: 1 SSH key\(s\) for diag"),
)


@dataclass
class Result:
    console_log: Path
    milestones: dict[str, float] = field(default_factory=dict)  # name -> seconds since start


class Console:
    """The guest's serial console: everything it printed, searchable while it runs."""

    def __init__(self, proc: subprocess.Popen, log: Path) -> None:
        self.proc = proc
        self.text = ""
        self.start = time.monotonic()
        self._lock = threading.Condition()
        self._log = open(log, "w")  # noqa: SIM115 (closed by close(), after the reader thread)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while chunk := os.read(self.proc.stdout.fileno(), 4096):
            text = chunk.decode(errors="replace").replace("\r", "")
            self._log.write(text)
            self._log.flush()
            with self._lock:
                self.text += text
                self._lock.notify_all()
        with self._lock:
            self._lock.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float, since: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = pattern.search(self.text, since)
                if found:
                    return found
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"QEMU exited ({self.proc.returncode}) before {pattern.pattern!r}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(
                        f"no {pattern.pattern!r} on the console within {timeout:.0f} s"
                    )
                self._lock.wait(min(remaining, 1.0))

    def send(self, text: str) -> int:
        """Type `text`; returns the console position before it, to search the answer from."""
        with self._lock:
            position = len(self.text)
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()
        return position

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=5)
        self._log.close()


def missing_host_tools() -> list[str]:
    return [tool for tool in (QEMU, "mcopy") if shutil.which(tool) is None]


def prepare_card(img: Path, work: Path, config_text: str) -> tuple[Path, dict[str, Path]]:
    """A copy of the card padded to a power of two (QEMU's SD model needs one), with the test
    config on its FAT partition; and the boot files QEMU loads directly (no GPU firmware)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    card = work / "card.img"
    subprocess.run(["cp", "--sparse=always", str(img), str(card)], check=True)
    size = 1 << (card.stat().st_size - 1).bit_length()
    os.truncate(card, size)
    fat = f"{card}@@{FAT_OFFSET}"
    config = work / "handset.toml"
    config.write_text(config_text)
    subprocess.run(["mcopy", "-o", "-i", fat, str(config), "::/handset.toml"], check=True)
    files = {}

    def copy_out(name: str) -> Path:
        files[name] = work / name
        subprocess.run(["mcopy", "-n", "-i", fat, f"::/{name}", str(files[name])], check=True)
        return files[name]

    boot_config = copy_out("config.txt").read_text()
    kernel = re.search(r"^kernel=(\S+)", boot_config, re.MULTILINE)
    initramfs = re.search(r"^initramfs\s+(\S+)", boot_config, re.MULTILINE)
    if not kernel or not initramfs:
        raise RuntimeError("config.txt on the card names no kernel= or initramfs")
    files["kernel"] = copy_out(kernel.group(1))
    files["initramfs"] = copy_out(initramfs.group(1))
    copy_out(DTB)
    copy_out("cmdline.txt")
    return card, files


def qemu_argv(card: Path, files: dict[str, Path]) -> list[str]:
    cmdline = files["cmdline.txt"].read_text().strip()
    return [
        QEMU, "-M", "raspi3b", "-m", "1024",
        "-kernel", str(files["kernel"]), "-initrd", str(files["initramfs"]),
        "-dtb", str(files[DTB]), "-append", cmdline,
        "-drive", f"file={card},if=sd,format=raw",
        "-display", "none", "-monitor", "none", "-nic", "none",
        "-serial", "null", "-serial", "stdio",  # the mini UART (ttyS1) is the console
    ]  # fmt: skip


def run(repo: Path, timeout: float = 900, config_error: bool = False) -> Result:
    """Build (or find) the image, boot it, check it. Raises PhaseFailed naming what failed.
    `config_error`: boot with a broken handset.toml and check the system stays diagnosable."""
    repo = repo.resolve()
    with progress.phase("check the host for the boot test"):
        missing = missing_host_tools()
        if missing:
            raise progress.PhaseFailed(
                f"missing: {', '.join(missing)} (tools/apt-test-packages.txt)"
            )
    built = assemble.build(repo, compress=False)
    work = repo / "build" / ("image-test-config-error" if config_error else "image-test")
    with progress.phase("card copy with the test handset.toml"):
        card, files = prepare_card(built.image, work, CONFIG_ERROR if config_error else TEST_CONFIG)
    result = Result(work / "console.log")
    argv = qemu_argv(card, files)
    progress.log(f"booting: {' '.join(argv)}")
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    console = Console(proc, result.console_log)
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(deadline - time.monotonic(), 1.0)

    try:
        with progress.phase(f"boot to multi-user (console: {result.console_log})"):
            report = console.wait_for(BOOT_REPORT, left())
            result.milestones["host_multi_user"] = console.elapsed()
            result.milestones["guest_multi_user"] = float(report.group(1))
        if config_error:
            check_config_error(console, report, left)
        else:
            check_first_boot(console, report, built, result, left)
    except RuntimeError as err:
        tail = console.text.splitlines()[-30:]
        raise progress.PhaseFailed(
            f"{err}\n    last console lines:\n" + "\n".join(f"    | {line}" for line in tail)
        ) from err
    finally:
        console.close()
    progress.log(
        "; ".join(f"{name} {seconds:.1f} s" for name, seconds in result.milestones.items())
        + " (host_: since QEMU started; guest_: the guest's uptime)"
    )
    return result


def check_first_boot(
    console: Console, report: re.Match[str], built: assemble.Built, result: Result, left
) -> None:
    if report.group(3).strip() != "none":
        raise RuntimeError(f"units failed during the boot: {report.group(3).strip()}")
    with progress.phase("first boot: root grown, host keys, hostname, diag key"):
        for line in FIRSTBOOT_LINES:
            console.wait_for(line, left())
    if "handset.service" not in built.units:
        progress.log("no handset.service in this image: READY and diag checks skipped")
        return
    with progress.phase("handset.service READY"):
        ready = HANDSET_READY.search(report.group(2))
        if not ready:
            raise RuntimeError(f"not READY when the boot finished: {report.group(2)}")
        result.milestones["guest_handset_ready"] = float(ready.group(1))
    with progress.phase("diagnostics shell on the serial console"):
        check_diag_shell(console, left)


def check_config_error(console: Console, report: re.Match[str], left) -> None:
    with progress.phase("config error: handset.service stopped, the rest of the boot went on"):
        failed = set(report.group(3).split())
        if failed != {"handset.service", "handset-firstboot.service"}:
            raise RuntimeError(f"expected the handset and first-boot units to fail, not {failed}")
        for line in CONFIG_ERROR_LINES:
            console.wait_for(line, left())
    with progress.phase("diagnostics shell on the serial console, daemon down"):
        console.send("\r")
        console.wait_for(re.compile(r"handset> $", re.MULTILINE), left())
        since = console.send("status\r")
        console.wait_for(re.compile(r"does not answer"), left(), since)


def check_diag_shell(console: Console, left) -> None:
    """The diagnostics shell that agetty opens on the console answers `status --json` with this
    handset's number, an idle phone and the SID of the identity the daemon made at first start."""
    console.send("\r")
    console.wait_for(re.compile(r"handset> $", re.MULTILINE), left())
    since = console.send("status --json\r")
    for field_pattern in (
        rf'"number": "{TEST_NUMBER}"',
        r'"sid": "[0-9A-Fa-f]{64}"',
        r'"state": "idle"',
    ):
        console.wait_for(re.compile(field_pattern), left(), since)
