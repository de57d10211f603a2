"""One node that looks numbers up on the mesh and times each answer, for bench/mesh_bench.py.

Run inside a namespace (`ip netns exec NS python -m lab.dna_looker --interface eth0 N1 N2 ...`):
a real Node on the real asyncio UDP transport (what the daemon runs) waits until it has heard
`--peers` neighbours, then looks the numbers up one after another, each until its first
DnaAnswer or the lookup's own timeout. Prints one JSON object: {"ms": {number: ms or null},
"peers": heard}. The daemon's `lookup` command runs its full 3 s before it replies, so timing
an answer needs the node's own event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time

from firmware.transport import start
from vomp.dna_lookup import LOOKUP_TIMEOUT
from vomp.events import DnaAnswer
from vomp.identity import Identity
from vomp.node import Node


async def look_up_all(args: argparse.Namespace) -> dict[str, object]:
    node = Node(Identity.generate(), args.number, "looker", rng=random.Random(os.getpid()))
    protocol = await start(node, interface=args.interface)
    loop = asyncio.get_running_loop()
    try:
        settle_until = loop.time() + args.settle
        while len(node.neighbours) < args.peers and loop.time() < settle_until:
            await asyncio.sleep(0.1)
        heard = len(node.neighbours)
        times: dict[str, float | None] = {}
        for number in args.numbers:
            asked = time.monotonic()
            protocol.command(lambda n, now, wanted=number: n.lookup(wanted, now))
            times[number] = None
            until = loop.time() + LOOKUP_TIMEOUT
            while (remaining := until - loop.time()) > 0:
                try:
                    event = await asyncio.wait_for(protocol.next_event(), remaining)
                except TimeoutError:
                    break
                if isinstance(event, DnaAnswer) and event.did == number:
                    times[number] = (time.monotonic() - asked) * 1000
                    break
    finally:
        protocol.close()
    return {"ms": times, "peers": heard}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("numbers", nargs="+")
    parser.add_argument("--interface", required=True)
    parser.add_argument("--number", default="5550000", help="the looker's own number")
    parser.add_argument("--peers", type=int, default=0, help="neighbours to hear before looking")
    parser.add_argument("--settle", type=float, default=30.0, help="longest wait for them (s)")
    print(json.dumps(asyncio.run(look_up_all(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
