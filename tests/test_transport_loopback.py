"""The asyncio transport on loopback (no root needed): two Nodes find each other and talk.

Each node's "broadcast" goes to the other's port on 127.0.0.1, which is all a loopback can do;
the namespace test (test_netns_call.py) covers real subnet broadcasts.
"""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

from firmware.transport import NodeProtocol, interface_broadcast, open_socket
from vomp.events import AudioFrameReceived, DnaAnswer, PeerFound
from vomp.identity import Identity
from vomp.node import Node


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_for(protocol: NodeProtocol, kind: type, timeout: float = 5.0):
    async with asyncio.timeout(timeout):
        while True:
            event = await protocol.next_event()
            if isinstance(event, kind):
                return event


async def two_nodes_on_loopback():
    loop = asyncio.get_running_loop()
    rng = random.Random(5)
    ports = [free_port(), free_port()]
    protocols = []
    for mine, other, number in ((0, 1, "5552001"), (1, 0, "5552002")):
        node = Node(Identity.from_seed(rng.randbytes(32)), number, f"n{mine}", rng=rng)
        sock = open_socket(ports[mine])
        _t, protocol = await loop.create_datagram_endpoint(
            lambda node=node, other=other: NodeProtocol(node, ("127.0.0.1", ports[other])),
            sock=sock,
        )
        protocols.append(protocol)
    try:
        found = await wait_for(protocols[0], PeerFound)
        assert found.sid == protocols[1].node.sid
        protocols[0].command(lambda n, now: n.lookup("5552002", now))
        answer = await wait_for(protocols[0], DnaAnswer)
        assert (answer.sid, answer.did, answer.name) == (protocols[1].node.sid, "5552002", "n1")
    finally:
        for protocol in protocols:
            protocol.close()


def test_transport_drives_nodes_over_loopback_udp():
    asyncio.run(two_nodes_on_loopback())


def test_subnet_broadcast_is_derived_from_the_interface_address():
    assert interface_broadcast("lo") == "127.255.255.255"  # lo has no brd: computed from /8


def test_an_unknown_interface_is_named_in_the_error():
    with pytest.raises(ValueError, match="no network interface called 'nope0'"):
        interface_broadcast("nope0")


class _EventsOnly:
    """A node stand-in that only has events to hand out."""

    def __init__(self, events: list) -> None:
        self._events = list(events)

    def datagrams_to_send(self, now: float) -> list:
        return []

    def next_event(self):
        return self._events.pop(0) if self._events else None

    def next_timer(self) -> None:
        return None


class _OpenTransport:
    def is_closing(self) -> bool:
        return False


def test_audio_frames_go_straight_to_the_audio_sink_and_other_events_to_the_queue():
    async def pump_once() -> tuple[list, list]:
        frame = AudioFrameReceived(call=1, codec=0x70, time_ms=20, seq=1, payload=b"x")
        found = PeerFound(sid=bytes(32), address=("10.0.0.1", 4110))
        protocol = NodeProtocol(_EventsOnly([frame, found, frame]), ("127.0.0.1", 1))
        heard: list = []
        protocol.audio_sink = heard.append
        protocol.connection_made(_OpenTransport())  # type: ignore[arg-type]
        queued = [protocol.events.get_nowait() for _ in range(protocol.events.qsize())]
        return heard, queued

    heard, queued = asyncio.run(pump_once())
    assert len(heard) == 2 and all(isinstance(e, AudioFrameReceived) for e in heard)
    assert [type(e) for e in queued] == [PeerFound]
