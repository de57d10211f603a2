"""PESQ-WB of real read speech through our whole audio path, under seeded packet loss.

encoder → packetizer → seeded loss → jitter buffer → decoder, for our default call settings
(OPUS_REDUNDANT) and, side by side, the reference: plain Opus 32 kbit/s + FEC + PLC (codec 7).
Speech: the LibriVox clips of Debian's pocketsphinx-testdata (tools/fetch-speech).
Prints `name value unit` lines, and the bytes per packet each setting costs.
"""

from __future__ import annotations

import argparse
import wave
from pathlib import Path

import numpy as np
from pesq import pesq

from lab.audio_netsim import GilbertLoss, Link, RandomLoss, run_one_way
from vomp import codecs
from vomp.media.opus import OpusSettings
from vomp.media.pipeline import AudioConfig, CallAudio

RATE = 16000
SEEDS = (1, 2, 3, 4)
CONDITIONS = {
    "clean": lambda seed: Link(seed=seed),
    "random10": lambda seed: Link(loss=RandomLoss(0.10, seed), seed=seed),
    "random20": lambda seed: Link(loss=RandomLoss(0.20, seed), seed=seed),
    "burst10": lambda seed: Link(loss=GilbertLoss(0.10, 3.0, seed), seed=seed),
    # Not a goal of the issue: how the adaptive buffer copes with 0..40 ms of jitter, no loss.
    "jitter40": lambda seed: Link(jitter_ms=40.0, seed=seed),
}


def ours() -> tuple[int, AudioConfig]:
    return codecs.OPUS_REDUNDANT, AudioConfig()


def reference() -> tuple[int, AudioConfig]:
    return codecs.OPUS, AudioConfig(opus=OpusSettings(bitrate=32000, complexity=10))


def load_clips(directory: Path) -> list[np.ndarray]:
    clips = []
    for path in sorted(directory.glob("*.wav")):
        with wave.open(str(path)) as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
                raise SystemExit(f"{path}: expected 16 kHz mono s16")
            clips.append(np.frombuffer(w.readframes(w.getnframes()), dtype="<i2"))
    if not clips:
        raise SystemExit(f"no speech clips in {directory}; run tools/fetch-speech {directory}")
    return clips


GAP = np.zeros(RATE // 2, dtype=np.int16)  # half a second of silence between sentences
MAX_DELAY = RATE // 2  # search the output up to 500 ms after where a sentence went in


def find_delay(ref: np.ndarray, out: np.ndarray, at: int) -> int:
    """Where `ref`, sent at sample `at`, came out: the path's delay there, by cross-correlation."""
    n = len(ref)
    window = out[at : at + n + MAX_DELAY].astype(float)
    size = 1 << int(np.ceil(np.log2(len(window) + n)))
    corr = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(ref.astype(float), size)))
    return int(np.argmax(corr[: len(window) - n + 1]))


def score(make, clips, condition, bytes_out: list[float], delays: list[float]) -> float:
    """Mean PESQ-WB over the sentences of a call that reads them all, once per seed.

    One long call rather than one call per sentence: the jitter buffer settles once per call,
    as it would on a real call, and each sentence is aligned on its own (the delay may move).
    """
    scores = []
    starts, pieces, at = [], [], 0
    for clip in clips:
        starts.append(at)
        pieces += [clip, GAP]
        at += len(clip) + len(GAP)
    speech = np.concatenate(pieces)
    for seed in SEEDS:
        codec, config = make()
        sender, receiver = CallAudio(codec, config), CallAudio(codec, config)
        link = CONDITIONS[condition](seed)
        out = np.frombuffer(run_one_way(sender, receiver, speech.tobytes(), link), dtype="<i2")
        bytes_out.append(sender.stats.bytes_sent / max(1, sender.stats.frames_sent))
        delays.append(receiver.stats.playout_delay_ms)
        for clip, start in zip(clips, starts, strict=True):
            begin = start + find_delay(clip, out, start)
            scores.append(pesq(RATE, clip, out[begin : begin + len(clip)], "wb"))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    default_dir = Path(__file__).resolve().parent.parent / ".cache" / "speech"
    parser.add_argument("--speech", type=Path, default=default_dir)
    parser.add_argument("--only", choices=sorted(CONDITIONS), action="append")
    args = parser.parse_args()
    clips = load_clips(args.speech)
    for condition in args.only or CONDITIONS:
        for prefix, make in (("", ours), ("ref_", reference)):
            sizes: list[float] = []
            delays: list[float] = []
            value = score(make, clips, condition, sizes, delays)
            print(f"{prefix}pesq_wb_{condition} {value:.2f} MOS-LQO", flush=True)
            print(f"{prefix}jb_delay_ms_{condition} {np.mean(delays):.0f} ms", flush=True)
            if condition == "clean":
                print(f"{prefix}bytes_per_packet {np.mean(sizes):.1f} bytes", flush=True)
    if not args.only or "clean" in args.only:
        # What a call with a servald peer that lacks Opus sounds like (narrowband µ-law).
        value = score(lambda: (codecs.MULAW, AudioConfig()), clips, "clean", [], [])
        print(f"mulaw_pesq_wb_clean {value:.2f} MOS-LQO", flush=True)


if __name__ == "__main__":
    main()
