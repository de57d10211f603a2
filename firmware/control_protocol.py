"""The control socket's language: one JSON object per line each way, shared by every client.

The daemon serves it; the `handset` CLI and the diagnostics shell speak it. Keeping the
request and response types here, and only here, means a client can never drift from the
server: both sides parse with the same total functions, which refuse anything malformed with a
`ProtocolError` naming what was wrong instead of raising something unexpected.

    request   {"command": "dial", "number": "5551234"}
    response  {"ok": true, "result": {...}}   or   {"ok": false, "error": "human readable"}

`status` answers with a `StatusResult` (see its fields below); the other commands' results are
JSON objects documented beside `COMMANDS`.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

DEFAULT_SOCKET = Path("/run/handset/control.sock")
SOCKET_ENV = "HANDSET_SOCKET"
MAX_LINE = 64 * 1024
"""No request or response is longer; a longer line is refused rather than buffered forever."""

COMMANDS: dict[str, tuple[str, ...]] = {
    "status": (),  # StatusResult
    "dial": ("number",),  # {"call": id | None, "number": ...}: the phone starts dialling
    "answer": (),  # {"call": id}: picks up the ringing call
    "hangup": (),  # {"call": id}: ends (or rejects) the current call
    "lookup": ("number",),  # {"answers": [{"sid", "did", "name"}, ...]} after the lookup ends
    "peers": (),  # {"peers": [{"sid", "address"}, ...]}
    "calls": (),  # {"calls": [CallStatus, ...]}: every call in the node's table
    "mesh": (),  # the mesh manager's status (mode, ready, address, heals, ...)
    "audio": (),  # the audio backend's and the call path's statistics
    "keys": (),  # {"pressed": [...]}: recent keypad keys and the hook state
    "log": (),  # {"lines": [...]}: the daemon's most recent log lines
    "test": ("what",),  # {"what": ..., ...}: a self test: tone | echo | keypad
}
"""Every command and the arguments it needs (all strings)."""

TEST_KINDS = ("tone", "echo", "keypad")


class ProtocolError(ValueError):
    """A line that is not a valid request or response; the message says what is wrong."""


class AudioStatus(TypedDict, total=False):
    frames_sent: int
    frames_received: int
    lost: int
    concealed: int
    jitter_ms: float
    playout_delay_ms: float


class CallStatus(TypedDict, total=False):
    id: int
    state: str  # the VoMP state name, e.g. "RINGINGOUT", "INCALL"
    peer_number: str
    peer_sid: str  # hex, upper case, as servald shows it
    duration_s: float
    codec: int | None
    audio: AudioStatus


class StatusResult(TypedDict, total=False):
    state: str  # the phone's state: "idle", "dialling", "ringing", "in call", ...
    number: str
    name: str
    sid: str
    peers: int
    call: CallStatus  # only while a call exists
    rejected: dict[str, int]  # the node's refused-input counters by reason
    mesh: dict[str, Any]  # incl. ready, address, last heal time and duration


@dataclass(frozen=True)
class Request:
    command: str
    args: dict[str, str]

    def __post_init__(self) -> None:
        if self.command not in COMMANDS:
            raise ProtocolError(
                f"unknown command {self.command!r}; commands: {', '.join(COMMANDS)}"
            )
        wanted = COMMANDS[self.command]
        missing = [name for name in wanted if not isinstance(self.args.get(name), str)]
        if missing:
            raise ProtocolError(f"{self.command} needs {', '.join(missing)} (a string)")
        extra = sorted(set(self.args) - set(wanted))
        if extra:
            raise ProtocolError(f"{self.command} takes no {', '.join(extra)}")
        if self.command == "test" and self.args["what"] not in TEST_KINDS:
            raise ProtocolError(
                f"test {self.args['what']!r}: choose one of {', '.join(TEST_KINDS)}"
            )

    @classmethod
    def make(cls, command: str, **args: str) -> Request:
        return cls(command, dict(args))

    def encode(self) -> bytes:
        return _encode({"command": self.command, **self.args})

    @classmethod
    def decode(cls, line: bytes) -> Request:
        obj = _decode(line)
        command = obj.pop("command", None)
        if not isinstance(command, str):
            raise ProtocolError('a request needs "command" (a string)')
        return cls(command, obj)


@dataclass(frozen=True)
class Response:
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def success(cls, result: dict[str, Any]) -> Response:
        return cls(True, result=result)

    @classmethod
    def failure(cls, error: str) -> Response:
        return cls(False, error=error)

    def encode(self) -> bytes:
        if self.ok:
            return _encode({"ok": True, "result": self.result or {}})
        return _encode({"ok": False, "error": self.error or "failed"})

    @classmethod
    def decode(cls, line: bytes) -> Response:
        obj = _decode(line)
        ok = obj.get("ok")
        if ok is True and isinstance(obj.get("result"), dict):
            return cls.success(obj["result"])
        if ok is False and isinstance(obj.get("error"), str):
            return cls.failure(obj["error"])
        raise ProtocolError('a response is {"ok": true, "result": {...}} or {"ok": false, "error"}')


def _encode(obj: dict[str, Any]) -> bytes:
    line = json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise ProtocolError(f"message of {len(line)} bytes is over the {MAX_LINE}-byte limit")
    return line


def _decode(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise ProtocolError(f"line of {len(line)} bytes is over the {MAX_LINE}-byte limit")
    try:
        obj = json.loads(line)
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(f"not JSON: {error}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("a message is one JSON object per line")
    return obj


def socket_path(given: str | os.PathLike[str] | None = None) -> Path:
    """Where the daemon listens: `given` (--socket), else $HANDSET_SOCKET, else the default."""
    if given:
        return Path(given)
    return Path(os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET)


class ControlError(RuntimeError):
    """The daemon could not be reached or broke the protocol; the message says which."""


def ask(request: Request, path: Path, timeout: float = 30.0) -> Response:
    """Send one request to the daemon at `path` and wait for its one response (blocking)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(request.encode())
            received = b""
            while not received.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if len(received) > MAX_LINE:
                    raise ControlError(f"{path}: response over {MAX_LINE} bytes")
    except FileNotFoundError:
        raise ControlError(
            f"{path}: no control socket; is the daemon running? "
            f"(give the socket with --socket or {SOCKET_ENV})"
        ) from None
    except PermissionError:
        raise ControlError(
            f"{path}: permission denied; run as the daemon's user or a member of its admin group"
        ) from None
    except ConnectionRefusedError:
        raise ControlError(f"{path}: nobody listening; the daemon has stopped") from None
    except TimeoutError:
        raise ControlError(f"{path}: no answer within {timeout:g} s") from None
    except OSError as error:
        raise ControlError(f"{path}: {error}") from None
    if not received:
        raise ControlError(f"{path}: the daemon closed the connection without answering")
    try:
        return Response.decode(received)
    except ProtocolError as error:
        raise ControlError(f"{path}: {error}") from None
