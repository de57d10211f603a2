"""`handset daemon` as systemd runs it: READY with a one-line STATUS once the phone is up, the
watchdog fed from the event loop, STOPPING on SIGTERM; through a real notify socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from tests.test_daemon_start import HANDSET, write_config


def _messages(sock: socket.socket, until: str, timeout: float = 30.0) -> list[str]:
    """Datagrams received until one contains `until` (or the timeout)."""
    received: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            received.append(sock.recv(4096).decode())
        except TimeoutError:
            break
        if until in received[-1]:
            break
    return received


def test_daemon_says_ready_with_a_status_feeds_the_watchdog_and_says_stopping(tmp_path):
    config = write_config(tmp_path)
    notify = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        env = {**os.environ, "NOTIFY_SOCKET": str(notify), "WATCHDOG_USEC": "1000000"}
        daemon = subprocess.Popen(
            [HANDSET, "daemon", "--config", str(config)], env=env, stderr=subprocess.PIPE
        )
        try:
            started = _messages(sock, until="READY=1")
            assert "READY=1\nSTATUS=idle, 0 peers" in started, started
            assert (tmp_path / "run" / "control.sock").exists(), "READY means it answers"
            assert "WATCHDOG=1" in _messages(sock, until="WATCHDOG=1")
            daemon.send_signal(signal.SIGTERM)
            stopping = _messages(sock, until="STOPPING=1")
            assert any(m.startswith("STOPPING=1\nSTATUS=stopping") for m in stopping), stopping
            assert daemon.wait(timeout=30) == 0
        finally:
            if daemon.poll() is None:
                daemon.kill()
            daemon.wait()
