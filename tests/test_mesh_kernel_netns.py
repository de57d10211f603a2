"""The real backend's rtnetlink paths, against this machine's kernel in network namespaces.

This kernel has neither cfg80211 nor batman-adv; those paths run in the virtual bench
(tests/vm/). Everything here is real: veth pairs, addresses, link events, ARP on the wire.
"""

import asyncio
import os
from ipaddress import IPv4Address, IPv4Interface

import pytest
from pyroute2 import AsyncIPRoute, IPRoute, netns

from hw.mesh import MeshConfig, MeshManager
from hw.mesh.backend import AddAddress
from hw.mesh.kernel import Pyroute2Backend
from hw.mesh.reconcile import SetLinkUp, SetMac, SetMtu

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]


@pytest.fixture
def two_namespaces():
    """ns_a and ns_b joined by a veth pair, a<->b, both down and unaddressed."""
    tag = f"{os.getpid()}{id(object()) % 10000}"
    ns_a, ns_b = f"mesha{tag}", f"meshb{tag}"
    netns.create(ns_a)
    netns.create(ns_b)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=f"va{tag}", kind="veth", peer=f"vb{tag}")
            (va,) = ipr.link_lookup(ifname=f"va{tag}")
            (vb,) = ipr.link_lookup(ifname=f"vb{tag}")
            ipr.link("set", index=va, net_ns_fd=ns_a, ifname="a")
            ipr.link("set", index=vb, net_ns_fd=ns_b, ifname="b")
        yield ns_a, ns_b
    finally:
        netns.remove(ns_a)
        netns.remove(ns_b)


def ifindex(ns: str, name: str) -> int:
    with IPRoute(netns=ns) as ipr:
        (index,) = ipr.link_lookup(ifname=name)
        return index


def link_up(ns: str, name: str, address: str | None = None) -> None:
    with IPRoute(netns=ns) as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        ipr.link("set", index=index, state="up")
        if address:
            ip, prefixlen = address.split("/")
            ipr.addr("add", index=index, address=ip, prefixlen=int(prefixlen))


def test_link_steps_and_addresses_are_applied_to_a_real_interface(two_namespaces):
    ns_a, _ = two_namespaces
    index = ifindex(ns_a, "a")

    async def scenario():
        backend = Pyroute2Backend(netns=ns_a)
        try:
            await backend.apply(SetMtu(index, 1560))
            await backend.apply(SetMac(index, "02:12:34:56:78:9a"))
            await backend.apply(SetLinkUp(index, True))
            await backend.apply(AddAddress(index, IPv4Interface("10.42.1.2/16")))
            return await backend.interface_addresses()
        finally:
            await backend.close()

    addresses = asyncio.run(scenario())
    (found,) = [a for a in addresses if a.ifname == "a"]
    assert found.address == IPv4Interface("10.42.1.2/16")
    assert found.broadcast == IPv4Address("10.42.255.255") and found.up
    with IPRoute(netns=ns_a) as ipr:
        (link,) = ipr.link("get", index=index)
    assert link.get("mtu") == 1560 and link.get("address") == "02:12:34:56:78:9a"


def test_the_link_watch_wakes_on_a_link_change_and_not_otherwise(two_namespaces):
    ns_a, _ = two_namespaces
    link_up(ns_a, "a")
    ifindex_a = ifindex(ns_a, "a")

    async def scenario():
        backend = Pyroute2Backend(netns=ns_a)
        try:
            await backend.observe(None, "bat0")  # starts the watch, clears the flag
            quiet = await backend.wait_for_change(0.3)
            async with AsyncIPRoute(netns=ns_a) as ipr:
                await ipr.link("set", index=ifindex_a, state="down")
            woke = await backend.wait_for_change(10)
            return quiet, woke
        finally:
            await backend.close()

    assert asyncio.run(scenario()) == (False, True)


def test_an_arp_probe_finds_an_address_held_in_the_other_namespace(two_namespaces):
    ns_a, ns_b = two_namespaces
    link_up(ns_a, "a", "10.42.7.7/16")
    link_up(ns_b, "b")

    async def scenario():
        backend = Pyroute2Backend(netns=ns_b)
        try:
            taken = await backend.address_in_use("b", IPv4Address("10.42.7.7"), "02:00:00:00:0b:0b")
            free = await backend.address_in_use("b", IPv4Address("10.42.7.8"), "02:00:00:00:0b:0b")
            return taken, free
        finally:
            await backend.close()

    assert asyncio.run(scenario()) == (True, False)


def test_the_holder_is_named_and_an_announcement_repoints_the_neighbours_arp_cache(
    two_namespaces,
):
    ns_a, ns_b = two_namespaces
    link_up(ns_a, "a", "10.42.7.7/16")
    link_up(ns_b, "b", "10.42.7.9/16")
    with IPRoute(netns=ns_a) as ipr:
        a_mac = ipr.get_links(ifname="a")[0].get("address")
        # a believes 10.42.7.9 is some other machine, as after two partitions merged
        ipr.neigh(
            "replace",
            dst="10.42.7.9",
            lladdr="02:00:00:00:0c:0c",
            ifindex=ipr.link_lookup(ifname="a")[0],
            state=0x04,  # NUD_STALE: a learned entry, not a static one
        )
    with IPRoute(netns=ns_b) as ipr:
        b_mac = ipr.get_links(ifname="b")[0].get("address")

    async def scenario():
        backend = Pyroute2Backend(netns=ns_b)
        try:
            holder = await backend.address_holder("b", IPv4Address("10.42.7.7"), b_mac)
            await backend.announce("b", IPv4Address("10.42.7.9"), b_mac)
            return holder
        finally:
            await backend.close()

    assert asyncio.run(scenario()) == a_mac
    with IPRoute(netns=ns_a) as ipr:
        (entry,) = ipr.get_neighbours(dst="10.42.7.9")
    assert entry.get("NDA_LLADDR") == b_mac


def test_unmanaged_mode_finds_the_lan_address_and_broadcast(two_namespaces):
    ns_a, _ = two_namespaces
    link_up(ns_a, "a", "192.168.77.5/24")
    config = MeshConfig(mode="unmanaged", interface="a", netns=ns_a)

    async def scenario():
        manager = MeshManager(config)
        try:
            await manager.converge()
            return manager.status, await manager.endpoint()
        finally:
            await manager.close()

    status, endpoint = asyncio.run(scenario())
    assert status.ready
    assert (endpoint.address, endpoint.broadcast, endpoint.prefixlen) == (
        IPv4Address("192.168.77.5"),
        IPv4Address("192.168.77.255"),
        24,
    )


def test_a_kernel_without_wifi_or_batman_gives_a_status_not_a_crash(two_namespaces):
    ns_a, _ = two_namespaces
    config = MeshConfig(netns=ns_a)

    async def scenario():
        manager = MeshManager(config, identity=b"sid")
        try:
            return await manager.converge()
        finally:
            await manager.close()

    status = asyncio.run(scenario())
    assert not status.ready
    # Without cfg80211 there is no radio; without batman-adv creating bat0 fails, and says so.
    assert status.radio is None
    assert status.errors == 1 and "Operation not supported" in status.last_error


def reset_link(ns: str, name: str) -> None:
    with IPRoute(netns=ns) as ipr:
        ipr.link("set", index=ifindex(ns, name), state="down")
        ipr.link("set", index=ifindex(ns, name), state="up")


def test_a_station_reset_notice_crosses_the_wire_and_the_listener_survives_a_link_reset(
    two_namespaces,
):
    """The raw packet path of the notice (nl80211's DEL_STATION runs in the virtual bench)."""
    from hw.mesh.station_reset import notice_sender

    ns_a, ns_b = two_namespaces
    link_up(ns_a, "a")
    link_up(ns_b, "b")
    with IPRoute(netns=ns_a) as ipr:
        mac_a = ipr.get_links(ifindex(ns_a, "a"))[0].get_attr("IFLA_ADDRESS")

    async def scenario():
        sender, listener = Pyroute2Backend(netns=ns_a), Pyroute2Backend(netns=ns_b)
        try:
            assert await listener.receive_station_reset("b", 0.1) is None  # opens the socket
            await sender.send_station_reset("a", mac_a)
            first = await listener.receive_station_reset("b", 2.0)
            await asyncio.to_thread(reset_link, ns_b, "b")  # a radio reset on this side
            assert await listener.receive_station_reset("b", 0.5) is None  # ENETDOWN, once
            await sender.send_station_reset("a", mac_a)
            again = await listener.receive_station_reset("b", 2.0)
            return first, again
        finally:
            await sender.close()
            await listener.close()

    first, again = asyncio.run(scenario())
    assert first is not None and notice_sender(first) == mac_a
    assert again is not None and notice_sender(again) == mac_a
