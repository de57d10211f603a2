"""Per-packet cost of the wire layer, over the 421 datagrams of the shared servald capture.

Prints `name value unit` lines. Run: `make bench` (or .venv/bin/python bench/wire_bench.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from vomp import crypto, mdp
from vomp.address import AddressBook
from vomp.dissect import Dissector, parse_identities
from vomp.identity import Identity
from vomp.messages import VompAudio, VompMessage, encode_vomp, parse_vomp
from vomp.packet import Frame, Packet, encode_packet, parse_packet

VECTORS = Path(__file__).resolve().parent.parent.parent / "shared" / "serval-wire" / "vectors"


def _per_item_us(fn, items, rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        for item in items:
            fn(item)
    return (time.perf_counter() - start) / (rounds * len(items)) * 1e6


def main() -> None:
    capture = [
        bytes.fromhex(json.loads(line)["hex"])
        for line in (VECTORS / "capture_shared.jsonl").read_text().splitlines()
    ]
    identities = VECTORS / "identities.json"
    known = parse_identities(identities.read_text(), str(identities))
    book = AddressBook()
    for ident in known:
        book.learn(ident.sid, ident.sign_public)
    print(f"wire_parse_packet {_per_item_us(lambda d: parse_packet(d, book), capture, 20):.1f} us")

    dissector = Dissector(known)
    print(f"wire_dissect_packet {_per_item_us(dissector.dissect, capture, 3):.1f} us")

    alice = Identity.from_seed(bytes(range(32)))
    bob = Identity.from_seed(bytes(range(1, 33)))
    print(
        "wire_shared_key_derivation "
        f"{_per_item_us(lambda _: crypto.shared_key(bob.sid, alice.box_secret), range(200), 1):.1f}"
        " us"
    )
    key = crypto.shared_key(bob.sid, alice.box_secret)
    audio = VompMessage(0x1234, 0x5678, 5, 5, audio=VompAudio(2, 1, 1, bytes(160)))

    def send_audio(seq: int) -> bytes:
        content = mdp.encode_content(mdp.PORT_VOMP, mdp.PORT_VOMP, encode_vomp(audio))
        payload = mdp.seal(content, mdp.MdpMode.BOX, shared_key=key)
        frame = Frame.to_peer(alice.sid, bob.sid, payload, crypto_flags=0x30, frame_seq=seq & 255)
        return encode_packet(Packet(alice.sid, [frame], flags=1, seq=seq & 255))

    print(f"wire_build_audio_packet {_per_item_us(send_audio, range(2000), 1):.1f} us")
    datagram = send_audio(1)
    receiver_book = AddressBook()

    def receive_audio(_: int) -> None:
        frame = parse_packet(datagram, receiver_book).frames[0]
        content = mdp.open_payload(frame.payload, mdp.MdpMode.BOX, shared_key=key)
        parse_vomp(mdp.parse_content(content).body)

    print(f"wire_receive_audio_packet {_per_item_us(receive_audio, range(2000), 1):.1f} us")


if __name__ == "__main__":
    main()
