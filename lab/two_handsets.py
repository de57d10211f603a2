"""A two-handset call on the virtual bench: namespaces, paced sound cards, instruments.

Handset A and B are `handset daemon`s (alsa backend), each in its own network namespace,
joined by a bridge, over real UDP, driven through the `handset` CLI (lab/daemons.py). One
jackd (dummy driver, real-time pacing) gives each handset its own capture and playback PCM.
A player feeds A's microphone; a two-channel recorder hears the player on channel 0 and B's
earpiece on channel 1, in the same JACK cycle, so the delay between them is mouth-to-ear,
exactly.

Used by tests/test_netns_handset_call.py and bench/m2e_bench.py, call_cpu_bench.py and
xrun_bench.py.
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from lab.daemons import Daemon, peers_found, phone_in, start_daemon
from lab.netns import bridged_namespaces
from lab.virtual_audio import (
    JackServer,
    LateCycles,
    PcmPlayer,
    PcmRecorder,
    alsa_config_path,
    click_arrivals,
    click_train,
    jack_pcm_conf,
)

RATE = 16000
CLICK_EVERY_S = 0.25


def bench_conf(tag: str) -> str:
    return (
        jack_pcm_conf("player", f"{tag}player", playback_to=["system:playback_1"])
        + jack_pcm_conf(
            "recorder", f"{tag}recorder", capture_from=[f"{tag}player:out_000", "system:capture_2"]
        )
        + jack_pcm_conf("hacap", f"{tag}acap", capture_from=[f"{tag}player:out_000"])
        + jack_pcm_conf("haplay", f"{tag}aplay", playback_to=["system:playback_1"])
        + jack_pcm_conf("hbcap", f"{tag}bcap", capture_from=["system:capture_1"])
        + jack_pcm_conf("hbplay", f"{tag}bplay", playback_to=[f"{tag}recorder:in_001"])
    )


@dataclass
class CallResult:
    caller: dict
    callee: dict
    lags_ms: list[float]
    clicks_sent: int
    heard_at_s: list[float]
    """When (in the recording) each heard click was played into A."""
    call_started_s: float
    """When (in the recording) the caller's call began, roughly: its first heard click."""
    card_late: LateCycles
    """Cycles the virtual card itself was late in, from dial to hang-up."""
    steal_s: float
    """CPU time the hypervisor gave to others while this machine's CPUs wanted to run, all
    CPUs together, from dial to hang-up (0 on real hardware)."""


def steal_seconds() -> float:
    """The `steal` column of /proc/stat (all CPUs) in seconds."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def _config(directory: Path, number: str, capture: str, playback: str, audio: str) -> str:
    return f"""\
[handset]
number = "{number}"
state_dir = "{directory / "state"}"

[mesh]
mode = "unmanaged"
interface = "eth0"

[audio]
backend = "alsa"
capture = "{capture}"
playback = "{playback}"
{audio}
[control]
socket = "{directory / "control.sock"}"
"""


@dataclass(frozen=True)
class CpuReading:
    """CPU time (user + system, seconds) so far of one handset's processes."""

    daemon: float
    engine: float
    """The engine process, all its threads (across engine processes, as the daemon sums)."""
    engine_pid: int | None
    card_threads: dict[int, float]
    """Each real-time thread of the engine process other than its main thread. The engine
    makes no threads of its own; on this bench these are the JACK client threads that ALSA's
    `jack` plugin starts (one per PCM), which move samples between jackd and the plugin's
    ring buffer each JACK cycle: the work a real card's DMA does, with no thread in the
    handset. Threads at normal priority (numpy's, libjack's housekeeping) are not in here."""


def _stat_cpu(stat: Path) -> tuple[float, int]:
    """CPU so far (user + system, seconds) and scheduling policy from a /proc `stat` file of a
    process or thread."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[38])


def _thread_cpu(pid: int) -> dict[int, float]:
    """CPU so far of each real-time thread of `pid` except its main thread."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            cpu, policy = _stat_cpu(task / "stat")
        except OSError:
            continue  # the thread ended
        if int(task.name) != pid and policy != os.SCHED_OTHER:
            found[int(task.name)] = cpu
    return found


def _cpu_seconds(daemon: Daemon) -> CpuReading:
    """CPU so far of the daemon's process, of its engine process, and of the engine process's
    virtual-card threads."""
    own, _ = _stat_cpu(Path(f"/proc/{daemon.process.pid}/stat"))
    audio = json.loads(daemon.cli("audio", "--json").stdout)
    pid = audio["engine_pid"]
    try:
        card = _thread_cpu(pid) if pid is not None else {}
    except OSError:
        card = {}
    return CpuReading(own, audio["engine_cpu_s"], pid, card)


def _card_seconds(start: CpuReading, end: CpuReading) -> float:
    """CPU of the virtual card's threads between two readings of one engine process (none
    counted if the engine process was replaced in between: nothing is left out then)."""
    if start.engine_pid != end.engine_pid:
        return 0.0
    return sum(cpu - start.card_threads.get(tid, 0.0) for tid, cpu in end.card_threads.items())


def _talk(caller: Daemon, callee: Daemon, seconds: float, kill_engine_after: float) -> list[dict]:
    """Dial, answer, talk for `seconds`, hang up; each side's statistics and CPU."""
    caller.cli("dial", callee.number)
    callee.wait_for("the ring", phone_in("ringing in"), timeout=30)
    callee.cli("answer")
    for daemon in (caller, callee):
        daemon.wait_for("the call", phone_in("in call"), timeout=30)
    started = [_cpu_seconds(d) for d in (caller, callee)]
    began = time.monotonic()
    if kill_engine_after:
        # The sound card's process dies mid-call (a crash, or a driver hang cut short).
        time.sleep(kill_engine_after)
        os.kill(json.loads(caller.cli("audio", "--json").stdout)["engine_pid"], signal.SIGKILL)
        time.sleep(seconds - kill_engine_after)
    else:
        time.sleep(seconds)
    wall = time.monotonic() - began
    results = []
    for daemon, start in zip((caller, callee), started, strict=True):
        end = _cpu_seconds(daemon)
        main = 100.0 * (end.daemon - start.daemon) / wall
        engine = 100.0 * (end.engine - start.engine) / wall
        card = 100.0 * _card_seconds(start, end) / wall
        results.append(
            {
                "stats": json.loads(daemon.cli("audio", "--json").stdout)["stats"],
                "cpu_percent_main": main,
                "cpu_percent_engine": engine,
                "cpu_percent_card_threads": card,
                "cpu_percent": main + engine,
                "call_seconds": wall,
            }
        )
    caller.cli("hangup")
    ended = callee.wait_for("the hang-up", phone_in("ended"), timeout=30)
    for daemon, result in zip((caller, callee), results, strict=True):
        status = ended if daemon is callee else daemon.status()
        result["timed_out"] = "timeout" in status["phone"]["last_end"]
        result["counters"] = status["counters"]
    return results


def run_call(
    seconds: float,
    *,
    period_frames: int = 160,
    prefill: int = 2,
    kill_engine_after: float = 0.0,
    click_every_s: float = CLICK_EVERY_S,
    codecs: str = "ours",
) -> CallResult:
    """Place one call A -> B with a click train into A's microphone for `seconds`. A click is
    matched to its arrival only within 0.8 x `click_every_s`, so space clicks wider than
    the longest delay the test must see. `codecs="servald"`: both offer only what servald
    decodes (µ-law, plain Opus), as a call with a servald peer."""
    tag = f"hs{os.getpid()}r{random.randrange(1000)}"
    server = JackServer()
    audio = f"period_ms = {1000 * period_frames // RATE}\nprefill_periods = {prefill}\n" + (
        'codecs = ["opus", "mulaw"]\n' if codecs == "servald" else ""
    )
    with tempfile.TemporaryDirectory() as tmp, bridged_namespaces("ac", "10.78") as (ns_a, ns_b):
        conf = Path(tmp) / "jack.conf"
        conf.write_text(bench_conf(tag))
        saved = {k: os.environ.get(k) for k in ("ALSA_CONFIG_PATH", *server.env())}
        os.environ["ALSA_CONFIG_PATH"] = alsa_config_path(conf)
        server.start()  # may settle on another pool name than it was made with: env after
        os.environ.update(server.env())
        player = PcmPlayer(
            "player", click_train(RATE, click_every_s, click_every_s, 0.0), loop=True
        )
        recorder = PcmRecorder("recorder", channels=2)
        daemons: list[Daemon] = []
        try:
            player.start()
            player.started_event.wait(5)
            recorder.start()
            recorder.started_event.wait(5)
            if player.error or recorder.error:
                raise AssertionError(f"instruments failed: {player.error or recorder.error}")
            for name, namespace, number, capture, playback in (
                ("a", ns_a, "5553001", "hacap", "haplay"),
                ("b", ns_b, "5553002", "hbcap", "hbplay"),
            ):
                directory = Path(tmp) / name
                directory.mkdir()
                text = _config(directory, number, capture, playback, audio)
                daemons.append(
                    start_daemon(name, number, directory, namespace=namespace, config=text)
                )
            for daemon in daemons:
                daemon.wait_for("a neighbour", peers_found(1), timeout=30)
            late_before, steal_before = server.late_cycles(), steal_seconds()
            caller_result, callee_result = _talk(*daemons, seconds, kill_engine_after)
            late_after, steal_after = server.late_cycles(), steal_seconds()
        finally:
            for daemon in daemons:
                daemon.stop()
            for thread in (player, recorder):
                thread.stop_event.set()
            for thread in (player, recorder):
                thread.join(5)
            server.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    channels = array("h", recorder.data)
    heard = click_arrivals(channels[0::2], channels[1::2], RATE, max_lag_s=0.8 * click_every_s)
    return CallResult(
        caller_result,
        callee_result,
        [lag for _, lag in heard],
        int(seconds / click_every_s),
        [at for at, _ in heard],
        heard[0][0] if heard else 0.0,
        LateCycles(late_after.timer - late_before.timer, late_after.clients - late_before.clients),
        steal_after - steal_before,
    )
