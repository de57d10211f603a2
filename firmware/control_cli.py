"""The `handset` subcommands that talk to the running daemon over its control socket.

handset status [--json]     the phone, the call in progress, its audio, the mesh
handset dial NUMBER | answer | hangup | lookup NUMBER
handset peers | calls | mesh | audio | keys | log
handset test tone|echo|keypad

The socket is --socket PATH, else $HANDSET_SOCKET, else /run/handset/control.sock.
Exit status: 0 done, 1 the daemon refused (the reason is printed), 69 the daemon is unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from firmware.control_protocol import (
    COMMANDS,
    SOCKET_ENV,
    TEST_KINDS,
    ControlError,
    ProtocolError,
    Request,
    ask,
    socket_path,
)

EX_UNAVAILABLE = 69

HELP = {
    "status": "what the handset is doing (add --json for the machine-readable form)",
    "dial": "dial a number",
    "answer": "pick up the ringing call",
    "hangup": "end the call (or reject the ringing one)",
    "lookup": "ask the mesh who has a number",
    "peers": "the handsets heard directly",
    "calls": "every call in the node's table",
    "audio": "sound card and call audio statistics",
    "keys": "recent keypad keys and the hook",
    "log": "the daemon's recent log lines",
    "test": "a self test: tone (play a tone), echo (mic to earpiece), keypad (show keys)",
}
"""The client subcommands `handset` registers (`mesh` is shared with firmware.mesh_command)."""


def add_socket_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--socket", help=f"the daemon's control socket (default: ${SOCKET_ENV} or the system one)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--timeout", type=float, default=30.0, help=argparse.SUPPRESS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    name = parser.get_default("subcommand")
    for argument in COMMANDS[name]:
        if argument == "what":
            parser.add_argument("what", choices=TEST_KINDS)
        else:
            parser.add_argument(argument, metavar=argument.upper())
    add_socket_arguments(parser)


def run(args: argparse.Namespace) -> int:
    name = args.subcommand
    return request(name, {a: getattr(args, a) for a in COMMANDS[name]}, args)


def request(name: str, arguments: dict[str, str], args: argparse.Namespace) -> int:
    try:
        req = Request(name, arguments)
    except ProtocolError as error:
        print(f"handset {name}: {error}", file=sys.stderr)
        return 2
    try:
        response = ask(req, socket_path(args.socket), timeout=args.timeout)
    except ControlError as error:
        print(f"handset {name}: {error}", file=sys.stderr)
        return EX_UNAVAILABLE
    if not response.ok:
        print(f"handset {name}: {response.error}", file=sys.stderr)
        return 1
    result = response.result or {}
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif name == "status":
        print(format_status(result))
    elif name == "log":
        print("\n".join(result.get("lines", [])))
    else:
        print(format_fields(result))
    return 0


def format_status(status: dict[str, Any]) -> str:
    lines = [
        f"{status.get('state', '?')}  number {status.get('number')}  "
        f"sid {str(status.get('sid', ''))[:16]}*  peers {status.get('peers')}"
    ]
    call = status.get("call")
    if call:
        lines.append(
            f"call {call.get('id')}: {call.get('state')} with {call.get('peer_number') or '?'} "
            f"{str(call.get('peer_sid', ''))[:16]}*  {call.get('duration_s')} s  "
            f"codec {_codec(call.get('codec'))}"
        )
        audio = call.get("audio")
        if audio:
            lines.append(
                f"  audio: sent {audio['frames_sent']} received {audio['frames_received']} "
                f"lost {audio['lost']} concealed {audio['concealed']} "
                f"jitter {audio['jitter_ms']:.1f} ms playout {audio['playout_delay_ms']:.0f} ms"
            )
    mesh = status.get("mesh") or {}
    if mesh:
        state = "ready" if mesh.get("ready") else f"waiting: {mesh.get('waiting_for')}"
        lines.append(f"mesh {mesh.get('mode')}: {state}  {mesh.get('address') or ''}".rstrip())
    rejected = status.get("rejected") or {}
    if rejected:
        lines.append("rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(rejected.items())))
    return "\n".join(lines)


def format_fields(value: Any, indent: str = "") -> str:
    """A result as indented `key: value` lines, lists one item a line."""
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{indent}{key}:")
                lines.append(format_fields(item, indent + "  "))
            else:
                lines.append(f"{indent}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(
            format_fields(item, indent + "  ").replace(indent + "  ", indent + "- ", 1)
            if isinstance(item, dict)
            else f"{indent}- {_scalar(item)}"
            for item in value
        )
    return f"{indent}{_scalar(value)}"


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return "none"
    return str(value)


def _codec(codec: Any) -> str:
    return f"0x{codec:02x}" if isinstance(codec, int) else "-"
