"""`handset daemon` on this machine's loopback (unmanaged mesh, silent `fake` audio): the first
start creates the identity, `handset status` answers over the control socket, SIGTERM stops it
cleanly. The calls themselves are in tests/test_netns_daemons.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

from firmware.keyring import load_keyring
from vomp.identity import format_sid

HANDSET = str(Path(sys.executable).parent / "handset")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "handset.toml"
    path.write_text(
        f"""\
[handset]
number = "5551234"
name = "Kim"
state_dir = "{tmp_path / "state"}"
port = {free_udp_port()}

[mesh]
mode = "unmanaged"
interface = "lo"

[audio]
backend = "fake"
realtime_priority = 0

[control]
socket = "{tmp_path / "run" / "control.sock"}"
"""
    )
    return path


def client(*args: str, sock: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HANDSET_SOCKET": str(sock)}
    return subprocess.run([HANDSET, *args], capture_output=True, text=True, env=env, timeout=30)


def test_first_start_creates_the_identity_and_answers_status_then_stops_on_sigterm(tmp_path):
    config = write_config(tmp_path)
    sock = tmp_path / "run" / "control.sock"
    daemon = subprocess.Popen(
        [HANDSET, "daemon", "--config", str(config)], stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.05)
        status = client("status", "--json", sock=sock)
        assert status.returncode == 0, status.stderr
        result = json.loads(status.stdout)
        [entry] = load_keyring(tmp_path / "state" / "keyring")
        assert result["state"] == "idle"
        assert (result["number"], result["sid"]) == ("5551234", format_sid(entry.identity.sid))
        assert result["peers"] == 0 and result["mesh"]["ready"] is True
        assert stat.S_IMODE((tmp_path / "state" / "keyring").stat().st_mode) == 0o600
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660
        human = client("status", sock=sock)
        assert human.stdout.startswith("idle  number 5551234")
        refused = client("answer", sock=sock)
        assert (refused.returncode, refused.stderr) == (
            1,
            "handset answer: no call is ringing: the phone is idle\n",
        )
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log = daemon.communicate()[1]
    assert "number 5551234 starting" in log and "handset stopped" in log
    assert not sock.exists()
    gone = client("status", sock=sock)
    assert gone.returncode == 69 and "is the daemon running?" in gone.stderr


def test_the_echo_self_test_puts_the_microphone_in_the_earpiece(tmp_path):
    from lab.daemons import config_text, read_wav, start_daemon, strongest_frequency, write_tone

    tone = tmp_path / "microphone.wav"
    write_tone(tone, 800.0)
    text = config_text(tmp_path, "5551234", interface="lo", tone=tone)
    text = text.replace('name = "handset 5551234"', f"port = {free_udp_port()}")
    daemon = start_daemon("echo", "5551234", tmp_path, config=text)
    try:
        deadline = time.monotonic() + 20
        while not daemon.output.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the engine process creates it once it runs
        before = len(read_wav(daemon.output))
        result = json.loads(daemon.cli("test", "echo", "--json").stdout)
        echoed = read_wav(daemon.output)[before:]
    finally:
        daemon.stop()
    assert result["what"] == "echo" and result["microphone_peak"] > 7000
    assert abs(strongest_frequency(echoed) - 800.0) < 15
