"""The keyring holds the one thing a handset cannot get back, its identity: it is created only
when there is no file, and anything else odd about it stops start-up with the fix (or, for a
keyring others can read, is repaired with a warning) instead of silently making a new identity."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

from firmware.daemon import run
from firmware.keyring import load_keyring, load_or_create, save_keyring
from vomp.identity import Identity, KeyringEntry, KeyringError

UNUSABLE = {
    "empty": b"",
    "whitespace": b"  \n\t\n",
    "comments_only": b"# handset keyring\n# nothing else\n",
    "not_utf8": bytes(range(0x80, 0xC0)) + b"\xff\xfe",
}


@pytest.mark.parametrize("content", UNUSABLE.values(), ids=UNUSABLE.keys())
def test_an_existing_keyring_without_an_identity_stops_start_up_and_is_left_alone(
    tmp_path, content
):
    path = tmp_path / "keyring"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyringError, match=r"keyring.*fix: restore the keyring from a backup"):
        load_or_create(path, "5551234", "Kim")
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyring"]


def test_the_daemon_with_an_empty_keyring_exits_78_saying_how_to_fix_it(tmp_path, caplog):
    path = tmp_path / "keyring"
    path.write_bytes(b"\n")
    path.chmod(0o600)
    config = tmp_path / "handset.toml"
    config.write_text(
        f'[handset]\nnumber = "5551234"\nstate_dir = "{tmp_path}"\n[mesh]\nmode = "unmanaged"\n'
    )
    args = argparse.Namespace(config=config, check=False)
    assert run(args) == os.EX_CONFIG == 78
    assert "holds no identity" in caplog.text and "fix:" in caplog.text
    assert path.read_bytes() == b"\n"


def test_a_keyring_others_can_read_is_made_private_with_a_warning(tmp_path, caplog):
    path = tmp_path / "keyring"
    entry = load_or_create(path, "5551234", "Kim")
    path.chmod(0o644)
    again = load_or_create(path, "5551234", "Kim")
    assert again.identity.sid == entry.identity.sid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "was readable by others (mode 0644): made it 0600" in caplog.text


def test_a_symlinked_keyring_is_refused_and_neither_link_nor_target_is_touched(tmp_path):
    target = tmp_path / "elsewhere"
    save_keyring(target, [KeyringEntry(Identity.generate(), "5551234", "Kim")], create=True)
    before = target.read_bytes()
    link = tmp_path / "keyring"
    link.symlink_to(target)
    with pytest.raises(KeyringError, match=r"is a symbolic link.*fix:"):
        load_or_create(link, "5559999", "Mallory")
    with pytest.raises(KeyringError, match="is a symbolic link"):
        save_keyring(link, [KeyringEntry(Identity.generate(), "5559999", "")])
    assert link.is_symlink() and target.read_bytes() == before


def test_a_dangling_symlink_is_not_followed_to_create_a_keyring(tmp_path):
    link = tmp_path / "keyring"
    link.symlink_to(tmp_path / "planted")
    with pytest.raises(KeyringError, match="symbolic link"):
        load_or_create(link, "5551234", "Kim")
    assert not (tmp_path / "planted").exists()


def test_creating_never_replaces_a_keyring_that_appeared_meanwhile(tmp_path):
    path = tmp_path / "keyring"
    theirs = [KeyringEntry(Identity.generate(), "5551234", "Kim")]
    save_keyring(path, theirs, create=True)
    with pytest.raises(FileExistsError):
        save_keyring(path, [KeyringEntry(Identity.generate(), "5551234", "")], create=True)
    assert load_keyring(path) == theirs
    assert sorted(p.name for p in Path(tmp_path).iterdir()) == ["keyring"]
