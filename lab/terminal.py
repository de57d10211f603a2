"""A program on a real pseudo-terminal, driven like a person at a keyboard (pexpect-like).

The program is the session leader with the pty as its controlling terminal, so Ctrl-C typed
while it works arrives as SIGINT, just as over SSH.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import termios
import time
from collections.abc import Mapping, Sequence


class Terminal:
    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        rows: int = 24,
        columns: int = 80,
    ) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: exec at once
            try:
                os.execve(argv[0], list(argv), dict(env))
            finally:
                os._exit(127)
        self.pid = pid
        self.fd = fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.seen = b""  # everything the program wrote, for failure messages
        self._unread = b""
        self.exit_status: int | None = None

    def type(self, text: str | bytes) -> None:
        data = text.encode() if isinstance(text, str) else text
        while data:
            _, writable, _ = select.select([self.fd], [self.fd], [], 1.0)
            if writable:
                data = data[os.write(self.fd, data[:4096]) :]
            self._read_available()  # keep the program's echo from filling the pty

    def expect(self, wanted: str, timeout: float = 30.0) -> str:
        """Read until `wanted` appears; return what came before it (and consume it)."""
        token = wanted.encode()
        deadline = time.monotonic() + timeout
        while token not in self._unread:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (not self._read_available(min(remaining, 0.5)) and self.closed()):
                tail = self.seen[-3000:].decode(errors="replace")
                raise AssertionError(f"never saw {wanted!r}; the terminal showed:\n{tail}")
        before, _, self._unread = self._unread.partition(token)
        return before.decode(errors="replace")

    def _read_available(self, timeout: float = 0.0) -> bool:
        readable, _, _ = select.select([self.fd], [], [], timeout)
        if not readable:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the program closed the terminal
            return False
        self.seen += chunk
        self._unread += chunk
        return bool(chunk)

    def closed(self) -> bool:
        if self.exit_status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = os.waitstatus_to_exitcode(status)
        return self.exit_status is not None

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while not self.closed():
            if time.monotonic() > deadline:
                raise AssertionError("the program did not exit")
            self._read_available(0.1)
        assert self.exit_status is not None
        return self.exit_status

    def close(self) -> None:
        if not self.closed():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)
