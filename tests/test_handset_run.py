"""`handset run` is the daemon's short form: the same composition root, config from an argument,
else $HANDSET_CONFIG, else the SD card's file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from firmware.cli import SUBCOMMANDS

HANDSET = str(Path(sys.executable).parent / "handset")
CONFIG = """\
[handset]
number = "5551234"
[mesh]
mode = "unmanaged"
"""


def test_run_is_a_registered_subcommand():
    assert SUBCOMMANDS["run"][0] == "firmware.run"


def test_run_checks_the_config_given_as_an_argument_or_in_the_environment(tmp_path):
    path = tmp_path / "handset.toml"
    path.write_text(CONFIG)
    given = subprocess.run([HANDSET, "run", "--check", str(path)], capture_output=True, text=True)
    assert (given.returncode, given.stdout) == (0, f"{path}: ok\n")
    env = {**os.environ, "HANDSET_CONFIG": str(path)}
    found = subprocess.run([HANDSET, "run", "--check"], capture_output=True, text=True, env=env)
    assert (found.returncode, found.stdout) == (0, f"{path}: ok\n")


def test_run_without_a_config_names_the_file_it_looked_for(tmp_path):
    env = {**os.environ, "HANDSET_CONFIG": str(tmp_path / "none.toml")}
    result = subprocess.run([HANDSET, "run"], capture_output=True, text=True, env=env)
    assert result.returncode == 78
    assert f"{tmp_path / 'none.toml'}: no such file; fix: create it" in result.stderr
