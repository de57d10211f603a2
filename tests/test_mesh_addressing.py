"""Address derivation, the ARP probe's parser and the mesh config's checks."""

from ipaddress import IPv4Address, IPv4Network
from itertools import islice

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hw.mesh.addressing import candidate_addresses, mesh_mac
from hw.mesh.arp_probe import (
    announcement_frame,
    announcement_reply_frame,
    claimant,
    claims_address,
    mac_bytes,
    probe_frame,
)
from hw.mesh.config import MeshConfig, MeshConfigError

OWN_MAC = "02:aa:aa:aa:aa:aa"
OTHER_MAC = "02:bb:bb:bb:bb:bb"
TARGET = IPv4Address("10.42.3.4")


def test_candidates_are_stable_distinct_and_inside_the_prefix():
    prefix = IPv4Network("10.42.0.0/16")
    first = list(islice(candidate_addresses(b"sid-1", prefix), 16))
    assert first == list(islice(candidate_addresses(b"sid-1", prefix), 16))
    assert len(set(first)) == 16
    assert all(
        a in prefix and a not in (prefix.network_address, prefix.broadcast_address) for a in first
    )


def test_different_identities_get_different_addresses():
    prefix = IPv4Network("10.42.0.0/16")
    assert next(candidate_addresses(b"sid-1", prefix)) != next(
        candidate_addresses(b"sid-2", prefix)
    )


@given(st.binary(max_size=64), st.integers(min_value=8, max_value=30))
def test_candidates_never_leave_the_prefix_or_hit_network_or_broadcast(identity, prefixlen):
    prefix = IPv4Network(f"10.0.0.0/{prefixlen}", strict=False)
    for address in islice(candidate_addresses(identity, prefix), 4):
        assert address in prefix
        assert address not in (prefix.network_address, prefix.broadcast_address)


def test_a_prefix_without_room_is_refused():
    with pytest.raises(ValueError, match="/30 or wider"):
        next(candidate_addresses(b"x", IPv4Network("10.0.0.0/31")))


def test_the_mesh_mac_is_locally_administered_unicast_and_stable():
    mac = mesh_mac(b"sid-1")
    first = int(mac[:2], 16)
    assert first & 0x02 and not first & 0x01
    assert mac == mesh_mac(b"sid-1") != mesh_mac(b"sid-2")


def reply_frame(sender_mac: str, sender_ip: IPv4Address, target_ip: bytes = b"\0\0\0\0") -> bytes:
    """An ARP reply as Linux sends it to a probe: sender = the address holder."""
    frame = bytearray(probe_frame(sender_mac, IPv4Address("0.0.0.0")))
    frame[14 + 6 : 14 + 8] = (2).to_bytes(2, "big")  # ARPOP_REPLY
    frame[14 + 14 : 14 + 18] = sender_ip.packed
    frame[14 + 24 : 14 + 28] = target_ip
    return bytes(frame)


def test_a_reply_from_another_mac_for_the_address_is_a_claim():
    assert claims_address(reply_frame(OTHER_MAC, TARGET), TARGET, OWN_MAC)


def test_a_reply_carrying_our_own_mac_is_not_a_claim():
    assert not claims_address(reply_frame(OWN_MAC, TARGET), TARGET, OWN_MAC)


def test_another_hosts_probe_for_the_same_address_is_a_claim():
    assert claims_address(probe_frame(OTHER_MAC, TARGET), TARGET, OWN_MAC)


def test_another_hosts_probe_for_an_address_we_hold_is_not_a_claim_but_its_answer_is():
    # Linux asks from 0.0.0.0 when it has no address, e.g. right after giving up a contested one
    assert not claims_address(probe_frame(OTHER_MAC, TARGET), TARGET, OWN_MAC, held=True)
    assert claims_address(reply_frame(OTHER_MAC, TARGET), TARGET, OWN_MAC, held=True)
    assert claims_address(announcement_frame(OTHER_MAC, TARGET), TARGET, OWN_MAC, held=True)


def test_arp_about_other_addresses_is_not_a_claim():
    assert not claims_address(reply_frame(OTHER_MAC, IPv4Address("10.42.3.5")), TARGET, OWN_MAC)
    assert not claims_address(probe_frame(OTHER_MAC, IPv4Address("10.42.3.5")), TARGET, OWN_MAC)


def test_our_probe_frame_is_a_broadcast_arp_request_from_zero():
    frame = probe_frame(OWN_MAC, TARGET)
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac_bytes(OWN_MAC)
    assert frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x01"
    assert frame[28:32] == b"\0\0\0\0" and frame[38:42] == TARGET.packed


@given(st.binary(max_size=80))
def test_the_claim_parser_is_total(data):
    assert claims_address(data, TARGET, OWN_MAC) in (True, False)


def test_the_claimant_is_the_other_machines_mac():
    assert claimant(reply_frame(OTHER_MAC, TARGET), TARGET, OWN_MAC) == OTHER_MAC.lower()
    assert claimant(reply_frame(OWN_MAC, TARGET), TARGET, OWN_MAC) is None


def test_an_announcement_by_another_machine_is_a_claim_and_ours_is_not():
    assert claimant(announcement_frame(OTHER_MAC, TARGET), TARGET, OWN_MAC) == OTHER_MAC.lower()
    assert claimant(announcement_frame(OWN_MAC, TARGET), TARGET, OWN_MAC) is None


def test_the_announcement_reply_is_a_broadcast_reply_with_a_zero_target_mac():
    # batman-adv's DAT leaves an ARP reply with a zero target MAC alone, so it reaches kernels
    frame = announcement_reply_frame(OWN_MAC, TARGET)
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == mac_bytes(OWN_MAC)
    assert frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x02"
    assert frame[22:28] == mac_bytes(OWN_MAC) and frame[28:32] == TARGET.packed
    assert frame[32:38] == bytes(6) and frame[38:42] == TARGET.packed
    assert claimant(frame, TARGET, OWN_MAC) is None
    assert claimant(announcement_reply_frame(OTHER_MAC, TARGET), TARGET, OWN_MAC) == OTHER_MAC


def test_config_defaults_are_valid_and_name_bat0():
    assert MeshConfig().mesh_interface == "bat0"


def test_config_joins_without_ht_unless_told():
    assert MeshConfig().ht is False
    assert MeshConfig.from_mapping({"ht": "yes"}).ht is True
    assert MeshConfig.from_mapping({"ht": False}).ht is False


def test_config_from_text_values_converts_types():
    config = MeshConfig.from_mapping(
        {"prefix": "10.9.0.0/16", "freq_mhz": "2437", "bridged": "yes", "radio": ""}
    )
    assert config.prefix == IPv4Network("10.9.0.0/16") and config.freq_mhz == 2437
    assert config.bridged and config.radio is None


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"prefix": "10.9.0.1/16"}, "prefix"),
        ({"prefix": "10.9.0.0/31"}, "prefix"),
        ({"bssid": "nope"}, "bssid"),
        ({"mode": "mesh"}, "mode"),
        ({"freq_mhz": "eleven"}, "freq_mhz"),
        ({"ssid": ""}, "ssid"),
        ({"colour": "red"}, "colour"),
        ({"ht": "maybe"}, "ht"),
    ],
)
def test_config_errors_name_the_place_the_setting_and_a_fix(values, names):
    with pytest.raises(MeshConfigError) as error:
        MeshConfig.from_mapping(values, where="/etc/handset.conf:12")
    message = str(error.value)
    assert message.startswith("/etc/handset.conf:12: ") and names in message
