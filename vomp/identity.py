"""Identities (SPEC §3) and the text of the keyring file that stores them.

A Serval identity is one Ed25519 key pair; the SID is its X25519 (curve25519) form. Only the
32-byte seed needs storing: everything else is derived, so the keyring holds seeds.

Keyring file format (UTF-8 text, mode 0600, one identity per line)::

    # comments and blank lines are ignored
    <seed: 64 hex digits> <did, or - for none> <name: rest of the line, may be empty>

Example: ``37DEFDE4...7EB6 5552001 Alice Test``. The DID (phone number) is 5-31 characters of
``0-9 * # +``. Names may contain spaces but no tabs or line breaks.

This module parses and formats that text; reading and writing the file is the edge's job
(`firmware/keyring.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nacl import bindings

from vomp.dna import is_valid_did

SEED_LEN = 32
SID_LEN = 32
SIGN_KEY_LEN = 32


class KeyringError(ValueError):
    """A keyring file is malformed; the message names the file, the line and the fix."""


@dataclass(frozen=True, slots=True)
class Identity:
    """One combined Serval identity: every key derived from a 32-byte Ed25519 seed."""

    seed: bytes
    sign_public: bytes
    ed_secret: bytes
    box_secret: bytes
    sid: bytes

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        if len(seed) != SEED_LEN:
            raise ValueError(f"an Ed25519 seed is {SEED_LEN} bytes, got {len(seed)}")
        sign_public, ed_secret = bindings.crypto_sign_seed_keypair(bytes(seed))
        box_secret = bindings.crypto_sign_ed25519_sk_to_curve25519(ed_secret)
        sid = bindings.crypto_sign_ed25519_pk_to_curve25519(sign_public)
        return cls(bytes(seed), sign_public, ed_secret, box_secret, sid)

    @classmethod
    def generate(cls) -> Identity:
        return cls.from_seed(os.urandom(SEED_LEN))

    def __repr__(self) -> str:  # never print secrets into logs
        return f"Identity(sid={format_sid(self.sid)})"


def sid_from_sign_key(sign_public: bytes) -> bytes:
    """The SID belonging to an Ed25519 public key (how 0xFB addresses are resolved)."""
    if len(sign_public) != SIGN_KEY_LEN:
        raise ValueError(f"an Ed25519 public key is {SIGN_KEY_LEN} bytes")
    return bindings.crypto_sign_ed25519_pk_to_curve25519(bytes(sign_public))


def format_sid(sid: bytes) -> str:
    """A SID as servald shows it: 64 upper-case hex digits."""
    return sid.hex().upper()


def parse_sid(text: str) -> bytes:
    """The inverse of format_sid (either case accepted)."""
    text = text.strip()
    if len(text) != 2 * SID_LEN:
        raise ValueError(f"a SID is {2 * SID_LEN} hex digits, got {len(text)}")
    return bytes.fromhex(text)


@dataclass(frozen=True, slots=True)
class KeyringEntry:
    identity: Identity
    did: str | None = None
    name: str = ""


def parse_keyring(text: str, source: str) -> list[KeyringEntry]:
    """The entries of a keyring's text; a malformed line raises KeyringError naming
    `source` (the file), the line and the fix."""
    entries = []
    first_line: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        entry = _parse_line(stripped, f"{source}:{number}")
        sid = entry.identity.sid
        if sid in first_line:
            raise KeyringError(
                f"{source}:{number}: same identity as line {first_line[sid]}; fix: delete one of "
                f"the two lines"
            )
        first_line[sid] = number
        entries.append(entry)
    return entries


def _parse_line(text: str, where: str) -> KeyringEntry:
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise KeyringError(
            f"{where}: expected '<seed hex> <did or -> [name]'; fix: put the 64-hex-digit "
            f"seed, then the phone number (or -), then the name"
        )
    seed_hex, did_text = parts[0], parts[1]
    name = parts[2] if len(parts) == 3 else ""
    try:
        seed = bytes.fromhex(seed_hex)
    except ValueError:
        seed = b""
    if len(seed) != SEED_LEN:
        raise KeyringError(
            f"{where}: seed must be {2 * SEED_LEN} hex digits, got {seed_hex[:70]!r}; fix: "
            f"restore the seed from a backup or generate a new identity"
        )
    did = None if did_text == "-" else did_text
    if did is not None and not is_valid_did(did):
        raise KeyringError(
            f"{where}: phone number {did!r} is invalid; fix: use 5-31 characters of 0-9 * # +, "
            f"or - for no number"
        )
    if "\t" in name:
        raise KeyringError(f"{where}: name contains a tab; fix: use spaces instead")
    return KeyringEntry(Identity.from_seed(seed), did, name)


def format_keyring(entries: list[KeyringEntry]) -> str:
    lines = ["# handset keyring: <ed25519 seed hex> <did or -> <name>. Keep secret (mode 0600)."]
    for entry in entries:
        if entry.did is not None and not is_valid_did(entry.did):
            raise ValueError(f"invalid phone number {entry.did!r}")
        if any(c in entry.name for c in "\t\r\n"):
            raise ValueError("a name may not contain tabs or line breaks")
        did = entry.did if entry.did is not None else "-"
        lines.append(f"{entry.identity.seed.hex().upper()} {did} {entry.name}".rstrip())
    return "\n".join(lines) + "\n"
