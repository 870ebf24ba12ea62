"""Pure statistics for latency samples: seeded, tested on synthetic series with known answers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PlacementEstimate",
    "RatioEstimate",
    "bootstrap_median_ci",
    "geometric_interval",
    "median_interval",
    "paired_quantile_ratio",
    "paired_ratio",
    "placement_ratio",
    "repeat_interval",
    "visit_ratio",
]

#: Coverage of :func:`repeat_interval` for one other run's figure.
REPEAT_LEVEL = 0.99


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
    reference: Sequence[float],
    candidate: Sequence[float],
    *,
    q: float = 0.01,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
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
    return RatioEstimate(
        float(np.quantile(ref, q) / np.quantile(cand, q)),
        float(np.quantile(ratios, tail)),
        float(np.quantile(ratios, 1 - tail)),
        int(ref.size),
        level,
    )


@dataclass(frozen=True)
class PlacementEstimate:
    """A ratio measured over several placements (fresh allocations of model and inputs), each
    placement one observation: the geometric mean of the per-placement ratios with a Student t
    interval over them, so the interval covers the spread between placements, not only the
    calls within one. ``spread``: max/min - 1 of the per-placement ratios."""

    ratio: float
    low: float
    high: float
    n: int  # placements
    spread: float
    per_placement: tuple[float, ...]
    level: float = 0.95
    p: float = float("nan")  # two-sided p of "the ratio is 1" (one-sample t on the logs)
    #: "placement": geometric mean, t interval; "visit": median, order-statistic interval (visit_ratio)
    unit: str = "placement"
    #: Where another run's figure should land (:func:`repeat_interval`); None where not estimated.
    repeat: tuple[float, float, float] | None = None  # (low, high, level)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "ratio": self.ratio,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "level": self.level,
            "unit": self.unit,
            "spread": self.spread,
            "per_placement": list(self.per_placement),
        }
        if self.repeat is not None:
            out["repeat"] = dict(zip(("low", "high", "level"), self.repeat, strict=True))
        return out


def placement_ratio(
    reference: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    *,
    q: float = 0.01,
    level: float = 0.95,
) -> PlacementEstimate:
    """``q``-quantile of reference over candidate, per placement (block k of one side was timed
    beside block k of the other), combined over placements on the log scale.

    Why placements and not calls: a latency depends on where the model's and inputs' tensors
    landed (one allocation moved a small conv by 2x on an Intel Xeon). Calls within a placement
    share its luck, so an interval over calls is too narrow; placements are independent draws
    (Curtsinger & Berger, STABILIZER, ASPLOS 2013). Needs at least 2 placements with samples.
    """
    if len(reference) != len(candidate):
        raise ValueError(f"placements differ in number: {len(reference)} vs {len(candidate)}")
    if not 0 <= q <= 1 or not 0 < level < 1:
        raise ValueError(f"q must be in [0, 1] and level in (0, 1), got {q} and {level}")
    ratios = [
        float(np.quantile(np.asarray(r, dtype=float), q) / np.quantile(np.asarray(c, dtype=float), q))
        for r, c in zip(reference, candidate, strict=True)
        if len(r) and len(c)
    ]
    if len(ratios) < 2:
        raise ValueError(f"an interval over placements needs >= 2 placements with samples, got {len(ratios)}")
    mid, low, high, p = geometric_interval(ratios, level=level)
    return PlacementEstimate(mid, low, high, len(ratios), max(ratios) / min(ratios) - 1, tuple(ratios), level, p)


def geometric_interval(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float, float]:
    """(geometric mean, low, high, p): Student t interval of the mean of the logs, and the
    two-sided p of "the logs' mean is 0" (a ratio of 1). Positive values, at least 2."""
    from scipy.stats import t as student_t

    logs = np.log(np.asarray(values, dtype=float))
    if logs.size < 2 or not np.all(np.isfinite(logs)):
        raise ValueError(f"a t interval needs >= 2 positive finite values, got {list(values)}")
    mean, sd, k = float(logs.mean()), float(logs.std(ddof=1)), logs.size
    if sd == 0:
        return math.exp(mean), math.exp(mean), math.exp(mean), (1.0 if mean == 0 else 0.0)
    se = sd / math.sqrt(k)
    half = float(student_t.ppf(0.5 + level / 2, k - 1)) * se
    p = float(2 * student_t.sf(abs(mean) / se, k - 1))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half), p


def median_interval(values: Sequence[float], *, level: float = 0.95) -> tuple[float, float, float, float]:
    """(median, low, high, coverage): the distribution-free interval for the median from order
    statistics, ``[x(j), x(n+1-j)]`` with the largest ``j`` whose coverage ``1 - 2 P(Bin(n, 1/2) < j)``
    still reaches ``level``. With too few values for ``level`` it is ``[min, max]`` and ``coverage``
    says what that holds (5 values: 93.75%, 6: 96.9%). Unlike a t interval of the mean, one wild
    value (a visit that fell on a 2x slow episode of one side) moves neither the median nor the
    bounds' meaning. At least 2 finite values."""
    from scipy.stats import binom

    x = np.sort(np.asarray(values, dtype=float))
    if x.size < 2 or not np.all(np.isfinite(x)):
        raise ValueError(f"an interval of the median needs >= 2 finite values, got {list(values)}")
    n = x.size

    def coverage(j: int) -> float:
        return float(1 - 2 * binom.cdf(j - 1, n, 0.5))

    j = 1
    while j + 1 <= n // 2 and coverage(j + 1) >= level:
        j += 1
    return float(np.median(x)), float(x[j - 1]), float(x[n - j]), coverage(j)


def repeat_interval(values: Sequence[float], *, level: float = REPEAT_LEVEL) -> tuple[float, float, float]:
    """(low, high, level): where the median of as many visits in another run should land, around
    this run's median of ``values`` (positive: ratios or times), for one other run.

    Why not the median's interval: that covers the true median, while a repeat's median carries
    its own noise. In five fresh runs of 39 cases (6 visits each), each run's ``[min, max]`` held
    all four other runs' medians for only 7 cases: under exchangeable visits it holds one other
    median about 85% of the time, whatever the spread. Here the difference of two medians of
    ``n`` visits: on the logs, ``t(n-1) * sqrt(pi/2) * s * sqrt(2/n)`` (``sqrt(pi/2)``: the
    median's standard error over the mean's for normal data; ``t``: ``s`` comes from ``n`` values).
    At least 2 positive finite values."""
    from scipy.stats import t as student_t

    x = np.asarray(values, dtype=float)
    if x.size < 2 or not np.all(np.isfinite(x) & (x > 0)):
        raise ValueError(f"a repeat interval needs >= 2 positive finite values, got {list(values)}")
    n, logs = x.size, np.log(x)
    half = (
        float(student_t.ppf(0.5 + level / 2, n - 1))
        * math.sqrt(math.pi / 2)
        * float(np.std(logs, ddof=1))
        * math.sqrt(2 / n)
    )
    mid = math.log(float(np.median(x)))
    return math.exp(mid - half), math.exp(mid + half), level


def visit_ratio(
    reference: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    *,
    q: float = 0.01,
    level: float = 0.95,
) -> PlacementEstimate:
    """``q``-quantile of reference over candidate per visit (one fresh placement of both, timed
    in one window), combined by the median with its order-statistic interval
    (:func:`median_interval`); ``level`` is the coverage that interval has, and ``repeat`` where
    another run's figure should land (:func:`repeat_interval`).

    Why visits spread over time and the median: repeating a 1.5 s speedup measurement in one
    process moved it by 2% (CV) on the reference VM, more than the t interval over placements
    timed side by side in those 1.5 s admitted (it covered another repeat's figure 30-70% of the
    time): every placement shared the window's machine state. Visits seconds apart are
    independent draws of placement and machine state, and some are wild (one side at 2x for a
    whole window), which the median ignores.
    """
    if len(reference) != len(candidate):
        raise ValueError(f"visits differ in number: {len(reference)} vs {len(candidate)}")
    if not 0 <= q <= 1:
        raise ValueError(f"q must be in [0, 1], got {q}")
    ratios = [
        float(np.quantile(np.asarray(r, dtype=float), q) / np.quantile(np.asarray(c, dtype=float), q))
        for r, c in zip(reference, candidate, strict=True)
        if len(r) and len(c)
    ]
    mid, low, high, cover = median_interval(ratios, level=level)
    return PlacementEstimate(
        mid,
        low,
        high,
        len(ratios),
        max(ratios) / min(ratios) - 1,
        tuple(ratios),
        cover,
        unit="visit",
        repeat=repeat_interval(ratios),
    )
