"""The one codec policy: what a call sends, given both ends' VoMP codec lists."""

from vomp import codecs


def test_negotiation_prefers_our_redundant_codec_then_opus_then_mulaw():
    ours = codecs.OUR_CODECS
    assert codecs.choose_send_codec(ours, ours) == codecs.OPUS_REDUNDANT
    servald = (1, 2, 3, 4, 5, 6, 7)
    assert codecs.choose_send_codec(ours, servald) == codecs.OPUS
    assert codecs.choose_send_codec(ours, (1, 2, 3)) == codecs.MULAW
    assert codecs.choose_send_codec(ours, (1, 3)) is None
