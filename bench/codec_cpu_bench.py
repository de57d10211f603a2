"""CPU time of the audio path per 20 ms frame: Opus alone, and a whole CallAudio direction pair.

Measured as this process's CPU time (time.process_time), so other load on the machine inflates
it less than wall time would. A 20 ms frame every 20 ms: 200 us per frame is 1 % of a core.
"""

from __future__ import annotations

import time

import numpy as np

from vomp.media import OPUS_REDUNDANT, AudioConfig, CallAudio
from vomp.media.opus import OpusDecoder, OpusEncoder

RATE = 16000
FRAME = RATE // 50
SECONDS = 20


def speech_like(seconds: int) -> list[bytes]:
    """Noise shaped like voiced speech (pitch harmonics + syllable envelope), fixed seed."""
    rng = np.random.default_rng(1)
    t = np.arange(seconds * RATE) / RATE
    phase = 2 * np.pi * np.cumsum(150 + 40 * np.sin(2 * np.pi * 0.5 * t)) / RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 15))
    x = 5000 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * voiced + 300 * rng.standard_normal(len(t))
    pcm = np.clip(x, -32768, 32767).astype("<i2")
    return [pcm[i : i + FRAME].tobytes() for i in range(0, len(pcm), FRAME)]


def per_frame_us(work, n: int) -> float:
    start = time.process_time()
    work()
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    frames = speech_like(SECONDS)
    settings = AudioConfig().opus
    enc = OpusEncoder(settings)
    packets: list[bytes] = []
    us = per_frame_us(lambda: packets.extend(enc.encode(f) for f in frames), len(frames))
    print(f"opus_encode_us_per_frame {us:.0f} us")
    dec = OpusDecoder(RATE)
    us = per_frame_us(lambda: [dec.decode(p) for p in packets], len(packets))
    print(f"opus_decode_us_per_frame {us:.0f} us")
    print(f"opus_complexity {settings.complexity} level")

    # One handset's share of a call: capture+encode+pack, receive+buffer+decode+play.
    a, b = CallAudio(OPUS_REDUNDANT), CallAudio(OPUS_REDUNDANT)
    incoming = [(o.codec, o.payload) for f in frames for o in b.capture(f)]

    def one_handset() -> None:
        for n, (f, (codec, payload)) in enumerate(zip(frames, incoming, strict=True)):
            a.capture(f)
            a.receive(codec, n * 20, payload, n * 0.02 + 0.005)
            a.playback(FRAME, n * 0.02 + 0.01)

    us = per_frame_us(one_handset, len(frames))
    print(f"call_audio_us_per_frame {us:.0f} us")
    print(f"call_audio_cpu_percent {us / 20000 * 100:.1f} %")


if __name__ == "__main__":
    main()
