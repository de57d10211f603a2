"""Mouth-to-ear delay of a whole call, and the floor no implementation can beat.

Two `handset daemon`s in two network namespaces over real UDP, each on its own paced sound
card (jackd dummy driver through ALSA's jack plugin): a click train goes into A's capture
device and B's playback device is recorded in the same JACK cycle as the clicks, so each
click's delay is exact (lab/two_handsets.py). Needs root (namespaces) and jackd2 +
libasound2-plugins. M2E_SECONDS sets the length, M2E_PERIOD_MS the period (default: the
daemon's); the codec is the one our handsets choose between themselves.

m2e_floor_ms = frame + Opus lookahead + the playback cushion ahead of a written period
(prefill - 1 periods: one of the prefill periods plays while the engine waits for the capture
that the written period answers): the audio cannot leave A before its frame is complete and
encoded, and cannot reach the ear before the periods queued ahead of it on B's card have
played. Network, jitter buffer, the sound cards' own buffering and scheduling come on top.
"""

from __future__ import annotations

import os
import statistics
import sys

from firmware.config import AUDIO_RATE, AudioSettings
from hw.soundcard.devices import PcmSettings
from lab.two_handsets import run_call
from vomp.media import AudioConfig
from vomp.media.opus import OpusEncoder

SECONDS = float(os.environ.get("M2E_SECONDS", "12"))
PERIOD_MS = int(os.environ.get("M2E_PERIOD_MS", str(AudioSettings().period_ms)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    if os.geteuid() != 0:
        print("# m2e_bench: needs root for network namespaces; skipped", file=sys.stderr)
        return 0
    config = AudioConfig()
    pcm = PcmSettings(period_frames=AUDIO_RATE * PERIOD_MS // 1000)
    lookahead = OpusEncoder(config.opus).lookahead_ms
    floor = config.frame_ms + lookahead + (pcm.playback_prefill_periods - 1) * pcm.period_ms
    result = run_call(SECONDS, period_frames=AUDIO_RATE * PERIOD_MS // 1000)
    lags = result.lags_ms[2:]  # the first clicks meet a jitter buffer still settling
    print(f"# lags ms: {' '.join(f'{x:.0f}' for x in result.lags_ms)}", file=sys.stderr)
    keys = (
        "stretched",
        "dropped",
        "late",
        "concealed",
        "lost",
        "resyncs",
        "device_xruns",
        "device_capture_dropped",
        "device_playback_trimmed",
        "device_playback_starved",
    )
    for role, side in (("caller", result.caller), ("callee", result.callee)):
        print(f"# {role}: " + " ".join(f"{k}={side['stats'][k]}" for k in keys), file=sys.stderr)
    callee = result.callee["stats"]
    print(f"m2e_latency_ms_p50 {statistics.median(lags):.1f} ms")
    print(f"m2e_latency_ms_p95 {percentile(lags, 0.95):.1f} ms")
    print(f"m2e_floor_ms {floor:.1f} ms")
    print(f"m2e_clicks_heard {len(result.lags_ms)}/{result.clicks_sent} clicks")
    print(f"m2e_frame_ms {config.frame_ms} ms")
    print(f"m2e_codec {result.caller['stats']['codec_sent']} vomp_codec")
    print(f"m2e_period_ms {pcm.period_ms:g} ms")
    print(f"m2e_prefill_periods {pcm.playback_prefill_periods} periods")
    print(f"m2e_jitter_buffer_target_ms {callee['target_delay_ms']:.1f} ms")
    print(f"m2e_jitter_buffer_playout_ms {callee['playout_delay_ms']:.1f} ms")
    print(f"m2e_callee_playback_starved {callee['device_playback_starved']} periods")
    print(f"m2e_callee_playback_trimmed {callee['device_playback_trimmed']} periods")
    print(
        f"m2e_device_xruns {callee['device_xruns'] + result.caller['stats']['device_xruns']} xruns"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
