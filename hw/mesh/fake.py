"""An in-memory kernel for unit tests: radios, a batman-adv interface and other hosts' addresses.

It keeps the rules the manager must respect on a real kernel (a radio changes type only while
down, joins only when up and ad-hoc, leaves its IBSS when taken down; deleting bat0 releases
its radio), records every step it was asked to take, and offers the mishaps the manager must
survive: a radio reset, a radio leaving its IBSS, a radio or bat0 vanishing.
"""

from __future__ import annotations

import asyncio
import errno
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from hw.mesh.backend import AddAddress, InterfaceAddress, RemoveAddress
from hw.mesh.batadv import Neighbour, Originator
from hw.mesh.reconcile import (
    IFTYPE_ADHOC,
    Action,
    CreateMesh,
    Enslave,
    JoinIbss,
    LeaveIbss,
    MeshState,
    Observed,
    RadioState,
    SetLinkUp,
    SetMac,
    SetMeshOptions,
    SetMtu,
    SetRadioType,
)

MAX_RADIO_MTU = 2304  # mac80211's IEEE80211_MAX_DATA_LEN; FullMAC drivers may allow only 1500


@dataclass
class FakeLink:
    ifindex: int
    ifname: str
    mac: str
    up: bool = False
    mtu: int = 1500
    master: int | None = None
    addresses: list[IPv4Interface] = field(default_factory=list)
    # radio only
    wifi: bool = False
    max_mtu: int = MAX_RADIO_MTU
    iftype: str = "station"
    ssid: str | None = None
    freq_mhz: int | None = None
    ht: bool | None = None
    # batman-adv only
    bridge_loop_avoidance: bool = True
    orig_interval_ms: int = 1000


def _error(code: int, what: str) -> OSError:
    return OSError(code, f"{what}: {errno.errorcode.get(code, code)}")


class FakeMeshBackend:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns  # the namespace it stands in for; only recorded
        self.links: dict[int, FakeLink] = {}
        self.applied: list[Action | AddAddress | RemoveAddress] = []
        self.announced: list[IPv4Address] = []
        self.handed_over: list[tuple[IPv4Address, str]] = []  # (address, the holder's MAC)
        self.probed: list[IPv4Address] = []
        self.foreign_addresses: dict[IPv4Address, str] = {}  # held by other hosts: address -> MAC
        self.neighbour_table: list[Neighbour] = []
        self.originator_table: list[Originator] = []
        self.fail_next: dict[type, OSError] = {}
        self.station_resets_sent: list[tuple[str, str]] = []  # (radio, own MAC)
        self.heard_on_radio: asyncio.Queue[bytes] = asyncio.Queue()  # frames a neighbour sent
        self.deleted_stations: list[tuple[int, str]] = []  # (radio ifindex, MAC)
        # Like mac80211 on a loaded machine: the channel shows up only once the join's work item
        # ran and the kernel reported it (here: at the next wait_for_change, as an event).
        self.slow_joins = False
        self._joining: tuple[FakeLink, int] | None = None
        self._next_ifindex = 1
        self._changed = asyncio.Event()
        self.add_link("lo", "00:00:00:00:00:00", up=True, addresses=[IPv4Interface("127.0.0.1/8")])

    # --- building the fake world -----------------------------------------------------------

    def add_link(self, ifname: str, mac: str, **attrs) -> FakeLink:
        link = FakeLink(self._next_ifindex, ifname, mac, **attrs)
        self.links[link.ifindex] = link
        self._next_ifindex += 1
        self._changed.set()
        return link

    def add_radio(self, ifname: str = "wlan0", mac: str = "02:00:00:00:01:00") -> FakeLink:
        return self.add_link(ifname, mac, wifi=True)

    def link_named(self, ifname: str) -> FakeLink | None:
        return next((link for link in self.links.values() if link.ifname == ifname), None)

    # --- mishaps ---------------------------------------------------------------------------

    def reset_radio(self, ifname: str = "wlan0") -> None:
        """A driver reset: the radio goes down, which drops it out of its IBSS."""
        self._set_up(self._need(ifname), False)
        self._changed.set()

    def drop_out_of_ibss(self, ifname: str = "wlan0") -> None:
        link = self._need(ifname)
        link.ssid = link.freq_mhz = link.ht = None
        self._changed.set()

    def remove_link(self, ifname: str) -> None:
        link = self._need(ifname)
        del self.links[link.ifindex]
        for other in self.links.values():
            if other.master == link.ifindex:
                other.master = None
        self._changed.set()

    # --- MeshBackend -------------------------------------------------------------------------

    async def observe(self, radio: str | None, mesh: str) -> Observed:
        self._changed.clear()
        radios = [
            link
            for link in self.links.values()
            if link.wifi and (radio is None or link.ifname == radio)
        ]
        mesh_link = self.link_named(mesh)
        if mesh_link is not None and mesh_link.wifi:
            mesh_link = None
        return Observed(
            radio=_radio_state(radios[0]) if radios else None,
            mesh=_mesh_state(mesh_link) if mesh_link is not None else None,
        )

    async def apply(self, action: Action | AddAddress | RemoveAddress) -> None:
        failure = self.fail_next.pop(type(action), None)
        if failure is not None:
            raise failure
        self.applied.append(action)
        match action:
            case SetLinkUp(ifindex, up):
                self._set_up(self._by_index(ifindex), up)
            case SetRadioType(ifindex, iftype):
                link = self._radio(ifindex)
                if link.up:
                    raise _error(errno.EBUSY, f"{link.ifname} is up")
                link.iftype = iftype
            case SetMtu(ifindex, mtu):
                link = self._by_index(ifindex)
                if link.wifi and mtu > link.max_mtu:
                    raise _error(errno.EINVAL, f"mtu {mtu}")
                link.mtu = mtu
            case LeaveIbss(ifindex):
                link = self._radio(ifindex)
                link.ssid = link.freq_mhz = link.ht = None
            case JoinIbss(ifindex, ibss):
                link = self._radio(ifindex)
                if not link.up or link.iftype != IFTYPE_ADHOC:
                    raise _error(errno.ENETDOWN if not link.up else errno.EOPNOTSUPP, "join")
                if link.ssid is not None:
                    raise _error(errno.EALREADY, "already in an IBSS")
                link.ssid, link.freq_mhz, link.ht = ibss.ssid, ibss.freq_mhz, ibss.ht
                if self.slow_joins:
                    link.freq_mhz = None
                    self._joining = (link, ibss.freq_mhz)
            case CreateMesh(ifname):
                if self.link_named(ifname) is not None:
                    raise _error(errno.EEXIST, ifname)
                self.add_link(ifname, "fe:00:00:00:00:01")
            case SetMac(ifindex, mac):
                self._by_index(ifindex).mac = mac
            case Enslave(ifindex, master):
                self._by_index(master)
                self._by_index(ifindex).master = master
            case SetMeshOptions(ifindex, bla, interval):
                link = self._by_index(ifindex)
                if bla is not None:
                    link.bridge_loop_avoidance = bla
                if interval is not None:
                    link.orig_interval_ms = interval
            case AddAddress(ifindex, address):
                self._by_index(ifindex).addresses.append(address)
            case RemoveAddress(ifindex, address):
                self._by_index(ifindex).addresses.remove(address)
            case _:
                raise TypeError(f"the fake backend cannot apply {action!r}")
        # Our own steps do not wake the manager: like netlink, only the world's changes do.
        self._changed.clear()

    async def address_holder(
        self, ifname: str, address: IPv4Address, own_mac: str, *, held: bool = False
    ) -> str | None:
        self.probed.append(address)
        holder = self.foreign_addresses.get(address)
        return holder if holder is not None and holder != own_mac else None

    async def announce(
        self, ifname: str, address: IPv4Address, own_mac: str, *, holder: str | None = None
    ) -> None:
        if holder is None:
            self.announced.append(address)
        else:
            self.handed_over.append((address, holder))

    async def send_station_reset(self, radio: str, own_mac: str) -> None:
        self.station_resets_sent.append((radio, own_mac))

    async def receive_station_reset(self, radio: str, timeout: float) -> bytes | None:
        try:
            return await asyncio.wait_for(self.heard_on_radio.get(), timeout)
        except TimeoutError:
            return None

    async def delete_station(self, radio_ifindex: int, mac: str) -> None:
        self._radio(radio_ifindex)
        self.deleted_stations.append((radio_ifindex, mac))

    async def wait_for_change(self, timeout: float) -> bool:
        if self._joining is not None:
            link, freq = self._joining
            self._joining = None
            if link.ssid is not None:
                link.freq_mhz = freq
            return True
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    async def neighbours(self, mesh: str) -> list[Neighbour]:
        return list(self.neighbour_table) if self.link_named(mesh) else []

    async def originators(self, mesh: str) -> list[Originator]:
        return list(self.originator_table) if self.link_named(mesh) else []

    async def interface_addresses(self) -> list[InterfaceAddress]:
        return [
            InterfaceAddress(link.ifname, link.up, address, address.network.broadcast_address)
            for link in self.links.values()
            for address in link.addresses
        ]

    async def close(self) -> None:
        pass

    # --- helpers -----------------------------------------------------------------------------

    def _need(self, ifname: str) -> FakeLink:
        link = self.link_named(ifname)
        if link is None:
            raise KeyError(ifname)
        return link

    def _by_index(self, ifindex: int) -> FakeLink:
        try:
            return self.links[ifindex]
        except KeyError:
            raise _error(errno.ENODEV, f"ifindex {ifindex}") from None

    def _radio(self, ifindex: int) -> FakeLink:
        link = self._by_index(ifindex)
        if not link.wifi:
            raise _error(errno.EOPNOTSUPP, f"{link.ifname} is not a Wi-Fi interface")
        return link

    @staticmethod
    def _set_up(link: FakeLink, up: bool) -> None:
        link.up = up
        if not up and link.wifi:
            link.ssid = link.freq_mhz = link.ht = None  # cfg80211 leaves the IBSS on NETDEV_DOWN


def _radio_state(link: FakeLink) -> RadioState:
    return RadioState(
        ifindex=link.ifindex,
        ifname=link.ifname,
        mac=link.mac,
        iftype=link.iftype,
        up=link.up,
        mtu=link.mtu,
        master=link.master,
        ssid=link.ssid,
        freq_mhz=link.freq_mhz,
        ht=link.ht,
    )


def _mesh_state(link: FakeLink) -> MeshState:
    return MeshState(
        ifindex=link.ifindex,
        ifname=link.ifname,
        mac=link.mac,
        up=link.up,
        bridge_loop_avoidance=link.bridge_loop_avoidance,
        orig_interval_ms=link.orig_interval_ms,
        addresses=tuple(link.addresses),
    )
