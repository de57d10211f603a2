"""batman-adv's generic-netlink family, spoken through pyroute2 (which has no batadv family).

Only what the handset needs: read and set mesh options (bridge loop avoidance, originator
interval) and dump the neighbour and originator tables for the diagnostics shell. Command and
attribute numbers are the kernel's uapi (include/uapi/linux/batman_adv.h); they only ever grow,
so the numbers below hold for every kernel since 5.1, when SET_MESH appeared.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyroute2.netlink import NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, genlmsg
from pyroute2.netlink.generic import AsyncGenericNetlinkSocket

BATADV_GENL_NAME = "batadv"
BATADV_GENL_VERSION = 1

# enum batadv_nl_commands
CMD_GET_MESH = 1
CMD_GET_HARDIF = 5
CMD_GET_ORIGINATORS = 8
CMD_GET_NEIGHBORS = 9
CMD_SET_MESH = 15

# TQ is a fraction of 255: batctl prints it as is, 255 meaning a perfect link.
TQ_MAX = 255


class batadvmsg(genlmsg):
    """One batadv genl message (lower case like pyroute2's own); ids are enum batadv_nl_attrs."""

    prefix = "BATADV_ATTR_"
    nla_map = (
        (0, "BATADV_ATTR_UNSPEC", "none"),
        (1, "BATADV_ATTR_VERSION", "asciiz"),
        (2, "BATADV_ATTR_ALGO_NAME", "asciiz"),
        (3, "BATADV_ATTR_MESH_IFINDEX", "uint32"),
        (4, "BATADV_ATTR_MESH_IFNAME", "asciiz"),
        (5, "BATADV_ATTR_MESH_ADDRESS", "l2addr"),
        (6, "BATADV_ATTR_HARD_IFINDEX", "uint32"),
        (7, "BATADV_ATTR_HARD_IFNAME", "asciiz"),
        (8, "BATADV_ATTR_HARD_ADDRESS", "l2addr"),
        (9, "BATADV_ATTR_ORIG_ADDRESS", "l2addr"),
        (15, "BATADV_ATTR_ACTIVE", "flag"),
        (22, "BATADV_ATTR_FLAG_BEST", "flag"),
        (23, "BATADV_ATTR_LAST_SEEN_MSECS", "uint32"),
        (24, "BATADV_ATTR_NEIGH_ADDRESS", "l2addr"),
        (25, "BATADV_ATTR_TQ", "uint8"),
        (26, "BATADV_ATTR_THROUGHPUT", "uint32"),
        (29, "BATADV_ATTR_ROUTER", "l2addr"),
        (41, "BATADV_ATTR_AGGREGATED_OGMS_ENABLED", "uint8"),
        (46, "BATADV_ATTR_BRIDGE_LOOP_AVOIDANCE_ENABLED", "uint8"),
        (47, "BATADV_ATTR_DISTRIBUTED_ARP_TABLE_ENABLED", "uint8"),
        (48, "BATADV_ATTR_FRAGMENTATION_ENABLED", "uint8"),
        (53, "BATADV_ATTR_HOP_PENALTY", "uint8"),
        (57, "BATADV_ATTR_ORIG_INTERVAL", "uint32"),
    )


@dataclass(frozen=True)
class MeshSettings:
    """The batman-adv options the handset manages on its mesh interface."""

    bridge_loop_avoidance: bool
    orig_interval_ms: int


@dataclass(frozen=True)
class Neighbour:
    """A node heard directly on one of our radios (one `batctl n` line)."""

    address: str
    hard_ifindex: int
    last_seen_ms: int
    throughput_kbits: int | None = None  # only B.A.T.M.A.N. V measures it


@dataclass(frozen=True)
class Originator:
    """A route candidate to a node in the mesh (one `batctl o` line).

    batman-adv keeps one entry per (originator, next hop); `best` marks the one it routes over,
    so the number of hops is not known, only which neighbour carries the traffic.
    """

    address: str
    next_hop: str
    hard_ifindex: int
    last_seen_ms: int
    tq: int | None  # B.A.T.M.A.N. IV link quality, 0..255
    throughput_kbits: int | None  # B.A.T.M.A.N. V
    best: bool


class BatadvError(RuntimeError):
    """The batadv family is missing (module not loaded) or refused a request."""


class AsyncBatadv(AsyncGenericNetlinkSocket):
    """An asyncio socket bound to the `batadv` generic-netlink family of one network namespace."""

    async def setup_endpoint(self):
        if getattr(self.local, "transport", None) is not None:
            return
        await super().setup_endpoint()
        await self.bind(BATADV_GENL_NAME, batadvmsg)

    async def _request(self, cmd: int, attrs: list, flags: int) -> list[batadvmsg]:
        msg = batadvmsg()
        msg["cmd"] = cmd
        msg["version"] = BATADV_GENL_VERSION
        msg["attrs"] = attrs
        return [m async for m in await self.nlm_request(msg, msg_type=self.prid, msg_flags=flags)]

    async def get_mesh(self, mesh_ifindex: int) -> batadvmsg:
        (reply,) = await self._request(
            CMD_GET_MESH,
            [["BATADV_ATTR_MESH_IFINDEX", mesh_ifindex]],
            NLM_F_REQUEST,
        )
        return reply

    async def mesh_settings(self, mesh_ifindex: int) -> MeshSettings:
        reply = await self.get_mesh(mesh_ifindex)
        return MeshSettings(
            bridge_loop_avoidance=bool(reply.get_attr("BATADV_ATTR_BRIDGE_LOOP_AVOIDANCE_ENABLED")),
            orig_interval_ms=reply.get_attr("BATADV_ATTR_ORIG_INTERVAL"),
        )

    async def set_mesh(
        self,
        mesh_ifindex: int,
        *,
        bridge_loop_avoidance: bool | None = None,
        orig_interval_ms: int | None = None,
    ) -> None:
        attrs: list = [["BATADV_ATTR_MESH_IFINDEX", mesh_ifindex]]
        if bridge_loop_avoidance is not None:
            attrs.append(["BATADV_ATTR_BRIDGE_LOOP_AVOIDANCE_ENABLED", int(bridge_loop_avoidance)])
        if orig_interval_ms is not None:
            attrs.append(["BATADV_ATTR_ORIG_INTERVAL", orig_interval_ms])
        await self._request(CMD_SET_MESH, attrs, NLM_F_REQUEST | NLM_F_ACK)

    async def neighbours(self, mesh_ifindex: int) -> list[Neighbour]:
        replies = await self._request(
            CMD_GET_NEIGHBORS,
            [["BATADV_ATTR_MESH_IFINDEX", mesh_ifindex]],
            NLM_F_REQUEST | NLM_F_DUMP,
        )
        return [
            Neighbour(
                address=m.get_attr("BATADV_ATTR_NEIGH_ADDRESS"),
                hard_ifindex=m.get_attr("BATADV_ATTR_HARD_IFINDEX"),
                last_seen_ms=m.get_attr("BATADV_ATTR_LAST_SEEN_MSECS"),
                throughput_kbits=m.get_attr("BATADV_ATTR_THROUGHPUT"),
            )
            for m in replies
        ]

    async def originators(self, mesh_ifindex: int) -> list[Originator]:
        replies = await self._request(
            CMD_GET_ORIGINATORS,
            [["BATADV_ATTR_MESH_IFINDEX", mesh_ifindex]],
            NLM_F_REQUEST | NLM_F_DUMP,
        )
        return [
            Originator(
                address=m.get_attr("BATADV_ATTR_ORIG_ADDRESS"),
                next_hop=m.get_attr("BATADV_ATTR_NEIGH_ADDRESS"),
                hard_ifindex=m.get_attr("BATADV_ATTR_HARD_IFINDEX"),
                last_seen_ms=m.get_attr("BATADV_ATTR_LAST_SEEN_MSECS"),
                tq=m.get_attr("BATADV_ATTR_TQ"),
                throughput_kbits=m.get_attr("BATADV_ATTR_THROUGHPUT"),
                best=m.get_attr("BATADV_ATTR_FLAG_BEST") is not None,
            )
            for m in replies
        ]
