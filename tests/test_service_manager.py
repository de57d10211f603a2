"""The daemon's side of sd_notify, against a real notify socket (what systemd listens on)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import pytest

from firmware import service_manager as sm


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A datagram socket standing where systemd's would be; $NOTIFY_SOCKET points at it."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def _received(sock: socket.socket) -> list[str]:
    messages = []
    sock.setblocking(False)
    try:
        while True:
            messages.append(sock.recv(4096).decode())
    except BlockingIOError:
        return messages
    finally:
        sock.settimeout(2.0)


def test_under_systemd_ready_status_and_stopping_reach_the_notify_socket(notify_socket):
    manager = sm.service_manager(os.environ)
    assert isinstance(manager, sm.SystemdNotifier)
    manager.ready("idle, 0 peers")
    manager.status("idle, 0 peers")  # unchanged: not sent again
    manager.status("in call with 5551234, 0 % loss")
    manager.watchdog()
    manager.extend_start(10)
    manager.stopping("stopping: hanging up")
    assert _received(notify_socket) == [
        "READY=1\nSTATUS=idle, 0 peers",
        "STATUS=in call with 5551234, 0 % loss",
        "WATCHDOG=1",
        "EXTEND_TIMEOUT_USEC=10000000",
        "STOPPING=1\nSTATUS=stopping: hanging up",
    ]


def test_without_a_notify_socket_nothing_is_sent():
    manager = sm.service_manager({})
    assert isinstance(manager, sm.NoServiceManager)
    manager.ready("idle")
    manager.watchdog()
    manager.stopping("bye")


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({}, 0.0),
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "42"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "43"}, 0.0),
        ({"WATCHDOG_USEC": "0"}, 0.0),
        ({"WATCHDOG_USEC": "ten"}, 0.0),
    ],
)
def test_watchdog_interval_is_half_the_timeout_for_our_pid_only(environ, interval):
    assert sm.watchdog_interval(environ, pid=42) == interval


def test_a_stalled_event_loop_stops_feeding_the_watchdog(notify_socket):
    manager = sm.SystemdNotifier()

    async def stall_after_some_pings() -> tuple[int, int]:
        feeder = asyncio.create_task(sm.feed_watchdog(manager, 0.01))
        await asyncio.sleep(0.1)
        before = len(_received(notify_socket))
        time.sleep(0.3)  # the loop is stuck: no task runs
        during = len(_received(notify_socket))
        feeder.cancel()
        return before, during

    before, during = asyncio.run(stall_after_some_pings())
    assert before >= 2
    assert during == 0


def test_stderr_is_the_journal_only_when_journal_stream_names_it(tmp_path):
    with open(tmp_path / "stream", "w") as stream:
        st = os.fstat(stream.fileno())
        assert sm.stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, stream)
        assert not sm.stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, stream)
        assert not sm.stderr_is_journal({"JOURNAL_STREAM": "garbage"}, stream)
        assert not sm.stderr_is_journal({}, stream)


def test_outside_the_journal_log_lines_go_to_stderr():
    assert type(sm.log_handler({})) is logging.StreamHandler


def test_when_stderr_is_the_journal_records_go_to_the_journal_with_their_fields():
    from systemd.journal import JournalHandler

    st = os.fstat(2)
    handler = sm.log_handler({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
    assert isinstance(handler, JournalHandler)
