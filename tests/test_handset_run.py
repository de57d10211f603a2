"""`handset run`: the keyring is created on first start and keeps number and name."""

from __future__ import annotations

import argparse
import asyncio
import stat

import pytest

from firmware.cli import SUBCOMMANDS
from firmware.run import load_or_create, serve
from vomp.identity import load_keyring


def test_first_run_creates_a_private_keyring_with_our_number(tmp_path):
    path = tmp_path / "state" / "keyring"
    entry = load_or_create(path, "5551234", "Kim")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    [stored] = load_keyring(path)
    assert (stored.identity.sid, stored.did, stored.name) == (entry.identity.sid, "5551234", "Kim")


def test_later_runs_keep_the_identity_and_update_number_and_name(tmp_path):
    path = tmp_path / "keyring"
    first = load_or_create(path, "5551234", "Kim")
    again = load_or_create(path, None, None)
    renamed = load_or_create(path, "5554321", "Kim Lee")
    assert first.identity.sid == again.identity.sid == renamed.identity.sid
    assert (again.did, renamed.did, renamed.name) == ("5551234", "5554321", "Kim Lee")


def test_an_invalid_number_is_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "keyring"
    with pytest.raises(ValueError, match="invalid phone number"):
        load_or_create(path, "12-34", None)
    assert not path.exists()


def test_run_without_a_number_says_how_to_fix_it(tmp_path, caplog):
    args = argparse.Namespace(
        keyring=tmp_path / "keyring",
        number=None,
        name=None,
        interface=None,
        port=0,
        broadcast="127.0.0.1",
        auto_answer=False,
    )
    assert asyncio.run(serve(args)) == 2
    assert "--number" in caplog.text


def test_run_is_a_registered_subcommand():
    assert SUBCOMMANDS["run"][0] == "firmware.run"
