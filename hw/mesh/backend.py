"""The narrow seam between the mesh manager and a kernel: a real one or the fake one.

Every call is one kernel conversation (observe, apply one step, probe one address, wait for a
change), so the manager's logic runs unchanged against `Pyroute2Backend` on a Pi or in the
virtual bench and against `FakeMeshBackend` in unit tests. The config's `backend` picks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface
from typing import Protocol

from hw.backends import MESH
from hw.mesh.batadv import Neighbour, Originator
from hw.mesh.config import MeshConfig
from hw.mesh.reconcile import Action, Observed


@dataclass(frozen=True)
class AddAddress:
    """Not planned by `plan`: the manager issues it once a probe found the address free."""

    ifindex: int
    address: IPv4Interface


@dataclass(frozen=True)
class RemoveAddress:
    """Not planned by `plan`: the manager gives an address up when another handset keeps it."""

    ifindex: int
    address: IPv4Interface


@dataclass(frozen=True)
class InterfaceAddress:
    ifname: str
    up: bool
    address: IPv4Interface
    broadcast: IPv4Address


class MeshBackend(Protocol):
    async def observe(self, radio: str | None, mesh: str) -> Observed: ...

    async def apply(self, action: Action | AddAddress | RemoveAddress) -> None: ...

    async def address_holder(
        self, ifname: str, address: IPv4Address, own_mac: str, *, held: bool = False
    ) -> str | None:
        """Probe `address` (RFC 5227); the MAC of another machine that answers, else None.
        `held`: the address is already ours (another host's probe for it is then no claim)."""
        ...

    async def announce(
        self, ifname: str, address: IPv4Address, own_mac: str, *, holder: str | None = None
    ) -> None:
        """Tell every neighbour (ARP caches, batman-adv's ARP table) that `address` is ours, or
        `holder`'s: the handset we just gave the address up to."""
        ...

    async def send_station_reset(self, radio: str, own_mac: str) -> None:
        """Tell the neighbours on `radio` that the radio with `own_mac` was reset (see
        `hw.mesh.station_reset`)."""
        ...

    async def receive_station_reset(self, radio: str, timeout: float) -> bytes | None:
        """The next frame of the station-reset ethertype heard on `radio`, unparsed; None after
        `timeout` seconds."""
        ...

    async def delete_station(self, radio_ifindex: int, mac: str) -> None:
        """Drop the radio's station entry for `mac` (and with it its block-ack state)."""
        ...

    async def wait_for_change(self, timeout: float) -> bool:
        """Return True when the kernel reported a change, False after `timeout` seconds."""
        ...

    async def neighbours(self, mesh: str) -> list[Neighbour]: ...

    async def originators(self, mesh: str) -> list[Originator]: ...

    async def interface_addresses(self) -> list[InterfaceAddress]: ...

    async def close(self) -> None: ...


def make_backend(config: MeshConfig) -> MeshBackend:
    """The backend the config (else $HANDSET_MESH_BACKEND) names; imported only when chosen."""
    backend_class = MESH.load(config.backend)
    return backend_class(netns=config.netns)
