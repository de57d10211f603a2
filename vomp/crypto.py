"""MDP cryptography (SPEC §3): crypto_box frames, signed-only frames, key-map signatures.

Failures raise CryptoFailure subclasses so the caller can count and drop the frame.
Nonces come from a NonceSource so tests can replay the nonces servald recorded.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator

from nacl import bindings
from nacl.exceptions import CryptoError

NONCE_LEN = 24
MAC_LEN = 16
SIG_LEN = 64
KEY_LEN = 32
BOX_OVERHEAD = NONCE_LEN + MAC_LEN

NonceSource = Callable[[], bytes]


class CryptoFailure(Exception):
    """A frame failed authentication; count it and drop it."""


class DecryptError(CryptoFailure):
    """crypto_box could not be opened (wrong keys, forged or corrupt payload)."""


class BadSignature(CryptoFailure):
    """An Ed25519 signature did not verify."""


class BadKey(CryptoFailure):
    """A public key is not usable (e.g. a low-order point)."""


def random_nonce() -> bytes:
    """A random nonce with bit 7 of byte 0 cleared (servald reserves it)."""
    nonce = bytearray(os.urandom(NONCE_LEN))
    nonce[0] &= 0x7F
    return bytes(nonce)


def recorded_nonces(nonces: Iterable[bytes]) -> NonceSource:
    """A NonceSource that replays given nonces in order (for known-answer tests)."""
    it: Iterator[bytes] = iter(nonces)
    return lambda: next(it)


def shared_key(peer_sid: bytes, my_box_secret: bytes) -> bytes:
    """crypto_box_beforenm(peer SID, my box secret); the same value at both ends."""
    try:
        return bindings.crypto_box_beforenm(bytes(peer_sid), bytes(my_box_secret))
    except CryptoError as exc:
        raise BadKey(f"cannot derive a shared key with SID {peer_sid.hex()[:16]}…") from exc


class SharedKeyCache:
    """Per (peer SID, our SID) shared keys: X25519 is computed once per peer, not per frame.

    At most `capacity` peers, least recently used forgotten first.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[bytes, dict[bytes, bytes]] = OrderedDict()

    def cached(self, peer_sid: bytes, my_sid: bytes) -> bool:
        return my_sid in self._keys.get(peer_sid, {})

    def get(self, peer_sid: bytes, my_sid: bytes, my_box_secret: bytes) -> bytes:
        mine = self._keys.get(peer_sid)
        key = mine.get(my_sid) if mine is not None else None
        if key is None:
            key = shared_key(peer_sid, my_box_secret)
            self._keys.setdefault(peer_sid, {})[my_sid] = key
            if len(self._keys) > self.capacity:
                self._keys.popitem(last=False)
        self._keys.move_to_end(peer_sid)
        return key

    def forget(self, peer_sid: bytes) -> None:
        self._keys.pop(peer_sid, None)

    def peers(self) -> list[bytes]:
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def box_seal(plaintext: bytes, key: bytes, nonce: bytes) -> bytes:
    """Wire payload nonce(24) ‖ tag(16) ‖ ciphertext."""
    if len(nonce) != NONCE_LEN:
        raise ValueError(f"a nonce is {NONCE_LEN} bytes")
    return nonce + bindings.crypto_box_easy_afternm(bytes(plaintext), nonce, key)


def box_open(payload: bytes, key: bytes) -> bytes:
    """The plaintext of a crypto_box payload; DecryptError if it does not authenticate."""
    if len(payload) < BOX_OVERHEAD:
        raise DecryptError(f"crypto_box payload of {len(payload)} bytes is shorter than 40")
    try:
        return bindings.crypto_box_open_easy_afternm(
            bytes(payload[NONCE_LEN:]), bytes(payload[:NONCE_LEN]), key
        )
    except CryptoError as exc:
        raise DecryptError("crypto_box authentication failed") from exc


def sign_detached(message: bytes, ed_secret: bytes) -> bytes:
    return bindings.crypto_sign(bytes(message), ed_secret)[:SIG_LEN]


def verify_detached(message: bytes, signature: bytes, sign_public: bytes) -> bool:
    if len(signature) != SIG_LEN or len(sign_public) != KEY_LEN:
        return False
    try:
        bindings.crypto_sign_open(bytes(signature) + bytes(message), bytes(sign_public))
    except CryptoError:
        return False
    return True


def sign_content(content: bytes, ed_secret: bytes) -> bytes:
    """Signed-only payload: content ‖ Ed25519(SHA-512(content))."""
    return bytes(content) + sign_detached(hashlib.sha512(content).digest(), ed_secret)


def split_signed(payload: bytes) -> tuple[bytes, bytes]:
    """(content, signature) of a signed-only payload; BadSignature if too short."""
    if len(payload) < SIG_LEN:
        raise BadSignature(f"signed payload of {len(payload)} bytes has no room for a signature")
    return payload[:-SIG_LEN], payload[-SIG_LEN:]


def verify_signed(payload: bytes, sign_public: bytes) -> bytes:
    """The content of a signed-only payload whose signature checks; BadSignature otherwise."""
    content, signature = split_signed(payload)
    if not verify_detached(hashlib.sha512(content).digest(), signature, sign_public):
        raise BadSignature("Ed25519 signature over SHA-512(content) does not verify")
    return content


def keymap_signature(sid: bytes, ed_secret: bytes) -> bytes:
    """Key-map proof: Ed25519 over the raw 32-byte SID (no hash)."""
    return sign_detached(sid, ed_secret)


def verify_keymap_signature(sid: bytes, signature: bytes, sign_public: bytes) -> bool:
    return verify_detached(sid, signature, sign_public)
