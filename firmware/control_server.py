"""The daemon's end of the control socket: a Unix stream socket, one JSON request per line.

Only the daemon's user and the configured admin group may connect: the socket file is mode
0660, group-owned by that group, and it is created with that mode (the umask is tightened
around bind) so there is no moment when anyone else could connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from firmware.control_protocol import MAX_LINE, ProtocolError, Request, Response

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[dict[str, Any]]]
SOCKET_MODE = 0o660


class CommandFailed(Exception):
    """A command that cannot be done now (no call to answer, ...); its text goes to the client."""


class ControlServer:
    def __init__(self, path: Path, handler: Handler, group: str | None = None) -> None:
        self.path = path
        self.group = group
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        gid = grp.getgrnam(self.group).gr_gid if self.group else -1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a daemon that was killed
        old_umask = os.umask(0o777 & ~SOCKET_MODE)
        try:
            self._server = await asyncio.start_unix_server(
                self._serve, path=str(self.path), limit=MAX_LINE + 1
            )
        finally:
            os.umask(old_umask)
        if gid not in (-1, os.getegid()):  # under systemd chown is filtered out; no need then
            os.chown(self.path, -1, gid)
        os.chmod(self.path, SOCKET_MODE)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(Response.failure(f"request over {MAX_LINE} bytes").encode())
                    break
                if not line:
                    break
                writer.write((await self._answer(line)).encode())
                await writer.drain()
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            # The daemon is stopping with a request (a lookup) still waiting. The connection
            # just closes; a cancelled connection task would only make asyncio log a traceback.
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> Response:
        try:
            request = Request.decode(line)
        except ProtocolError as error:
            return Response.failure(str(error))
        try:
            return Response.success(await self._handler(request))
        except CommandFailed as error:
            return Response.failure(str(error))
        except Exception as error:  # a bug in one command must not take the phone down
            log.exception("control command %s failed", request.command)
            return Response.failure(f"{request.command} failed inside the daemon: {error}")
