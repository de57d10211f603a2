"""`handset mesh`: bring the mesh up by hand, keep it up, or look at it.

handset mesh                         the running daemon's mesh (over its control socket)
handset mesh up                      converge once, print the status
handset mesh watch                   keep the mesh up until interrupted
handset mesh status|neighbours|originators
--set key=value                      any mesh setting (see hw/mesh/config.py), repeatable

With `--set status_file=PATH` the watcher keeps its status there and `status` reads the heal
record (when the mesh last healed, how long it took) from it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path

from firmware import control_cli
from hw.mesh import MeshConfig, MeshConfigError, MeshManager, MeshStatus
from hw.mesh.diagnostics import format_neighbours, format_originators, format_status

ACTIONS = ("up", "watch", "status", "neighbours", "originators")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=ACTIONS, help="omit: ask the daemon")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a mesh setting, e.g. --set netns=node0 --set prefix=10.42.0.0/16",
    )
    parser.add_argument("--identity", help="the handset's SID in hex (default: the radio's MAC)")
    control_cli.add_socket_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.action is None:
        return control_cli.request("mesh", {}, args)
    try:
        config = MeshConfig.from_mapping(_settings(args.set), where="handset mesh --set")
        identity = bytes.fromhex(args.identity) if args.identity else None
    except (MeshConfigError, ValueError) as error:
        print(f"handset mesh: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return asyncio.run(_run(args.action, MeshManager(config, identity=identity)))


def _settings(pairs: list[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise MeshConfigError(f"--set {pair!r}: write KEY=VALUE, e.g. --set ssid=mesh-handset")
        settings[key.strip()] = value.strip()
    return settings


async def _run(action: str, manager: MeshManager) -> int:
    try:
        if action == "watch":
            await manager.run()
        if action in ("up", "status"):
            await (manager.converge() if action == "up" else manager.inspect())
            if action == "status":
                _add_heal_record(manager.status, manager.config.status_file)
            print(format_status(manager.status))
            return 0 if manager.status.ready else 1
        ifnames = await _ifnames(manager)
        if action == "neighbours":
            print(format_neighbours(await manager.neighbours(), ifnames))
        else:
            print(format_originators(await manager.originators(), ifnames))
        return 0
    finally:
        await manager.close()


HEAL_FIELDS = ("heals", "last_heal_at", "last_heal_s", "last_heal", "address_conflicts")


def _add_heal_record(status: MeshStatus, status_file: str | None) -> None:
    """Copy the running manager's heal record into `status`; a one-shot look has none."""
    if status_file is None:
        return
    try:
        record = json.loads(Path(status_file).read_text())
    except (OSError, ValueError) as error:
        print(f"handset mesh: no heal record in {status_file}: {error}", file=sys.stderr)
        return
    if isinstance(record, dict):
        for name in HEAL_FIELDS:
            if name in record:
                setattr(status, name, record[name])


async def _ifnames(manager: MeshManager) -> dict[int, str]:
    observed = await manager.backend.observe(manager.config.radio, manager.config.mesh_interface)
    return {observed.radio.ifindex: observed.radio.ifname} if observed.radio else {}
