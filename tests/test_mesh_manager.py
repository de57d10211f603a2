"""The manager's loop against the in-memory kernel: start-up, repairs, addressing, errors.

The same paths run against the real kernel in tests/vm/test_mesh_bench.py.
"""

import asyncio
import errno
import json
import time
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from itertools import islice

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hw.mesh import MeshConfig, MeshManager
from hw.mesh.addressing import candidate_addresses, mesh_mac
from hw.mesh.backend import AddAddress, RemoveAddress, make_backend
from hw.mesh.batadv import Originator
from hw.mesh.fake import FakeMeshBackend
from hw.mesh.reconcile import CreateMesh, JoinIbss, LeaveIbss, SetMtu, SetRadioType

IDENTITY = bytes(range(32))
CONFIG = MeshConfig(backend="fake")


def run(coro):
    return asyncio.run(coro)


def manager_with_radio(**config) -> tuple[MeshManager, FakeMeshBackend]:
    backend = FakeMeshBackend()
    backend.add_radio("wlan0")
    return MeshManager(MeshConfig(backend="fake", **config), backend, IDENTITY), backend


def expected_address(identity=IDENTITY, n=0) -> IPv4Address:
    return next(islice(candidate_addresses(identity, CONFIG.prefix), n, None))


def test_the_config_chooses_the_fake_backend():
    assert isinstance(make_backend(CONFIG), FakeMeshBackend)


def test_start_up_brings_radio_mesh_and_address_up_in_one_converge():
    manager, kernel = manager_with_radio()
    status = run(manager.converge())
    assert status.ready and status.waiting_for is None and status.joins == 1
    radio, bat0 = kernel.link_named("wlan0"), kernel.link_named("bat0")
    assert (radio.iftype, radio.up, radio.mtu, radio.ssid, radio.freq_mhz) == (
        "adhoc",
        True,
        1560,
        "mesh-handset",
        2412,
    )
    assert radio.master == bat0.ifindex
    assert bat0.up and not bat0.bridge_loop_avoidance and bat0.mac == mesh_mac(IDENTITY)
    assert bat0.addresses == [IPv4Interface(f"{expected_address()}/16")]


def test_the_ibss_is_joined_without_ht_unless_the_config_keeps_it():
    manager, kernel = manager_with_radio()
    run(manager.converge())
    (join,) = [a for a in kernel.applied if isinstance(a, JoinIbss)]
    assert join.ibss.ht is False and kernel.link_named("wlan0").ht is False
    manager, kernel = manager_with_radio(ht=True)
    run(manager.converge())
    assert kernel.link_named("wlan0").ht is True and manager.status.ready


def test_a_radio_left_in_the_ibss_with_ht_is_joined_again_without_it():
    manager, kernel = manager_with_radio(ht=True)
    run(manager.converge())
    manager = MeshManager(CONFIG, kernel, IDENTITY)
    status = run(manager.converge())
    assert status.ready and status.joins == 1 and kernel.link_named("wlan0").ht is False


def test_a_second_converge_changes_nothing_and_looks_once():
    manager, kernel = manager_with_radio()
    run(manager.converge())
    steps, looks = len(kernel.applied), manager.status.observations
    run(manager.converge())
    assert len(kernel.applied) == steps and manager.status.observations == looks + 1


def test_the_endpoint_is_bat0s_address_and_the_prefix_broadcast():
    manager, _ = manager_with_radio()
    run(manager.converge())
    endpoint = run(manager.endpoint())
    assert endpoint.ifname == "bat0"
    assert endpoint.address == expected_address()
    assert endpoint.broadcast == IPv4Address("10.42.255.255")


def test_the_address_is_the_same_on_every_start():
    first, _ = manager_with_radio()
    second, _ = manager_with_radio()
    run(first.converge())
    run(second.converge())
    assert first.status.address == second.status.address


def test_a_taken_address_moves_the_handset_to_its_next_candidate():
    manager, kernel = manager_with_radio()
    kernel.foreign_addresses[expected_address()] = "02:99:99:99:99:99"
    run(manager.converge())
    assert kernel.probed[:2] == [expected_address(), expected_address(n=1)]
    assert manager.status.address.ip == expected_address(n=1)


def test_a_stale_answer_with_our_own_mac_is_not_a_conflict():
    manager, kernel = manager_with_radio()
    kernel.foreign_addresses[expected_address()] = mesh_mac(IDENTITY)
    run(manager.converge())
    assert manager.status.address.ip == expected_address()


def test_when_every_candidate_is_taken_the_status_says_so_and_no_address_is_added():
    manager, kernel = manager_with_radio()
    for address in islice(candidate_addresses(IDENTITY, CONFIG.prefix), 8):
        kernel.foreign_addresses[address] = "02:99:99:99:99:99"
    status = run(manager.converge())
    assert not status.ready and "AddressExhausted" in status.last_error
    assert not any(isinstance(a, AddAddress) for a in kernel.applied)


def test_without_an_identity_the_radio_mac_is_used():
    backend = FakeMeshBackend()
    backend.add_radio("wlan0", mac="02:00:00:00:01:00")
    manager = MeshManager(CONFIG, backend)
    run(manager.converge())
    assert manager.status.address.ip == expected_address(bytes.fromhex("020000000100"))


def test_a_radio_reset_is_repaired_by_rejoining():
    manager, kernel = manager_with_radio()
    run(manager.converge())
    kernel.reset_radio("wlan0")
    assert run(manager.converge()).joins == 2
    radio = kernel.link_named("wlan0")
    assert radio.up and radio.ssid == "mesh-handset" and manager.status.ready


def test_a_radio_that_drops_out_of_the_ibss_rejoins():
    manager, kernel = manager_with_radio()
    run(manager.converge())
    kernel.drop_out_of_ibss("wlan0")
    run(manager.converge())
    assert len([a for a in kernel.applied if isinstance(a, JoinIbss)]) == 2
    assert manager.status.ready and manager.status.joins == 2


def test_a_vanished_bat0_is_recreated_with_the_same_mac_and_address():
    manager, kernel = manager_with_radio()
    run(manager.converge())
    before = (kernel.link_named("bat0").mac, manager.status.address)
    kernel.remove_link("bat0")
    run(manager.converge())
    bat0 = kernel.link_named("bat0")
    assert (bat0.mac, manager.status.address) == before
    assert kernel.link_named("wlan0").master == bat0.ifindex


def test_a_radio_that_vanishes_and_returns_is_set_up_again():
    manager, kernel = manager_with_radio()
    run(manager.converge())
    kernel.remove_link("wlan0")
    status = run(manager.converge())
    assert not status.ready and status.waiting_for == "no Wi-Fi interface"
    kernel.add_radio("wlan0")
    assert run(manager.converge()).ready
    assert kernel.link_named("wlan0").ssid == "mesh-handset"


def test_a_failing_step_is_recorded_and_retried_on_the_next_converge():
    manager, kernel = manager_with_radio()
    kernel.fail_next[CreateMesh] = OSError(errno.EOPNOTSUPP, "batman-adv missing")
    status = run(manager.converge())
    assert not status.ready and status.errors == 1
    assert status.last_error == "StepFailed: CreateMesh failed: [Errno 95] batman-adv missing"
    assert run(manager.converge()).ready
    assert manager.status.last_error is None


def test_a_configured_radio_name_leaves_other_radios_alone():
    manager, kernel = manager_with_radio(radio="wlan1")
    kernel.add_radio("wlan1", mac="02:00:00:00:02:00")
    run(manager.converge())
    assert kernel.link_named("wlan0").iftype == "station"
    assert kernel.link_named("wlan1").ssid == "mesh-handset"
    assert not any(
        isinstance(a, SetRadioType) and a.ifindex == kernel.link_named("wlan0").ifindex
        for a in kernel.applied
    )


def test_run_repairs_a_reset_without_being_restarted():
    async def scenario():
        manager, kernel = manager_with_radio(poll_interval_s=30)
        task = asyncio.create_task(manager.run())
        await asyncio.sleep(0.01)
        assert manager.status.ready
        kernel.reset_radio("wlan0")  # wakes the loop like a netlink event would
        await asyncio.sleep(0.01)
        task.cancel()
        return manager, kernel

    manager, kernel = run(scenario())
    assert manager.status.joins == 2 and kernel.link_named("wlan0").ssid == "mesh-handset"


def test_unmanaged_mode_uses_the_named_interface_as_it_is():
    backend = FakeMeshBackend()
    backend.add_link(
        "eth0", "02:00:00:00:03:00", up=True, addresses=[IPv4Interface("192.168.7.20/24")]
    )
    manager = MeshManager(MeshConfig(backend="fake", mode="unmanaged", interface="eth0"), backend)
    assert run(manager.converge()).ready
    endpoint = run(manager.endpoint())
    assert (endpoint.ifname, endpoint.address, endpoint.broadcast) == (
        "eth0",
        IPv4Address("192.168.7.20"),
        IPv4Address("192.168.7.255"),
    )
    assert backend.applied == []  # touches nothing


def test_unmanaged_mode_without_an_address_waits_and_says_why():
    backend = FakeMeshBackend()
    manager = MeshManager(MeshConfig(backend="fake", mode="unmanaged"), backend)
    status = run(manager.converge())
    assert not status.ready and status.waiting_for == "no IPv4 address on any up interface"


@pytest.mark.parametrize("prefix", ["10.42.0.0/16", "192.168.50.0/24", "10.0.0.0/30"])
def test_claimed_addresses_stay_inside_the_prefix(prefix):
    manager, _ = manager_with_radio(prefix=IPv4Network(prefix))
    run(manager.converge())
    assert manager.status.address.network == IPv4Network(prefix)


def test_inspect_reports_without_changing_anything():
    manager, kernel = manager_with_radio()
    status = run(manager.inspect())
    assert not status.ready and kernel.applied == []
    assert status.waiting_for == "would still do: SetRadioType, CreateMesh"
    run(manager.converge())
    assert run(MeshManager(CONFIG, kernel, IDENTITY).inspect()).ready


def test_the_diagnostics_views_show_best_routes_and_quality():
    from hw.mesh.batadv import Neighbour, Originator
    from hw.mesh.diagnostics import format_neighbours, format_originators, format_status

    manager, kernel = manager_with_radio()
    run(manager.converge())
    kernel.neighbour_table = [Neighbour("02:00:00:00:02:00", 2, 120)]
    kernel.originator_table = [
        Originator("02:00:00:00:03:00", "02:00:00:00:02:00", 2, 800, 200, None, True),
        Originator("02:00:00:00:02:00", "02:00:00:00:02:00", 2, 120, 255, None, True),
    ]
    names = {2: "wlan0"}
    assert "ready" in format_status(manager.status)
    assert "02:00:00:00:02:00  wlan0" in format_neighbours(run(manager.neighbours()), names)
    table = format_originators(run(manager.originators()), names).splitlines()
    assert table[1].startswith("* 02:00:00:00:02:00") and "255/255" in table[1]
    assert table[2].startswith("* 02:00:00:00:03:00") and "200/255" in table[2]


def test_the_mesh_command_reports_setting_errors_with_a_fix(capsys):
    from firmware.cli import main

    assert main(["mesh", "status", "--set", "bssid=zz"]) == 2
    assert "bssid" in capsys.readouterr().err


radio_states = st.fixed_dictionaries(
    {
        "iftype": st.sampled_from(["station", "adhoc", "monitor"]),
        "up": st.booleans(),
        "mtu": st.sampled_from([1500, 1560, 2304]),
        "ssid": st.sampled_from([None, "mesh-handset", "other"]),
        "freq_mhz": st.sampled_from([None, 2412, 2437]),
    }
)
mesh_states = st.none() | st.fixed_dictionaries(
    {
        "up": st.booleans(),
        "mac": st.sampled_from(["fe:00:00:00:00:01", mesh_mac(IDENTITY)]),
        "bridge_loop_avoidance": st.booleans(),
        "orig_interval_ms": st.sampled_from([1000, 5000]),
        "addresses": st.sampled_from([[], [IPv4Interface("192.168.1.9/24")]]),
    }
)


@settings(max_examples=150, deadline=None)
@given(radio=radio_states, mesh=mesh_states, enslaved=st.booleans())
def test_from_any_starting_state_one_converge_reaches_the_configured_mesh(radio, mesh, enslaved):
    backend = FakeMeshBackend()
    link = backend.add_radio("wlan0")
    for key, value in radio.items():
        setattr(link, key, value)
    if link.ssid is not None and not (link.up and link.iftype == "adhoc"):
        link.ssid = link.freq_mhz = None  # the kernel has no IBSS on a down or non-adhoc radio
    if link.ssid is not None and link.freq_mhz is None:
        link.freq_mhz = 2437  # a settled IBSS has a channel (a join in progress is tested apart)
    if mesh is not None:
        bat0 = backend.add_link("bat0", **mesh)
        if enslaved:
            link.master = bat0.ifindex
    manager = MeshManager(CONFIG, backend, IDENTITY)
    assert run(manager.converge()).ready
    link, bat0 = backend.link_named("wlan0"), backend.link_named("bat0")
    assert (link.iftype, link.up, link.ssid, link.freq_mhz) == ("adhoc", True, "mesh-handset", 2412)
    assert link.mtu >= 1560 and link.master == bat0.ifindex and bat0.up
    assert not bat0.bridge_loop_avoidance and bat0.orig_interval_ms == 1000
    assert IPv4Interface(f"{expected_address()}/16") in bat0.addresses


def test_run_retries_a_refused_step_without_waiting_for_a_change_or_the_poll():
    async def scenario():
        manager, kernel = manager_with_radio(poll_interval_s=600)
        kernel.fail_next[JoinIbss] = OSError(errno.EOPNOTSUPP, "raced with a type change")
        task = asyncio.create_task(manager.run())
        try:
            await asyncio.wait_for(_until_ready(manager), 10)
        finally:
            task.cancel()
        return manager

    manager = run(scenario())
    assert manager.status.errors == 1 and manager.status.ready and manager.status.joins == 1


async def _until_ready(manager: MeshManager) -> None:
    while not manager.status.ready:
        await asyncio.sleep(0.05)


def test_a_radio_capped_at_mtu_1500_still_joins_and_the_status_warns():
    backend = FakeMeshBackend()
    radio = backend.add_radio("wlan0")
    radio.max_mtu = 1500  # like the Pi's brcmfmac
    manager = MeshManager(CONFIG, backend, IDENTITY)
    status = run(manager.converge())
    assert status.ready and status.errors == 0 and "MTU 1560" in status.warning
    assert radio.mtu == 1500 and radio.ssid == "mesh-handset"
    run(manager.converge())
    assert sum(isinstance(a, SetMtu) for a in backend.applied) == 1  # tried once, not again


def test_a_join_still_scanning_is_waited_for_not_restarted():
    manager, kernel = manager_with_radio()
    kernel.slow_joins = True
    status = run(manager.converge())
    assert status.ready and status.joins == 1
    assert not any(isinstance(a, LeaveIbss) for a in kernel.applied)


# --- healing: when and how long, and duplicate addresses after partitions merge ---------------

OTHER = Originator("02:00:00:00:09:00", "02:00:00:00:09:00", 2, 100, 255, None, True)


def test_start_up_is_not_a_heal_and_the_status_says_so():
    from hw.mesh.diagnostics import format_status

    manager, _ = manager_with_radio()
    status = run(manager.converge())
    assert status.heals == 0 and status.last_heal_at is None
    assert "last heal: never" in format_status(status)


def test_a_repaired_radio_reset_is_recorded_as_a_heal_with_its_duration():
    from hw.mesh.diagnostics import format_status

    manager, kernel = manager_with_radio()
    run(manager.converge())
    kernel.reset_radio("wlan0")
    before = time.time()
    status = run(manager.converge())
    assert status.heals == 1 and status.last_heal == "radio back in the IBSS"
    assert 0 <= status.last_heal_s < 5 and before <= status.last_heal_at <= time.time()
    assert "radio back in the IBSS); 1 heal so far" in format_status(status)
    kernel.remove_link("bat0")
    assert run(manager.converge()).last_heal == "bat0 re-created" and status.heals == 2


def ready_pair(own_mac_wins: bool) -> tuple[MeshManager, FakeMeshBackend, str]:
    """A ready manager, and a foreign MAC that sorts after ours (we keep) or before (we move)."""
    manager, kernel = manager_with_radio()
    run(manager.converge())
    other = "ff:ff:ff:ff:ff:ff" if own_mac_wins else "00:00:00:00:00:01"
    return manager, kernel, other


@pytest.fixture
def no_merge_spacing(monkeypatch):
    import hw.mesh.manager as manager_module

    monkeypatch.setattr(manager_module, "MERGE_PROBE_SPACING_S", 0.0)


@pytest.mark.usefixtures("no_merge_spacing")
def test_when_partitions_merge_a_duplicate_address_moves_the_greater_mac():
    manager, kernel, other = ready_pair(own_mac_wins=False)
    run(manager.watch())  # the first look at the originators; the address is still ours
    old = manager.status.address
    kernel.foreign_addresses[old.ip] = other
    kernel.originator_table = [OTHER]  # a partition appeared: batman-adv lists a new originator
    run(manager.watch())
    assert RemoveAddress(kernel.link_named("bat0").ifindex, old) in kernel.applied
    assert manager.status.address.ip == expected_address(n=1)
    assert kernel.link_named("bat0").addresses == [manager.status.address]
    assert kernel.announced[-1] == expected_address(n=1)
    assert kernel.handed_over == [(old.ip, other)]  # caches that named us must name the holder
    status = manager.status
    assert status.address_conflicts == 1 and status.heals == 1 and status.ready
    assert status.last_heal == f"duplicate address {old.ip}: moved"


@pytest.mark.usefixtures("no_merge_spacing")
def test_the_smaller_mac_keeps_the_address_announces_it_and_notes_when_the_other_moved(
    monkeypatch,
):
    import hw.mesh.manager as manager_module

    monkeypatch.setattr(manager_module, "CONFLICT_RECHECK_S", 0.0)
    manager, kernel, other = ready_pair(own_mac_wins=True)
    run(manager.watch())
    kept = manager.status.address
    kernel.foreign_addresses[kept.ip] = other
    kernel.originator_table = [OTHER]
    run(manager.watch())
    assert not any(isinstance(a, RemoveAddress) for a in kernel.applied)
    assert manager.status.address == kept and kernel.announced[-1] == kept.ip
    assert manager.status.address_conflicts == 1 and manager.status.heals == 0
    run(manager.watch())  # the other has not moved yet: the same duplicate, counted once
    assert manager.status.address_conflicts == 1 and len(kernel.announced) >= 2
    del kernel.foreign_addresses[kept.ip]  # the other handset moved
    run(manager.watch())
    assert manager.status.heals == 1 and "other handset moved" in manager.status.last_heal


def test_without_a_merge_the_address_is_probed_only_every_check_interval(monkeypatch):
    import hw.mesh.manager as manager_module

    monkeypatch.setattr(manager_module, "MERGE_PROBE_SPACING_S", 0.0)
    manager, kernel = manager_with_radio(address_check_interval_s=3600)
    run(manager.converge())
    probes = len(kernel.probed)
    run(manager.watch())
    run(manager.watch())
    assert len(kernel.probed) == probes + 1
    kernel.originator_table = [OTHER]
    run(manager.watch())
    assert len(kernel.probed) == probes + 2


@pytest.mark.usefixtures("no_merge_spacing")
def test_after_a_merge_a_free_address_is_announced_in_case_its_twin_moved_first():
    manager, kernel = manager_with_radio()
    run(manager.converge())
    run(manager.watch())  # the first look: a periodic probe, nothing announced
    announced = len(kernel.announced)
    kernel.originator_table = [OTHER]
    run(manager.watch())
    assert kernel.announced[announced:] == [manager.status.address.ip]


def test_merges_in_quick_succession_share_one_probe_and_none_is_forgotten(monkeypatch):
    import hw.mesh.manager as manager_module

    manager, kernel = manager_with_radio(address_check_interval_s=3600)
    run(manager.converge())
    run(manager.watch())  # probes: the first look
    probes = len(kernel.probed)
    kernel.originator_table = [OTHER]
    run(manager.watch())  # a merge right after a probe waits for the spacing
    assert len(kernel.probed) == probes
    monkeypatch.setattr(manager_module, "MERGE_PROBE_SPACING_S", 0.0)
    run(manager.watch())  # no new originator since, but the merge is still pending
    assert len(kernel.probed) == probes + 1
    run(manager.watch())
    assert len(kernel.probed) == probes + 1


def colliding_identities(prefix: IPv4Network) -> tuple[bytes, bytes]:
    """Two identities whose first addresses in `prefix` are the same (found by search)."""
    seen: dict[IPv4Address, bytes] = {}
    for n in range(1000):
        identity = f"handset {n}".encode()
        first = next(candidate_addresses(identity, prefix))
        if first in seen:
            return seen[first], identity
        seen[first] = identity
    raise AssertionError("no collision found")


@pytest.mark.usefixtures("no_merge_spacing")
def test_both_sides_of_a_duplicate_decide_alike_so_exactly_one_moves():
    prefix = IPv4Network("10.42.0.0/28")
    sides = []
    for identity in colliding_identities(prefix):
        kernel = FakeMeshBackend()
        kernel.add_radio("wlan0")
        manager = MeshManager(MeshConfig(backend="fake", prefix=prefix), kernel, identity)
        run(manager.converge())
        run(manager.watch())
        sides.append((manager, kernel))
    (a, a_kernel), (b, b_kernel) = sides
    assert a.status.address == b.status.address  # each claimed it in its own partition
    a_kernel.foreign_addresses[a.status.address.ip] = mesh_mac(b.identity)
    b_kernel.foreign_addresses[b.status.address.ip] = mesh_mac(a.identity)
    for _, kernel in sides:
        kernel.originator_table = [OTHER]
    for manager, _ in sides:
        run(manager.watch())
    moved = [m for m, k in sides if any(isinstance(x, RemoveAddress) for x in k.applied)]
    assert len(moved) == 1 and mesh_mac(moved[0].identity) == max(
        mesh_mac(a.identity), mesh_mac(b.identity)
    )
    assert a.status.address != b.status.address and a.status.ready and b.status.ready


def test_the_status_file_carries_the_heal_record_to_the_status_command(tmp_path, capsys):
    from firmware.cli import main

    status_file = tmp_path / "mesh.json"
    manager, kernel = manager_with_radio(status_file=str(status_file))
    run(manager.converge())
    kernel.reset_radio("wlan0")
    run(manager.converge())
    record = json.loads(status_file.read_text())
    assert record["heals"] == 1 and record["address"] == str(manager.status.address)
    assert not list(tmp_path.glob("*.tmp"))
    main(["mesh", "status", "--set", "backend=fake", "--set", f"status_file={status_file}"])
    out = capsys.readouterr().out
    assert "last heal: 20" in out and "(radio back in the IBSS); 1 heal so far" in out


def test_the_new_settings_are_config_keys():
    config = MeshConfig.from_mapping(
        {"watch_interval_s": "0.5", "address_check_interval_s": "30", "status_file": ""}
    )
    assert (config.watch_interval_s, config.address_check_interval_s) == (0.5, 30.0)
    assert config.status_file is None
