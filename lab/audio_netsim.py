"""A seeded, clock-free two-handset call for tests and benchmarks: loss, jitter, reorder, drift.

Not used in a real call. It drives two CallAudio objects the way the ALSA engine and VoMP would
(capture and playback once per period, packets arriving at their own times) on a virtual clock,
so the same seeded run gives the same bytes every time.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from typing import Protocol

from vomp.media.pipeline import CallAudio


class LossModel(Protocol):
    def lost(self) -> bool:
        """Whether the next packet is lost."""
        ...


class RandomLoss:
    """Each packet lost independently with probability `rate`."""

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._rng = random.Random(seed)

    def lost(self) -> bool:
        return self._rng.random() < self.rate


class GilbertLoss:
    """Two-state bursty loss: every packet in the bad state is lost.

    Bursts have a geometric length with mean `mean_burst`; the good→bad probability is set so the
    long-run loss is `rate`.
    """

    def __init__(self, rate: float, mean_burst: float, seed: int) -> None:
        self.p_bad_to_good = 1 / mean_burst
        self.p_good_to_bad = rate * self.p_bad_to_good / (1 - rate)
        self._bad = False
        self._rng = random.Random(seed)

    def lost(self) -> bool:
        flip = self.p_bad_to_good if self._bad else self.p_good_to_bad
        if self._rng.random() < flip:
            self._bad = not self._bad
        return self._bad


class PatternLoss:
    """Loses exactly the packet numbers given (0 = first packet)."""

    def __init__(self, lost: set[int]) -> None:
        self._lost = lost
        self._n = -1

    def lost(self) -> bool:
        self._n += 1
        return self._n in self._lost


class NoLoss:
    def lost(self) -> bool:
        return False


@dataclass
class Link:
    """One direction of the network: loss, transit (base + seeded jitter), duplication."""

    loss: LossModel = field(default_factory=NoLoss)
    transit_ms: float = 5.0
    jitter_ms: float = 0.0
    """Each packet's transit gets an extra uniform 0..jitter_ms: packets may overtake each other."""
    duplicate_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed ^ 0x5EED)

    def deliveries(self, sent_at_ms: float) -> list[float]:
        """Arrival times (ms) of the copies of one packet sent at `sent_at_ms`; [] if lost."""
        if self.loss.lost():
            return []
        arrivals = [sent_at_ms + self.transit_ms + self._rng.uniform(0, self.jitter_ms)]
        if self._rng.random() < self.duplicate_rate:
            arrivals.append(arrivals[0] + self._rng.uniform(0, 40))
        return arrivals


def run_one_way(
    sender: CallAudio,
    receiver: CallAudio,
    pcm: bytes,
    link: Link | None = None,
    *,
    period_ms: int = 10,
    sample_rate: int = 16000,
    tail_ms: int = 400,
    playback_phase_ms: float = 3.0,
    receiver_clock_ppm: float = 0.0,
) -> bytes:
    """Play `pcm` into the sender's capture; return what the receiver's playback produced.

    The sender's sound card is the time reference; the receiver's runs `receiver_clock_ppm`
    fast (positive) or slow, which is what clock drift between two handsets looks like.
    """
    link = link or Link()
    period_bytes = sample_rate * period_ms // 1000 * 2
    pcm = pcm + bytes(sample_rate * tail_ms // 1000 * 2)
    periods = len(pcm) // period_bytes
    in_flight: list[tuple[float, int, int, int, bytes]] = []
    media_ms = 0
    sent = 0
    out = bytearray()
    play_step = period_ms / (1 + receiver_clock_ppm * 1e-6)
    next_play = playback_phase_ms
    for k in range(periods):
        captured_at = (k + 1) * period_ms
        chunk = pcm[k * period_bytes : (k + 1) * period_bytes]
        for frame in sender.capture(chunk):
            for arrival in link.deliveries(captured_at):
                heapq.heappush(in_flight, (arrival, sent, frame.codec, media_ms, frame.payload))
            media_ms += frame.duration_ms
            sent += 1
        while next_play <= captured_at + period_ms:
            while in_flight and in_flight[0][0] <= next_play:
                arrival, _, codec, t, payload = heapq.heappop(in_flight)
                receiver.receive(codec, t, payload, arrival / 1000)
            out += receiver.playback(sample_rate * period_ms // 1000, next_play / 1000)
            next_play += play_step
    return bytes(out)
