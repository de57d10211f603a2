"""Sound cards for tests and benchmarks without sound hardware, through real ALSA.

Two kinds, both reached through pyalsaaudio exactly as a USB card would be:
- `file_card`: ALSA's `file` plugin over `null` — capture reads raw bytes from a file, playback
  writes raw bytes to a file, as fast as the caller asks (deterministic, not paced).
- `JackServer`: jackd2's dummy driver, a real-time clock with no hardware, and ALSA's `jack` PCM
  plugin (libasound2-plugins) so each handset gets its own paced capture and playback PCM,
  wired by JACK port names to test instruments (a player and a two-channel recorder).

Select them with ALSA_CONFIG_PATH=/usr/share/alsa/alsa.conf:<generated .conf>.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ALSA_BASE_CONF = "/usr/share/alsa/alsa.conf"


def alsa_config_path(conf: Path) -> str:
    return f"{ALSA_BASE_CONF}:{conf}"


def file_card_conf(name: str, infile: Path, outfile: Path) -> str:
    """PCMs `<name>_in` (capture returns `infile`'s bytes) and `<name>_out` (playback writes
    `outfile`). Two PCMs, because the `file` plugin also records what capture reads: one
    shared output file would get both streams over each other."""
    return f"""
pcm.{name}_in {{
    type file
    slave.pcm "null"
    file "{outfile}.captured"
    infile "{infile}"
    format "raw"
}}
pcm.{name}_out {{
    type file
    slave.pcm "null"
    file "{outfile}"
    format "raw"
}}
"""


def jack_pcm_conf(
    pcm: str,
    client: str,
    *,
    capture_from: list[str] | None = None,
    playback_to: list[str] | None = None,
) -> str:
    """A `jack` PCM used through `plug` (rate and format conversion to the handset's 16 kHz)."""
    ports = ""
    if capture_from is not None:
        ports += (
            "capture_ports { " + " ".join(f'{i} "{p}"' for i, p in enumerate(capture_from)) + " }\n"
        )
    if playback_to is not None:
        ports += (
            "playback_ports { " + " ".join(f'{i} "{p}"' for i, p in enumerate(playback_to)) + " }\n"
        )
    return f"""
pcm.{pcm}_jack {{
    type jack
    name "{client}"
    {ports}
}}
pcm.{pcm} {{
    type plug
    slave.pcm "{pcm}_jack"
}}
"""


SERVER_NAMES = [f"handset-bench-{i}" for i in range(4)]
"""JACK keeps its servers in a shared-memory registry of only 8 slots and frees a slot on a
clean shutdown only; a slot left by a killed jackd is reused only by a server of the same
name. So servers here take a name from this small pool instead of a fresh one each time."""


def free_server_name() -> str:
    """A pool name no running jackd uses (each process starts looking at its own place)."""
    start = os.getpid() % len(SERVER_NAMES)
    for name in SERVER_NAMES[start:] + SERVER_NAMES[:start]:
        check = subprocess.run(
            ["jack_wait", "-c", "-s", name],
            capture_output=True,
            text=True,
            env={**os.environ, "JACK_NO_START_SERVER": "1"},
        )
        if "not running" in check.stdout:
            return name
    raise RuntimeError(f"every JACK server name in {SERVER_NAMES} is in use")


HARDWARE_PRIORITY = 85
"""jackd plays the sound card's hardware, which no process can preempt: it (and the JACK
threads it gives its clients) must outrank the engine (70) and the call path (60), or a busy
call path delays the "hardware" and the bench reports xruns a real card would not have."""


TIMER_LATE = "JackTimedDriver::Process XRun"
"""jackd's log line for a cycle its dummy driver's timer (the card's clock) started late."""
GRAPH_LATE = "ProcessGraphAsyncMaster: Process error"
"""jackd's log line, once per cycle, when a client had not finished the previous cycle."""


@dataclass(frozen=True)
class LateCycles:
    """Cycles in which the virtual card itself missed its time, counted by jackd.

    Both run above everything of the handset (jackd at HARDWARE_PRIORITY, the JACK client
    threads just below it, each only copying a period), so a late cycle means the machine did
    not run them for a whole cycle: on a virtual machine, a virtual CPU the hypervisor took
    away, which a handset's CPU never is. An xrun that comes with one is the machine's."""

    timer: int
    """The card's clock (jackd's timer thread) woke late; jackd then runs the late cycle and
    the next back to back, taking two of its periods of playback at once."""
    clients: int
    """A client (a handset's capture or playback, or an instrument) did not finish a cycle."""


class JackServer:
    """A jackd with the dummy driver under a pool name; start() and stop()."""

    def __init__(self, name: str | None = None, rate: int = 48000, period: int = 240) -> None:
        self.name = name or free_server_name()
        self.rate = rate
        self.period = period
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(f"/tmp/jackd-{self.name}.log")

    @staticmethod
    def available() -> bool:
        plugin = list(Path("/usr/lib").glob("*/alsa-lib/libasound_module_pcm_jack.so"))
        return shutil.which("jackd") is not None and bool(plugin)

    def env(self) -> dict[str, str]:
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_AUDIO_RESERVATION": "1"}

    def start(self) -> None:
        """Start jackd and wait until it answers. Another run may take the same pool name at
        the same moment; then our jackd exits at once and we try the next free name."""
        for _ in SERVER_NAMES:
            self._launch()
            ready = subprocess.run(
                ["jack_wait", "-s", self.name, "-w", "-t", "10"],
                env={**os.environ, **self.env()},
                capture_output=True,
            )
            time.sleep(0.3)  # a jackd that lost the name race is gone by now
            if ready.returncode == 0 and self.proc is not None and self.proc.poll() is None:
                return
            self.stop()
            self.name = free_server_name()
            self.log = Path(f"/tmp/jackd-{self.name}.log")
        raise RuntimeError(f"no jackd would start; last log: {self.log.read_text()[-500:]}")

    def _launch(self) -> None:
        command = ["jackd", "-n", self.name, "-R", "-P", str(HARDWARE_PRIORITY), "-d", "dummy"]
        command += ["-r", str(self.rate), "-p", str(self.period), "-C", "2", "-P", "2"]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                command,
                env={**os.environ, **self.env()},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def late_cycles(self) -> LateCycles:
        """The cycles this server has logged as late so far (see LateCycles)."""
        try:
            log = self.log.read_text(errors="replace")
        except FileNotFoundError:
            return LateCycles(0, 0)
        return LateCycles(log.count(TIMER_LATE), log.count(GRAPH_LATE))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def vanish(self) -> None:
        """Go away under the clients, like a sound card pulled out. SIGTERM, not SIGKILL: a
        killed jackd leaves its entry in JACK's shared-memory server registry, which holds
        only a few servers, and later servers then fail to start."""
        self.stop()


def open_s16_pcm(direction: str, device: str, rate: int, channels: int, period_frames: int):
    """One place that opens a test instrument's PCM: S16_LE, 4 periods, paced by the device."""
    import alsaaudio

    kind = alsaaudio.PCM_PLAYBACK if direction == "playback" else alsaaudio.PCM_CAPTURE
    return alsaaudio.PCM(
        kind,
        device=device,
        rate=rate,
        channels=channels,
        format=alsaaudio.PCM_FORMAT_S16_LE,
        periodsize=period_frames,
        periods=4,
    )


class PcmPlayer(threading.Thread):
    """Plays `signal` once (then silence) into an ALSA PCM, paced by the device."""

    def __init__(
        self,
        device: str,
        pcm_bytes: bytes,
        rate: int = 16000,
        channels: int = 1,
        period_frames: int = 160,
        loop: bool = False,
    ) -> None:
        super().__init__(daemon=True, name=f"player-{device}")
        self.device, self.data, self.rate, self.channels = device, pcm_bytes, rate, channels
        self.period_frames, self.loop = period_frames, loop
        self.stop_event = threading.Event()
        self.started_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pcm = open_s16_pcm(
                "playback", self.device, self.rate, self.channels, self.period_frames
            )
            step = self.period_frames * 2 * self.channels
            silence = bytes(step)
            self.started_event.set()
            offset = 0
            while not self.stop_event.is_set():
                if offset < len(self.data):
                    chunk = self.data[offset : offset + step].ljust(step, b"\0")
                    offset += step
                    if self.loop and offset >= len(self.data):
                        offset = 0
                else:
                    chunk = silence
                pcm.write(chunk)
            pcm.close()
        except BaseException as exc:  # reported by the test that owns the instrument
            self.error = exc
            self.started_event.set()


class PcmRecorder(threading.Thread):
    """Records an ALSA capture PCM into memory until stopped, paced by the device."""

    def __init__(
        self, device: str, rate: int = 16000, channels: int = 1, period_frames: int = 160
    ) -> None:
        super().__init__(daemon=True, name=f"recorder-{device}")
        self.device, self.rate, self.channels, self.period_frames = (
            device,
            rate,
            channels,
            period_frames,
        )
        self.data = bytearray()
        self.stop_event = threading.Event()
        self.started_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pcm = open_s16_pcm("capture", self.device, self.rate, self.channels, self.period_frames)
            self.started_event.set()
            while not self.stop_event.is_set():
                frames, data = pcm.read()
                if frames > 0:
                    self.data += data
            pcm.close()
        except BaseException as exc:
            self.error = exc
            self.started_event.set()


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def click_train(rate: int, seconds: float, every_s: float = 0.2, lead_s: float = 0.3) -> bytes:
    """Mono S16_LE: short 2 kHz bursts every `every_s`, after `lead_s` of silence."""
    import math
    from array import array

    samples = array("h", bytes(2 * round(rate * seconds)))
    burst = round(0.004 * rate)
    t = lead_s
    while t + 0.01 < seconds:
        start = round(t * rate)
        for i in range(burst):
            window = math.sin(math.pi * i / burst)
            samples[start + i] = int(16000 * window * math.sin(2 * math.pi * 2000 * i / rate))
        t += every_s
    return samples.tobytes()


def onsets(samples, threshold: int = 4000, hold: int = 400) -> list[int]:
    """Sample indices where |x| first rises above `threshold` after `hold` quiet samples."""
    found: list[int] = []
    quiet = hold
    for i, x in enumerate(samples):
        if abs(x) >= threshold:
            if quiet >= hold:
                found.append(i)
            quiet = 0
        else:
            quiet += 1
    return found


def click_arrivals(reference, received, rate: int, max_lag_s: float = 0.5):
    """For each click in `reference` heard in `received`: (when it was sent in s, delay in ms)."""
    rx = onsets(received)
    arrivals = []
    for tx in onsets(reference):
        later = [r for r in rx if tx <= r <= tx + max_lag_s * rate]
        if later:
            arrivals.append((tx / rate, 1000.0 * (later[0] - tx) / rate))
    return arrivals


def click_lags(reference, received, rate: int, max_lag_s: float = 0.5) -> list[float]:
    """For each click in `reference`, the delay in ms until it shows in `received`."""
    return [lag for _, lag in click_arrivals(reference, received, rate, max_lag_s)]


def realtime_permitted() -> bool:
    """Whether this machine lets us use SCHED_FIFO (root in a container may not)."""
    import subprocess
    import sys

    probe = "import os; os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def power_at(samples, freq: float, rate: int = 16000) -> float:
    """Goertzel: the energy of `samples` (ints) at `freq`, normalised by length."""
    import math

    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / len(samples) ** 2
