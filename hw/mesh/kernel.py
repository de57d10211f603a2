"""The real backend: nl80211, rtnetlink and batman-adv's genl family, all through pyroute2.

Sockets are opened lazily, each in the configured network namespace (pyroute2 creates a socket
inside a namespace from a short-lived child), so one process can run several bench nodes.
Netlink link and address events only wake the manager up; it then re-reads the whole state,
so a missed or coalesced event costs at most one poll interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
from ipaddress import IPv4Address, IPv4Interface

from pyroute2 import AsyncIPRoute, AsyncIW
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nl80211 import IFTYPE_NAMES, NL80211_NAMES, nl80211cmd
from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_LINK

from hw.mesh import arp_probe, station_reset
from hw.mesh.backend import AddAddress, InterfaceAddress, RemoveAddress
from hw.mesh.batadv import AsyncBatadv, Neighbour, Originator
from hw.mesh.reconcile import (
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

log = logging.getLogger(__name__)

IFF_UP = 0x1
# enum nl80211_chan_width: 20 MHz without HT, 5 and 10 MHz; every other width is HT or wider.
NO_HT_WIDTHS = (0, 6, 7)
_IFTYPE_BY_NUMBER = {number: name for name, number in IFTYPE_NAMES.items()}


class Pyroute2Backend:
    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self._ipr: AsyncIPRoute | None = None
        self._iw: AsyncIW | None = None
        self._batadv: AsyncBatadv | None = None
        self._events: AsyncIPRoute | None = None
        self._event_reader: asyncio.Task | None = None
        self._changed = asyncio.Event()
        self._notices: tuple[str, socket.socket] | None = None  # (radio name, its socket)

    # --- sockets -----------------------------------------------------------------------------

    async def ipr(self) -> AsyncIPRoute:
        if self._ipr is None:
            self._ipr = AsyncIPRoute(netns=self.netns)
        return self._ipr

    async def iw(self) -> AsyncIW:
        if self._iw is None:
            sock = AsyncIW(netns=self.netns)
            try:
                await sock.setup_endpoint()
            except Exception:
                sock.close()
                raise
            self._iw = sock
        return self._iw

    async def batadv(self) -> AsyncBatadv:
        if self._batadv is None:
            sock = AsyncBatadv(netns=self.netns)
            try:
                await sock.setup_endpoint()
            except Exception:
                sock.close()
                raise
            self._batadv = sock
        return self._batadv

    async def _start_events(self) -> None:
        if self._events is not None:
            return
        self._events = AsyncIPRoute(netns=self.netns)
        await self._events.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR)
        self._event_reader = asyncio.create_task(self._read_events(self._events))

    async def _read_events(self, events: AsyncIPRoute) -> None:
        while True:
            async for _message in events.get():
                self._changed.set()

    async def close(self) -> None:
        if self._event_reader is not None:
            self._event_reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._event_reader
        for sock in (self._ipr, self._iw, self._batadv, self._events):
            if sock is not None:
                sock.close()
        self._ipr = self._iw = self._batadv = self._events = None
        self._event_reader = None
        self._close_notices()

    # --- observing ---------------------------------------------------------------------------

    async def wait_for_change(self, timeout: float) -> bool:
        await self._start_events()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            return False
        self._changed.clear()
        return True

    async def observe(self, radio: str | None, mesh: str) -> Observed:
        await self._start_events()
        # Clear first: a change that lands while we read is seen by the next wait.
        self._changed.clear()
        return Observed(radio=await self._observe_radio(radio), mesh=await self._observe_mesh(mesh))

    async def wifi_interfaces(self) -> list:
        try:
            iw = await self.iw()
        except NetlinkError as error:
            if error.code != errno.ENOENT:
                raise
            return []  # no nl80211 family: a kernel without cfg80211 has no Wi-Fi interfaces
        return [m async for m in await iw.get_interfaces_dump()]

    async def _observe_radio(self, name: str | None) -> RadioState | None:
        for wif in await self.wifi_interfaces():
            ifname = wif.get_attr("NL80211_ATTR_IFNAME")
            if name is not None and ifname != name:
                continue
            ifindex = wif.get_attr("NL80211_ATTR_IFINDEX")
            link = await self._link(ifindex)
            if link is None:
                continue  # vanished between the two dumps
            ssid = wif.get_attr("NL80211_ATTR_SSID")
            width = wif.get_attr("NL80211_ATTR_CHANNEL_WIDTH")
            iftype = _IFTYPE_BY_NUMBER.get(wif.get_attr("NL80211_ATTR_IFTYPE"), "unknown")
            return RadioState(
                ifindex=ifindex,
                ifname=ifname,
                mac=wif.get_attr("NL80211_ATTR_MAC"),
                iftype=iftype,
                up=bool(link["flags"] & IFF_UP),
                mtu=link.get("mtu"),
                master=link.get("master"),
                ssid=ssid or None,
                freq_mhz=wif.get_attr("NL80211_ATTR_WIPHY_FREQ") if ssid else None,
                ht=None if not ssid or width is None else width not in NO_HT_WIDTHS,
            )
        return None

    async def _link(self, ifindex: int):
        ipr = await self.ipr()
        try:
            (link,) = await ipr.link("get", index=ifindex)
        except Exception as error:  # NetlinkError(ENODEV) when it vanished
            log.debug("link %s: %s", ifindex, error)
            return None
        return link

    async def _ifindex(self, ifname: str) -> int | None:
        ipr = await self.ipr()
        found = await ipr.link_lookup(ifname=ifname)
        return found[0] if found else None

    async def _observe_mesh(self, name: str) -> MeshState | None:
        ifindex = await self._ifindex(name)
        if ifindex is None:
            return None
        link = await self._link(ifindex)
        if link is None:
            return None
        settings = await (await self.batadv()).mesh_settings(ifindex)
        return MeshState(
            ifindex=ifindex,
            ifname=name,
            mac=link.get("address"),
            up=bool(link["flags"] & IFF_UP),
            bridge_loop_avoidance=settings.bridge_loop_avoidance,
            orig_interval_ms=settings.orig_interval_ms,
            addresses=tuple(a.address for a in await self._addresses(ifindex)),
        )

    async def _addresses(self, ifindex: int | None = None) -> list[InterfaceAddress]:
        ipr = await self.ipr()
        names: dict[int, tuple[str, bool]] = {}
        async for link in await ipr.link("dump"):
            names[link["index"]] = (link.get("ifname"), bool(link["flags"] & IFF_UP))
        found = []
        async for msg in await ipr.addr("dump", family=socket.AF_INET):
            if ifindex is not None and msg["index"] != ifindex:
                continue
            address = IPv4Interface(f"{msg.get('address')}/{msg['prefixlen']}")
            broadcast = msg.get("broadcast")
            ifname, up = names.get(msg["index"], ("?", False))
            found.append(
                InterfaceAddress(
                    ifname=ifname,
                    up=up,
                    address=address,
                    broadcast=IPv4Address(broadcast)
                    if broadcast
                    else address.network.broadcast_address,
                )
            )
        return found

    async def interface_addresses(self) -> list[InterfaceAddress]:
        return await self._addresses()

    # --- acting ------------------------------------------------------------------------------

    async def apply(self, action: Action | AddAddress | RemoveAddress) -> None:
        ipr = await self.ipr()
        match action:
            case SetLinkUp(ifindex, up):
                await ipr.link("set", index=ifindex, state="up" if up else "down")
            case SetRadioType(ifindex, iftype):
                await (await self.iw()).set_interface_type(ifindex, iftype)
            case SetMtu(ifindex, mtu):
                await ipr.link("set", index=ifindex, mtu=mtu)
            case LeaveIbss(ifindex):
                await (await self.iw()).leave_ibss(ifindex)
            case JoinIbss(ifindex, ibss):
                await (await self.iw()).join_ibss(
                    ifindex,
                    ibss.ssid,
                    ibss.freq_mhz,
                    bssid=ibss.bssid,
                    channel_fixed=True,
                    width="20" if ibss.ht else "20_noht",
                )
            case CreateMesh(ifname):
                await ipr.link("add", ifname=ifname, kind="batadv")
            case SetMac(ifindex, mac):
                await ipr.link("set", index=ifindex, address=mac)
            case Enslave(ifindex, master):
                await ipr.link("set", index=ifindex, master=master)
            case SetMeshOptions(ifindex, bla, interval):
                await (await self.batadv()).set_mesh(
                    ifindex, bridge_loop_avoidance=bla, orig_interval_ms=interval
                )
            case AddAddress(ifindex, address):
                await ipr.addr(
                    "add",
                    index=ifindex,
                    address=str(address.ip),
                    prefixlen=address.network.prefixlen,
                    broadcast=str(address.network.broadcast_address),
                )
            case RemoveAddress(ifindex, address):
                await ipr.addr(
                    "del",
                    index=ifindex,
                    address=str(address.ip),
                    prefixlen=address.network.prefixlen,
                )
            case _:
                raise TypeError(f"the kernel backend cannot apply {action!r}")

    async def address_holder(
        self, ifname: str, address: IPv4Address, own_mac: str, *, held: bool = False
    ) -> str | None:
        return await arp_probe.address_holder(ifname, address, own_mac, held=held, netns=self.netns)

    async def address_in_use(self, ifname: str, address: IPv4Address, own_mac: str) -> bool:
        return await self.address_holder(ifname, address, own_mac) is not None

    async def announce(
        self, ifname: str, address: IPv4Address, own_mac: str, *, holder: str | None = None
    ) -> None:
        await arp_probe.announce(ifname, address, own_mac, holder=holder, netns=self.netns)

    async def send_station_reset(self, radio: str, own_mac: str) -> None:
        await station_reset.send_notices(radio, own_mac, netns=self.netns)

    async def receive_station_reset(self, radio: str, timeout: float) -> bytes | None:
        """The next frame of the notice's ethertype on `radio`, or None after `timeout`. The
        socket stays open between calls, also across the radio going down and up (the kernel
        reports that once, as ENETDOWN, and the socket hears again once the radio is up); any
        other error closes it, and the next call opens it afresh."""
        if self._notices is None or self._notices[0] != radio:
            self._close_notices()
            self._notices = (
                radio,
                arp_probe.packet_socket(radio, station_reset.ETH_P_STATION_RESET, self.netns),
            )
        sock = self._notices[1]
        try:
            return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 2048), timeout)
        except TimeoutError:
            return None
        except OSError as error:
            if error.errno == errno.ENETDOWN:
                return None
            self._close_notices()
            raise

    def _close_notices(self) -> None:
        if self._notices is not None:
            self._notices[1].close()
            self._notices = None

    async def delete_station(self, radio_ifindex: int, mac: str) -> None:
        """NL80211_CMD_DEL_STATION: mac80211 accepts it in IBSS mode (it re-creates the station
        on the peer's next frame); a driver without NL80211_EXT_FEATURE_DEL_IBSS_STA refuses."""
        msg = nl80211cmd()
        msg["cmd"] = NL80211_NAMES["NL80211_CMD_DEL_STATION"]
        msg["attrs"] = [["NL80211_ATTR_IFINDEX", radio_ifindex], ["NL80211_ATTR_MAC", mac]]
        await (await self.iw())._do_request(msg)

    # --- diagnostics -------------------------------------------------------------------------

    async def neighbours(self, mesh: str) -> list[Neighbour]:
        ifindex = await self._ifindex(mesh)
        if ifindex is None:
            return []
        return await (await self.batadv()).neighbours(ifindex)

    async def originators(self, mesh: str) -> list[Originator]:
        ifindex = await self._ifindex(mesh)
        if ifindex is None:
            return []
        return await (await self.batadv()).originators(ifindex)
