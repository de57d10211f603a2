"""Deterministic speech-like test signals (no recordings needed in unit tests)."""

import numpy as np

RATE = 16000


def voiced(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """A vowel-like signal: harmonics of a gliding 120-220 Hz pitch, syllable envelope, noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 170 + 50 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3.0 * t)
    signal = 6000 * envelope * harmonics + 100 * rng.standard_normal(len(t))
    return np.clip(signal, -32768, 32767).astype("<i2")


def best_correlation(x: np.ndarray, y: np.ndarray, max_lag: int = 800) -> tuple[float, int]:
    """Highest correlation of y against x delayed by 0..max_lag samples, and that lag."""
    x, y = x.astype(float), y.astype(float)
    n = min(len(x), len(y)) - max_lag
    best = max(
        (np.corrcoef(x[:n], y[lag : lag + n])[0, 1], lag) for lag in range(0, max_lag + 1, 1)
    )
    return float(best[0]), int(best[1])


def worst_window_correlation(
    x: np.ndarray, y: np.ndarray, start: int, end: int, window: int = 3200, max_lag: int = 2400
) -> float:
    """Lowest, over windows of x[start:end], of its best correlation with y at any nearby lag.

    Each window is aligned on its own, so a delay that moves (the jitter buffer stretching or
    dropping frames) does not count against the audio; missing or garbled audio does.
    """
    worst = 1.0
    for a in range(start, end - window + 1, window):
        ref = x[a : a + window].astype(float)
        seg = y[a : a + window + max_lag].astype(float)
        best = max(
            np.corrcoef(ref, seg[lag : lag + window])[0, 1] for lag in range(0, max_lag + 1, 4)
        )
        worst = min(worst, best)
    return float(worst)
