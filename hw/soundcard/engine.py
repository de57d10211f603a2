"""The audio engine's supervisor: sound-card I/O in its own real-time process, kept alive.

Why a process and not a thread: a busy Python thread holds the GIL, and on this kind of
machine that alone brought xruns back under SCHED_FIFO. The engine process
(`hw/soundcard/engine_process.py`) runs the DeviceLoop (block on capture, hand over, write
playback) and, in a call, the call's audio itself (`EngineCall`), so it never waits on Python
work elsewhere. It talks to the handset through non-blocking pipes, the bounded, lock-free
handoff in both directions (every write is atomic): captured periods and the playback that
answers them outside a call, call records (`hw/soundcard/call_records.py`) in a call; and it
publishes its counters in a seqlocked shared page (`hw/soundcard/counters.py`).

The parent side (AudioEngine) keeps a call alive across device trouble: an xrun is
counted and recovered inside the engine process; a vanished device (USB unplug, error on
read/write) ends the engine process, and a hung one (a sound server that died under a
blocking read) stops its heartbeat and is killed; either way the supervisor starts a fresh
engine process with exponential backoff until the device is back. A device that opens with
the wrong rate, format or period is a configuration error and is not retried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hw.soundcard.call_records import (
    EndCall,
    Gain,
    Mute,
    ReceivedFrame,
    Record,
    RecordReader,
    StartCall,
    encode,
)
from hw.soundcard.counters import SHM_SIZE, DeviceCounters, SharedCounters
from hw.soundcard.engine_process import EXIT_MISMATCH, EnginePipes, EngineSettings
from hw.soundcard.realtime import scheduling_of_this_thread, take_on_scheduling

__all__ = ["AudioEngine", "EngineSettings", "EngineStats"]

log = logging.getLogger(__name__)

F_SETPIPE_SZ = 1031
SUPERVISOR_TICK_S = 0.1
STARTUP_ALLOWANCE_MAX_S = 60.0
"""How often the supervisor looks at the engine: often enough to catch a stall well within
stall_timeout_s, rarely enough to cost nothing next to the call path."""


def _stderr_of(proc: subprocess.Popen[bytes]) -> IO[bytes]:
    """The engine process's stderr pipe (every engine process is started with one)."""
    assert proc.stderr is not None
    return proc.stderr


@dataclass
class EngineStats(DeviceCounters):
    """Device-side statistics over the engine's whole life, across reopens: the device
    counters of every engine process so far, and the supervisor's own."""

    reopens: int = 0
    state: str = "stopped"
    error: str = ""
    playback_refused: int = 0

    @property
    def xruns(self) -> int:
        return self.capture_xruns + self.playback_xruns

    def as_dict(self) -> dict[str, object]:
        """Flat `device_*` keys, ready to merge with the pipeline's call statistics."""
        out = {f"device_{k}": v for k, v in dataclasses.asdict(self).items()}
        del out["device_heartbeat_ns"]  # the supervisor's stall check, not a statistic
        out["device_realtime"] = bool(self.realtime)
        out["device_xruns"] = self.xruns
        return out


class AudioEngine:
    """Starts and supervises the engine process; the handset's only handle on the sound card.

    Outside a call the handset reads captured audio with `read_capture()` (non-blocking;
    `capture_fd` is readable when there is some, for asyncio's add_reader) and queues audio to
    play with `write_playback()` (non-blocking; refused bytes are counted, never waited for).
    In a call it starts the call's audio in the engine process (`start_call`), hands it each
    received frame (`deliver_frame`) and reads back the encoded ones (`read_call_records`,
    `call_fd` readable).

    Make the calling thread real-time *before* start(): the supervisor thread takes on its
    scheduling. A supervisor left at normal priority can be preempted while it holds the GIL,
    and then a real-time call path in the same process waits for it (priority inversion).
    """

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self._stats = EngineStats()
        self._finished = DeviceCounters()
        """The counters of the engine processes before the running one, carried over."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stderr_tail: list[str] = []
        self._startup_allowance_s = settings.startup_timeout_s
        """Doubled each time an engine process is killed before its first heartbeat (up to
        STARTUP_ALLOWANCE_MAX_S): on a machine too busy to start Python in time, a fixed
        allowance would kill every attempt, each after most of a start's CPU."""
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
        self._to_call_r, self._to_call_w = os.pipe()
        self._from_call_r, self._from_call_w = os.pipe()
        for fd in (self._to_call_r, self._to_call_w, self._from_call_r, self._from_call_w):
            os.set_blocking(fd, False)
        self.call_fd = self._from_call_r
        """Readable when the engine process has call records (encoded frames) for us."""
        self._call_records = RecordReader()
        self._call_setup: list[bytes] = []
        """The running call as the engine process must know it (start, mute, gain): told
        again to a fresh engine process after a reopen."""
        self.call_records_refused = 0

    # -- life cycle

    def start(self) -> None:
        self._stats.state = "starting"
        self._supervisor_scheduling = scheduling_of_this_thread()
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
            self._to_call_r,
            self._to_call_w,
            self._from_call_r,
            self._from_call_w,
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

    def set_idle(self, idle: bool) -> None:
        """While idle (no call, tone or beep) the engine plays silence on its own and hands
        nothing over, so the call path is not woken every period for nothing."""
        self._shared.set_call_path_idle(idle)

    @property
    def pipes(self) -> EnginePipes:
        """The engine process's ends of the pipes (it inherits them)."""
        return EnginePipes(self._capture_w, self._playback_r, self._to_call_r, self._from_call_w)

    def call_path_idle(self) -> bool:
        """What the engine process reads once a period: whether to hand captured audio over."""
        return self._shared.call_path_idle()

    # -- the call's audio, run by the engine process

    def start_call(self, call: int, codec: int, *, muted: bool = False, gain: float = 1.0) -> None:
        """Start the call's audio in the engine process: it encodes what it captures,
        hands the frames back (`read_call_records`), and plays what `deliver_frame` gives it."""
        self._call_setup = [encode(Mute(muted)), encode(Gain(gain)), encode(StartCall(call, codec))]
        for record in self._call_setup:
            self._tell_call(record)

    def end_call(self, call: int) -> None:
        self._call_setup = []
        self._tell_call(encode(EndCall(call)))

    def set_call_mute(self, on: bool) -> None:
        self._set_up(0, encode(Mute(on)))

    def set_call_gain(self, gain: float) -> None:
        self._set_up(1, encode(Gain(gain)))

    def deliver_frame(
        self, call: int, codec: int, time_ms: int, arrived: float, payload: bytes
    ) -> bool:
        """Hand a received VoMP audio frame to the call's jitter buffer."""
        try:
            record = encode(ReceivedFrame(call, codec, time_ms, arrived, payload))
        except ValueError:
            self.call_records_refused += 1
            return False
        return self._tell_call(record)

    def read_call_records(self) -> list[Record]:
        """What the engine process said about the call since the last read (non-blocking)."""
        records: list[Record] = []
        while True:
            try:
                data = os.read(self._from_call_r, 65536)
            except BlockingIOError:
                return records
            records += self._call_records.feed(data)
            if len(data) < 65536:
                return records

    def _retell_call(self) -> None:
        """A call in progress goes on in a fresh engine process: tell it the call again."""
        for record in self._call_setup:
            self._tell_call(record)

    def _set_up(self, index: int, record: bytes) -> None:
        if self._call_setup:
            self._call_setup[index] = record
        self._tell_call(record)

    def _tell_call(self, record: bytes) -> bool:
        try:
            os.write(self._to_call_w, record)
        except (BlockingIOError, BrokenPipeError):
            self.call_records_refused += 1
            return False
        return True

    # -- statistics

    @property
    def reopens(self) -> int:
        """How many times a fresh engine process took over (cheap: read on every round)."""
        return self._stats.reopens

    def stats(self) -> EngineStats:
        with self._lock:
            live = self._shared.read() if self._proc else DeviceCounters()
            device = live.continued_from(self._finished)
            return dataclasses.replace(self._stats, **dataclasses.asdict(device))

    @property
    def pid(self) -> int | None:
        """The running engine process (None between a lost device and its reopen)."""
        proc = self._proc
        return proc.pid if proc is not None else None

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
        self._retell_call()
        pipes = dataclasses.astuple(self.pipes)
        fds = (self._shm_fd, *pipes)
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hw.soundcard.engine_process",
                self.settings.to_json(),
                *map(str, fds),
            ],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        os.set_blocking(_stderr_of(self._proc).fileno(), False)

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._drain_stderr()
        _stderr_of(proc).close()
        with self._lock:
            self._finished = self._shared.read().continued_from(self._finished)
            self._shared.clear()
            self._proc = None

    def _drain_stderr(self) -> None:
        assert self._proc is not None
        try:
            data = _stderr_of(self._proc).read()
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
            return waited > self._startup_allowance_s * 1e9
        return time.monotonic_ns() - heartbeat > self.settings.stall_timeout_s * 1e9

    def _supervise(self) -> None:
        with contextlib.suppress(OSError):  # the caller's priority, so no GIL inversion
            take_on_scheduling(*self._supervisor_scheduling)
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
                    self._startup_allowance_s = self.settings.startup_timeout_s
                continue
            reason = f"exit code {rc}" if rc is not None else "stalled"
            if rc is None and self._shared.read().heartbeat_ns == 0:
                reason = f"not started within {self._startup_allowance_s:.1f} s"
                self._startup_allowance_s = min(
                    2 * self._startup_allowance_s, STARTUP_ALLOWANCE_MAX_S
                )
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
