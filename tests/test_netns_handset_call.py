"""Issue 3's headline: speech into one handset's microphone comes out of the other's earpiece.

Two whole handsets (Node + asyncio UDP transport + CallAudio + AudioEngine) in two network
namespaces, each on its own paced sound card (jackd dummy driver through ALSA's jack plugin).
A click train is played into A's capture device; B's playback device is recorded in the same
JACK cycle as the clicks, so each click's arrival is found and timed exactly. Delays are
reported by bench/m2e_bench.py; here only the bound that says "this is a live call" is held.
"""

from __future__ import annotations

import os

import pytest
from two_handsets import run_call
from virtual_audio import JackServer, realtime_permitted

pytestmark = [
    pytest.mark.netns,
    pytest.mark.realtime,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(not JackServer.available(), reason="needs jackd2 and libasound2-plugins"),
]


def test_speech_into_handset_a_is_heard_from_handset_b_over_udp_between_namespaces():
    result = run_call(3.0)
    caller, callee = result.caller, result.callee
    # Most clicks made it across; the first ones may go before B's audio is up.
    assert len(result.lags_ms) >= result.clicks_sent * 0.6, result.lags_ms
    # ...and each one arrived as a live call's audio does: well within a fifth of a second.
    assert max(result.lags_ms) < 200, result.lags_ms
    for side in (caller, callee):
        stats = side["stats"]
        assert side["timed_out"] is False
        assert stats["codec_sent"] == 0x70  # our redundant Opus: both ends are our handsets
        assert stats["frames_sent"] > 100
        assert stats["device_reopens"] == 0
        assert stats["device_state"] == "running"
        assert stats["device_realtime"] is realtime_permitted()
    assert callee["stats"]["packets_received"] > 100
    assert caller["stats"]["packets_received"] > 100  # B's (silent) microphone came back too
