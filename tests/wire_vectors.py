"""Access to the shared known-answer vectors (../shared/serval-wire next to the repo).

The vectors live outside the repo, in the `shared/` directory beside the clone (here and in
CI); a missing directory is a broken checkout, so it fails loudly instead of skipping.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from vomp.identity import Identity

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "serval-wire"
VECTORS = SHARED / "vectors"
VECTOR_FILES = (
    "tick",
    "addresses",
    "please_explain",
    "linkstate",
    "keymap",
    "dna",
    "vomp_call",
    "other_frames",
)


def vectors_dir() -> Path:
    if not (VECTORS / "identities.json").is_file():
        raise FileNotFoundError(
            f"known-answer vectors not found at {VECTORS}: the directory that holds the "
            f"repository must also hold shared/serval-wire/vectors (../shared from the repo root)"
        )
    return VECTORS


@cache
def load(name: str) -> dict:
    return json.loads((vectors_dir() / f"{name}.json").read_text())


def identities_json() -> dict:
    return load("identities")["identities"]


@cache
def identities() -> dict[str, Identity]:
    return {
        label: Identity.from_seed(bytes.fromhex(entry["ed25519_seed"]))
        for label, entry in identities_json().items()
    }


def by_sid() -> dict[bytes, Identity]:
    return {ident.sid: ident for ident in identities().values()}


def all_vectors() -> list[tuple[str, dict]]:
    return [(name, v) for name in VECTOR_FILES for v in load(name)["vectors"]]


def capture_lines() -> list[dict]:
    path = vectors_dir() / "capture_shared.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
