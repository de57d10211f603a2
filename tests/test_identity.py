"""Identities derive from a seed like servald's, and the keyring file is safe to lose power on."""

from __future__ import annotations

import os
import stat

import pytest
import wire_vectors as wv

from firmware.keyring import load_keyring, save_keyring
from vomp.identity import (
    Identity,
    KeyringEntry,
    KeyringError,
    format_sid,
    sid_from_sign_key,
)


def test_sid_is_the_curve25519_form_of_the_sign_key_and_shown_as_servald_does():
    ident = wv.identities()["A"]
    assert sid_from_sign_key(ident.sign_public) == ident.sid
    assert format_sid(ident.sid) == wv.identities_json()["A"]["sid"]
    assert len(format_sid(ident.sid)) == 64 and format_sid(ident.sid).isupper()


def test_generated_identities_are_distinct_and_self_consistent():
    one, two = Identity.generate(), Identity.generate()
    assert one.sid != two.sid
    assert Identity.from_seed(one.seed) == one
    assert "seed" not in repr(one) and one.seed.hex() not in repr(one)


def test_keyring_round_trips_with_mode_0600_and_no_temp_files(tmp_path):
    path = tmp_path / "keyring"
    entries = [
        KeyringEntry(wv.identities()["A"], "5552001", "Alice Test"),
        KeyringEntry(Identity.generate(), None, ""),
    ]
    save_keyring(path, entries)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_keyring(path) == entries
    save_keyring(path, entries[:1])  # replacing an existing keyring
    assert load_keyring(path) == entries[:1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyring"]


@pytest.mark.parametrize(
    "line,complaint",
    [
        ("zz 5552001 Alice", "seed must be 64 hex digits"),
        ("37DEFDE4AA40166D89110521B9F15C59FA7FBC74610E9BA0E1176CA5E8477EB6 12 A", "phone number"),
        ("lonely", "expected"),
    ],
)
def test_malformed_keyring_names_file_line_and_fix(tmp_path, line, complaint):
    path = tmp_path / "keyring"
    path.write_text("# comment\n\n" + line + "\n")
    with pytest.raises(KeyringError) as caught:
        load_keyring(path)
    message = str(caught.value)
    assert f"{path}:3:" in message and complaint in message and "fix:" in message


def test_a_failed_save_leaves_the_old_keyring_intact(tmp_path):
    path = tmp_path / "keyring"
    good = [KeyringEntry(wv.identities()["B"], "5552002", "Bob Test")]
    save_keyring(path, good)
    with pytest.raises(ValueError):
        save_keyring(path, [KeyringEntry(Identity.generate(), "bad", "x")])
    assert load_keyring(path) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyring"]


def test_a_keyring_listing_one_identity_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "keyring"
    seed = wv.identities()["A"].seed.hex()
    path.write_text(f"{seed} 5552001 A\n{seed} - again\n")
    with pytest.raises(KeyringError, match=r"keyring:2: same identity as line 1; fix:"):
        load_keyring(path)
