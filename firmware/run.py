"""`handset run`: start a Node on one interface and log what happens on the mesh.

The keyring is created on first run (a fresh identity, written atomically, mode 0600), so
`make run` works on a new machine. The number and name given on the command line are stored.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import logging
import os
import signal
from pathlib import Path

from firmware import keyring
from firmware.transport import SERVAL_PORT, start
from vomp.events import CallStateChanged, Event, PacketDropped
from vomp.identity import KeyringEntry, KeyringError, format_sid
from vomp.messages import CallState
from vomp.node import Node

log = logging.getLogger("handset")
DEFAULT_KEYRING = Path("/var/lib/handset/keyring")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keyring", type=Path, default=DEFAULT_KEYRING, help="keyring file")
    parser.add_argument("--number", help="our phone number (5-31 of 0-9 * # +)")
    parser.add_argument("--name", help="our name, sent in DNA replies")
    parser.add_argument("--interface", help="network interface to bind (e.g. bat0)")
    parser.add_argument("--port", type=int, default=SERVAL_PORT, help="UDP port (4110)")
    parser.add_argument("--broadcast", help="broadcast address (default: the interface's)")
    parser.add_argument(
        "--auto-answer", action="store_true", help="answer incoming calls (no audio yet)"
    )


def load_or_create(path: Path, number: str | None, name: str | None) -> KeyringEntry:
    """The first identity of the keyring, created or updated with number/name if given."""
    return keyring.load_or_create(path, number, name)


async def serve(args: argparse.Namespace) -> int:
    try:
        entry = load_or_create(args.keyring, args.number, args.name)
    except KeyringError as error:  # never replaced by a new identity: the user decides
        log.error("%s", error)
        return os.EX_CONFIG
    if entry.did is None:
        log.error("%s has no phone number; fix: run again with --number 5551234", args.keyring)
        return 2
    node = Node(entry.identity, entry.did, entry.name)
    protocol = await start(node, interface=args.interface, port=args.port, broadcast=args.broadcast)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def request_stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    log.info("handset %s number %s on port %d", format_sid(node.sid), entry.did, args.port)
    try:
        while not stop.done():
            getter = asyncio.ensure_future(protocol.next_event())
            done, _ = await asyncio.wait({getter, stop}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            event = getter.result()
            # refused packets are counted by the node; at INFO a flood would bury the log
            level = logging.DEBUG if isinstance(event, PacketDropped) else logging.INFO
            log.log(level, "%s", describe(event))
            if args.auto_answer and isinstance(event, CallStateChanged) and _ringing_for_us(event):
                protocol.command(functools.partial(_answer, event.call))
    finally:
        protocol.close()
    return 0


def _answer(call: int, node: Node, now: float) -> None:
    node.answer(call, now)


def describe(event: Event) -> str:
    """One log line per event: SIDs as servald shows them (abridged), payloads as sizes."""

    def show(value: object) -> str:
        if isinstance(value, bytes):
            return format_sid(value)[:16] + "…" if len(value) == 32 else f"<{len(value)} bytes>"
        return repr(value)

    if not dataclasses.is_dataclass(event):
        return repr(event)
    fields = ", ".join(
        f"{f.name}={show(getattr(event, f.name))}" for f in dataclasses.fields(event)
    )
    return f"{type(event).__name__}({fields})"


def _ringing_for_us(event: CallStateChanged) -> bool:
    return event.remote_state == CallState.RINGINGOUT and event.local_state < CallState.RINGINGIN


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(serve(args))
