"""Key-map service bodies (SPEC §10, MDP port 1, crypto_box): ask for / prove a sign key.

A reply proves the sign key belongs to the SID: Ed25519 over the raw SID, and for combined
identities the SID is the key's curve25519 form.
"""

from __future__ import annotations

from dataclasses import dataclass

from nacl.exceptions import CryptoError

from vomp import crypto
from vomp.identity import SIGN_KEY_LEN, Identity, sid_from_sign_key
from vomp.wire import ParseError

KEYTYPE_SIGN = 0x02
REPLY_LEN = 1 + SIGN_KEY_LEN + crypto.SIG_LEN  # 97
# F0/F1/F2 belong to servald's "unlock" exchange between instances of one identity.
UNLOCK_KEYTYPES = (0xF0, 0xF1, 0xF2)


@dataclass(frozen=True, slots=True)
class KeyMapMessage:
    """A request (no key) or a reply (key + signature); other key types are to be ignored."""

    keytype: int
    sign_key: bytes | None = None
    signature: bytes | None = None

    @property
    def is_request(self) -> bool:
        return self.keytype == KEYTYPE_SIGN and self.sign_key is None

    @property
    def is_reply(self) -> bool:
        return self.keytype == KEYTYPE_SIGN and self.sign_key is not None

    def verify(self, sid: bytes) -> bool:
        """The reply proves `sid` owns the key: signature over the SID and SID = curve(key)."""
        if not self.is_reply or self.signature is None or self.sign_key is None:
            return False
        if not crypto.verify_keymap_signature(sid, self.signature, self.sign_key):
            return False
        try:
            return sid_from_sign_key(self.sign_key) == sid
        except CryptoError:
            return False


def parse_keymap(body: bytes) -> KeyMapMessage:
    if not body:
        raise ParseError("empty key-map body")
    keytype = body[0]
    if keytype != KEYTYPE_SIGN:
        return KeyMapMessage(keytype)
    if len(body) == 1:
        return KeyMapMessage(keytype)
    if len(body) != REPLY_LEN:
        raise ParseError(f"key-map reply is {len(body)} bytes, expected {REPLY_LEN}")
    return KeyMapMessage(keytype, body[1 : 1 + SIGN_KEY_LEN], body[1 + SIGN_KEY_LEN :])


def encode_request() -> bytes:
    return bytes((KEYTYPE_SIGN,))


def encode_reply(identity: Identity) -> bytes:
    """02 ‖ our sign key ‖ Ed25519(our SID)."""
    signature = crypto.keymap_signature(identity.sid, identity.ed_secret)
    return bytes((KEYTYPE_SIGN,)) + identity.sign_public + signature
