"""Network namespaces on one bridge, for handsets (lab/daemons.py) and the audio-call lab.

Needs root. Every name carries the process id, so parallel runs do not collide, and everything
is removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator


@contextlib.contextmanager
def bridged_namespaces(
    prefix: str = "hs", subnet: str = "10.77", count: int = 2
) -> Iterator[tuple[str, ...]]:
    """`count` namespaces, each with eth0 (<subnet>.x.1, .2, ... /24) on one bridge in another.

    `prefix` and `subnet` keep labs that may run at once (the call tests and the audio call)
    apart; the process id keeps parallel runs apart.
    """
    from pyroute2 import NetNS, netns

    tag = f"{os.getpid() % 100000}{random.randrange(100)}"
    octet = os.getpid() % 250 + 1
    sides = "abcdefgh"[:count]
    names = {"br": f"{prefix}br{tag}", **{side: f"{prefix}{side}{tag}" for side in sides}}
    for name in names.values():
        netns.create(name)
    try:
        with NetNS(names["br"]) as br:
            br.link("add", ifname="br0", kind="bridge")
            bridge = br.link_lookup(ifname="br0")[0]
            for side in sides:
                br.link(
                    "add",
                    ifname=f"v{side}",
                    kind="veth",
                    peer={"ifname": "eth0", "net_ns_fd": names[side]},
                )
                port = br.link_lookup(ifname=f"v{side}")[0]
                br.link("set", index=port, master=bridge, state="up")
            br.link("set", index=bridge, state="up")
        for host, side in enumerate(sides, start=1):
            with NetNS(names[side]) as ns:
                eth0 = ns.link_lookup(ifname="eth0")[0]
                ns.addr(
                    "add",
                    index=eth0,
                    address=f"{subnet}.{octet}.{host}",
                    prefixlen=24,
                    broadcast=f"{subnet}.{octet}.255",
                )
                ns.link("set", index=eth0, state="up")
                ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
        yield tuple(names[side] for side in sides)
    finally:
        for name in names.values():
            with contextlib.suppress(OSError):
                netns.remove(name)
