"""Stable addresses for a handset, derived from its identity so they survive reboots and re-joins.

The IPv4 address sits inside the configured prefix (servald finds peers by subnet broadcast, so
every handset must share one IPv4 subnet). Candidate n is a hash of the identity and n: the first
candidate is the handset's usual address, the following ones are where it moves if an ARP probe
finds the usual one taken. The mesh interface's MAC is derived the same way, so that neighbours'
ARP caches (and batman-adv's distributed ARP table) stay right when bat0 is re-created.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network

_IPV4_DOMAIN = b"mesh-handset ipv4 v1"
_MAC_DOMAIN = b"mesh-handset bat0 mac v1"


def candidate_addresses(identity: bytes, prefix: IPv4Network) -> Iterator[IPv4Address]:
    """Yield this identity's addresses in `prefix`, best first, never the network or broadcast.

    Endless: the caller decides how many probes to spend. Needs a prefix of /30 or wider.
    """
    hosts = prefix.num_addresses - 2
    if hosts < 2:
        raise ValueError(f"prefix {prefix} has no room for handsets; use /30 or wider")
    first_host = int(prefix.network_address) + 1
    n = 0
    while True:
        digest = hashlib.sha256(_IPV4_DOMAIN + n.to_bytes(4, "big") + identity).digest()
        yield IPv4Address(first_host + int.from_bytes(digest[:8], "big") % hosts)
        n += 1


def mesh_mac(identity: bytes) -> str:
    """A locally administered unicast MAC for bat0, stable for this identity."""
    digest = bytearray(hashlib.sha256(_MAC_DOMAIN + identity).digest()[:6])
    digest[0] = (digest[0] & 0xFC) | 0x02  # locally administered, unicast
    return ":".join(f"{b:02x}" for b in digest)
