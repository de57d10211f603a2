"""The `handset` command: one entry point, one subcommand per job.

Subcommands register themselves in SUBCOMMANDS so each job lives in its own module.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from firmware import control_cli

# name -> (module, help); each module has `add_arguments(parser)` and `run(args) -> int`; a
# module serving several names reads `parser.get_default("subcommand")` / `args.subcommand`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {}
SUBCOMMANDS["daemon"] = ("firmware.daemon", "run the handset: mesh, VoMP, audio, keypad, control")
SUBCOMMANDS["run"] = ("firmware.run", "run the handset: handset daemon with the default config")
SUBCOMMANDS["dissect"] = ("firmware.dissect_cmd", "decode overlay datagrams (hex lines) to JSON")
SUBCOMMANDS["audio-check"] = ("firmware.audio_check", "open the sound card as a call would; stats")
SUBCOMMANDS["shell"] = ("firmware.diag_shell", "the diagnostics shell (the diag user's SSH login)")
SUBCOMMANDS["mesh"] = ("firmware.mesh_command", "the daemon's mesh, or bring up/inspect it by hand")
SUBCOMMANDS.update(
    {name: ("firmware.control_cli", text) for name, text in control_cli.HELP.items()}
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="handset", description="Mesh handset firmware tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    arguments = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in arguments if not a.startswith("-")), None)
    # Only the chosen subcommand's module is imported: a client command (`handset status`)
    # then starts in a fraction of the time the daemon's imports (numpy, Opus, pyroute2) take.
    names = [chosen] if chosen in SUBCOMMANDS else list(SUBCOMMANDS)
    for name in names:
        module_name, help_text = SUBCOMMANDS[name]
        module = importlib.import_module(module_name)
        subparser = sub.add_parser(name, help=help_text)
        subparser.set_defaults(subcommand=name)
        module.add_arguments(subparser)
        modules[name] = module
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    sys.exit(main())
