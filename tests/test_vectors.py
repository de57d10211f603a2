"""Known-answer vectors from live servald runs: we parse, decrypt, verify and re-encode them.

Ground truth is ../shared/serval-wire/vectors (SPEC.md is the law, these are its evidence).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import wire_vectors as wv

from firmware.dissect_cmd import load_identities
from vomp import address as addr
from vomp import crypto, dna, keymap, linkstate, mdp, please_explain
from vomp.address import Address, AddressBook
from vomp.dissect import Dissector
from vomp.messages import VompAudio, VompMessage, encode_vomp
from vomp.packet import TYPE_DATA, TYPE_PLEASE_EXPLAIN, Frame, Packet, encode_packet, parse_packet


def _frames_of(kind: str):
    """(vector id, frame index, frame dict) for every frame whose mdp crypto is `kind`."""
    for _name, v in wv.all_vectors():
        for i, frame in enumerate(v["decoded"]["frames"]):
            if frame.get("mdp", {}).get("crypto") == kind:
                yield v["id"], i, frame


def test_every_identity_rederives_from_its_seed():
    for label, entry in wv.identities_json().items():
        ident = wv.identities()[label]
        assert ident.sid.hex().upper() == entry["sid"], label
        assert ident.sign_public.hex().upper() == entry["sign_public_key"], label
        assert ident.ed_secret.hex().upper() == entry["ed25519_secret_key"], label
        assert ident.box_secret.hex().upper() == entry["box_secret_key"], label


def test_the_shared_set_holds_67_vectors_and_the_recorded_crypto_counts():
    assert len(wv.all_vectors()) == 67
    assert len(list(_frames_of("crypto_box (CIPHERED|SIGNED)"))) == 52
    assert len(list(_frames_of("Ed25519 signature (SIGNED only)"))) == 5


@pytest.mark.parametrize("name", wv.VECTOR_FILES)
def test_dissector_output_equals_recorded_decoded_fields(name):
    dissector = Dissector(load_identities(wv.vectors_dir() / "identities.json"))
    for vector in wv.load(name)["vectors"]:
        got = dissector.dissect(bytes.fromhex(vector["packet_hex"]))
        assert got == vector["decoded"], vector["id"]


def test_box_frames_shared_key_is_the_same_both_ways_and_opens_the_payload():
    ids = wv.by_sid()
    for vid, _i, frame in _frames_of("crypto_box (CIPHERED|SIGNED)"):
        source = ids[bytes.fromhex(frame["source_sid"])]
        destination = ids[bytes.fromhex(frame["destination_sid"])]
        key = crypto.shared_key(source.sid, destination.box_secret)
        assert key == crypto.shared_key(destination.sid, source.box_secret), vid
        assert key.hex() == frame["mdp"]["shared_key_hex"], vid
        payload = bytes.fromhex(frame["payload_hex"])
        assert crypto.box_open(payload, key).hex() == frame["mdp"]["plaintext_hex"], vid
        tampered = payload[:-1] + bytes([payload[-1] ^ 1])
        with pytest.raises(crypto.DecryptError):
            crypto.box_open(tampered, key)


def test_every_nonce_servald_sent_has_bit_7_of_byte_0_cleared():
    for _vid, _i, frame in _frames_of("crypto_box (CIPHERED|SIGNED)"):
        assert bytes.fromhex(frame["mdp"]["nonce_hex"])[0] & 0x80 == 0


def test_signed_frames_verify_with_the_source_sign_key_and_fail_when_tampered():
    ids = wv.by_sid()
    for vid, _i, frame in _frames_of("Ed25519 signature (SIGNED only)"):
        source = ids[bytes.fromhex(frame["source_sid"])]
        payload = bytes.fromhex(frame["payload_hex"])
        content = crypto.verify_signed(payload, source.sign_public)
        assert content.hex() == frame["mdp"]["signed_content_hex"], vid
        assert hashlib.sha512(content).hexdigest() == frame["mdp"]["sha512_of_content_hex"]
        assert crypto.sign_content(content, source.ed_secret) == payload, vid
        with pytest.raises(crypto.BadSignature):
            crypto.verify_signed(b"\x00" + payload[1:], source.sign_public)


def test_keymap_replies_prove_the_replier_owns_the_sign_key():
    ids = wv.by_sid()
    replies = 0
    for vid, _i, frame in _frames_of("crypto_box (CIPHERED|SIGNED)"):
        if frame["mdp"]["service"] != "KEYMAP" or frame["mdp"]["body"]["kind"] != "reply":
            continue
        replies += 1
        message = keymap.parse_keymap(bytes.fromhex(frame["mdp"]["body_hex"]))
        source = bytes.fromhex(frame["source_sid"])
        assert message.verify(source), vid
        assert message.sign_key == ids[source].sign_public
        assert not message.verify(bytes.fromhex(frame["destination_sid"]))
    assert replies == 3


# -- encoding: rebuild every packet from its decoded fields and the recorded randomness -----


def _address(d: dict | None) -> Address | None:
    if d is None:
        return None
    code = d["code"]
    data = bytes.fromhex(d.get("bytes_hex", ""))
    if addr.ABBREV_MIN <= code <= addr.ABBREV_MAX:
        return addr.abbreviated(data)
    return {
        addr.CODE_FULL: lambda: addr.full(data),
        addr.CODE_SIGNKEY: lambda: addr.signkey(data),
        addr.CODE_PREVIOUS: addr.previous,
        addr.CODE_SELF: addr.self_address,
    }[code]()


def _body(m: dict, source: bytes) -> bytes:
    """The MDP body re-encoded from the decoded fields by our service encoders."""
    body = m["body"]
    service = m["service"]
    if service == "LINKSTATE":
        records = [
            linkstate.LinkRecord(
                r["flags"],
                _address(r["receiver"]),
                r["version"],
                _address(r["transmitter"]),
                r["interface"],
                r["ack_seq"],
                None if r["ack_mask"] is None else int(r["ack_mask"], 16),
                r["drop_rate"],
            )
            for r in body["records"]
        ]
        return linkstate.encode_linkstate(records)
    if service == "KEYMAP":
        if body["kind"] == "reply":
            return keymap.encode_reply(wv.by_sid()[source])
        return keymap.encode_request()
    if service == "DNA_REQUEST":
        return dna.encode_dna_request(body["did"])
    if service == "DNA_REPLY":
        return dna.encode_dna_reply(bytes.fromhex(body["token"]), body["did"], body["name"])
    if service == "VOMP":
        audio = body.get("audio")
        return encode_vomp(
            VompMessage(
                body["sender_session"],
                body["recipient_session"],
                body["sender_state"],
                body["recipient_state_as_known_by_sender"],
                tuple(body["codecs"]) if "codecs" in body else None,
                body.get("caller_number"),
                body.get("called_number"),
                audio
                and VompAudio(
                    audio["codec"],
                    audio["time_field"],
                    audio["seq_field"],
                    bytes.fromhex(audio["audio_hex"]),
                ),
            )
        )
    return bytes.fromhex(body["opaque_hex"])


def _payload(frame: dict) -> bytes:
    if frame["type"] == TYPE_PLEASE_EXPLAIN:
        entries = []
        for e in frame["please_explain"]:
            if e["kind"].startswith("request"):
                entries.append(please_explain.ExplainRequest(bytes.fromhex(e["prefix_hex"])))
            else:
                sid, key = bytes.fromhex(e["sid"]), bytes.fromhex(e["sign_public_key"])
                entries.append(please_explain.ExplainAnswer(sid, key))
        return please_explain.encode_please_explain(entries)
    assert frame["type"] == TYPE_DATA
    m = frame["mdp"]
    source = bytes.fromhex(frame["source_sid"])
    content = mdp.encode_content(m["dst_port"], m["src_port"], _body(m, source))
    mode = mdp.mode_of(frame["flags"])
    ids = wv.by_sid()
    if mode is mdp.MdpMode.BOX:
        key = crypto.SharedKeyCache().get(
            source, bytes.fromhex(frame["destination_sid"]),
            ids[bytes.fromhex(frame["destination_sid"])].box_secret,
        )  # fmt: skip
        return mdp.seal(content, mode, shared_key=key, nonce=bytes.fromhex(m["nonce_hex"]))
    return mdp.seal(content, mode, ed_secret=ids[source].ed_secret)


def _rebuilt_packet(decoded: dict, *, our_defaults: bool) -> Packet:
    """The packet from decoded fields; with our_defaults, as our node builds frames."""
    frames = []
    for f in decoded["frames"]:
        source = bytes.fromhex(f["source_sid"])
        payload = _payload(f)
        if our_defaults:
            assert f["source"] == "SENDER_SAME"
            make = Frame.local_broadcast if f["destination"] is None else Frame.to_peer
            args = (
                (source,)
                if f["destination"] is None
                else (source, bytes.fromhex(f["destination_sid"]))
            )
            frame = make(
                *args,
                payload,
                crypto_flags=f["flags"] & 0x30,
                ack_soon=bool(f["flags"] & 0x40),
                type=f["type"],
                frame_seq=f["frame_seq"],
            )
            assert frame.flags | (0x80 if f["type"] != TYPE_DATA else 0) == f["flags"]
        else:
            frame = Frame(
                f["flags"],
                source,
                bytes.fromhex(f["destination_sid"]) if f["destination_sid"] else None,
                payload,
                f["type"],
                f["frame_seq"],
                bytes.fromhex(f["broadcast_id"]) if f["broadcast_id"] else None,
                f["ttl"],
                f.get("qos"),
                source_address=None if f["source"] == "SENDER_SAME" else _address(f["source"]),
                destination_address=_address(f["destination"]),
                next_hop_address=_address(f["next_hop"]),
            )
        frames.append(frame)
    sender = decoded["sender"]
    sender_wire = _address(sender)
    if our_defaults and sender["code"] == addr.CODE_FULL:
        sender_wire = None  # our encoder writes full SIDs by itself
    return Packet(
        bytes.fromhex(sender["sid"]),
        frames,
        decoded["flags"] & 0x01,
        decoded["interface"],
        decoded["seq"],
        decoded["version"],
        decoded["encapsulation"],
        sender_wire,
    )


@pytest.mark.parametrize(
    "name,vector", wv.all_vectors(), ids=lambda x: x if isinstance(x, str) else x["id"]
)
def test_encoder_reproduces_packet_hex_from_decoded_fields_and_recorded_nonces(name, vector):
    packet = _rebuilt_packet(vector["decoded"], our_defaults=False)
    assert encode_packet(packet).hex() == vector["packet_hex"]


def test_our_default_frame_builders_reproduce_every_probe_packet_servald_accepted():
    probe = [v for _n, v in wv.all_vectors() if v["origin"] == "python-probe"]
    assert len(probe) >= 8
    for vector in probe:
        packet = _rebuilt_packet(vector["decoded"], our_defaults=True)
        assert encode_packet(packet).hex() == vector["packet_hex"], vector["id"]


def test_every_captured_datagram_parses_fully_resolved_and_reencodes_identically():
    book = AddressBook()
    for ident in wv.identities().values():
        book.learn(ident.sid, ident.sign_public)
    lines = wv.capture_lines()
    assert len(lines) == 421
    for line in lines:
        data = bytes.fromhex(line["hex"])
        parsed = parse_packet(data, book, learn=False)
        assert not parsed.unknown_prefixes and not parsed.skipped_frames
        assert encode_packet(parsed.packet) == data


def test_handset_dissect_decodes_the_whole_shared_capture_without_error(tmp_path: Path):
    script = Path(sys.executable).parent / "handset"
    capture = wv.vectors_dir() / "capture_shared.jsonl"
    result = subprocess.run(
        [str(script), "dissect", "--identities", str(wv.vectors_dir() / "identities.json")],
        stdin=capture.open("rb"),
        capture_output=True,
        check=True,
        timeout=120,
    )
    outputs = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert len(outputs) == 421
    assert [o for o in outputs if "error" in o] == []
    text = result.stdout.decode()
    for marker in (
        "decrypt_error",
        "port_error",
        "please_explain_error",
        '"signature_valid": false',
    ):
        assert marker not in text
