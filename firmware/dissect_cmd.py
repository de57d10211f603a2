"""`handset dissect`: decode overlay datagrams (hex, one per line) into JSON lines.

Input lines are hex datagrams, or JSON objects with a "hex" field (as in
vectors/capture_shared.jsonl). Each line gives one JSON object; a line that is not a packet
gives {"error": ...} and the tool goes on with the next.
"""

from __future__ import annotations

import argparse
import json
import sys

from vomp.dissect import Dissector, IdentitiesFileError, dissect_line, load_identities


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


def run(args: argparse.Namespace) -> int:
    try:
        identities = load_identities(args.identities)
    except (OSError, IdentitiesFileError) as exc:
        print(f"handset dissect: {exc}", file=sys.stderr)
        return 2
    dissector = Dissector(identities, learn=args.learn)
    for line in sys.stdin:
        result = dissect_line(dissector, line)
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    return 0
