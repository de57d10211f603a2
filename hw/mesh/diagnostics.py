"""Text views of the mesh for the diagnostics shell: status, neighbours, originators."""

from __future__ import annotations

import time

from hw.mesh.batadv import TQ_MAX, Neighbour, Originator
from hw.mesh.manager import MeshStatus


def format_status(status: MeshStatus) -> str:
    state = "ready" if status.ready else f"not ready ({status.waiting_for})"
    lines = [
        f"mesh: {state}",
        f"radio: {status.radio or '-'}",
        f"address: {status.address or '-'}",
        f"IBSS joins: {status.joins}",
    ]
    lines.append(f"last heal: {format_heal(status)}")
    if status.address_conflicts:
        lines.append(f"duplicate addresses seen: {status.address_conflicts}")
    if status.station_resets or status.station_notices_ignored:
        lines.append(
            f"neighbour stations reset: {status.station_resets} "
            f"({status.station_notices_ignored} notices ignored)"
        )
    if status.warning:
        lines.append(f"warning: {status.warning}")
    if status.last_error:
        lines.append(f"last error: {status.last_error} ({status.errors} so far)")
    return "\n".join(lines)


def format_heal(status: MeshStatus) -> str:
    """When the mesh last became whole again, how long that took and what was repaired."""
    if status.last_heal_at is None or status.last_heal_s is None:
        return "never (nothing broke since start)"
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status.last_heal_at))
    return (
        f"{when}, took {status.last_heal_s * 1000:.0f} ms ({status.last_heal}); "
        f"{status.heals} heal{'s' if status.heals != 1 else ''} so far"
    )


def format_neighbours(neighbours: list[Neighbour], ifnames: dict[int, str]) -> str:
    if not neighbours:
        return "no neighbours"
    lines = [f"{'neighbour':<17}  {'via':<8}  last seen"]
    for n in sorted(neighbours, key=lambda n: n.address):
        lines.append(
            f"{n.address:<17}  {ifnames.get(n.hard_ifindex, n.hard_ifindex)!s:<8}  "
            f"{n.last_seen_ms / 1000:6.3f} s"
        )
    return "\n".join(lines)


def format_originators(originators: list[Originator], ifnames: dict[int, str]) -> str:
    """One line per reachable node, its best next hop first; like `batctl o`, TQ out of 255."""
    if not originators:
        return "no originators"
    lines = [f"  {'originator':<17}  {'last seen':>9}  {'quality':>9}  {'next hop':<17}  via"]
    for o in sorted(originators, key=lambda o: (o.address, not o.best, o.next_hop)):
        if o.tq is not None:
            quality = f"{o.tq:3d}/{TQ_MAX}"
        elif o.throughput_kbits is not None:
            quality = f"{o.throughput_kbits / 1000:.1f}Mb/s"
        else:
            quality = "?"
        lines.append(
            f"{'*' if o.best else ' '} {o.address:<17}  {o.last_seen_ms / 1000:8.3f}s  "
            f"{quality:>9}  {o.next_hop:<17}  {ifnames.get(o.hard_ifindex, o.hard_ifindex)}"
        )
    return "\n".join(lines)
