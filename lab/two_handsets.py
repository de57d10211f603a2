"""A two-handset call on the virtual bench: namespaces, paced sound cards, instruments.

Handset A and B each run as their own process (lab/handset_call_peer.py) in their own
network namespace, joined by a bridge, over real UDP. One jackd (dummy driver, real-time
pacing) gives each handset its own capture and playback PCM. A player feeds A's microphone;
a two-channel recorder hears the player on channel 0 and B's earpiece on channel 1, in the
same JACK cycle, so the delay between them is mouth-to-ear, exactly.

Used by tests/test_netns_handset_call.py and bench/m2e_bench.py.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from array import array
from dataclasses import dataclass
from pathlib import Path

from lab.netns import bridged_namespaces
from lab.virtual_audio import (
    JackServer,
    PcmPlayer,
    PcmRecorder,
    alsa_config_path,
    click_arrivals,
    click_train,
    jack_pcm_conf,
)

REPO = Path(__file__).resolve().parent.parent
PEER = Path(__file__).resolve().parent / "handset_call_peer.py"
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


def _peer(
    namespace: str,
    role: str,
    seed: bytes,
    number: str,
    capture: str,
    playback: str,
    extra: list[str],
) -> subprocess.Popen[bytes]:
    command = [
        "ip",
        "netns",
        "exec",
        namespace,
        sys.executable,
        str(PEER),
        role,
        "--seed",
        seed.hex(),
        "--number",
        number,
        "--interface",
        "eth0",
        "--capture",
        capture,
        "--playback",
        playback,
        *extra,
    ]
    return subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _result(process: subprocess.Popen[bytes], timeout: float) -> dict:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    lines = out.decode().strip().splitlines()
    if not lines:
        raise AssertionError(f"handset printed nothing; stderr:\n{err.decode()[-3000:]}")
    result = json.loads(lines[-1])
    if "error" in result:
        raise AssertionError(f"{result['error']}; stderr:\n{err.decode()[-3000:]}")
    return result


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
    the longest delay the test must see."""
    tag = f"hs{os.getpid()}r{random.randrange(1000)}"
    server = JackServer()
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
        try:
            player.start()
            player.started_event.wait(5)
            recorder.start()
            recorder.started_event.wait(5)
            if player.error or recorder.error:
                raise AssertionError(f"instruments failed: {player.error or recorder.error}")
            rng = random.Random(os.getpid())
            # --seconds also sets the callee's patience: it waits that long for the hang-up
            extra = [
                "--period-frames",
                str(period_frames),
                "--prefill",
                str(prefill),
                "--seconds",
                str(seconds),
                "--codecs",
                codecs,
            ]
            callee = _peer(ns_b, "callee", rng.randbytes(32), "5553002", "hbcap", "hbplay", extra)
            caller = _peer(
                ns_a,
                "caller",
                rng.randbytes(32),
                "5553001",
                "hacap",
                "haplay",
                [
                    *extra,
                    "--call",
                    "5553002",
                    "--kill-engine-after",
                    str(kill_engine_after),
                ],
            )
            caller_result = _result(caller, seconds + 60)
            callee_result = _result(callee, 30)
        finally:
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
    )
