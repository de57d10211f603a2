"""Duplicate address detection with an RFC 5227 ARP probe, on a raw packet socket.

A probe asks "who has A?" with sender address 0.0.0.0, so nobody's ARP cache learns from it; a
host that holds A answers (Linux does, in arp_process). Any ARP from another MAC claiming A as
its sender address means A is taken. An answer carrying our own MAC is not a conflict: it is a
stale cache entry of ourselves (batman-adv's distributed ARP table answers for absent nodes).

An announcement is two frames. The RFC 5227 one (a request for A from A) teaches batman-adv's
distributed ARP table (DAT) on every node, but DAT also answers that request itself on each node
it reaches and drops it, so no kernel's ARP cache ever sees it. A broadcast reply with a zero
target MAC is none of DAT's business: batman-adv hands it up, and Linux re-points an existing
cache entry for A at us (after two partitions merged with A twice, that entry may name the
handset that has since moved away).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from ipaddress import IPv4Address

from pyroute2 import netns as pyroute2_netns

ETH_P_ARP = 0x0806
ARPHRD_ETHER = 1
ARPOP_REQUEST = 1
ARPOP_REPLY = 2
BROADCAST_MAC = b"\xff" * 6
_ARP = struct.Struct("!HHBBH6s4s6s4s")  # RFC 826, Ethernet + IPv4 only
_ETH_HEADER = 14


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def probe_frame(own_mac: str, target: IPv4Address) -> bytes:
    """An Ethernet frame carrying an ARP probe for `target`."""
    sender = mac_bytes(own_mac)
    arp = _ARP.pack(
        ARPHRD_ETHER,
        0x0800,
        6,
        4,
        ARPOP_REQUEST,
        sender,
        b"\0\0\0\0",
        b"\0" * 6,
        target.packed,
    )
    return BROADCAST_MAC + sender + struct.pack("!H", ETH_P_ARP) + arp


def claims_address(frame: bytes, target: IPv4Address, own_mac: str, *, held: bool = False) -> bool:
    """True when `frame` is an ARP packet from another machine that uses `target`."""
    return claimant(frame, target, own_mac, held=held) is not None


def claimant(frame: bytes, target: IPv4Address, own_mac: str, *, held: bool = False) -> str | None:
    """The MAC of the other machine that `frame` shows using `target`, or None.

    `held`: `target` is already ours. Then only ARP that uses it as its sender address is a claim
    (RFC 5227 2.4): a request from 0.0.0.0 is a host checking the address, or one that has no
    address of its own (a handset that just gave up a contested address) asking for us.
    Total on any input: short or foreign frames are simply not claims.
    """
    if len(frame) < _ETH_HEADER + _ARP.size:
        return None
    if struct.unpack_from("!H", frame, 12)[0] != ETH_P_ARP:
        return None
    htype, ptype, hlen, plen, _op, sha, spa, _tha, tpa = _ARP.unpack_from(frame, _ETH_HEADER)
    if (htype, ptype, hlen, plen) != (ARPHRD_ETHER, 0x0800, 6, 4):
        return None
    if sha == mac_bytes(own_mac):
        return None
    # An answer or someone announcing the address; or, while we only want it, (RFC 5227 2.1.1)
    # another host probing for the same address at the same time.
    probing_too = not held and spa == b"\0\0\0\0" and tpa == target.packed
    if spa == target.packed or probing_too:
        return sha.hex(":")
    return None


def announcement_frame(own_mac: str, address: IPv4Address, holder: str | None = None) -> bytes:
    """An RFC 5227 ARP announcement: a request with `address` as sender and target, so every
    neighbour's ARP cache (and batman-adv's distributed ARP table) points `address` at us, or
    at `holder` (the handset we gave the address up to; the frame still comes from us)."""
    return _announcement(ARPOP_REQUEST, own_mac, address, holder)


def announcement_reply_frame(
    own_mac: str, address: IPv4Address, holder: str | None = None
) -> bytes:
    """A broadcast ARP reply "`address` is at `own_mac` (or `holder`)" with a zero target MAC:
    it reaches the neighbours' kernels through batman-adv, which the request form does not."""
    return _announcement(ARPOP_REPLY, own_mac, address, holder)


def _announcement(op: int, own_mac: str, address: IPv4Address, holder: str | None) -> bytes:
    sender = mac_bytes(holder or own_mac)
    arp = _ARP.pack(
        ARPHRD_ETHER, 0x0800, 6, 4, op, sender, address.packed, b"\0" * 6, address.packed
    )
    return BROADCAST_MAC + mac_bytes(own_mac) + struct.pack("!H", ETH_P_ARP) + arp


def packet_socket(ifname: str, ethertype: int, netns: str | None) -> socket.socket:
    """A non-blocking raw socket on `ifname` (in `netns`) for frames of `ethertype` only."""
    sock = pyroute2_netns.create_socket(
        netns=netns, family=socket.AF_PACKET, socket_type=socket.SOCK_RAW, proto=0
    )
    try:
        sock.bind((ifname, ethertype))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


async def announce(
    ifname: str,
    address: IPv4Address,
    own_mac: str,
    *,
    holder: str | None = None,
    count: int = 2,
    netns: str | None = None,
) -> None:
    """Send `count` ARP announcements that `address` is ours (or `holder`'s), 0.2 s apart
    (RFC 5227 uses two); each is the RFC 5227 request plus the broadcast reply that reaches the
    kernels' ARP caches."""
    sock = packet_socket(ifname, ETH_P_ARP, netns)
    try:
        for index in range(count):
            if index:
                await asyncio.sleep(0.2)
            sock.send(announcement_frame(own_mac, address, holder))
            sock.send(announcement_reply_frame(own_mac, address, holder))
    finally:
        sock.close()


async def address_holder(
    ifname: str,
    target: IPv4Address,
    own_mac: str,
    *,
    probes: int = 3,
    interval: float = 0.3,
    wait: float = 1.0,
    held: bool = False,
    netns: str | None = None,
) -> str | None:
    """Send `probes` ARP probes for `target` on `ifname`; the MAC of whoever else claims it
    (`held`: `target` is already ours, see `claimant`)."""
    sock = packet_socket(ifname, ETH_P_ARP, netns)
    try:
        loop = asyncio.get_running_loop()
        frame = probe_frame(own_mac, target)
        deadline = loop.time() + probes * interval + wait
        next_probe, sent = loop.time(), 0
        while loop.time() < deadline:
            if sent < probes and loop.time() >= next_probe:
                sock.send(frame)
                sent += 1
                next_probe += interval
            timeout = max(
                0.0, min(next_probe if sent < probes else deadline, deadline) - loop.time()
            )
            try:
                received = await asyncio.wait_for(loop.sock_recv(sock, 2048), timeout)
            except TimeoutError:
                continue
            holder = claimant(received, target, own_mac, held=held)
            if holder is not None:
                return holder
        return None
    finally:
        sock.close()


async def address_in_use(
    ifname: str, target: IPv4Address, own_mac: str, *, netns: str | None = None
) -> bool:
    """True if another machine answers a probe for `target` (see `address_holder`)."""
    return await address_holder(ifname, target, own_mac, netns=netns) is not None
