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
    "decide_latency_placements",
    "decide_latency_rounds",
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
    """U statistic of ``a`` against ``b`` and its two-sided p-value."""

    u: float
    p: float


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> MannWhitney:
    """scipy's test in its asymptotic form (tie-corrected normal approximation with continuity
    correction): the exact form is slow on the thousands of samples a fast model gets."""
    from scipy.stats import mannwhitneyu

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.size == 0 or y.size == 0:
        raise ValueError(f"Mann-Whitney needs samples on both sides, got {x.size} and {y.size}")
    if np.ptp(np.concatenate([x, y])) == 0:  # every value equal: no evidence of any difference
        return MannWhitney(float(x.size * y.size / 2.0), 1.0)
    result = mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    return MannWhitney(float(result.statistic), float(result.pvalue))


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


def _verdict(p: float, ratio: float, *, threshold: float, alpha: float) -> Verdict:
    """Significant (p < ``alpha``) AND past the minimum effect, slower or faster; else ok."""
    if p < alpha and ratio > 1 + threshold:
        return Verdict.REGRESSION
    if p < alpha and ratio < 1 / (1 + threshold):
        return Verdict.IMPROVED
    return Verdict.OK


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
    test: str = "Mann-Whitney"  # what gave ``p``
    #: Between-placement spread of the per-placement ratios (max/min - 1); NaN where one placement was timed.
    spread: float = float("nan")


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
    verdict = _verdict(p, ratio, threshold=threshold, alpha=alpha)
    median_ratio = float(np.median(np.asarray(current, dtype=float)) / np.median(np.asarray(baseline, dtype=float)))
    return LatencyDecision(verdict, ratio, low, high, p, statistic, median_ratio)


#: Share of each side's rounds kept, the fastest, for the rounds' t-test: 4 of 6 (see below).
ROUND_KEEP = 2 / 3


def decide_latency_rounds(
    baseline: Sequence[Sequence[float]],
    current: Sequence[Sequence[float]],
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    statistic: str = DEFAULT_LOCATION,
    level: float = 0.95,
    keep: float = ROUND_KEEP,
) -> LatencyDecision:
    """The verdict for samples taken in several sessions (processes) per side, as ``ptq ab``'s
    rounds are: the session, not the call, is the unit.

    A fresh process has its own memory layout and machine state. On the 2-core reference
    machine a case's 1st percentile stayed within 1% across most processes, but a process in
    five or so ran the case 20-30% slower throughout. Pooled calls give Mann-Whitney thousands
    of observations of what is really a few processes, and an A/A of ``ptq ab`` flagged a +7%
    "regression" that way. Here each round's statistic is one observation (Kalibera & Jones
    2013 treat the execution as a level of repetition the same way). A slow process is noise
    that only adds time, like a stalled call within one, so each side keeps its fastest
    ``keep`` share of rounds (4 of 6) and Welch's t-test compares their logs. Regression when
    the ratio of their geometric means is past ``threshold`` AND p < ``alpha``; ``low``/``high``
    are its ``level`` interval; ``ptq gate-quality --modes processes`` measures the rule.
    """
    from scipy.stats import ttest_ind

    if threshold < 0 or not 0 < alpha < 1 or not 0 < keep <= 1:
        raise ValueError(
            f"threshold must be >= 0, alpha in (0, 1) and keep in (0, 1], got {threshold}, {alpha}, {keep}"
        )
    if len(baseline) < 2 or len(current) < 2:
        raise ValueError(f"a t-test over rounds needs >= 2 rounds per side, got {len(baseline)} and {len(current)}")
    q = location(statistic)

    def fastest(side: Sequence[Sequence[float]]) -> np.ndarray:
        logs = np.sort(np.log([np.quantile(np.asarray(r, dtype=float), q) for r in side]))
        return logs[: max(2, math.ceil(keep * len(logs) - 1e-9))]

    b, c = fastest(baseline), fastest(current)
    ratio = float(np.exp(c.mean() - b.mean()))
    if np.ptp(b) == 0 and np.ptp(c) == 0:  # no spread at all: the t-test is undefined
        p, low, high = (1.0 if ratio == 1 else 0.0), ratio, ratio
    else:
        test = ttest_ind(c, b, equal_var=False)
        interval = test.confidence_interval(level)
        p, low, high = float(test.pvalue), float(np.exp(interval.low)), float(np.exp(interval.high))
    verdict = _verdict(p, ratio, threshold=threshold, alpha=alpha)
    pooled = [np.concatenate([np.asarray(r, dtype=float) for r in side]) for side in (baseline, current)]
    median_ratio = float(np.median(pooled[1]) / np.median(pooled[0]))
    kept = "" if (b.size, c.size) == (len(baseline), len(current)) else f"the fastest {b.size}+{c.size} of "
    return LatencyDecision(
        verdict,
        ratio,
        low,
        high,
        p,
        statistic,
        median_ratio,
        f"Welch t over {kept}{len(baseline)}+{len(current)} rounds",
    )


def decide_latency_placements(
    baseline: Sequence[Sequence[float]],
    current: Sequence[Sequence[float]],
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    statistic: str = DEFAULT_LOCATION,
    level: float = 0.95,
) -> LatencyDecision:
    """The verdict for samples taken over paired placements (``ptq ab``'s duet: placement k of
    each side timed in adjacent windows, each a fresh allocation of the model and its inputs).

    The placement is the unit: per placement, ``statistic`` of current over baseline; one-sample
    t-test of their logs. So a regression must stand out against the variation between
    placements, and a placement difference alone (one side's tensors landing badly) cannot
    become a "certain" verdict the way thousands of pooled calls made it one. Regression when
    the geometric-mean ratio is past ``threshold`` AND p < ``alpha``.
    """
    from ptq.stats.estimate import placement_ratio

    if threshold < 0 or not 0 < alpha < 1:
        raise ValueError(f"threshold must be >= 0 and alpha in (0, 1), got {threshold} and {alpha}")
    est = placement_ratio(current, baseline, q=location(statistic), level=level)
    pooled = [np.concatenate([np.asarray(b, dtype=float) for b in side]) for side in (baseline, current)]
    median_ratio = float(np.median(pooled[1]) / np.median(pooled[0]))
    return LatencyDecision(
        _verdict(est.p, est.ratio, threshold=threshold, alpha=alpha),
        est.ratio,
        est.low,
        est.high,
        est.p,
        statistic,
        median_ratio,
        f"t over {est.n} paired placements",
        est.spread,
    )


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
