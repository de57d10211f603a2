"""Packet dissector: one datagram in, one JSON-ready dict out (schema serval-wire-vectors/1).

The field engineer's tcpdump for this protocol, and the oracle the vector tests compare
against. Addresses resolve only against the identities given (unique prefix); box frames
are opened when the identities hold a box secret for either end. It never raises: a
datagram that is not a packet gives {"error": ...}, a frame part that does not decode gives
an error field at that spot, and the rest is still shown.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError

from vomp import address as addr
from vomp import crypto, dna, keymap, linkstate, mdp, packet, please_explain
from vomp.address import Address, AddressBook
from vomp.identity import Identity, sid_from_sign_key
from vomp.messages import TIME_UNIT_MS, AudioNumbering, CallState, parse_vomp
from vomp.wire import ParseError

CRYPTO_BOX = "crypto_box (CIPHERED|SIGNED)"
CRYPTO_SIGNED = "Ed25519 signature (SIGNED only)"
CRYPTO_NONE = "none (cleartext)"

KEYMAP_KINDS = {True: "request (send me your signing key)", False: "reply"}


class IdentitiesFileError(ValueError):
    """The identities file is malformed; the message names the file, the entry and the fix."""


@dataclass(frozen=True, slots=True)
class KnownIdentity:
    """An identity the dissector may resolve to; secrets are optional (public-only peers)."""

    label: str
    sid: bytes
    sign_public: bytes | None = None
    box_secret: bytes | None = None

    @classmethod
    def from_identity(cls, label: str, identity: Identity) -> KnownIdentity:
        return cls(label, identity.sid, identity.sign_public, identity.box_secret)


def identities_from_json(obj: Any, source: str = "identities") -> list[KnownIdentity]:
    """Identities from the `identities` mapping of vectors/identities.json (or the whole file).

    With an `ed25519_seed` every key is derived (and must match any given sid); otherwise
    `sid` (and optionally `sign_public_key`) suffice.
    """
    if isinstance(obj, dict) and isinstance(obj.get("identities"), dict):
        obj = obj["identities"]
    if not isinstance(obj, dict):
        raise IdentitiesFileError(
            f"{source}: expected an object of label -> identity; fix: use the schema of "
            f"vectors/identities.json"
        )
    found = []
    for label, entry in obj.items():
        where = f"{source}: identity {label!r}"
        if not isinstance(entry, dict):
            raise IdentitiesFileError(f"{where} is not an object; fix: give sid and keys")
        try:
            if entry.get("ed25519_seed"):
                ident = Identity.from_seed(bytes.fromhex(entry["ed25519_seed"]))
                if entry.get("sid") and bytes.fromhex(entry["sid"]) != ident.sid:
                    raise IdentitiesFileError(
                        f"{where}: sid does not match the seed; fix: correct sid or seed"
                    )
                found.append(KnownIdentity.from_identity(str(label), ident))
                continue
            sign_public = None
            if entry.get("sign_public_key"):
                sign_public = bytes.fromhex(entry["sign_public_key"])
            sid = bytes.fromhex(entry["sid"]) if entry.get("sid") else None
            if sid is None and sign_public is not None:
                sid = sid_from_sign_key(sign_public)
            if sid is None or len(sid) != 32:
                raise IdentitiesFileError(
                    f"{where}: no 64-hex-digit sid; fix: add sid or ed25519_seed"
                )
            box_secret = (
                bytes.fromhex(entry["box_secret_key"]) if entry.get("box_secret_key") else None
            )
            found.append(KnownIdentity(str(label), sid, sign_public, box_secret))
        except (ValueError, TypeError, CryptoError) as exc:
            if isinstance(exc, IdentitiesFileError):
                raise
            raise IdentitiesFileError(f"{where}: {exc}; fix: keys are hex strings") from exc
    return found


def parse_identities(text: str, source: str) -> list[KnownIdentity]:
    """The identities in the text of an identities file; `source` names the file in errors."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IdentitiesFileError(
            f"{source}:{exc.lineno}: not JSON ({exc.msg}); fix: use the schema of "
            f"vectors/identities.json"
        ) from exc
    return identities_from_json(obj, source)


def _upper(data: bytes | None) -> str | None:
    return None if data is None else data.hex().upper()


def _encoding(a: Address) -> str:
    if a.is_abbreviation:
        return f"ABBREVIATED({a.code} byte prefix)"
    return {
        addr.CODE_FULL: "FULL(32 bytes)",
        addr.CODE_SIGNKEY: "SIGNKEY(0xFB): Ed25519 public key, SID derived",
        addr.CODE_P2P_ME: "P2P_ME(0xFC): point-to-point only, unresolvable",
        addr.CODE_P2P_YOU: "P2P_YOU(0xFD): point-to-point only, unresolvable",
        addr.CODE_PREVIOUS: "PREVIOUS(0xFE): same as previous address",
        addr.CODE_SELF: "SELF(0xFF): same as packet sender",
    }[a.code]


class Dissector:
    """Decodes datagrams into the vectors' `decoded` schema, keeping per-call audio numbering.

    Feed datagrams in capture order: VoMP audio times/seqs are rebuilt per call and direction
    as servald would (SPEC §12.6).
    """

    def __init__(self, identities: Iterable[KnownIdentity], *, learn: bool = False) -> None:
        """With `learn`, SIDs and sign keys seen in full also resolve later abbreviations
        (a node's view); without, only the identities given do (the vectors' rule)."""
        self._learn = learn
        self._by_sid: dict[bytes, KnownIdentity] = {}
        self._book = AddressBook()
        for ident in identities:
            self._by_sid[ident.sid] = ident
            self._book.learn(ident.sid, ident.sign_public)
        self._keys: dict[tuple[bytes, bytes], tuple[bytes, str] | None] = {}
        self._numbering: dict[tuple[bytes, bytes | None, int], AudioNumbering] = {}

    def dissect(self, datagram: bytes) -> dict[str, Any]:
        try:
            return self._packet(bytes(datagram))
        except ParseError as exc:
            return {"error": f"not a packet: {exc}"}
        except Exception as exc:  # the dissector is a tool: report, never crash
            return {"error": f"internal error: {type(exc).__name__}: {exc}"}

    # -- packet and frames ---------------------------------------------------------------

    def _packet(self, data: bytes) -> dict[str, Any]:
        parsed = packet.parse_packet(data, self._book, learn=self._learn)
        pkt = parsed.packet
        assert pkt.sender_address is not None
        return {
            "length": len(data),
            "version": pkt.version,
            "encapsulation": pkt.encapsulation,
            "sender": self._address(pkt.sender_address),
            "flags": pkt.flags,
            "flag_names": packet.flag_names(pkt.flags, packet.PACKET_FLAG_NAMES),
            "interface": pkt.interface,
            "seq": pkt.seq,
            "header_length": parsed.header_length,
            "frames": [self._frame(f, pkt) for f in pkt.frames],
        }

    def _address(self, a: Address) -> dict[str, Any]:
        out: dict[str, Any] = {"code": a.code}
        if a.data:
            out["bytes_hex"] = a.data.hex()
        out["encoding"] = _encoding(a)
        out["sid"] = _upper(a.sid)
        known = self._by_sid.get(a.sid) if a.sid else None
        out["identity"] = known.label if known else None
        return out

    def _frame(self, f: packet.Frame, pkt: packet.Packet) -> dict[str, Any]:
        out: dict[str, Any] = {
            "offset": f.offset,
            "flags": f.flags,
            "flag_names": packet.flag_names(f.flags, packet.FRAME_FLAG_NAMES),
            "source": "SENDER_SAME"
            if f.source_address is None
            else self._address(f.source_address),
            "destination": self._address(f.destination_address) if f.destination_address else None,
            "broadcast_id": f.broadcast_id.hex() if f.broadcast_id is not None else None,
            "next_hop": self._address(f.next_hop_address) if f.next_hop_address else None,
        }
        if f.one_hop:
            out["ttl"] = None
        else:
            assert f.ttl is not None and f.qos is not None
            out["ttl_qos_byte"] = f.ttl | f.qos << 5
            out["ttl"] = f.ttl
            out["qos"] = f.qos
        out["type"] = f.type
        out["type_name"] = packet.TYPE_NAMES.get(f.type, f"UNKNOWN(0x{f.type:02x})")
        out["frame_seq"] = f.frame_seq
        out["payload_length"] = len(f.payload)
        out["payload_hex"] = f.payload.hex()
        out["source_sid"] = _upper(f.source)
        out["destination_sid"] = _upper(f.destination)
        if not f.resolved:
            out["note"] = "unknown address in frame: a node would skip it and send PLEASE_EXPLAIN"
        if f.type == packet.TYPE_PLEASE_EXPLAIN:
            self._please_explain(f.payload, out)
        elif f.type == packet.TYPE_DATA:
            out["mdp"] = self._mdp(f, pkt)
        return out

    def _please_explain(self, payload: bytes, out: dict[str, Any]) -> None:
        try:
            entries = please_explain.parse_please_explain(payload)
        except ParseError as exc:
            out["please_explain"] = None
            out["please_explain_error"] = str(exc)
            return
        shown = []
        for entry in entries:
            if isinstance(entry, please_explain.ExplainRequest):
                match = self._book.resolve_prefix(entry.prefix)
                shown.append(
                    {
                        "code": len(entry.prefix),
                        "kind": "request: explain this prefix",
                        "prefix_hex": entry.prefix.hex(),
                        "matches_sid": _upper(match),
                    }
                )
            elif isinstance(entry, please_explain.ExplainAnswer) and entry.sign_key:
                shown.append(
                    {
                        "code": addr.CODE_SIGNKEY,
                        "kind": "signkey answer",
                        "sign_public_key": _upper(entry.sign_key),
                        "sid": _upper(entry.sid),
                    }
                )
            elif isinstance(entry, please_explain.ExplainAnswer):
                shown.append(
                    {"code": addr.CODE_FULL, "kind": "sid answer", "sid": _upper(entry.sid)}
                )
            else:
                shown.append({"code": addr.CODE_P2P_YOU, "kind": "request: who are you"})
        out["please_explain"] = shown

    # -- MDP -----------------------------------------------------------------------------

    def _shared_key(self, source: bytes, destination: bytes) -> tuple[bytes, str] | None:
        pair = (source, destination)
        if pair not in self._keys:
            result = None
            dst, src = self._by_sid.get(destination), self._by_sid.get(source)
            try:
                if dst and dst.box_secret:
                    key = crypto.shared_key(source, dst.box_secret)
                    result = (key, "recipient box_secret_key + sender SID")
                elif src and src.box_secret:
                    key = crypto.shared_key(destination, src.box_secret)
                    result = (key, "sender box_secret_key + recipient SID")
            except crypto.BadKey:
                result = None
            self._keys[pair] = result
        return self._keys[pair]

    def _sign_key(self, f: packet.Frame, pkt: packet.Packet) -> bytes | None:
        if f.source is None:
            return None
        key = self._book.sign_key(f.source)
        if key is not None:
            return key
        wire = pkt.sender_address if f.sender_same else f.source_address
        return wire.sign_key if wire is not None else None

    def _mdp(self, f: packet.Frame, pkt: packet.Packet) -> dict[str, Any]:
        bits = f.crypto_flags
        out: dict[str, Any]
        if bits == packet.CIPHERED | packet.SIGNED:
            out = {"crypto": CRYPTO_BOX}
            content = self._open_box(f, out)
        elif bits == packet.SIGNED:
            out = {"crypto": CRYPTO_SIGNED}
            content = self._check_signed(f, pkt, out)
        elif bits == packet.CIPHERED:
            return {"crypto": "CIPHERED without SIGNED (servald discards it)"}
        else:
            out = {"crypto": CRYPTO_NONE}
            content = f.payload
        if content is None:
            return out
        try:
            message = mdp.parse_content(content)
        except ParseError as exc:
            out["port_error"] = str(exc)
            return out
        out["dst_port"] = message.dst_port
        out["src_port"] = message.src_port
        out["port_bytes_hex"] = content[: message.port_header_length].hex()
        out["body_hex"] = message.body.hex()
        service, body = self._service(message, f)
        out["service"] = service
        out["body"] = body
        return out

    def _open_box(self, f: packet.Frame, out: dict[str, Any]) -> bytes | None:
        payload = f.payload
        out["nonce_hex"] = payload[: crypto.NONCE_LEN].hex()
        out["ciphertext_with_mac_hex"] = payload[crypto.NONCE_LEN :].hex()
        keyed = None
        if f.source is not None and f.destination is not None:
            keyed = self._shared_key(f.source, f.destination)
        if keyed is None:
            out["decrypted_with"] = None
            out["shared_key_hex"] = None
            out["plaintext_hex"] = None
            out["note"] = "no box secret for either end in the identities file: not decrypted"
            return None
        key, how = keyed
        out["decrypted_with"] = how
        out["shared_key_hex"] = key.hex()
        try:
            plaintext = crypto.box_open(payload, key)
        except crypto.DecryptError as exc:
            out["plaintext_hex"] = None
            out["decrypt_error"] = str(exc)
            return None
        out["plaintext_hex"] = plaintext.hex()
        return plaintext

    def _check_signed(
        self, f: packet.Frame, pkt: packet.Packet, out: dict[str, Any]
    ) -> bytes | None:
        try:
            content, signature = crypto.split_signed(f.payload)
        except crypto.BadSignature as exc:
            out["signature_error"] = str(exc)
            return None
        digest = hashlib.sha512(content).digest()
        out["signed_content_hex"] = content.hex()
        out["signature_hex"] = signature.hex()
        out["sha512_of_content_hex"] = digest.hex()
        sign_key = self._sign_key(f, pkt)
        if sign_key is None:
            out["signature_valid"] = None
            out["note"] = "sign key of the source unknown: signature not checked"
        else:
            out["signature_valid"] = crypto.verify_detached(digest, signature, sign_key)
        return content

    # -- services ------------------------------------------------------------------------

    def _service(self, m: mdp.MdpMessage, f: packet.Frame) -> tuple[str, dict[str, Any]]:
        if m.dst_port == mdp.PORT_LINKSTATE:
            return "LINKSTATE", self._guard(self._linkstate, m.body, f)
        if m.dst_port == mdp.PORT_KEYMAP:
            return "KEYMAP", self._guard(self._keymap, m.body, f)
        if m.dst_port == mdp.PORT_DNA:
            return "DNA_REQUEST", self._guard(self._dna_request, m.body, f)
        if m.src_port == mdp.PORT_DNA:
            return "DNA_REPLY", self._guard(self._dna_reply, m.body, f)
        if m.dst_port == mdp.PORT_VOMP:
            return "VOMP", self._guard(self._vomp, m.body, f)
        if m.dst_port == mdp.PORT_RHIZOME_SYNC_KEYS:
            return "RHIZOME_SYNC_KEYS", {"opaque_hex": m.body.hex()}
        return f"PORT{m.dst_port}", {"opaque_hex": m.body.hex()}

    @staticmethod
    def _guard(
        decode: Callable[[bytes, packet.Frame], dict[str, Any]], body: bytes, f: packet.Frame
    ) -> dict[str, Any]:
        try:
            return decode(body, f)
        except ParseError as exc:
            return {"error": str(exc), "opaque_hex": body.hex()}

    def _linkstate(self, body: bytes, f: packet.Frame) -> dict[str, Any]:
        records, _unknown = linkstate.parse_linkstate(body, f.source, self._book, learn=self._learn)
        shown = []
        for r in records:
            rec: dict[str, Any] = {
                "offset": r.offset,
                "length": len(r.raw),
                "flags": r.flags,
                "flag_names": packet.flag_names(r.flags, linkstate.FLAG_NAMES),
                "receiver": self._address(r.receiver),
                "version": r.version,
                "transmitter": self._address(r.transmitter) if r.transmitter else None,
                "interface": r.interface,
                "ack_seq": r.ack_seq,
                "ack_mask": None if r.ack_mask is None else f"0x{r.ack_mask:08x}",
            }
            if r.ack_seq is not None:
                rec["acked_seqs"] = r.acked_seqs
            rec["drop_rate"] = r.drop_rate
            rec["record_hex"] = r.raw.hex()
            shown.append(rec)
        return {"records": shown}

    def _keymap(self, body: bytes, f: packet.Frame) -> dict[str, Any]:
        message = keymap.parse_keymap(body)
        if message.keytype != keymap.KEYTYPE_SIGN:
            kind = (
                "unlock exchange (ignored)"
                if message.keytype in keymap.UNLOCK_KEYTYPES
                else "unknown key type (ignored)"
            )
            return {"keytype": message.keytype, "kind": kind}
        out: dict[str, Any] = {"keytype": message.keytype, "kind": KEYMAP_KINDS[message.is_request]}
        if message.is_reply:
            assert message.sign_key is not None and message.signature is not None
            sid = f.source or b""
            out["sign_public_key"] = _upper(message.sign_key)
            out["signature"] = message.signature.hex()
            out["signature_over_sender_sid_valid"] = crypto.verify_keymap_signature(
                sid, message.signature, message.sign_key
            )
            try:
                derived = sid_from_sign_key(message.sign_key)
            except CryptoError:
                derived = None
            out["sid_derived_from_key_matches_sender"] = derived == f.source
        return out

    @staticmethod
    def _dna_request(body: bytes, _f: packet.Frame) -> dict[str, Any]:
        request = dna.parse_dna_request(body)
        return {"did": request.did, "nul_terminated": request.nul_terminated, "raw_hex": body.hex()}

    @staticmethod
    def _dna_reply(body: bytes, _f: packet.Frame) -> dict[str, Any]:
        reply = dna.parse_dna_reply(body)
        return {
            "text": reply.text,
            "token": reply.token,
            "uri": reply.uri,
            "did": reply.did,
            "name": reply.name,
            "ends_with_bar": reply.ends_with_bar,
            "nul_terminated": reply.nul_terminated,
        }

    def _vomp(self, body: bytes, f: packet.Frame) -> dict[str, Any]:
        m = parse_vomp(body)
        out: dict[str, Any] = {
            "version": m.version,
            "sender_session": m.sender_session,
            "recipient_session": m.recipient_session,
            "state_byte": f"0x{m.state_byte:02x}",
            "sender_state": m.sender_state,
            "sender_state_name": CallState(m.sender_state).name,
            "recipient_state_as_known_by_sender": m.recipient_state,
            "recipient_state_name": CallState(m.recipient_state).name,
        }
        if m.codecs is not None:
            out["kind"] = "status+codec list"
            out["codecs"] = list(m.codecs)
            if m.caller_number is not None:
                out["numbers"] = [m.caller_number, m.called_number]
                out["caller_number"] = m.caller_number
                out["called_number"] = m.called_number
        elif m.audio is not None:
            a = m.audio
            key = (f.source or b"", f.destination, m.sender_session)
            numbering = self._numbering.setdefault(key, AudioNumbering())
            time, seq = numbering.rebuild(a.time_field, a.seq_field)
            out["kind"] = "audio"
            out["audio"] = {
                "codec": a.codec,
                "time_field": a.time_field,
                "time_field_ms": a.time_field * TIME_UNIT_MS,
                "seq_field": a.seq_field,
                "audio_len": len(a.data),
                "audio_hex": a.data.hex(),
                "reconstructed_time_ms": time * TIME_UNIT_MS,
                "reconstructed_seq": seq,
            }
        else:
            out["kind"] = "status"
        return out


def dissect_line(dissector: Dissector, line: str) -> dict[str, Any]:
    """One input line (hex, or a JSON object with a "hex" field) to one output object."""
    text = line.strip()
    if not text:
        return {"error": "empty line: expected a datagram in hex"}
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            return {"error": f"not JSON: {exc.msg} at column {exc.colno}"}
        if not isinstance(obj, dict) or not isinstance(obj.get("hex"), str):
            return {"error": 'JSON line without a "hex" string field'}
        text = obj["hex"]
    try:
        datagram = bytes.fromhex(text)
    except ValueError as exc:
        return {"error": f"not hex: {exc}"}
    return dissector.dissect(datagram)
