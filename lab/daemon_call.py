"""A call between two real `handset daemon`s on paced virtual sound cards, for the benches.

The daemons run in two network namespaces on one bridge (lab/mesh.py), each with the `alsa`
audio backend on its own jackd-paced PCMs (the same cards and instruments as
lab/two_handsets.py: a click train into A's microphone, A's clicks and B's earpiece recorded
in the same JACK cycle). Everything is driven through the control socket, as a user would:
B auto-answers, A dials B's number (the phone looks it up and calls), talks, hangs up.

CPU is measured from outside, as CPU time (user + system) of each daemon process and of its
audio engine process between INCALL and the hang-up, over the wall time between.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

from firmware.control_protocol import Request, ask
from lab.mesh import (
    MeshDaemon,
    namespaces_on_one_bridge,
    sample_processes,
    start_daemon,
    wait_until_listening,
)
from lab.two_handsets import CLICK_EVERY_S, RATE, CallResult, bench_conf
from lab.virtual_audio import (
    JackServer,
    PcmPlayer,
    PcmRecorder,
    alsa_config_path,
    click_arrivals,
    click_train,
)

CALLER, CALLEE = "5553001", "5553002"


def call_config(directory: Path, number: str, capture: str, playback: str, period_ms: int) -> str:
    return f"""\
[handset]
number = "{number}"
name = "bench {number}"
state_dir = "{directory / "state"}"
auto_answer = {"true" if number == CALLEE else "false"}

[mesh]
mode = "unmanaged"
interface = "eth0"

[audio]
backend = "alsa"
capture = "{capture}"
playback = "{playback}"
period_ms = {period_ms}

[control]
socket = "{directory / "control.sock"}"
"""


def command(daemon: MeshDaemon, name: str, **args: str) -> dict[str, Any]:
    response = ask(Request.make(name, **args), daemon.socket, timeout=20)
    if not response.ok:
        raise AssertionError(f"{daemon.number}: {name} failed: {response.error}")
    return response.result or {}


def wait_for(daemon: MeshDaemon, what: str, predicate, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = command(daemon, "status")
        if predicate(status):
            return status
        if time.monotonic() > deadline or daemon.process.poll() is not None:
            log = (daemon.directory / "daemon.log").read_text(errors="replace")
            raise AssertionError(f"{daemon.number}: no {what}; status {status}\n{log[-3000:]}")
        time.sleep(0.05)


def in_call(status: dict[str, Any]) -> bool:
    return status.get("call", {}).get("state") == "INCALL"


def run_daemon_call(
    seconds: float, *, period_ms: int = 10, click_every_s: float = CLICK_EVERY_S
) -> CallResult:
    """Place one call A -> B between two daemons for `seconds` with clicks into A's mic."""
    tag = f"hd{os.getpid()}r{random.randrange(1000)}"
    server = JackServer()
    with (
        tempfile.TemporaryDirectory() as tmp,
        namespaces_on_one_bridge(2, "dc", "10.82") as (namespaces, _bridge),
    ):
        conf = Path(tmp) / "jack.conf"
        conf.write_text(bench_conf(tag))
        saved = {k: os.environ.get(k) for k in ("ALSA_CONFIG_PATH", *server.env())}
        os.environ["ALSA_CONFIG_PATH"] = alsa_config_path(conf)
        server.start()
        os.environ.update(server.env())
        player = PcmPlayer(
            "player", click_train(RATE, click_every_s, click_every_s, 0.0), loop=True
        )
        recorder = PcmRecorder("recorder", channels=2)
        daemons: list[MeshDaemon] = []
        try:
            player.start()
            player.started_event.wait(5)
            recorder.start()
            recorder.started_event.wait(5)
            if player.error or recorder.error:
                raise AssertionError(f"instruments failed: {player.error or recorder.error}")
            for namespace, number, capture, playback in (
                (namespaces[1], CALLEE, "hbcap", "hbplay"),
                (namespaces[0], CALLER, "hacap", "haplay"),
            ):
                directory = Path(tmp) / number
                config = call_config(directory, number, capture, playback, period_ms)
                daemons.append(start_daemon(namespace, directory, number, config))
            callee, caller = daemons
            wait_until_listening(daemons)
            wait_for(caller, "a neighbour", lambda s: s["peers"] >= 1)
            command(caller, "dial", number=CALLEE)
            wait_for(caller, "INCALL", in_call)
            wait_for(callee, "INCALL", in_call)
            pids = {d.number: d.pids() for d in daemons}
            start = {n: [sample_processes([p]) for p in pids[n]] for n in pids}
            began = time.monotonic()
            time.sleep(seconds)
            end = {n: [sample_processes([p]) for p in pids[n]] for n in pids}
            wall = time.monotonic() - began
            command(caller, "hangup")
            wait_for(caller, "the call to end", lambda s: "call" not in s, timeout=15)
            wait_for(callee, "the call to end", lambda s: "call" not in s, timeout=15)
            sides = {}
            for daemon in daemons:
                before, after = start[daemon.number], end[daemon.number]
                used = [
                    (b.cpu_s - a.cpu_s) / wall * 100 for a, b in zip(before, after, strict=True)
                ]
                sides[daemon.number] = {
                    "cpu_percent_main": used[0],
                    "cpu_percent_engine": sum(used[1:]),
                    "cpu_percent": sum(used),
                    "call_seconds": wall,
                    "stats": command(daemon, "audio").get("last_call") or {},
                }
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
        sides[CALLER],
        sides[CALLEE],
        [lag for _, lag in heard],
        int(seconds / click_every_s),
        [at for at, _ in heard],
        heard[0][0] if heard else 0.0,
    )
