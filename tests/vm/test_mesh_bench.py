"""The mesh manager against a real kernel: mac80211_hwsim radios, batman-adv, rtnetlink.

Runs inside the virtual bench (tests/vm/conftest.py boots it). Three nodes in a line, each in
its own network namespace with its own radio; node0 and node2 cannot hear each other. The code
under test talks pyroute2 only; the tests check it against the kernel's own tools (iw, batctl,
ip, ping), which play the independent witness. No timing is asserted: waits are generous polls.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from hw.mesh import MeshConfig, MeshManager
from hw.mesh.addressing import mesh_mac
from hw.mesh.kernel import Pyroute2Backend
from lab.mesh_calls import (
    POLL_INTERVAL_S,
    REPAIR_TIMEOUT,
    ROUTE_TIMEOUT,
    Handset,
    best_next_hop,
    eventually_pings,
    first_address,
    identity,
    in_call,
    look_up,
    note,
    talk,
    until,
)
from vmbench.guest import Bench, Node, in_guest
from vomp.events import CallEnded

ORIG_INTERVAL_MS = 250  # not the default, so the bench proves the genl write took effect


def config(node: Node) -> MeshConfig:
    return MeshConfig(
        netns=node.netns, orig_interval_ms=ORIG_INTERVAL_MS, poll_interval_s=POLL_INTERVAL_S
    )


def managers(nodes: list[Node]) -> list[MeshManager]:
    return [MeshManager(config(n), identity=identity(n)) for n in nodes]


def link_mac(node: Node, ifname: str) -> str:
    (link,) = json.loads(node.sh("ip", "-j", "link", "show", "dev", ifname))
    return link["address"]


@pytest.fixture(scope="module")
def line():
    """Three nodes in a line, brought up once through the mesh manager for the whole module."""
    if not in_guest():
        pytest.skip("bench nodes exist only inside the VM")
    bench = Bench()
    nodes = bench.nodes(3, topology="line")

    async def bring_up():
        started = time.monotonic()
        all_managers = managers(nodes)
        try:
            statuses = await asyncio.gather(*(m.converge() for m in all_managers))
            note("mesh_bring_up_3_nodes", time.monotonic() - started, "s")
            assert all(s.ready for s in statuses), statuses
            await until(
                lambda: best_next_hop(all_managers[0], nodes[2].mac),
                ROUTE_TIMEOUT,
                "route node0 -> node2",
            )
            note("mesh_two_hop_route_after_start", time.monotonic() - started, "s")
        finally:
            for m in all_managers:
                await m.close()

    asyncio.run(bring_up())
    yield nodes
    bench.close()


# --- nl80211 + rtnetlink + batadv genl: what the manager set, seen by the kernel's own tools -----


def test_each_node_is_brought_up_as_configured(line):
    for node in line:
        iw = node.sh("iw", "dev", node.ifname, "info")
        assert "type IBSS" in iw and "ssid mesh-handset" in iw and "(2412 MHz)" in iw
        assert "width: 20 MHz (no HT)" in iw, iw
        sys_net = Path("/sys/class/net")
        # /sys is per namespace: read it from inside the node's namespace
        mtu = int(node.sh("cat", str(sys_net / node.ifname / "mtu")))
        master = node.sh("readlink", str(sys_net / node.ifname / "master")).strip()
        assert mtu >= 1560 and master.endswith("/bat0")
        assert node.sh("batctl", "meshif", "bat0", "bridge_loop_avoidance").strip() == "disabled"
        assert node.sh("batctl", "meshif", "bat0", "orig_interval").strip() == str(ORIG_INTERVAL_MS)
        assert link_mac(node, "bat0") == mesh_mac(identity(node))
        (bat0,) = json.loads(node.sh("ip", "-j", "-4", "addr", "show", "dev", "bat0"))
        assert "UP" in bat0["flags"]
        (inet,) = bat0["addr_info"]
        assert (inet["local"], inet["prefixlen"], inet["broadcast"]) == (
            str(first_address(node)),
            16,
            "10.42.255.255",
        )


def test_a_fresh_manager_on_a_running_mesh_changes_nothing(line):
    async def scenario():
        manager = MeshManager(config(line[1]), identity=identity(line[1]))
        try:
            status = await manager.converge()
            return status, await manager.endpoint()
        finally:
            await manager.close()

    status, endpoint = asyncio.run(scenario())
    assert status.ready and status.joins == 0 and status.errors == 0
    assert endpoint.address == first_address(line[1])
    assert endpoint.broadcast == IPv4Address("10.42.255.255")


def test_the_ends_reach_each_other_only_through_the_middle(line):
    node0, node1, node2 = line

    async def scenario():
        m0, m2 = MeshManager(config(node0)), MeshManager(config(node2))
        try:
            hops = (await best_next_hop(m0, node2.mac), await best_next_hop(m2, node0.mac))
            heard = {n.address for n in await m0.neighbours()}
            return hops, heard
        finally:
            await m0.close()
            await m2.close()

    (hop_0_to_2, hop_2_to_0), heard_by_node0 = asyncio.run(scenario())
    assert hop_0_to_2 == node1.mac and hop_2_to_0 == node1.mac
    assert heard_by_node0 == {node1.mac}
    asyncio.run(eventually_pings(node0, first_address(node2)))


def test_an_arp_probe_across_two_hops_finds_a_taken_address(line):
    node0, _, node2 = line

    async def scenario():
        backend = Pyroute2Backend(netns=node0.netns)
        try:
            taken = await backend.address_in_use(
                "bat0", first_address(node2), mesh_mac(identity(node0))
            )
            free = await backend.address_in_use(
                "bat0", IPv4Address("10.42.0.1"), mesh_mac(identity(node0))
            )
            ours = await backend.address_in_use(
                "bat0", first_address(node0), mesh_mac(identity(node0))
            )
            return taken, free, ours
        finally:
            await backend.close()

    assert asyncio.run(scenario()) == (True, False, False)


def test_tables_read_through_our_batadv_family_match_batctl(line):
    """batctl's JSON views (its own genl client) are the reference; entries age between the two
    reads, so identity fields must match exactly and TQ and last-seen only roughly."""

    def batctl(node: Node, view: str) -> list[dict]:
        return json.loads(node.sh("batctl", "meshif", "bat0", view))

    async def ours(node: Node):
        manager = MeshManager(config(node))
        try:
            return await manager.neighbours(), await manager.originators()
        finally:
            await manager.close()

    for node in line:
        neighbours, originators = asyncio.run(ours(node))
        ref_neighbours, ref_originators = batctl(node, "nj"), batctl(node, "oj")
        assert {(n.address, n.hard_ifindex) for n in neighbours} == {
            (r["neigh_address"], r["hard_ifindex"]) for r in ref_neighbours
        }
        assert {(o.address, o.next_hop, o.hard_ifindex, o.best) for o in originators} == {
            (r["orig_address"], r["neigh_address"], r["hard_ifindex"], r.get("best", False))
            for r in ref_originators
        }
        ref_by_key = {(r["orig_address"], r["neigh_address"]): r for r in ref_originators}
        for o in originators:
            ref = ref_by_key[(o.address, o.next_hop)]
            assert abs(o.tq - ref["tq"]) <= 64
            assert abs(o.last_seen_ms - ref["last_seen_msecs"]) <= 10_000
        assert all(0 < o.tq <= 255 for o in originators)


# --- repairs: the running manager puts the mesh back without being restarted ------------------


async def repaired(
    line: list[Node],
    break_it: Callable[[], None],
    is_whole: Callable[[], bool],
    what: str,
    route_back: bool = True,
) -> MeshManager:
    """Run all three managers, break node0 with `break_it`, wait until the kernel's own tools
    say node0 is whole again (`is_whole`) and, with `route_back`, node0 -> node2 pings.

    When the radio of an end node goes down, batman-adv there drops its routes and translation
    table; unicast to the far end waits for a TT request (its fixed 3 s timeout) after the
    re-join. The waits are generous for a loaded machine; test_mesh_heal.py measures."""
    node0, _, node2 = line
    all_managers = managers(line)
    tasks = [asyncio.create_task(m.run()) for m in all_managers]
    label = what.replace(" ", "_")
    try:
        await until(lambda: all(m.status.ready for m in all_managers), 60, "managers ready")
        started = time.monotonic()
        await asyncio.to_thread(break_it)  # the manager may repair it before `is_whole` looks
        await until(lambda: asyncio.to_thread(is_whole), REPAIR_TIMEOUT, f"repair after {what}")
        await until(lambda: all_managers[0].status.ready, REPAIR_TIMEOUT, "node0 ready again")
        note(f"mesh_repair_{label}", time.monotonic() - started, "s")
        if not route_back:
            return all_managers[0]
        await until(lambda: best_next_hop(all_managers[0], node2.mac), ROUTE_TIMEOUT, "route")
        await eventually_pings(node0, first_address(node2))
        note(f"mesh_route_back_{label}", time.monotonic() - started, "s")
        return all_managers[0]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for m in all_managers:
            await m.close()


def in_ibss(node: Node) -> Callable[[], bool]:
    def check() -> bool:
        info = node.sh("iw", "dev", node.ifname, "info", check=False)
        return "type IBSS" in info and "ssid mesh-handset" in info

    return check


def bat0_addressed(node: Node) -> Callable[[], bool]:
    def check() -> bool:
        shown = node.sh("ip", "-j", "-4", "addr", "show", "dev", "bat0", check=False)
        return f'"local":"{first_address(node)}"' in shown.replace(" ", "")

    return check


def test_a_radio_reset_is_repaired_by_the_running_manager(line):
    node0 = line[0]

    def reset():
        node0.sh("ip", "link", "set", node0.ifname, "down")

    manager = asyncio.run(repaired(line, reset, in_ibss(node0), "radio reset"))
    # At least one re-join; on a loaded host the radio may be seen out of the IBSS twice.
    assert manager.status.joins >= 1 and manager.status.ready


def test_a_radio_that_leaves_the_ibss_rejoins(line):
    node0 = line[0]

    def leave():
        node0.sh("iw", "dev", node0.ifname, "ibss", "leave")

    manager = asyncio.run(repaired(line, leave, in_ibss(node0), "ibss leave", route_back=False))
    # At least one re-join; on a loaded host the radio may be seen out of the IBSS twice.
    assert manager.status.joins >= 1 and manager.status.ready


def test_a_radio_in_a_foreign_ibss_leaves_it_and_joins_ours(line):
    node0 = line[0]
    # No manager runs while we move the radio: a running one would re-join ours in between.
    node0.sh("iw", "dev", node0.ifname, "ibss", "leave")
    node0.sh("iw", "dev", node0.ifname, "ibss", "join", "someone-else", "2437")
    assert "ssid someone-else" in node0.sh("iw", "dev", node0.ifname, "info")

    async def scenario():
        manager = MeshManager(config(node0), identity=identity(node0))
        try:
            return await manager.converge()
        finally:
            await manager.close()

    status = asyncio.run(scenario())
    assert status.ready and status.joins == 1 and status.errors == 0
    info = node0.sh("iw", "dev", node0.ifname, "info")
    assert "ssid mesh-handset" in info and "(2412 MHz)" in info


def test_a_radio_switched_to_station_mode_while_up_is_made_adhoc_again(line):
    node0 = line[0]

    def switch():
        node0.sh("ip", "link", "set", node0.ifname, "down")
        node0.sh("iw", "dev", node0.ifname, "set", "type", "managed")
        node0.sh("ip", "link", "set", node0.ifname, "up")

    manager = asyncio.run(repaired(line, switch, in_ibss(node0), "station mode"))
    # The manager races the three commands (it re-joins after `down`, then `set type` pulls the
    # radio from under it), so a refused step or two is expected; it must still end up whole.
    assert manager.status.joins >= 1 and manager.status.ready


def test_a_deleted_bat0_is_recreated_with_the_same_mac_and_address(line):
    node0 = line[0]

    (old,) = json.loads(node0.sh("ip", "-j", "link", "show", "dev", "bat0"))

    def delete():
        node0.sh("ip", "link", "del", "bat0")

    manager = asyncio.run(repaired(line, delete, bat0_addressed(node0), "bat0 deleted"))
    assert link_mac(node0, "bat0") == mesh_mac(identity(node0))
    (bat0,) = json.loads(node0.sh("ip", "-j", "-4", "addr", "show", "dev", "bat0"))
    assert bat0["ifindex"] != old["ifindex"], "bat0 was re-created"
    assert bat0["addr_info"][0]["local"] == str(first_address(node0))
    assert manager.status.address.ip == first_address(node0)


# --- a VoMP call between the ends, over the mesh the manager keeps up ---------------------------


def test_the_ends_look_each_other_up_and_call_through_a_radio_reset(line):
    node0, _, node2 = line
    reset_note = {}

    async def scenario():
        all_managers = managers(line)
        loops = [asyncio.create_task(m.run()) for m in all_managers]
        caller = callee = None
        talkers: list[asyncio.Task] = []
        try:
            await until(lambda: all(m.status.ready for m in all_managers), 60, "managers ready")
            caller = await Handset.start(node0, all_managers[0], "5550100")
            callee = await Handset.start(node2, all_managers[2], "5550102", answers=True)

            # DNA: each end looks the other's number up, two hops away.
            found_callee, found_caller = await asyncio.gather(
                look_up(caller, "5550102"), look_up(callee, "5550100")
            )
            assert found_callee.sid == callee.node.sid and found_caller.sid == caller.node.sid

            call = caller.protocol.command(lambda n, now: n.dial(found_callee.sid, now))
            await caller.wait_for(in_call(call), "INCALL at node0")
            incoming = await callee.wait_for(in_call(), "INCALL at node2")

            sent_by_caller: list[int] = []
            sent_by_callee: list[int] = []
            talkers = [
                asyncio.create_task(talk(caller, call, b"A", sent_by_caller)),
                asyncio.create_task(talk(callee, incoming.call, b"B", sent_by_callee)),
            ]
            await until(
                lambda: len(callee.heard(incoming.call)) >= 10 and len(caller.heard(call)) >= 10,
                60,
                "audio both ways",
            )

            # Mid-call, node0's radio goes down (a driver reset); its manager must re-join,
            # and frames sent after the re-join must reach both ends.
            started = time.monotonic()
            await asyncio.to_thread(node0.sh, "ip", "link", "set", node0.ifname, "down")
            await until(lambda: all_managers[0].status.joins >= 1, REPAIR_TIMEOUT, "re-join")
            after = (len(sent_by_caller), len(sent_by_callee))
            await until(
                lambda: (
                    any(s >= after[0] for s in callee.heard(incoming.call))
                    and any(s >= after[1] for s in caller.heard(call))
                ),
                REPAIR_TIMEOUT,
                "audio frames sent after the re-join arriving at both ends",
            )
            reset_note["gap"] = time.monotonic() - started
            # At rest the loop should sleep: count the kernel reads over 20 quiet seconds.
            quiet_from = all_managers[0].status.observations
            await asyncio.sleep(20)
            quiet = all_managers[0].status.observations - quiet_from
            reset_note["observations_per_minute"] = quiet * 3.0

            ended = [e for h in (caller, callee) for e in h.events if isinstance(e, CallEnded)]
            assert ended == [], "the call must survive the radio reset"
            caller.protocol.command(lambda n, now: n.hang_up(call, now))
            await callee.wait_for(lambda e: isinstance(e, CallEnded), "CallEnded at node2")
            heard = callee.heard(incoming.call)
            assert heard == sorted(set(heard)), "frames arrive in order, without duplicates"
        finally:
            for task in talkers:
                task.cancel()
            for handset in (caller, callee):
                if handset is not None:
                    handset.close()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, *talkers, return_exceptions=True)
            for m in all_managers:
                await m.close()

    asyncio.run(scenario())
    note("vomp_audio_gap_after_radio_reset", reset_note["gap"], "s")
    note("mesh_observations_per_minute_in_call", reset_note["observations_per_minute"], "1/min")


def test_the_diagnostics_command_shows_the_kernels_tables(line, capsys):
    from firmware.cli import main

    node0, node1, node2 = line
    netns = f"netns={node0.netns}"
    interval = f"orig_interval_ms={ORIG_INTERVAL_MS}"
    who = ["--identity", identity(node0).hex()]
    assert main(["mesh", "status", "--set", netns, "--set", interval, *who]) == 0
    assert main(["mesh", "neighbours", "--set", netns]) == 0
    assert main(["mesh", "originators", "--set", netns]) == 0
    out = capsys.readouterr().out
    assert "mesh: ready" in out and str(first_address(node0)) in out
    best = [line for line in out.splitlines() if line.startswith("* ")]
    assert any(node2.mac in line and line.rstrip().endswith(node0.ifname) for line in best)
    assert any(line.split()[1] == node2.mac and node1.mac in line for line in best)
