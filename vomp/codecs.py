"""VoMP codec numbers and the one policy for what a call sends.

VoMP's codec list (SPEC §12.1) is how two ends learn what the other decodes. servald assigns the
numbers 1-7 and 0x20-0x21. Ours offers:

* 0x70 `OPUS_REDUNDANT` — our own: Opus frames wrapped in the redundant payload of
  `vomp.media.redundancy` (each packet also carries the previous 1-2 frames). 0x70 sits in a
  range servald has never used, so only our handsets offer it, and a call with servald never
  picks it.
* 7 `OPUS` — one plain Opus packet per VoMP frame, 20 ms, as servald relays it.
* 2 `MULAW` — G.711 µ-law 8 kHz, 160 bytes per 20 ms: every servald peer decodes it.

The call table ends a call whose two lists leave nothing to send (SPEC §12.3 step 2) by the same
`choose_send_codec` the media uses to pick its encoder, so the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum


class Codec(IntEnum):
    PCM16 = 0x01
    MULAW = 0x02
    ALAW = 0x03
    GSM = 0x04
    CODEC2_1200 = 0x05
    CODEC2_3200 = 0x06
    OPUS = 0x07
    DTMF = 0x20
    TEXT = 0x21
    OPUS_REDUNDANT = 0x70


ALAW = Codec.ALAW
MULAW = Codec.MULAW
OPUS = Codec.OPUS
OPUS_REDUNDANT = Codec.OPUS_REDUNDANT

OUR_CODECS: tuple[int, ...] = (MULAW, OPUS, OPUS_REDUNDANT)
"""What we decode and put in the VoMP codec list (ascending, as the list must be)."""

SEND_PREFERENCE: tuple[int, ...] = (OPUS_REDUNDANT, OPUS, MULAW)
"""What we can encode, best first."""


def choose_send_codec(ours: Iterable[int], theirs: Iterable[int]) -> int | None:
    """The codec to send: the first of SEND_PREFERENCE both lists hold; None if none is shared.

    None means the call cannot carry audio: VoMP ends such a call (SPEC §12.3 step 2).
    """
    shared = set(ours) & set(theirs)
    return next((codec for codec in SEND_PREFERENCE if codec in shared), None)
