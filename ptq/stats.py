"""Pure statistics for latency samples: seeded, tested on synthetic series with known answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["RatioEstimate", "bootstrap_median_ci", "paired_quantile_ratio", "paired_ratio"]


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio with a bootstrap confidence interval (``level``) over ``n`` paired samples."""

    ratio: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def to_dict(self) -> dict[str, float]:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "n": self.n, "level": self.level}


def bootstrap_median_ci(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(median, low, high): percentile bootstrap interval of the median, deterministic by seed."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("no samples")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    medians = np.median(arr[rng.integers(0, arr.size, size=(resamples, arr.size))], axis=1)
    tail = (1 - level) / 2
    return float(np.median(arr)), float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))


def paired_ratio(
    reference: Sequence[float], candidate: Sequence[float], *, level: float = 0.95, seed: int = 0
) -> RatioEstimate:
    """Median of per-pair ratios reference/candidate (> 1: candidate faster), with its CI.

    Pairs were timed back to back, so each ratio sees one machine state: the drift that
    makes two separately timed medians disagree by 20% on a shared 2-core machine cancels.
    """
    if len(reference) != len(candidate):
        raise ValueError(f"paired samples differ in length: {len(reference)} vs {len(candidate)}")
    ratios = [r / c for r, c in zip(reference, candidate, strict=True) if c > 0]
    mid, low, high = bootstrap_median_ci(ratios, level=level, seed=seed)
    return RatioEstimate(mid, low, high, len(ratios), level)


def paired_quantile_ratio(
    reference: Sequence[float], candidate: Sequence[float], *, q: float = 0.01, level: float = 0.95,
    resamples: int = 2000, seed: int = 0,
) -> RatioEstimate:
    """``q``-quantile of the reference calls over that of the candidate calls (> 1: candidate faster).

    The calls were interleaved, so both sides saw the same machine states, and a low quantile
    keeps the calls no stall touched: on the 2-core reference machine this ratio varied 2-3x
    less between repeats than the median of per-pair ratios (cv 0.9% against 3.0% for a 0.15 ms
    case). The bootstrap resamples whole pairs, keeping what each pair shared.
    """
    if len(reference) != len(candidate):
        raise ValueError(f"paired samples differ in length: {len(reference)} vs {len(candidate)}")
    if not 0 <= q <= 1 or not 0 < level < 1:
        raise ValueError(f"q must be in [0, 1] and level in (0, 1), got {q} and {level}")
    ref, cand = np.asarray(reference, dtype=float), np.asarray(candidate, dtype=float)
    if ref.size == 0:
        raise ValueError("no samples")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, ref.size, size=(resamples, ref.size))
    ratios = np.quantile(ref[idx], q, axis=1) / np.quantile(cand[idx], q, axis=1)
    tail = (1 - level) / 2
    return RatioEstimate(float(np.quantile(ref, q) / np.quantile(cand, q)), float(np.quantile(ratios, tail)),
                         float(np.quantile(ratios, 1 - tail)), int(ref.size), level)
