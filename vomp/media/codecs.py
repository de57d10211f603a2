"""VoMP codec numbers and the choice of what to send on a call.

VoMP's codec list (SPEC §12.1) is how two ends learn what the other decodes. Ours offers:

* 0x70 `OPUS_REDUNDANT` — our own: Opus frames wrapped in the redundant payload of
  `vomp.media.redundancy` (each packet also carries the previous 1-2 frames). servald assigns codec
  numbers 1-7 and 0x20-0x21; 0x70 sits in a range it has never used, so only our handsets offer
  it, and a call with servald never picks it.
* 7 `OPUS` — one plain Opus packet per VoMP frame, 20 ms, as servald relays it.
* 2 `MULAW` — G.711 µ-law 8 kHz, 160 bytes per 20 ms: every servald peer decodes it.
"""

from __future__ import annotations

from collections.abc import Iterable

MULAW = 2
OPUS = 7
OPUS_REDUNDANT = 0x70

CODEC_NAMES = {MULAW: "mulaw", OPUS: "opus", OPUS_REDUNDANT: "opus-redundant"}

OUR_CODECS: tuple[int, ...] = (MULAW, OPUS, OPUS_REDUNDANT)
"""What we put in the VoMP codec list (ascending, as the list must be)."""

SEND_PREFERENCE: tuple[int, ...] = (OPUS_REDUNDANT, OPUS, MULAW)


def choose_send_codec(ours: Iterable[int], theirs: Iterable[int]) -> int | None:
    """The codec to send: the first of SEND_PREFERENCE both lists hold; None if none is shared.

    None means the call cannot carry audio: VoMP ends such a call (SPEC §12.3 step 2).
    """
    shared = set(ours) & set(theirs)
    return next((codec for codec in SEND_PREFERENCE if codec in shared), None)
