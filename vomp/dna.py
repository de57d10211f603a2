"""DNA number lookup bodies (SPEC §11, MDP port 10): request = DID + NUL, reply = '|' fields.

Only the byte formats live here; the lookup schedule and the answering rules are state
machines built on top (they need `now`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vomp.wire import ParseError

DID_MIN_LEN = 5
DID_MAX_LEN = 31
_DID_RE = re.compile(rf"[0-9*#+]{{{DID_MIN_LEN},{DID_MAX_LEN}}}")
_SID_HEX_RE = re.compile(r"[0-9A-Fa-f]{64}")
# servald's client accepts only these characters in a reply's DID (no length minimum).
_REPLY_DID_RE = re.compile(r"[0-9*#+]{0,31}")


def is_valid_did(did: str) -> bool:
    """A phone number we own or dial: 5-31 characters of 0-9 * # +."""
    return _DID_RE.fullmatch(did) is not None


@dataclass(frozen=True, slots=True)
class DnaRequest:
    did: str
    nul_terminated: bool = True

    @property
    def matches_everyone(self) -> bool:
        """An empty DID or '*' asks every identity that has a number (SPEC §11)."""
        return self.did in ("", "*")

    def matches(self, our_did: str | None) -> bool:
        if our_did is None:
            return False
        return self.matches_everyone or self.did.lower() == our_did.lower()


def parse_dna_request(body: bytes) -> DnaRequest:
    """DID up to the first NUL; a missing NUL is tolerated and reported (servald sends one)."""
    nul = body.find(b"\0")
    raw = body if nul < 0 else body[:nul]
    return DnaRequest(raw.decode("utf-8", errors="replace"), nul_terminated=nul >= 0)


def encode_dna_request(did: str) -> bytes:
    """Body of a lookup; '' and '*' are allowed here (they mean "everyone")."""
    if did not in ("", "*") and not is_valid_did(did):
        raise ValueError(f"not a phone number: {did!r}")
    return did.encode("ascii") + b"\0"


@dataclass(frozen=True, slots=True)
class DnaReply:
    sid: bytes
    did: str
    name: str
    uri: str
    token: str
    ends_with_bar: bool = True
    nul_terminated: bool = False

    @property
    def text(self) -> str:
        bar = "|" if self.ends_with_bar else ""
        return f"{self.token}|{self.uri}|{self.did}|{self.name}{bar}"


def parse_dna_reply(body: bytes) -> DnaReply:
    """`SIDHEX|sid://SIDHEX/local/DID|DID|NAME|`; the name is everything up to the last bar."""
    nul_terminated = body.endswith(b"\0")
    if nul_terminated:
        body = body[:-1]
    text = body.decode("utf-8", errors="replace")
    parts = text.split("|", 3)
    if len(parts) < 4:
        raise ParseError(f"DNA reply needs 4 '|'-separated fields, got {len(parts)}")
    token, uri, did, rest = parts
    ends_with_bar = rest.endswith("|")
    name = rest[:-1] if ends_with_bar else rest
    if not _SID_HEX_RE.fullmatch(token):
        raise ParseError(f"DNA reply token is not a 64-hex-digit SID: {token[:70]!r}")
    if not _REPLY_DID_RE.fullmatch(did):
        raise ParseError(f"DNA reply DID has characters outside 0-9*#+ or is too long: {did!r}")
    return DnaReply(bytes.fromhex(token), did, name, uri, token, ends_with_bar, nul_terminated)


def dna_uri(sid: bytes, did: str) -> str:
    return f"sid://{sid.hex().upper()}/local/{did}"


def uri_names_sid(uri: str, sid: bytes) -> bool:
    """Whether a reply's URI (`sid://SIDHEX/...`) names `sid`: one handset cannot answer
    with a URI pointing at another."""
    return uri.lower().startswith(f"sid://{sid.hex()}/")


def encode_dna_reply(sid: bytes, did: str, name: str) -> bytes:
    """The body servald's client accepts: all four bars, upper-case SID, no trailing NUL."""
    if not is_valid_did(did):
        raise ValueError(f"not a phone number: {did!r}")
    if any(c in name for c in "|\0"):
        raise ValueError("a DNA name may not contain '|' or NUL")
    token = sid.hex().upper()
    return f"{token}|{dna_uri(sid, did)}|{did}|{name}|".encode()
