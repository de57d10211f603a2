"""The mesh heals while a call goes on: radio resets, a relay that reboots or vanishes, and two
partitions that merge with the same address.

Runs inside the virtual bench: Debian's kernel, mac80211_hwsim radios, batman-adv, the project's
mesh manager on every node and VoMP handsets talking across. Each test measures how long traffic
stopped and writes the figures (`note`) that bench/mesh_heal_bench.py prints. Timing bounds here
are generous on purpose (TCG, a shared machine): they tell a heal from a mesh that stays broken
for tens of seconds (the HT block-ack stall); the figures say how fast it really was.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from ipaddress import IPv4Address, IPv4Network

import pytest

from hw.mesh import MeshManager
from hw.mesh.addressing import candidate_addresses, mesh_mac
from lab.mesh_calls import (
    FIGURES,
    REPAIR_TIMEOUT,
    Call,
    Handset,
    Running,
    best_next_hop,
    config,
    eventually_pings,
    heal_moment,
    identity,
    managers,
    note,
    until,
)
from vmbench.guest import Bench, Node, in_guest
from vomp.events import CallEnded

RESETS = 10
# Traffic must be back this soon after the radio re-joined (the median of the resets): far above
# the 1 s / 4 s goals the bench reports against, far below the 17-50 s of an HT block-ack stall.
RESUME_BOUND_S = 10.0
REBOOT_DOWN_S = 5.0  # how long the middle node stays off (below VoMP's 30 s network timeout)
# batman-adv ignores OGMs with a restarted (random) sequence number from an originator for 30 s
# after it last accepted such a restart (BATADV_RESET_PROTECTION_MS), and it accepts one when it
# first hears a node. A relay rebooted sooner than that after the mesh formed stays unrouted
# until those 30 s pass (12-16 s measured); a relay that had been up for a while is routed again
# at once. The bench measures the latter, the reboot of a relay in service.
RESET_PROTECTION_S = 30.0
RELAY_GAP_BOUND_S = 10.0
MERGE_PREFIX = IPv4Network("10.43.0.0/24")


@pytest.fixture
def bench():
    if not in_guest():
        pytest.skip("bench nodes exist only inside the VM")
    b = Bench()
    yield b
    b.close()


async def call_between(running: Running, a: Node, b: Node, ia: int, ib: int) -> Call:
    caller = await Handset.start(a, running.managers[ia], f"55501{ia:02d}")
    callee = await Handset.start(b, running.managers[ib], f"55501{ib:02d}", answers=True)
    return await Call.place(caller, callee)


async def hang_up(call: Call) -> None:
    await call.stop_talking()
    for handset in (call.caller, call.callee):
        handset.close()


def ended(call: Call) -> list[CallEnded]:
    return [e for h in (call.caller, call.callee) for e in h.events if isinstance(e, CallEnded)]


def ended_at(call: Call) -> list[str]:
    """Which ends ("callee", "caller") saw the call end."""
    return sorted(
        side
        for side, handset in (("caller", call.caller), ("callee", call.callee))
        if any(isinstance(e, CallEnded) for e in handset.events)
    )


async def reset_radio(
    node: Node, manager: MeshManager, call: Call, kind: str
) -> tuple[float, float]:
    """Reset `node`'s radio (`kind` "link": link down, batman drops its routes and TT; "leave":
    IBSS leave, they survive); when its manager re-joined and when the call's audio resumed."""
    heals_before = manager.status.heals
    if kind == "link":
        await asyncio.to_thread(node.sh, "ip", "link", "set", node.ifname, "down")
    else:
        await asyncio.to_thread(node.sh, "iw", "dev", node.ifname, "ibss", "leave")
    await until(lambda: manager.status.heals > heals_before, REPAIR_TIMEOUT, "re-join", 0.05)
    rejoined = heal_moment(manager)
    resumed = await until(lambda: call.resumed_after(rejoined), REPAIR_TIMEOUT, "audio back", 0.05)
    return rejoined, resumed


def test_an_end_nodes_radio_reset_ten_times_heals_within_seconds_and_the_call_goes_on(bench):
    """Odd resets take the radio down and up (batman-adv drops the node's routes and TT), even
    ones leave the IBSS only (routes and TT survive); the manager re-joins each time."""
    nodes = bench.nodes(3, topology="line")
    node0, node1, node2 = nodes
    heals: dict[str, list[float]] = {"link": [], "leave": []}
    stations = {}
    gaps: list[float] = []

    async def scenario():
        running = Running(managers(nodes))
        call = None
        try:
            await running.ready()
            call = await call_between(running, node0, node2, 0, 2)
            m0 = running.managers[0]
            for n in range(RESETS):
                kind = "link" if n % 2 == 0 else "leave"
                broken_at = time.monotonic()
                rejoined, resumed = await reset_radio(node0, m0, call, kind)
                heals[kind].append(resumed - rejoined)
                await asyncio.sleep(1.0)
                gaps.append(call.longest_silence(broken_at, time.monotonic())[0])
            # What rates the middle node's stations use (hwsim; a real Pi's brcmfmac may differ).
            stations["dump"] = await asyncio.to_thread(
                node1.sh, "iw", "dev", node1.ifname, "station", "dump"
            )
            assert ended(call) == [], "the call must survive every reset"
            heard = call.callee.heard(call.callee_call)
            assert heard == sorted(set(heard)), "frames arrive in order, without duplicates"
        finally:
            if call is not None:
                await hang_up(call)
            await running.stop()

    asyncio.run(scenario())
    every = sorted(heals["link"] + heals["leave"])
    note("mesh_heal_radio_reset_ms_p50", statistics.median(every) * 1000, "ms")
    note("mesh_heal_radio_reset_ms_max", every[-1] * 1000, "ms")
    note("mesh_heal_radio_reset_link_down_ms_max", max(heals["link"]) * 1000, "ms")
    note("mesh_heal_radio_reset_ibss_leave_ms_max", max(heals["leave"]) * 1000, "ms")
    note("mesh_heal_radio_reset_audio_gap_ms_p50", statistics.median(gaps) * 1000, "ms")
    note("mesh_heal_radio_reset_audio_gap_ms_max", max(gaps) * 1000, "ms")
    rates = [float(r) for r in re.findall(r"tx bitrate:\s+([\d.]+) MBit/s", stations["dump"])]
    note("mesh_hwsim_station_tx_bitrate_mbit_max", max(rates, default=0.0), "Mbit/s")
    if FIGURES.parent.is_dir():
        (FIGURES.parent / "iw_station_dump.txt").write_text(stations["dump"])
    # The median: one reset stretched by a loaded host must not fail the test, while an HT
    # block-ack stall would stretch every one of them.
    assert statistics.median(every) < RESUME_BOUND_S, every


HT_RESETS = 3
# The neighbour resets one MAC's station at most once per 2 s (STATION_RESET_SPACING_S).
HT_RESET_SPACING_S = 2.5


def test_with_ht_the_neighbour_resets_the_station_of_a_reset_node_and_traffic_resumes(bench):
    """With HT the reset node restarts its sequence numbers at 0; without the station-reset
    notice the neighbour's stale block-ack window drops its unicast frames for 17-50 s."""
    nodes = bench.nodes(3, topology="line")
    node0, _, node2 = nodes
    resumes: list[float] = []
    resets = {}

    async def scenario():
        running = Running(managers(nodes, ht=True))
        call = None
        try:
            await running.ready()
            call = await call_between(running, node0, node2, 0, 2)
            m0, m1 = running.managers[0], running.managers[1]
            resets_before = m1.status.station_resets
            for n in range(HT_RESETS):
                kind = "link" if n % 2 == 0 else "leave"
                rejoined, resumed = await reset_radio(node0, m0, call, kind)
                resumes.append(resumed - rejoined)
                await asyncio.sleep(HT_RESET_SPACING_S)
            resets["middle"] = m1.status.station_resets - resets_before
            resets["last_heal"] = m1.status.last_heal
            assert ended(call) == [], "the call must survive every reset"
        finally:
            if call is not None:
                await hang_up(call)
            await running.stop()

    asyncio.run(scenario())
    note("mesh_heal_ht_radio_reset_ms_max", max(resumes) * 1000, "ms")
    assert resets["middle"] >= HT_RESETS, resets
    assert max(resumes) < RESUME_BOUND_S, resumes


def test_the_middle_node_reboots_and_the_call_survives_it(bench):
    nodes = bench.nodes(3, topology="line")
    node0, node1, node2 = nodes
    outcome = {}

    async def scenario():
        running = Running(managers(nodes))
        call = None
        try:
            await running.ready()
            formed = time.monotonic()
            call = await call_between(running, node0, node2, 0, 2)
            await asyncio.sleep(max(0.0, formed + RESET_PROTECTION_S + 2 - time.monotonic()))
            # The reboot: the manager stops, bat0 goes, the radio is down and back to station
            # mode as at power-on; then a fresh manager brings the node up from scratch.
            await running.stop_one(running.managers[1])
            broken_at = time.monotonic()
            await asyncio.to_thread(node1.sh, "ip", "link", "del", "bat0")
            await asyncio.to_thread(node1.sh, "ip", "link", "set", node1.ifname, "down")
            await asyncio.to_thread(node1.sh, "iw", "dev", node1.ifname, "set", "type", "managed")
            await asyncio.sleep(REBOOT_DOWN_S)
            marks = call.sent_marks()
            booted = time.monotonic()
            fresh = MeshManager(config(node1), identity=identity(node1))
            running.start_one(fresh)
            await until(lambda: fresh.status.ready, REPAIR_TIMEOUT, "middle node up again")
            up = time.monotonic()
            await until(
                lambda: call.heard_since(marks)() or len(ended_at(call)) == 2,
                REPAIR_TIMEOUT,
                "audio across the line again, or the call ended at both ends",
            )
            resumed = call.resumed_after(up) or time.monotonic()
            if ended_at(call):  # the other end has a few seconds to agree
                await until(lambda: len(ended_at(call)) == 2, 10, "both ends ending the call")
            outcome["bring_up"] = up - booted
            outcome["resume"] = resumed - up
            outcome["gap"] = call.longest_silence(broken_at, resumed + 0.5)[0]
            outcome["ended_at"] = ended_at(call)
        finally:
            if call is not None:
                await hang_up(call)
            await running.stop()

    asyncio.run(scenario())
    note("mesh_heal_relay_reboot_bring_up_ms", outcome["bring_up"] * 1000, "ms")
    note("mesh_heal_relay_reboot_ms", outcome["resume"] * 1000, "ms")
    note("mesh_heal_relay_reboot_audio_gap_ms", outcome["gap"] * 1000, "ms")
    note("mesh_heal_relay_reboot_call_ended", len(outcome["ended_at"]) / 2, "calls")
    # The call goes on, or (a loaded machine stretching the gap past VoMP's 30 s network
    # timeout) ends at both ends: never at one end only.
    assert outcome["ended_at"] in ([], ["callee", "caller"]), outcome["ended_at"]


def test_a_diamond_loses_the_relay_it_routes_over_and_batman_reroutes_the_call(bench):
    nodes = bench.nodes(4, topology="full")
    node0, _, _, node3 = nodes
    node0.block(node3.mac)  # the ends meet only through node1 or node2
    node3.block(node0.mac)
    outcome = {}

    async def scenario():
        running = Running(managers(nodes))
        call = None
        try:
            await running.ready()
            m0 = running.managers[0]
            await until(lambda: best_next_hop(m0, node3.mac), 120, "route node0 -> node3")
            call = await call_between(running, node0, node3, 0, 3)
            relay_mac = await best_next_hop(m0, node3.mac)
            (relay,) = [n for n in nodes if n.mac == relay_mac]
            # The relay walks away: its manager stops and its radio goes quiet.
            await running.stop_one(running.managers[relay.index])
            lost_at = time.monotonic()
            back_relay = await best_next_hop(running.managers[3], node0.mac)
            await asyncio.to_thread(relay.sh, "ip", "link", "set", relay.ifname, "down")
            marks = call.sent_marks()
            await until(call.heard_since(marks), REPAIR_TIMEOUT, "rerouted audio", 0.05)
            await asyncio.sleep(2.0)
            gap, resumed = call.longest_silence(lost_at, time.monotonic())
            outcome["heal"] = resumed - lost_at
            outcome["gap"] = gap
            outcome["via"] = await best_next_hop(m0, node3.mac)
            outcome["relay"] = relay_mac
            outcome["same_relay_both_ways"] = back_relay == relay_mac
            assert ended(call) == []
        finally:
            if call is not None:
                await hang_up(call)
            await running.stop()

    asyncio.run(scenario())
    note("mesh_heal_relay_loss_ms", outcome["heal"] * 1000, "ms")
    note("mesh_heal_relay_loss_audio_gap_ms", outcome["gap"] * 1000, "ms")
    print(f"relay lost carried both directions: {outcome['same_relay_both_ways']}")
    assert outcome["via"] not in (None, outcome["relay"])
    assert outcome["gap"] < RELAY_GAP_BOUND_S


def colliding_identities(others: int) -> tuple[list[bytes], tuple[bytes, bytes]]:
    """Identities for the merge test: two whose first addresses in MERGE_PREFIX are the same,
    and `others` whose first two addresses clash with nobody's (found by search, not luck)."""
    first_by_identity: dict[bytes, list] = {}
    pair: tuple[bytes, bytes] | None = None
    for n in range(2000):
        who = f"bench merge {n}".encode()
        addresses = candidate_addresses(who, MERGE_PREFIX)
        mine = [next(addresses), next(addresses)]
        twin = next((o for o, a in first_by_identity.items() if a[0] == mine[0]), None)
        if pair is None and twin is not None:
            pair = (twin, who)
        first_by_identity[who] = mine
        if pair is not None and len(first_by_identity) > 40:
            break
    assert pair is not None
    used = {a for who in pair for a in first_by_identity[who]}
    free = []
    for who, mine in first_by_identity.items():
        if who not in pair and not set(mine) & used and len(free) < others:
            free.append(who)
            used |= set(mine)
    return free, pair


def arp_entry(node: Node, address: IPv4Address) -> str:
    """The MAC `node`'s kernel ARP cache holds for `address` on bat0 ("" if none)."""
    line = node.sh("ip", "neigh", "show", str(address), "dev", "bat0").split()
    return line[line.index("lladdr") + 1] if "lladdr" in line else ""


def test_an_announcement_through_batman_repoints_the_neighbours_arp_caches(bench):
    """After a merge a neighbour's kernel may hold a confirmed ARP entry naming the handset that
    moved away; only the announcement can fix it before the call's network timeout."""
    nodes = bench.nodes(3, topology="line")
    stale_mac = "02:11:22:33:44:55"
    seen = {}

    async def scenario():
        running = Running(managers(nodes))
        try:
            await running.ready()
            holder = running.managers[1]
            address = holder.status.address.ip
            own_mac = mesh_mac(holder.identity)
            for node in (nodes[0], nodes[2]):
                await eventually_pings(node, address)
                node.sh("ip", "neigh", "replace", str(address), "lladdr", stale_mac,
                        "dev", "bat0", "nud", "reachable")  # fmt: skip
            await asyncio.sleep(1.2)  # Linux keeps a just-changed entry for its locktime (1 s)
            await holder.backend.announce(holder.config.mesh_interface, address, own_mac)
            await asyncio.sleep(0.5)
            seen.update(mac=own_mac, entries=[arp_entry(n, address) for n in (nodes[0], nodes[2])])
        finally:
            await running.stop()

    asyncio.run(scenario())
    assert seen["entries"] == [seen["mac"], seen["mac"]]


def test_two_partitions_merge_with_one_address_and_exactly_one_side_moves(bench):
    nodes = bench.nodes(4, topology="line")
    node0, node1, node2, node3 = nodes
    (left_end, right_end), (left_collider, right_collider) = colliding_identities(2)
    identities = [left_end, left_collider, right_collider, right_end]
    node1.block(node2.mac)  # two partitions: node0-node1 and node2-node3
    node2.block(node1.mac)
    outcome = {}

    async def scenario():
        running = Running(managers(nodes, identities, prefix=MERGE_PREFIX))
        calls: list[Call] = []
        try:
            await running.ready()
            m1, m2 = running.managers[1], running.managers[2]
            assert m1.status.address == m2.status.address, "the same address on both sides"
            contested = m1.status.address.ip
            calls.append(await call_between(running, node0, node1, 0, 1))
            calls.append(await call_between(running, node3, node2, 3, 2))
            merged_at = time.monotonic()
            for node, other in ((node1, node2), (node2, node1)):
                await asyncio.to_thread(node.unblock, other.mac)
            await until(
                lambda: (
                    m1.status.ready and m2.status.ready and m1.status.address != m2.status.address
                ),
                REPAIR_TIMEOUT,
                "one side moved",
            )
            moved = m1 if m1.status.address.ip != contested else m2
            kept = m2 if moved is m1 else m1
            outcome["resolved"] = heal_moment(moved) - merged_at
            outcome["moved_mac"] = mesh_mac(moved.identity)
            outcome["kept_mac"] = mesh_mac(kept.identity)
            outcome["kept_address"] = kept.status.address.ip == contested
            marks = [call.sent_marks() for call in calls]
            for call, mark in zip(calls, marks, strict=True):
                await until(call.heard_since(mark), REPAIR_TIMEOUT, "audio after the move")
            # the longest one-way silence of either call, duplicate window and move included
            now = time.monotonic()
            outcome["gap"] = max(call.longest_silence(merged_at, now)[0] for call in calls)
            outcome["moves"] = sum(m.status.address.ip != contested for m in (m1, m2))
            outcome["ended"] = [e for call in calls for e in ended(call)]
            # The merged mesh carries calls between the partitions too: the movers' peers
            # reach them at their new address.
            await until(lambda: best_next_hop(running.managers[0], node3.mac), 120, "route")
        finally:
            for call in calls:
                await hang_up(call)
            await running.stop()

    asyncio.run(scenario())
    note("mesh_heal_partition_merge_ms", outcome["resolved"] * 1000, "ms")
    note("mesh_heal_partition_merge_audio_gap_ms", outcome["gap"] * 1000, "ms")
    assert outcome["moves"] == 1 and outcome["kept_address"]
    assert outcome["moved_mac"] > outcome["kept_mac"], "the greater bat0 MAC moves"
    assert outcome["ended"] == []
