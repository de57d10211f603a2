"""`handset run [CONFIG]`: the daemon, for a person at a shell and for `make run`.

The short form of `handset daemon --config FILE`; the file defaults to $HANDSET_CONFIG, else the
SD card's /boot/firmware/handset.toml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from firmware import daemon
from firmware.config import CONFIG_ENV, DEFAULT_CONFIG, config_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        nargs="?",
        type=Path,
        help=f"the handset's TOML file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG})",
    )
    parser.add_argument("--check", action="store_true", help="check the config and exit")


def run(args: argparse.Namespace) -> int:
    args.config = config_path(args.config)
    return daemon.run(args)
