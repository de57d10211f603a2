"""The asyncio UDP edge of a `Node`: one socket, one timer, a queue of events.

Everything protocol-shaped lives in `vomp.node.Node`; this module only moves bytes between it
and a socket (as aioquic's asyncio/protocol.py does for QuicConnection). SPEC §1: one socket
bound to 0.0.0.0:4110 with SO_BROADCAST sends both broadcasts (to the interface's subnet
broadcast address) and unicasts (to the address a neighbour's packets came from).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from vomp.events import AudioFrameReceived, Event
from vomp.node import BROADCAST, Node

SERVAL_PORT = 4110
log = logging.getLogger(__name__)


def interface_broadcast(interface: str) -> str:
    """The IPv4 subnet broadcast address of `interface` (where servald listens, §1)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=interface)
        if not index:
            raise ValueError(f"no network interface called {interface!r}")
        for message in ipr.get_addr(index=index[0], family=socket.AF_INET):
            broadcast = message.get_attr("IFA_BROADCAST")
            if broadcast:
                return broadcast
            address = message.get_attr("IFA_ADDRESS")
            network = ipaddress.ip_network(f"{address}/{message['prefixlen']}", strict=False)
            return str(network.broadcast_address)
    raise ValueError(f"interface {interface!r} has no IPv4 address; give it one first")


LARGEST_DATAGRAM = 65535
"""No UDP payload is longer (the length field is 16 bits)."""


class DatagramSocket(socket.socket):
    """A UDP socket that asks the kernel for at most one datagram's worth of bytes.

    asyncio's datagram transport calls recvfrom(256 KiB) for every datagram. CPython first
    allocates a bytes object of the size asked for, and glibc can serve one that large with
    mmap, then mremap and munmap once the datagram turns out to be small: three system calls
    and page faults per datagram, for every audio frame of a call (an asyncio loop receiving
    100 datagrams a second spent 20-60 µs less CPU per datagram without them here). 64 KiB
    comes from the heap instead, and still holds any datagram whole."""

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        return super().recvfrom(min(bufsize, LARGEST_DATAGRAM), flags)


def open_socket(port: int = SERVAL_PORT, interface: str | None = None) -> socket.socket:
    """The one UDP socket servald expects us to use (§1), optionally tied to one interface."""
    sock = DatagramSocket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if interface:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
    sock.bind(("0.0.0.0", port))
    sock.setblocking(False)
    return sock


class NodeProtocol(asyncio.DatagramProtocol):
    """Drives a Node from one UDP socket: feed, send, re-arm one timer, queue events."""

    def __init__(
        self,
        node: Node,
        broadcast_address: tuple[str, int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.broadcast_address = broadcast_address
        self.clock = clock
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.audio_sink: Callable[[AudioFrameReceived], object] | None = None
        """Where received audio frames go, at once, instead of the event queue: 50 a second
        per call, each would otherwise cost a task wake-up before it reaches the jitter buffer."""
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.closed = asyncio.get_running_loop().create_future()

    # asyncio callbacks -------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._pump()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.node.receive(data, addr, self.clock())
        self._pump()

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (e.g. a neighbour went away) must not stop the handset.
        self.node.counters[f"socket_error_{type(exc).__name__}"] += 1
        log.debug("socket error (counted, ignored): %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer:
            self._timer.cancel()
        if not self.closed.done():
            self.closed.set_result(exc)

    # the application's side --------------------------------------------------------------
    def now(self) -> float:
        return self.clock()

    def command(self, action: Callable[[Node, float], Any]) -> Any:
        """Run `action(node, now)` (a dial, answer, ...) and send whatever it produced."""
        result = action(self.node, self.clock())
        self._pump()
        return result

    async def next_event(self) -> Event:
        return await self.events.get()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # the bridge ----------------------------------------------------------------------
    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self.node.handle_timer(self.clock())
        self._pump()

    def _pump(self) -> None:
        """Send what the node wants sent, pass events on, and re-arm the single timer."""
        if self._transport is None or self._transport.is_closing():
            return
        for data, destination in self.node.datagrams_to_send(self.clock()):
            address = self.broadcast_address if destination is BROADCAST else destination
            if not isinstance(address, tuple):
                log.error("the node sent a datagram to %r, which is not an address", destination)
                continue
            try:
                self._transport.sendto(data, address)
            except OSError as exc:
                self.error_received(exc)
        while (event := self.node.next_event()) is not None:
            if self.audio_sink is not None and type(event) is AudioFrameReceived:
                self.audio_sink(event)
            else:
                self.events.put_nowait(event)
        when = self.node.next_timer()
        if when is None or when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, when - self.clock())
        self._timer_at = when
        self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)


async def start(
    node: Node,
    *,
    interface: str | None = None,
    port: int = SERVAL_PORT,
    broadcast: str | None = None,
) -> NodeProtocol:
    """Open the socket and start driving `node`; returns the running protocol."""
    loop = asyncio.get_running_loop()
    if broadcast is None and interface:
        # pyroute2's synchronous IPRoute runs its own event loop, so not on this thread's.
        broadcast = await loop.run_in_executor(None, interface_broadcast, interface)
    broadcast = broadcast or "255.255.255.255"
    sock = open_socket(port, interface)
    _transport, protocol = await loop.create_datagram_endpoint(
        lambda: NodeProtocol(node, (broadcast, port)), sock=sock
    )
    return protocol
