"""`handset dissect` edge cases: missing keys, lines that are not packets, bad identity files."""

from __future__ import annotations

import json

import pytest
import wire_vectors as wv

from firmware import cli
from firmware.dissect_cmd import load_identities
from vomp.dissect import (
    Dissector,
    IdentitiesFileError,
    KnownIdentity,
    dissect_line,
)


def _vector(vid: str) -> dict:
    return next(v for _n, v in wv.all_vectors() if v["id"] == vid)


def test_without_secrets_box_frames_are_shown_but_marked_not_decrypted():
    public_only = [KnownIdentity(k, v.sid, v.sign_public) for k, v in wv.identities().items()]
    out = Dissector(public_only).dissect(bytes.fromhex(_vector("call-01")["packet_hex"]))
    m = out["frames"][0]["mdp"]
    assert m["plaintext_hex"] is None and "not decrypted" in m["note"]
    assert out["frames"][0]["destination"]["identity"] == "B"


def test_without_any_identity_addresses_stay_unresolved_but_decode():
    out = Dissector([]).dissect(bytes.fromhex(_vector("ls-ack-steady")["packet_hex"]))
    assert out["sender"]["sid"] is None and out["sender"]["identity"] is None
    assert "note" in out["frames"][0]
    records = out["frames"][0]["mdp"]["body"]["records"]
    assert records[0]["ack_seq"] == 33


def test_signed_frame_from_an_unknown_key_reports_unchecked_signature():
    out = Dissector([]).dissect(bytes.fromhex(_vector("dna-request-servald")["packet_hex"]))
    m = out["frames"][0]["mdp"]
    assert m["signature_valid"] is None and m["body"]["did"] == "5552002"


@pytest.mark.parametrize(
    "line,complaint",
    [("zz", "not hex"), ("", "empty line"), ("0001", "not a packet"), ('{"x": 1}', '"hex"')],
)
def test_lines_that_are_not_packets_give_an_error_object(line, complaint):
    assert complaint in dissect_line(Dissector([]), line)["error"]


def test_jsonl_capture_lines_are_accepted():
    line = json.dumps({"t_rel_s": 0, "hex": _vector("tick-servald-broadcast")["packet_hex"]})
    assert dissect_line(Dissector([]), line)["length"] == 6


def test_cli_reads_lines_and_goes_on_after_errors(tmp_path, monkeypatch, capsys):
    ids = tmp_path / "ids.json"
    ids.write_text((wv.vectors_dir() / "identities.json").read_text())
    lines = ["nonsense", _vector("tick-servald-unicast")["packet_hex"]]
    monkeypatch.setattr("sys.stdin", iter(line + "\n" for line in lines))
    assert cli.main(["dissect", "--identities", str(ids)]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert "error" in out[0] and out[1]["seq"] == 6


def test_cli_names_a_broken_identities_file_and_exits_2(tmp_path, capsys):
    ids = tmp_path / "ids.json"
    ids.write_text('{"identities": {"A": {"sid": "12"}}}')
    assert cli.main(["dissect", "--identities", str(ids)]) == 2
    err = capsys.readouterr().err
    assert str(ids) in err and "'A'" in err and "fix:" in err
    with pytest.raises(IdentitiesFileError):
        load_identities(ids)


def test_learning_resolves_abbreviations_after_a_full_sid_was_seen():
    full_header = bytes.fromhex(_vector("pe-request-servald")["packet_hex"])  # A in full
    abbreviated = bytes.fromhex(_vector("tick-servald-broadcast")["packet_hex"])  # A as 5294
    assert Dissector([]).dissect(abbreviated)["sender"]["sid"] is None
    learner = Dissector([], learn=True)
    learner.dissect(full_header)
    assert learner.dissect(abbreviated)["sender"]["sid"] == wv.identities_json()["A"]["sid"]
