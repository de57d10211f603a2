"""The audio engine: sound-card I/O in its own real-time process, supervised.

Why a process and not a thread: a busy Python thread holds the GIL, and on this kind of
machine that alone brought xruns back under SCHED_FIFO. The engine process does nothing but
the DeviceLoop (block on capture, hand over, write playback), so it never waits on Python
work elsewhere. It talks to the handset through two non-blocking pipes, which are the
bounded, lock-free handoff in both directions (a pipe write of one period is atomic), and
publishes its counters in a shared-memory block guarded by a sequence number (a seqlock).

The parent side (AudioEngine) keeps a call alive across device trouble: an xrun is
counted and recovered inside the engine process; a vanished device (USB unplug, error on
read/write) ends the engine process, and a hung one (a sound server that died under a
blocking read) stops its heartbeat and is killed; either way the supervisor starts a fresh
engine process with exponential backoff until the device is back. A device that opens with
the wrong rate, format or period is a configuration error and is not retried.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import logging
import mmap
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hw.soundcard.device_loop import DeviceCounters, DeviceLoop
from hw.soundcard.devices import DeviceGoneError, DeviceMismatchError, PcmSettings, load_backend

log = logging.getLogger(__name__)

EXIT_GONE = 3
EXIT_MISMATCH = 4
F_SETPIPE_SZ = 1031
_FIELDS = DeviceCounters.names()
_LAYOUT = struct.Struct(f"<q{len(_FIELDS)}q")  # sequence number, then the counters
SHM_SIZE = mmap.PAGESIZE
SUPERVISOR_TICK_S = 0.1
"""How often the supervisor looks at the engine: often enough to catch a stall well within
stall_timeout_s, rarely enough to cost nothing next to the call path."""


@dataclass(frozen=True)
class EngineSettings:
    pcm: PcmSettings = dataclasses.field(default_factory=PcmSettings)
    backend: str = "alsa"
    realtime_priority: int = 70
    """SCHED_FIFO priority of the engine process; 0: normal scheduling."""
    stall_timeout_s: float = 0.5
    """A running engine whose heartbeat is older than this is hung (e.g. its sound server died
    under a blocking read) and gets killed and restarted."""
    startup_timeout_s: float = 5.0
    """Allowance for process start and device open before the first heartbeat."""
    reopen_backoff_s: tuple[float, float] = (0.05, 2.0)
    """First and longest wait between reopen attempts (doubling in between)."""


@dataclass
class EngineStats:
    """Device-side statistics over the engine's whole life, across reopens."""

    reopens: int = 0
    state: str = "stopped"
    error: str = ""
    realtime: bool = False
    periods: int = 0
    capture_xruns: int = 0
    playback_xruns: int = 0
    capture_dropped: int = 0
    playback_starved: int = 0
    playback_trimmed: int = 0
    playback_refused: int = 0
    period_interval_max_us: int = 0
    period_interval_last_us: int = 0
    period_late: int = 0

    @property
    def xruns(self) -> int:
        return self.capture_xruns + self.playback_xruns

    def as_dict(self) -> dict[str, object]:
        """Flat `device_*` keys, ready to merge with the pipeline's call statistics."""
        out = {f"device_{k}": v for k, v in dataclasses.asdict(self).items()}
        out["device_xruns"] = self.xruns
        return out


class SharedCounters:
    """DeviceCounters in a shared mapping: one writer (engine), readers retry torn reads."""

    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, SHM_SIZE)
        self._seq = 0

    def publish(self, counters: DeviceCounters) -> None:
        self._seq += 1  # odd: write in progress
        struct.pack_into("<q", self._map, 0, self._seq)
        _LAYOUT.pack_into(self._map, 0, self._seq, *counters.values())
        self._seq += 1
        struct.pack_into("<q", self._map, 0, self._seq)

    def read(self) -> DeviceCounters:
        """A consistent snapshot; if the writer died mid-write (killed), its last values."""
        for _ in range(1000):
            seq, *values = _LAYOUT.unpack_from(self._map, 0)
            if seq % 2 == 0 and struct.unpack_from("<q", self._map, 0)[0] == seq:
                return DeviceCounters(*values)
            time.sleep(0)
        return DeviceCounters(*values)

    def clear(self) -> None:
        self._map[: _LAYOUT.size] = bytes(_LAYOUT.size)


def _settings_to_json(settings: EngineSettings) -> str:
    return json.dumps(dataclasses.asdict(settings))


def _settings_from_json(text: str) -> EngineSettings:
    raw = json.loads(text)
    raw["pcm"] = PcmSettings(**raw["pcm"])
    raw["reopen_backoff_s"] = tuple(raw["reopen_backoff_s"])
    return EngineSettings(**raw)


# --- the engine process -----------------------------------------------------------------


def become_realtime(priority: int) -> bool:
    """SCHED_FIFO for the calling thread if permitted; otherwise say so and carry on.

    With SCHED_RESET_ON_FORK: threads and processes started from here begin at normal
    priority (a helper process must not spin at real-time priority by accident); those that
    should be real-time (the engine process, the supervisor thread) ask for it themselves."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except (PermissionError, OSError) as exc:
        print(
            f"audio engine: SCHED_FIFO refused ({exc}); running at normal priority",
            file=sys.stderr,
        )
        return False
    return True


def _scheduling_of_this_thread() -> tuple[int, int]:
    """(policy without the reset-on-fork flag, priority) of the calling thread."""
    return os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(0).sched_priority


def run_engine_process(settings: EngineSettings, capture_w: int, playback_r: int, shm: int) -> int:
    """Body of the engine process: open, prime, loop until the device or the parent goes."""
    import gc

    shared = SharedCounters(shm)
    realtime = settings.realtime_priority > 0 and become_realtime(settings.realtime_priority)
    backend = load_backend(settings.backend)
    try:
        capture = backend.open_capture(settings.pcm)
        playback = backend.open_playback(settings.pcm)
    except DeviceMismatchError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except DeviceGoneError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_GONE

    parent_gone = False

    def deliver(data: bytes) -> bool:
        try:
            os.write(capture_w, data)
        except BlockingIOError:
            return False
        return True

    def fetch() -> bytes:
        nonlocal parent_gone
        try:
            data = os.read(playback_r, 65536)
        except BlockingIOError:
            return b""
        if not data:
            parent_gone = True
        return data

    loop = DeviceLoop(capture, playback, settings.pcm, deliver, fetch, time.monotonic_ns)
    loop.counters.realtime = int(realtime)
    loop.prime()
    gc.disable()  # the loop makes no reference cycles; a collection would only add jitter
    try:
        while not parent_gone:
            loop.run_period()
            shared.publish(loop.counters)
    except DeviceGoneError as exc:
        print(f"audio engine: {exc}", file=sys.stderr)
        return EXIT_GONE
    except BrokenPipeError:
        return 0
    finally:
        shared.publish(loop.counters)
        for stream in (capture, playback):
            with contextlib.suppress(Exception):
                stream.close()
    return 0


def _engine_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="audio engine process (started by AudioEngine)")
    parser.add_argument("settings")
    parser.add_argument("capture_w", type=int)
    parser.add_argument("playback_r", type=int)
    parser.add_argument("shm", type=int)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    return run_engine_process(
        _settings_from_json(args.settings), args.capture_w, args.playback_r, args.shm
    )


# --- the parent side ----------------------------------------------------------------------


class AudioEngine:
    """Starts and supervises the engine process; the handset's only handle on the sound card.

    The call path reads captured audio with `read_capture()` (non-blocking; `capture_fd` is
    readable when there is some, for asyncio's add_reader) and queues audio to play with
    `write_playback()` (non-blocking; refused bytes are counted, never waited for).

    Make the calling thread real-time *before* start(): the supervisor thread takes on its
    scheduling. A supervisor left at normal priority can be preempted while it holds the GIL,
    and then a real-time call path in the same process waits for it (priority inversion).
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._stats = EngineStats()
        self._base = DeviceCounters()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stderr_tail: list[str] = []
        self._shm_fd = os.memfd_create("audio-engine-stats")
        os.ftruncate(self._shm_fd, SHM_SIZE)
        self._shared = SharedCounters(self._shm_fd)
        self._capture_r, self._capture_w = os.pipe()
        self._playback_r, self._playback_w = os.pipe()
        pcm = settings.pcm
        for fd in (self._capture_w, self._playback_w):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, F_SETPIPE_SZ, max(4096, 12 * pcm.period_bytes))
        for fd in (self._capture_r, self._capture_w, self._playback_r, self._playback_w):
            os.set_blocking(fd, False)
        self.capture_fd = self._capture_r

    # -- life cycle

    def start(self) -> None:
        self._stats.state = "starting"
        self._supervisor_scheduling = _scheduling_of_this_thread()
        self._spawn()
        self._thread = threading.Thread(
            target=self._supervise, name="audio-supervisor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join()
        self._kill()
        self._stats.state = "stopped"
        for fd in (
            self._capture_r,
            self._capture_w,
            self._playback_r,
            self._playback_w,
            self._shm_fd,
        ):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> AudioEngine:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- data path

    def read_capture(self, max_bytes: int = 65536) -> bytes:
        try:
            return os.read(self._capture_r, max_bytes)
        except BlockingIOError:
            return b""

    def write_playback(self, pcm: bytes) -> bool:
        try:
            written = os.write(self._playback_w, pcm)
        except BlockingIOError:
            written = 0
        except BrokenPipeError:
            written = 0
        if written < len(pcm):
            with self._lock:
                self._stats.playback_refused += 1
        return written == len(pcm)

    # -- statistics

    @property
    def reopens(self) -> int:
        """How many times a fresh engine process took over (cheap: read on every round)."""
        return self._stats.reopens

    def stats(self) -> EngineStats:
        with self._lock:
            live = self._shared.read() if self._proc else DeviceCounters()
            stats = dataclasses.replace(self._stats)
        for name in (
            "periods",
            "capture_xruns",
            "playback_xruns",
            "capture_dropped",
            "playback_starved",
            "playback_trimmed",
            "period_late",
        ):
            setattr(stats, name, getattr(self._base, name) + getattr(live, name))
        stats.period_interval_max_us = max(
            self._base.period_interval_max_us, live.period_interval_max_us
        )
        stats.period_interval_last_us = live.period_interval_last_us
        stats.realtime = bool(live.realtime)
        return stats

    def process_cpu_seconds(self) -> float:
        """CPU time (user + system) of the running engine process, from /proc."""
        proc = self._proc
        if proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # -- supervision

    def _spawn(self) -> None:
        self._shared.clear()
        self._spawned_ns = time.monotonic_ns()
        fds = (self._capture_w, self._playback_r, self._shm_fd)
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hw.soundcard.engine",
                _settings_to_json(self.settings),
                *map(str, fds),
            ],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.set_blocking(self._proc.stderr.fileno(), False)

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._drain_stderr()
        proc.stderr.close()
        with self._lock:
            live = self._shared.read()
            for name in (
                "periods",
                "capture_xruns",
                "playback_xruns",
                "capture_dropped",
                "playback_starved",
                "playback_trimmed",
                "period_late",
            ):
                setattr(self._base, name, getattr(self._base, name) + getattr(live, name))
            self._base.period_interval_max_us = max(
                self._base.period_interval_max_us, live.period_interval_max_us
            )
            self._shared.clear()
            self._proc = None

    def _drain_stderr(self) -> None:
        assert self._proc is not None
        try:
            data = self._proc.stderr.read()
        except (BlockingIOError, ValueError):
            return
        if data:
            for line in data.decode(errors="replace").splitlines():
                if line.startswith("audio engine:"):
                    log.warning("%s", line)
                    self._stderr_tail = [*self._stderr_tail[-9:], line]

    def _stalled(self) -> bool:
        heartbeat = self._shared.read().heartbeat_ns
        if heartbeat == 0:
            waited = time.monotonic_ns() - self._spawned_ns
            return waited > self.settings.startup_timeout_s * 1e9
        return time.monotonic_ns() - heartbeat > self.settings.stall_timeout_s * 1e9

    def _supervise(self) -> None:
        policy, priority = self._supervisor_scheduling
        if policy in (os.SCHED_FIFO, os.SCHED_RR):
            with contextlib.suppress(OSError):  # the caller's priority, so no GIL inversion
                os.sched_setscheduler(0, policy | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
        backoff_first, backoff_max = self.settings.reopen_backoff_s
        backoff = backoff_first
        while not self._stopping.wait(SUPERVISOR_TICK_S):
            proc = self._proc
            assert proc is not None
            self._drain_stderr()
            rc = proc.poll()
            if rc is None and not self._stalled():
                if self._shared.read().periods > 0:
                    self._stats.state = "running"
                    self._stats.error = ""
                    backoff = backoff_first
                continue
            reason = f"exit code {rc}" if rc is not None else "stalled"
            self._kill()
            if rc == EXIT_MISMATCH:
                self._stats.state = "failed"
                self._stats.error = self._stderr_tail[-1] if self._stderr_tail else reason
                log.error("audio engine stopped: %s", self._stats.error)
                return
            self._stats.state = "reopening"
            self._stats.error = self._stderr_tail[-1] if self._stderr_tail else reason
            log.warning("audio device lost (%s); reopening in %.2f s", reason, backoff)
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, backoff_max)
            with self._lock:
                self._stats.reopens += 1
            self._spawn()


if __name__ == "__main__":
    sys.exit(_engine_main(sys.argv[1:]))
