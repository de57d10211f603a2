"""Real `handset daemon` processes for tests and benches, driven only through the `handset` CLI.

Each daemon runs in its own network namespace (or none) with its own config, state directory
and control socket in a temporary directory, `file` audio (a test tone as its microphone, its
earpiece written to a WAV) and no keypad. The control socket is a file, so the CLI reaches it
from the host's namespace. Everything a test learns, it learns from `handset` commands.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
import wave
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HANDSET = [sys.executable, "-m", "firmware.cli"]
"""The `handset` command, run from the repository (the VM bench has no console script)."""
RATE = 16000


def write_tone(path: Path, hz: float, seconds: float = 1.0, amplitude: int = 8000) -> None:
    """A sine as a 16 kHz mono WAV; whole cycles per second, so it loops without a click."""
    n = int(RATE * seconds)
    samples = array(
        "h", (round(amplitude * math.sin(2 * math.pi * hz * i / RATE)) for i in range(n))
    )
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(samples.tobytes())


def read_wav(path: Path) -> array:
    with wave.open(str(path), "rb") as wav:
        return array("h", wav.readframes(wav.getnframes()))


def strongest_frequency(samples: array, low: float = 100.0, high: float = 4000.0) -> float:
    """The frequency (Hz) with the most energy in `samples`, by FFT."""
    import numpy

    signal_ = numpy.asarray(samples, dtype=numpy.float64)
    spectrum = numpy.abs(numpy.fft.rfft(signal_ * numpy.hanning(len(signal_))))
    freqs = numpy.fft.rfftfreq(len(signal_), 1 / RATE)
    band = (freqs >= low) & (freqs <= high)
    return float(freqs[band][numpy.argmax(spectrum[band])])


@dataclass
class Daemon:
    """One running `handset daemon`, and the CLI to talk to it."""

    name: str
    number: str
    directory: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    namespace: str | None = None

    @property
    def socket(self) -> Path:
        return self.directory / "control.sock"

    @property
    def output(self) -> Path:
        return self.directory / "earpiece.wav"

    @property
    def log_path(self) -> Path:
        return self.directory / "daemon.log"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `handset ARGS --socket ...`; with `check`, a failure raises with its output."""
        result = subprocess.run(
            [*HANDSET, *args, "--socket", str(self.socket)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name}: handset {' '.join(args)} -> {result.returncode}: "
                f"{result.stderr.strip()}\n--- daemon log ---\n{self.log()[-3000:]}"
            )
        return result

    def status(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--json").stdout)

    def wait_for(
        self,
        what: str,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 20.0,
        poll_s: float = 0.05,
    ) -> dict[str, Any]:
        """Poll `handset status --json` until `predicate(status)`; return that status."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if predicate(status):
                return status
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: no {what} within {timeout} s; last status {status}\n"
                    f"--- daemon log ---\n{self.log()[-3000:]}"
                )
            time.sleep(poll_s)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def logged_at(self, text: str) -> list[float]:
        """When (Unix time, ms resolution) each log line containing `text` was written."""
        return [when for when, line in log_lines(self.log()) if text in line]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def log_lines(log: str) -> list[tuple[float, str]]:
    """(Unix time, line) of each `2026-11-29 20:02:22,816 ...` line of a daemon's stderr log."""
    found = []
    for line in log.splitlines():
        try:
            stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
        except ValueError:
            continue
        found.append((stamp.timestamp(), line[24:]))
    return found


def config_text(
    directory: Path,
    number: str,
    *,
    interface: str = "eth0",
    tone: Path | None = None,
    extra: str = "",
) -> str:
    return f"""\
[handset]
number = "{number}"
name = "handset {number}"
state_dir = "{directory / "state"}"

[mesh]
mode = "unmanaged"
interface = "{interface}"

[audio]
backend = "file"
{f'input = "{tone}"' if tone else ""}
output = "{directory / "earpiece.wav"}"
realtime_priority = 0

[control]
socket = "{directory / "control.sock"}"
{extra}"""


def start_daemon(
    name: str,
    number: str,
    directory: Path,
    *,
    namespace: str | None = None,
    tone_hz: float | None = None,
    config: str | None = None,
    env: dict[str, str] | None = None,
    start_timeout: float = 30.0,
) -> Daemon:
    """Write the config (unless given) and start `handset daemon` (in `namespace`)."""
    directory.mkdir(parents=True, exist_ok=True)
    tone = None
    if tone_hz is not None:
        tone = directory / "microphone.wav"
        write_tone(tone, tone_hz)
    path = directory / "handset.toml"
    path.write_text(config or config_text(directory, number, tone=tone))
    command = [*HANDSET, "daemon", "--config", str(path)]
    if namespace is not None:
        command = ["ip", "netns", "exec", namespace, *command]
    log = (directory / "daemon.log").open("wb")
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    log.close()
    daemon = Daemon(name, number, directory, process, namespace)
    deadline = time.monotonic() + start_timeout
    while not daemon.socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            daemon.stop()
            raise AssertionError(f"{name} did not start:\n{daemon.log()[-3000:]}")
        time.sleep(0.05)
    return daemon


@contextlib.contextmanager
def daemons_in_namespaces(
    directory: Path,
    numbers: list[str],
    tones: list[float],
    prefix: str = "hd",
    subnet: str = "10.79",
) -> Iterator[list[Daemon]]:
    """One daemon per number, each in its own namespace on one bridge; stopped afterwards."""
    from lab.netns import bridged_namespaces

    started: list[Daemon] = []
    with bridged_namespaces(prefix, subnet, count=len(numbers)) as namespaces:
        try:
            for index, (namespace, number, tone) in enumerate(
                zip(namespaces, numbers, tones, strict=True)
            ):
                name = "abcdefgh"[index]
                started.append(
                    start_daemon(name, number, directory / name, namespace=namespace, tone_hz=tone)
                )
            yield started
        finally:
            for daemon in started:
                daemon.stop()


def peers_found(count: int) -> Callable[[dict[str, Any]], bool]:
    return lambda status: status["peers"] >= count


def phone_in(state: str) -> Callable[[dict[str, Any]], bool]:
    """The phone (vomp.phone) is in `state`: "idle", "ringing in", "in call", "ended" ..."""
    return lambda status: status["state"] == state


def in_state(state: str) -> Callable[[dict[str, Any]], bool]:
    """The call (if any) is in VoMP state `state`; "none": there is no call."""
    if state == "none":
        return lambda status: "call" not in status
    return lambda status: status.get("call", {}).get("state") == state
