"""The "station reset" notice: a handset whose radio re-joined the IBSS tells its neighbours.

With HT, a neighbour's mac80211 keeps a block-ack receive window for every station; a radio
reset restarts our sequence numbers at 0, and the neighbour drops our unicast frames as old
until that stale window times out (17-50 s). Nothing on the neighbour can tell a fast reset
from one lost OGM, so the reset handset says so itself: a few Ethernet broadcasts on the radio
(not through batman-adv, so only direct neighbours hear them), with a local experimental
ethertype and a fixed magic. A neighbour then deletes its station entry for the sender's MAC,
and mac80211 creates a fresh one, without the stale window, on the sender's next frame.
"""

from __future__ import annotations

import asyncio
import struct

from hw.mesh.arp_probe import BROADCAST_MAC, mac_bytes, packet_socket

ETH_P_STATION_RESET = 0x88B5  # IEEE 802 local experimental ethertype 1
MAGIC = b"handset-station-reset/1"
_ETH_HEADER = 14
NOTICE_COPIES = 3
NOTICE_SPACING_S = 0.1


def notice_frame(own_mac: str) -> bytes:
    """The Ethernet broadcast announcing that the radio with `own_mac` was reset."""
    return BROADCAST_MAC + mac_bytes(own_mac) + struct.pack("!H", ETH_P_STATION_RESET) + MAGIC


def notice_sender(frame: bytes) -> str | None:
    """The source MAC of a well-formed notice, else None. Total on any input; Ethernet pads
    short frames, so bytes after the magic are allowed."""
    if len(frame) < _ETH_HEADER + len(MAGIC):
        return None
    if struct.unpack_from("!H", frame, 12)[0] != ETH_P_STATION_RESET:
        return None
    if frame[_ETH_HEADER : _ETH_HEADER + len(MAGIC)] != MAGIC:
        return None
    source = frame[6:12]
    if source[0] & 1 or source == b"\0" * 6:  # group or zero address: no station has it
        return None
    return source.hex(":")


async def send_notices(
    ifname: str,
    own_mac: str,
    *,
    copies: int = NOTICE_COPIES,
    spacing: float = NOTICE_SPACING_S,
    netns: str | None = None,
) -> None:
    """Broadcast `copies` notices `spacing` seconds apart (a broadcast has no retries)."""
    sock = packet_socket(ifname, ETH_P_STATION_RESET, netns)
    try:
        for index in range(copies):
            if index:
                await asyncio.sleep(spacing)
            sock.send(notice_frame(own_mac))
    finally:
        sock.close()
