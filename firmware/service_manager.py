"""Telling systemd how the daemon is doing: READY, STATUS, WATCHDOG, STOPPING, journal fields.

Under systemd the unit is `Type=notify` with a watchdog: the daemon says READY=1 once the node
is bound and the phone idle, keeps a one-line STATUS ("idle, 3 peers"), pings the watchdog from
its own event loop (so a stalled loop, not just a live process, gets restarted) and says
STOPPING=1 on the way out. Anywhere else (a terminal, a test) the same calls do nothing.

Which of the two is chosen by the environment systemd documents for exactly this, never by
whether an import works: $NOTIFY_SOCKET (sd_notify(3)), $WATCHDOG_USEC/$WATCHDOG_PID
(sd_watchdog_enabled(3)) and $JOURNAL_STREAM (systemd.exec(5): stderr is the journal when its
device and inode match).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from typing import Protocol, TextIO

SYSLOG_IDENTIFIER = "handset"


class ServiceManager(Protocol):
    def ready(self, status: str) -> None: ...
    def status(self, status: str) -> None: ...
    def watchdog(self) -> None: ...
    def extend_start(self, seconds: float) -> None: ...
    def stopping(self, status: str) -> None: ...


class NoServiceManager:
    """Not started by systemd: nobody to tell."""

    def ready(self, status: str) -> None:
        pass

    def status(self, status: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def extend_start(self, seconds: float) -> None:
        pass

    def stopping(self, status: str) -> None:
        pass


class SystemdNotifier:
    """sd_notify(3) through systemd-python; a STATUS is sent only when it changes."""

    def __init__(self) -> None:
        from systemd import daemon

        self._notify = daemon.notify
        self._last_status: str | None = None

    def ready(self, status: str) -> None:
        self._last_status = status
        self._notify(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self._notify(f"STATUS={status}")

    def watchdog(self) -> None:
        self._notify("WATCHDOG=1")

    def extend_start(self, seconds: float) -> None:
        """Still starting (the mesh may wait for its radio): give us `seconds` more. Sent from
        the event loop, so a start-up that hangs still runs into TimeoutStartSec=."""
        self._notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def stopping(self, status: str) -> None:
        self._last_status = status
        self._notify(f"STOPPING=1\nSTATUS={status}")


def service_manager(environ: Mapping[str, str] = os.environ) -> ServiceManager:
    """systemd's notifier when it started us with a notify socket, else one that does nothing."""
    if environ.get("NOTIFY_SOCKET"):
        return SystemdNotifier()
    return NoServiceManager()


def watchdog_interval(environ: Mapping[str, str] = os.environ, pid: int | None = None) -> float:
    """How often to ping, in seconds: half of WatchdogSec= as systemd advises; 0 when off."""
    usec = environ.get("WATCHDOG_USEC", "")
    watched_pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return 0.0
    if watched_pid and watched_pid != str(pid if pid is not None else os.getpid()):
        return 0.0  # the watchdog is another process's (we were started by it)
    return int(usec) / 2_000_000


async def feed_watchdog(manager: ServiceManager, interval: float) -> None:
    """Ping the watchdog every `interval` seconds from this event loop, until cancelled.

    A task on the loop, not a thread: if the loop stalls (a blocking call, a livelock), the
    pings stop and systemd restarts the daemon.
    """
    while True:
        manager.watchdog()
        await asyncio.sleep(interval)


def stderr_is_journal(
    environ: Mapping[str, str] = os.environ, stream: TextIO | None = None
) -> bool:
    """True when stderr is connected to the journal (systemd.exec(5), $JOURNAL_STREAM)."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat((stream or sys.stderr).fileno())
    except (OSError, ValueError):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def log_handler(environ: Mapping[str, str] = os.environ) -> logging.Handler:
    """Where log records go: the journal with their upper-case fields (CALL_ID, PEER_SID,
    NUMBER, STATE...) as journal fields when stderr is the journal, else a plain stderr line."""
    if stderr_is_journal(environ):
        from systemd.journal import JournalHandler

        handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER=SYSLOG_IDENTIFIER)
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    return handler
