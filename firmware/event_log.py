"""The daemon's log: one line per event a field engineer needs, and the last lines kept.

Lines are plain text (SIDs abridged as servald shows them, never raw bytes). Each event also
carries structured fields (CALL_ID, PEER_SID, NUMBER, ...) as attributes of its log record, in
the journal's upper-case spelling, so a journal handler can send them as fields; `handset log`
reads the recent lines from the ring kept here.
"""

from __future__ import annotations

import logging
from collections import deque

from firmware.service_manager import log_handler
from vomp.identity import format_sid

LOGGER = "handset"
KEPT_LINES = 500


def abridged(sid: bytes) -> str:
    """A SID as servald abridges it in its logs: 16 hex digits and a star."""
    return format_sid(sid)[:16] + "*"


class RecentLines(logging.Handler):
    """Keeps the last formatted lines for the control socket's `log` command."""

    def __init__(self, keep: int = KEPT_LINES) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=keep)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class EventLog:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger(LOGGER)

    def event(self, message: str, level: int = logging.INFO, **fields: object) -> None:
        """Log `message`; `fields` (call_id=3, peer_sid=b"...") become journal fields."""
        extra = {
            name.upper(): abridged(value) if isinstance(value, bytes) else value
            for name, value in fields.items()
            if value is not None
        }
        extra["HANDSET_FIELDS"] = sorted(extra)
        self.logger.log(level, "%s", message, extra=extra)


def setup(level: int = logging.INFO) -> RecentLines:
    """Log to the journal (with fields) under systemd, else to stderr; keep recent lines."""
    recent = RecentLines()
    root = logging.getLogger()
    if not any(isinstance(h, logging.StreamHandler) for h in root.handlers):
        root.addHandler(log_handler())
    root.addHandler(recent)
    root.setLevel(level)
    return recent
