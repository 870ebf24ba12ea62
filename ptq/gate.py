"""Pure statistics of the regression gate: is a change real (significance) and big enough (effect)?

A bare percentage flags noise on a shared 2-core machine; a bare test flags a 0.5% change
measured on 20,000 samples. As asv does, a latency regression needs both: a Mann-Whitney U
test that says the two sample sets differ, and a ratio past a minimum factor.

The ratio is of a low quantile (the 1st percentile by default), not of the median: on a
shared machine the noise is time added by other work (interrupts, neighbours, a stalled
thread), never time taken away, so the fastest calls are the stable part of a sample set
(the argument of Chen & Revels 2016 for BenchmarkTools.jl; pytest-benchmark also compares by
``min`` by default). Measured here, window to window, the 1st percentile of a case varied
0.3-1.7% where its median varied 2-10% (``ptq gate-quality`` gives the false-alarm rates).
What it cannot see is a change confined to the slow tail; the median ratio is reported too.
Everything here is deterministic (seeded) and tested on synthetic samples with known answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np

from ptq.registry import Registry

__all__ = [
    "LOCATIONS",
    "LatencyDecision",
    "MannWhitney",
    "Verdict",
    "decide_interval",
    "decide_latency",
    "decide_threshold",
    "location",
    "mann_whitney",
    "ratio_ci",
]

#: Location statistics the latency ratio can use, each a quantile of the samples: name -> q.
LOCATIONS: Registry[float] = Registry("latency statistic")
for _name, _q in (("min", 0.0), ("p1", 0.01), ("p5", 0.05), ("p10", 0.10), ("p25", 0.25), ("median", 0.5)):
    LOCATIONS.register(_name, _q)
DEFAULT_LOCATION = "p1"


def location(name: str) -> float:
    """The quantile a statistic name stands for; an unknown name is answered with the valid ones."""
    return LOCATIONS.get(name)


class Verdict(str, Enum):
    """One row's outcome; the order of the members is the order rows are reported in."""

    REGRESSION = "REGRESSION"
    IMPROVED = "improved: refresh the baseline"
    NEW = "new"
    NOT_MEASURED = "not measured"
    NOT_COMPARED = "not compared"
    OK = "ok"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


@dataclass(frozen=True)
class MannWhitney:
    """U statistic of ``a`` against ``b`` and its two-sided p-value (normal approximation,
    tie-corrected, with continuity correction: matches scipy's ``method="asymptotic"``)."""

    u: float
    p: float


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> MannWhitney:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = x.size, y.size
    if n1 == 0 or n2 == 0:
        raise ValueError(f"Mann-Whitney needs samples on both sides, got {n1} and {n2}")
    both = np.concatenate([x, y])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based; ties share their mean rank
    ranks = average_rank[inverse]
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    n = n1 + n2
    ties = float(np.sum(counts.astype(float) ** 3 - counts))
    variance = n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:  # every value equal: no evidence of any difference
        return MannWhitney(u, 1.0)
    delta = u - n1 * n2 / 2.0
    z = (abs(delta) - 0.5) / math.sqrt(variance) if abs(delta) >= 0.5 else 0.0
    return MannWhitney(u, min(1.0, math.erfc(z / math.sqrt(2.0))))


def ratio_ci(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    statistic: str = "median",
    level: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
    max_samples: int = 2000,
) -> tuple[float, float, float]:
    """(ratio, low, high): ``statistic(current) / statistic(baseline)`` with a seeded bootstrap interval.

    Each side is resampled independently; sides longer than ``max_samples`` are thinned evenly
    for the bootstrap only (the point ratio uses every sample), which keeps it fast on the
    tens of thousands of rounds a microsecond model gets.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    q = location(statistic)
    base, cur = np.asarray(baseline, dtype=float), np.asarray(current, dtype=float)
    if base.size == 0 or cur.size == 0:
        raise ValueError("no samples")
    ratio = float(np.quantile(cur, q) / np.quantile(base, q))
    rng = np.random.default_rng(seed)

    def boot(arr: np.ndarray) -> np.ndarray:
        if arr.size > max_samples:
            arr = np.sort(arr)[np.linspace(0, arr.size - 1, max_samples).astype(int)]
        return np.quantile(arr[rng.integers(0, arr.size, size=(resamples, arr.size))], q, axis=1)

    ratios = boot(cur) / boot(base)
    tail = (1 - level) / 2
    return ratio, float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1 - tail))


@dataclass(frozen=True)
class LatencyDecision:
    """The latency verdict with the figures behind it: ratio (of ``statistic``) > 1 means slower."""

    verdict: Verdict
    ratio: float
    low: float
    high: float
    p: float
    statistic: str = DEFAULT_LOCATION
    median_ratio: float = float("nan")


def decide_latency(
    baseline: Sequence[float],
    current: Sequence[float],
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    statistic: str = DEFAULT_LOCATION,
    seed: int = 0,
) -> LatencyDecision:
    """Regression when the samples differ (Mann-Whitney p < ``alpha``) AND ``statistic`` (the 1st
    percentile by default) got slower by more than ``threshold`` (0.05: 5%); improvement
    symmetrically; otherwise ok."""
    if threshold < 0 or not 0 < alpha < 1:
        raise ValueError(f"threshold must be >= 0 and alpha in (0, 1), got {threshold} and {alpha}")
    ratio, low, high = ratio_ci(baseline, current, statistic=statistic, seed=seed)
    p = mann_whitney(current, baseline).p
    if p < alpha and ratio > 1 + threshold:
        verdict = Verdict.REGRESSION
    elif p < alpha and ratio < 1 / (1 + threshold):
        verdict = Verdict.IMPROVED
    else:
        verdict = Verdict.OK
    median_ratio = float(np.median(np.asarray(current, dtype=float)) / np.median(np.asarray(baseline, dtype=float)))
    return LatencyDecision(verdict, ratio, low, high, p, statistic, median_ratio)


def decide_interval(
    baseline: tuple[float, float, float], current: tuple[float, float, float], *, threshold: float = 0.05
) -> Verdict:
    """For a higher-is-better figure given as (value, low, high), e.g. a speedup with its CI:
    regression when it fell by more than ``threshold`` and the two intervals do not overlap."""
    (b, b_low, b_high), (c, c_low, c_high) = baseline, current
    if b <= 0:
        raise ValueError(f"baseline value must be > 0, got {b}")
    change = c / b - 1
    if change < -threshold and c_high < b_low:
        return Verdict.REGRESSION
    if change > threshold and c_low > b_high:
        return Verdict.IMPROVED
    return Verdict.OK


def decide_threshold(
    baseline: float, current: float, *, relative: float, spread: float = 0.0, absolute: float = 0.0
) -> Verdict:
    """For a lower-is-better figure (bytes, drift): regression when it grew by more than the
    largest of ``relative`` x baseline, ``spread`` (the measured run-to-run spread) and ``absolute``."""
    allowed = max(abs(baseline) * relative, spread, absolute)
    if current - baseline > allowed:
        return Verdict.REGRESSION
    if baseline - current > allowed:
        return Verdict.IMPROVED
    return Verdict.OK
