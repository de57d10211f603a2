"""The planner alone: given what the kernel holds, the steps it asks for, in order."""

from dataclasses import replace
from ipaddress import IPv4Interface, IPv4Network

from hw.mesh.reconcile import (
    ClaimAddress,
    CreateMesh,
    DesiredMesh,
    Enslave,
    Ibss,
    JoinIbss,
    LeaveIbss,
    MeshState,
    Observed,
    RadioState,
    SetLinkUp,
    SetMac,
    SetMeshOptions,
    SetMtu,
    SetRadioType,
    plan,
)

IBSS = Ibss("mesh-handset", 2412, "02:ca:ff:ee:ba:be")
DESIRED = DesiredMesh(
    radio=None,
    mesh="bat0",
    ibss=IBSS,
    min_mtu=1560,
    mesh_mac="02:11:22:33:44:55",
    bridge_loop_avoidance=False,
    orig_interval_ms=1000,
    prefix=IPv4Network("10.42.0.0/16"),
)
FRESH_RADIO = RadioState(
    ifindex=3,
    ifname="wlan0",
    mac="02:00:00:00:01:00",
    iftype="station",
    up=True,
    mtu=1500,
    master=None,
    ssid=None,
    freq_mhz=None,
)
GOOD_RADIO = replace(
    FRESH_RADIO, iftype="adhoc", mtu=1560, master=7, ssid="mesh-handset", freq_mhz=2412, ht=False
)
GOOD_MESH = MeshState(
    ifindex=7,
    ifname="bat0",
    mac="02:11:22:33:44:55",
    up=True,
    bridge_loop_avoidance=False,
    orig_interval_ms=1000,
    addresses=(IPv4Interface("10.42.9.9/16"),),
)


def test_a_complete_mesh_needs_nothing():
    result = plan(DESIRED, Observed(GOOD_RADIO, GOOD_MESH))
    assert result.done and result.waiting_for is None


def test_a_station_radio_is_taken_down_before_it_becomes_adhoc():
    result = plan(DESIRED, Observed(FRESH_RADIO, None))
    assert result.actions == [SetLinkUp(3, False), SetRadioType(3, "adhoc"), CreateMesh("bat0")]


def test_an_adhoc_radio_gets_its_mtu_and_comes_up_before_joining():
    radio = replace(FRESH_RADIO, iftype="adhoc", up=False)
    assert plan(DESIRED, Observed(radio, GOOD_MESH)).actions == [
        SetMtu(3, 1560),
        SetLinkUp(3, True),
        Enslave(3, 7),
    ]


def test_an_up_adhoc_radio_outside_the_ibss_joins_it_with_the_fixed_bssid():
    radio = replace(GOOD_RADIO, ssid=None, freq_mhz=None)
    assert plan(DESIRED, Observed(radio, GOOD_MESH)).actions == [JoinIbss(3, IBSS)]


def test_a_radio_in_another_ibss_leaves_it_first():
    radio = replace(GOOD_RADIO, ssid="someone-else")
    assert plan(DESIRED, Observed(radio, GOOD_MESH)).actions == [LeaveIbss(3), JoinIbss(3, IBSS)]


def test_a_radio_joined_with_ht_when_ht_is_off_joins_again_without_it():
    radio = replace(GOOD_RADIO, ht=True)
    assert plan(DESIRED, Observed(radio, GOOD_MESH)).actions == [LeaveIbss(3), JoinIbss(3, IBSS)]
    assert not IBSS.ht


def test_with_ht_on_a_radio_joined_without_it_joins_again_with_it():
    desired = replace(DESIRED, ibss=replace(IBSS, ht=True))
    assert plan(desired, Observed(GOOD_RADIO, GOOD_MESH)).actions == [
        LeaveIbss(3),
        JoinIbss(3, desired.ibss),
    ]
    assert plan(desired, Observed(replace(GOOD_RADIO, ht=True), GOOD_MESH)).done


def test_a_radio_whose_driver_does_not_report_the_width_is_left_in_the_ibss():
    assert plan(DESIRED, Observed(replace(GOOD_RADIO, ht=None), GOOD_MESH)).done


def test_a_missing_mesh_interface_is_created_and_nothing_depends_on_it_in_the_same_plan():
    assert plan(DESIRED, Observed(GOOD_RADIO, None)).actions == [CreateMesh("bat0")]


def test_a_new_mesh_interface_gets_mac_slave_options_link_and_waits_for_the_radio_to_join():
    mesh = replace(
        GOOD_MESH, mac="fe:00:00:00:00:01", up=False, bridge_loop_avoidance=True, addresses=()
    )
    radio = replace(GOOD_RADIO, master=None)
    result = plan(DESIRED, Observed(radio, mesh))
    assert result.actions == [
        SetMac(7, "02:11:22:33:44:55"),
        Enslave(3, 7),
        SetMeshOptions(7, bridge_loop_avoidance=False, orig_interval_ms=None),
        SetLinkUp(7, True),
    ]
    assert result.waiting_for == "radio not in the mesh yet"


def test_bridge_loop_avoidance_stays_on_when_bat0_is_bridged():
    mesh = replace(GOOD_MESH, bridge_loop_avoidance=True, orig_interval_ms=5000)
    desired = replace(DESIRED, bridge_loop_avoidance=True)
    assert plan(desired, Observed(GOOD_RADIO, mesh)).actions == [
        SetMeshOptions(7, bridge_loop_avoidance=None, orig_interval_ms=1000)
    ]


def test_an_address_is_claimed_only_once_the_radio_is_in_the_mesh():
    mesh = replace(GOOD_MESH, addresses=(IPv4Interface("192.168.1.5/24"),))
    assert plan(DESIRED, Observed(GOOD_RADIO, mesh)).actions == [
        ClaimAddress(7, "bat0", IPv4Network("10.42.0.0/16"))
    ]
    outside = plan(DESIRED, Observed(replace(GOOD_RADIO, ssid=None), mesh))
    assert not any(isinstance(a, ClaimAddress) for a in outside.actions)


def test_without_a_radio_bat0_is_still_kept_and_the_plan_says_what_is_missing():
    result = plan(DESIRED, Observed(None, replace(GOOD_MESH, up=False)))
    assert result.actions == [SetLinkUp(7, True)]
    assert result.waiting_for == "no Wi-Fi interface"


def test_a_radio_that_joined_but_has_no_channel_yet_is_left_to_finish():
    radio = replace(GOOD_RADIO, freq_mhz=None)
    result = plan(DESIRED, Observed(radio, GOOD_MESH))
    assert result.actions == [] and result.waiting_for == "joining the IBSS"
