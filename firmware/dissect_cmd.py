"""`handset dissect`: decode overlay datagrams (hex, one per line) into JSON lines.

Input lines are hex datagrams, or JSON objects with a "hex" field (as in
vectors/capture_shared.jsonl). Each line gives one JSON object; a line that is not a packet
gives {"error": ...} and the tool goes on with the next.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vomp.dissect import (
    Dissector,
    IdentitiesFileError,
    KnownIdentity,
    dissect_line,
    parse_identities,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--identities",
        required=True,
        metavar="FILE",
        help="JSON file of identities (schema of vectors/identities.json) to resolve and decrypt",
    )
    parser.add_argument(
        "--learn",
        action="store_true",
        help="also resolve abbreviations against SIDs seen in full earlier in the input",
    )


def load_identities(path: str | Path) -> list[KnownIdentity]:
    """Read an identities file (schema of vectors/identities.json)."""
    return parse_identities(Path(path).read_text(encoding="utf-8"), str(path))


def run(args: argparse.Namespace) -> int:
    try:
        identities = load_identities(args.identities)
    except (OSError, IdentitiesFileError) as exc:
        print(f"handset dissect: {exc}", file=sys.stderr)
        return 2
    dissector = Dissector(identities, learn=args.learn)
    # Bytes in: a line of binary garbage must give an error object, not a decode crash.
    stdin = getattr(sys.stdin, "buffer", sys.stdin)
    try:
        for raw in stdin:
            line = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
            sys.stdout.write(json.dumps(dissect_line(dissector, line)) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:  # `handset dissect | head`: the reader has seen enough
        sys.stderr.close()
    return 0
