"""The control socket's language: every request and response survives a round trip, and any
line at all either decodes or is refused with a ProtocolError (never another exception)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import stat

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from firmware.control_protocol import (
    COMMANDS,
    DEFAULT_SOCKET,
    ControlError,
    ProtocolError,
    Request,
    Response,
    ask,
    socket_path,
)
from firmware.control_server import CommandFailed, ControlServer


def test_every_command_round_trips_as_one_json_line():
    for command, needs in COMMANDS.items():
        request = Request(
            command, {name: "tone" if name == "what" else "5551234" for name in needs}
        )
        line = request.encode()
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert Request.decode(line) == request


def test_a_dial_request_is_what_the_contract_says():
    assert json.loads(Request.make("dial", number="5551234").encode()) == {
        "command": "dial",
        "number": "5551234",
    }


def test_responses_round_trip_success_and_failure():
    for response in (Response.success({"state": "idle"}), Response.failure("no call")):
        assert Response.decode(response.encode()) == response


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"not json\n", "not JSON"),
        (b"[1, 2]\n", "one JSON object"),
        (b'{"number": "5551234"}\n', 'needs "command"'),
        (b'{"command": "reboot"}\n', "unknown command 'reboot'"),
        (b'{"command": "dial"}\n', "dial needs number"),
        (b'{"command": "dial", "number": 5551234}\n', "dial needs number"),
        (b'{"command": "status", "verbose": "yes"}\n', "status takes no verbose"),
        (b'{"command": "test", "what": "smoke"}\n', "choose one of tone, echo, keypad"),
        (b"\xff\xfe\n", "not JSON"),
    ],
)
def test_a_bad_request_is_refused_with_what_is_wrong(line, says):
    with pytest.raises(ProtocolError, match=says):
        Request.decode(line)


@given(st.binary(max_size=200))
@example(b'{"command": "dial", "number": null}')
@example(b'{"ok": true, "result": []}')
def test_decoding_any_bytes_is_total(line):
    for parse in (Request.decode, Response.decode):
        with contextlib.suppress(ProtocolError):
            parse(line)


@given(st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=4))
def test_decoding_any_json_object_is_total(obj):
    for parse in (Request.decode, Response.decode):
        with contextlib.suppress(ProtocolError):
            parse(json.dumps(obj).encode())


def test_the_socket_comes_from_the_flag_then_the_environment_then_the_default(monkeypatch):
    monkeypatch.delenv("HANDSET_SOCKET", raising=False)
    assert socket_path(None) == DEFAULT_SOCKET
    monkeypatch.setenv("HANDSET_SOCKET", "/tmp/x.sock")
    assert str(socket_path(None)) == "/tmp/x.sock"
    assert str(socket_path("/tmp/y.sock")) == "/tmp/y.sock"


def test_asking_a_missing_daemon_says_how_to_find_it(tmp_path):
    with pytest.raises(ControlError, match="is the daemon running"):
        ask(Request.make("status"), tmp_path / "none.sock", timeout=1)


def test_the_server_answers_refuses_and_keeps_the_socket_private(tmp_path):
    path = tmp_path / "run" / "control.sock"

    async def handler(request: Request) -> dict:
        if request.command == "answer":
            raise CommandFailed("no call is ringing")
        return {"state": "idle"}

    async def scenario() -> list:
        server = ControlServer(path, handler)
        await server.start()
        mode = stat.S_IMODE(path.stat().st_mode)
        loop = asyncio.get_running_loop()
        answers = [
            await loop.run_in_executor(None, ask, Request.make(command), path, 5.0)
            for command in ("status", "answer")
        ]
        raw = await loop.run_in_executor(None, _raw_exchange, path, b'{"command": 7}\n')
        await server.close()
        return [mode, *answers, raw, path.exists()]

    mode, status, answer, raw, still_there = asyncio.run(scenario())
    assert mode == 0o660
    assert status == Response.success({"state": "idle"})
    assert answer == Response.failure("no call is ringing")
    assert Response.decode(raw).error == 'a request needs "command" (a string)'
    assert not still_there


def _raw_exchange(path, line: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(line)
        return sock.makefile("rb").readline()
