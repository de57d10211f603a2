"""Every parser is total: any bytes give a value or ParseError, and the dissector never raises.

Hypothesis explores arbitrary bytes; a seeded mutation run over every vector packet reaches
deep into frames, crypto and service bodies, where random bytes rarely get.
"""

from __future__ import annotations

import contextlib
import random

import wire_vectors as wv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vomp import crypto, dna, keymap, linkstate, mdp, please_explain
from vomp.address import AddressBook, DecodeContext
from vomp.dissect import Dissector, KnownIdentity
from vomp.messages import parse_vomp
from vomp.packet import parse_packet
from vomp.wire import ParseError, Reader

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _book() -> AddressBook:
    book = AddressBook()
    for ident in wv.identities().values():
        book.learn(ident.sid, ident.sign_public)
    return book


def _dissector() -> Dissector:
    return Dissector(KnownIdentity.from_identity(k, v) for k, v in wv.identities().items())


def _sid() -> bytes:
    return wv.identities()["A"].sid


PARSERS = {
    "packet": lambda data: parse_packet(data, _book()),
    "address": lambda data: DecodeContext(_book(), sender=_sid()).read(Reader(data)),
    "linkstate": lambda data: linkstate.parse_linkstate(data, _sid(), _book()),
    "keymap": keymap.parse_keymap,
    "dna_request": dna.parse_dna_request,
    "dna_reply": dna.parse_dna_reply,
    "please_explain": please_explain.parse_please_explain,
    "vomp": parse_vomp,
    "mdp_ports": mdp.parse_content,
    "varint": lambda data: Reader(data).varint(),
    "cstring": lambda data: Reader(data).cstring(),
}


def _total(parse, data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse(data)


@FUZZ
@given(st.sampled_from(sorted(PARSERS)), st.binary(max_size=300))
def test_no_parser_raises_anything_but_parse_error(name, data):
    _total(PARSERS[name], data)


@FUZZ
@given(
    st.sampled_from(sorted(PARSERS)),
    st.sampled_from([b"\x01\x01\x02\x52\x94\x05\x07", b"\x19\x02", b"\x0c\x19\xff\x01", b"\x02"]),
    st.binary(max_size=200),
)
def test_no_parser_raises_on_plausible_prefixes(name, prefix, tail):
    _total(PARSERS[name], prefix + tail)


@FUZZ
@given(st.binary(max_size=1300))
def test_dissector_never_raises_and_reports_no_internal_error(data):
    result = _dissector().dissect(data)
    assert "internal error" not in result.get("error", "")


@FUZZ
@given(st.binary(max_size=200), st.binary(min_size=32, max_size=32))
def test_crypto_failures_are_named_errors(payload, key):
    for call in (
        lambda: crypto.box_open(payload, key),
        lambda: crypto.verify_signed(payload, key),
        lambda: mdp.open_payload(payload, mdp.MdpMode.BOX, shared_key=key),
        lambda: mdp.open_payload(payload, mdp.MdpMode.SIGNED, sign_public=key),
    ):
        with contextlib.suppress(crypto.CryptoFailure):
            call()


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(pos, len(buf) - 1)] = rng.randrange(256)
        elif op == 2:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 3:
            del buf[pos : pos + rng.randint(1, 8)]
        else:
            del buf[pos:]
    return bytes(buf)


def test_seeded_mutation_fuzz_of_every_vector_packet():
    rng = random.Random(20261127)
    dissector = _dissector()
    book = _book()
    packets = [bytes.fromhex(v["packet_hex"]) for _n, v in wv.all_vectors()]
    cases = 0
    for _round in range(45):
        for original in packets:
            data = _mutate(rng, original)
            result = dissector.dissect(data)
            assert "internal error" not in result.get("error", ""), data.hex()
            _total(lambda d: parse_packet(d, book, learn=False), data)
            cases += 1
    assert cases >= 3000
