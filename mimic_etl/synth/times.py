"""Time units and event-time helpers (times are int64 seconds since 1970)."""

from __future__ import annotations

import numpy as np

HOUR = 3600
DAY = 24 * HOUR
YEAR = 365.25 * DAY


def to_minute(seconds: np.ndarray | float) -> np.ndarray:
    """Floor to the minute, as int64 seconds (MIMIC times have whole minutes)."""
    return (np.asarray(seconds, dtype=np.float64) // 60).astype(np.int64) * 60


def renewal_times(rng: np.random.Generator, start: np.ndarray, end: np.ndarray,
                  mean_gap: np.ndarray, shape: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Irregular event times in ``[start, end]`` per owner, gamma-distributed gaps.

    Returns (owner index, time in seconds, gap since the previous event in seconds).
    """
    count = np.ceil((end - start) / mean_gap).astype(np.int64) * 2 + 2
    owner = np.repeat(np.arange(len(start)), np.maximum(count, 0))
    gaps = rng.gamma(shape, mean_gap[owner] / shape)
    first = np.cumsum(count) - count
    cum = np.cumsum(gaps)
    offset = cum - np.repeat(cum[first] - gaps[first], count)
    t = start[owner] + offset
    ok = t <= end[owner]
    return owner[ok], t[ok], gaps[ok]
