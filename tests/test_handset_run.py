"""`handset run`: the keyring is created on first start and keeps number and name."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from firmware.keyring import load_keyring
from firmware.run import describe, load_or_create, serve
from vomp.events import AudioFrameReceived, PeerLost
from vomp.identity import Identity, format_sid
from vomp.node import Node


def test_first_run_creates_a_private_keyring_with_our_number(tmp_path):
    path = tmp_path / "state" / "keyring"
    entry = load_or_create(path, "5551234", "Kim")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [stored] = load_keyring(path)
    assert (stored.identity.sid, stored.did, stored.name) == (entry.identity.sid, "5551234", "Kim")


def test_later_runs_keep_the_identity_and_update_number_and_name(tmp_path):
    path = tmp_path / "keyring"
    first = load_or_create(path, "5551234", "Kim")
    again = load_or_create(path, None, None)
    renamed = load_or_create(path, "5554321", "Kim Lee")
    assert first.identity.sid == again.identity.sid == renamed.identity.sid
    assert (again.did, renamed.did, renamed.name) == ("5551234", "5554321", "Kim Lee")


def test_an_invalid_number_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "keyring"
    with pytest.raises(ValueError, match="invalid phone number"):
        load_or_create(path, "12-34", None)
    assert not path.exists()


def test_run_without_a_number_says_how_to_fix_it(tmp_path, caplog):
    args = argparse.Namespace(
        keyring=tmp_path / "keyring",
        number=None,
        name=None,
        interface=None,
        port=0,
        broadcast="127.0.0.1",
        auto_answer=False,
    )
    assert asyncio.run(serve(args)) == 2
    assert "--number" in caplog.text


def test_handset_run_starts_logs_its_sid_and_stops_on_sigterm(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handset = Path(sys.executable).parent / "handset"
    command = [str(handset), "run", "--keyring", str(tmp_path / "keyring"), "--number", "5551234"]
    command += ["--port", str(port), "--broadcast", "127.0.0.1"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert "number 5551234" in line and f"port {port}" in line
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()
    [entry] = load_keyring(tmp_path / "keyring")
    assert format_sid(entry.identity.sid) in line


def test_events_are_logged_with_readable_sids_and_payload_sizes():
    sid = bytes.fromhex("A4CC73A6EACB57BBD6F9679DFC42231DD118C8C618BBDDD22761D5032F61E959")
    assert describe(PeerLost(sid)) == "PeerLost(sid=A4CC73A6EACB57BB…)"
    line = describe(AudioFrameReceived(3, 2, 40, 2, bytes(160)))
    assert line == "AudioFrameReceived(call=3, codec=2, time_ms=40, seq=2, payload=<160 bytes>)"


def test_serve_logs_a_peer_it_hears_with_its_abridged_sid(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="handset")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer_socket:
        peer_socket.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        args = argparse.Namespace(
            keyring=tmp_path / "keyring",
            number="5551234",
            name=None,
            interface=None,
            port=port,
            broadcast="127.0.0.1",
            auto_answer=False,
        )
        peer = Node(Identity.from_seed(bytes(range(32))), "5559876")
        abridged = format_sid(peer.sid)[:16] + "…"

        async def hear_the_peer() -> None:
            handset = asyncio.create_task(serve(args))
            try:
                for tick in range(100):  # the peer's ticks, until the handset has started
                    peer.handle_timer(tick * 0.5)
                    for data, _destination in peer.datagrams_to_send(tick * 0.5):
                        peer_socket.sendto(data, ("127.0.0.1", port))
                    await asyncio.sleep(0.05)
                    if f"PeerFound(sid={abridged}" in caplog.text:
                        return
            finally:
                handset.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await handset

        asyncio.run(hear_the_peer())
    assert f"PeerFound(sid={abridged}" in caplog.text
    assert "\\x" not in caplog.text  # no raw bytes reprs
