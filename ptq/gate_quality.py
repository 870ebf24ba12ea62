"""A benchmark of the gate itself: how often does it cry wolf, and what does it catch?

Real models are timed on this machine and judged by :func:`ptq.gate.decide_latency`, the
statistics ``ptq compare`` and ``ptq ab`` use. Each trial times a baseline and a current
side; on the current side the chosen (quantized) cases get an injected slowdown, a busy-wait
of ``fraction x`` the case's calibrated median added to every call, while the other cases
stay untouched and count as A/A controls, as do whole trials with no injection.

Two modes: ``plain`` times the whole baseline side, then the whole current side (two
separate runs, as ``ptq compare`` sees them), ``interleaved`` alternates short rounds
ABBA... (as ``ptq ab`` does), and ``speedup`` judges two separate runs by each quantized
case's interleaved speedup over its fp32 (the ``speedup`` judge of ``ptq compare``). Run it on a quiet machine: ``ptq gate-quality``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np

from ptq.gate import DEFAULT_LOCATION, Verdict, decide_interval, decide_latency

__all__ = ["Outcome", "Target", "busy_wait", "collect", "run_trial", "speedups", "summarize", "time_calls"]

MODES = ("plain", "interleaved", "speedup")


@dataclass(frozen=True)
class Target:
    case: str
    call: Callable[[], Any]
    median_s: float
    inject: bool  # gets the slowdown in slowdown trials; otherwise an A/A control
    reference: Callable[[], Any] | None = None  # the same model's fp32 call, for the speedup judge


def busy_wait(seconds: float, timer: Callable[[], float] = time.perf_counter) -> None:
    """Spin (not sleep: a sleep yields the core and its wake-up jitter is larger than 3%)."""
    end = timer() + seconds
    while timer() < end:
        pass


def time_calls(fn: Callable[[], Any], budget_s: float, *, min_rounds: int = 10, warmup: int = 3,
               timer: Callable[[], float] = time.perf_counter) -> list[float]:
    """Untimed warm-up, then one call per sample until ``budget_s`` (pytest-benchmark's way)."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    start = timer()
    while len(out) < min_rounds or timer() - start < budget_s:
        t0 = timer()
        fn()
        out.append(timer() - t0)
    return out


def _slowed(target: Target, fraction: float) -> Callable[[], Any]:
    if fraction <= 0 or not target.inject:
        return target.call
    extra = fraction * target.median_s

    def call() -> Any:
        result = target.call()
        busy_wait(extra)
        return result

    return call


def collect(targets: Sequence[Target], fraction: float, budget_s: float) -> dict[str, list[float]]:
    """One side: every target timed for ``budget_s``, the injected ones slowed by ``fraction``."""
    return {t.case: time_calls(_slowed(t, fraction), budget_s) for t in targets}


def run_trial(targets: Sequence[Target], fraction: float, *, mode: str, budget_s: float, rounds: int = 4
              ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(baseline samples, current samples) per case for one trial in ``mode``."""
    if mode == "plain":
        return collect(targets, 0.0, budget_s), collect(targets, fraction, budget_s)
    if mode != "interleaved":
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    base: dict[str, list[float]] = {t.case: [] for t in targets}
    cur: dict[str, list[float]] = {t.case: [] for t in targets}
    for r in range(rounds):
        for side in ((0, 1) if r % 2 == 0 else (1, 0)):
            sink, frac = (base, 0.0) if side == 0 else (cur, fraction)
            for case, samples in collect(targets, frac, budget_s / rounds).items():
                sink[case].extend(samples)
    return base, cur


def speedups(targets: Sequence[Target], fraction: float, budget_s: float) -> dict[str, tuple[float, float, float]]:
    """One side of the speedup judge: each injected case against its fp32, pairs interleaved
    as the ``speedup`` probe does; (ratio, low, high) per case."""
    from ptq.speedup import interleaved_speedup

    out = {}
    for t in targets:
        if t.inject and t.reference is not None:
            est = interleaved_speedup(t.reference, _slowed(t, fraction), budget_s=budget_s)
            out[t.case] = (est.ratio, est.low, est.high)
    return out


@dataclass
class Outcome:
    """Tallies of one mode: per injected fraction, (judgements, flagged as regression)."""

    mode: str
    detected: dict[float, list[int]] = field(default_factory=dict)  # fraction -> [trials, flagged]
    aa: list[int] = field(default_factory=lambda: [0, 0])  # [judgements, false regressions]
    ratios: dict[float, list[float]] = field(default_factory=dict)

    def record(self, fraction: float, targets: Sequence[Target], base: Mapping[str, list[float]],
               cur: Mapping[str, list[float]], *, threshold: float, alpha: float, statistic: str = DEFAULT_LOCATION
               ) -> None:
        for t in targets:
            d = decide_latency(base[t.case], cur[t.case], threshold=threshold, alpha=alpha, statistic=statistic)
            self.tally(fraction if t.inject else 0.0, d.verdict, d.ratio)

    def record_speedups(self, fraction: float, base: Mapping[str, tuple[float, float, float]],
                        cur: Mapping[str, tuple[float, float, float]], *, threshold: float) -> None:
        """Speedup judge: a slower quantized case shows as a lower speedup (ratio: base/current)."""
        for case in base:
            self.tally(fraction, decide_interval(base[case], cur[case], threshold=threshold), base[case][0] / cur[case][0])

    def tally(self, fraction: float, verdict: Verdict, ratio: float) -> None:
        tally = self.detected.setdefault(fraction, [0, 0]) if fraction > 0 else self.aa
        self.ratios.setdefault(fraction, []).append(ratio)
        tally[0] += 1
        tally[1] += verdict is Verdict.REGRESSION

    def false_rate(self) -> float:
        return self.aa[1] / self.aa[0] if self.aa[0] else float("nan")

    def rate(self, fraction: float) -> float:
        n, hit = self.detected.get(fraction, (0, 0))
        return hit / n if n else float("nan")

    def ratio_quantiles(self) -> dict[str, list[float]]:
        """Per injected fraction, the 1/5/50/95/99th percentiles of the measured ratios: the
        A/A row is the noise a threshold must clear."""
        return {f"{f:g}": [round(float(x), 4) for x in np.quantile(r, [0.01, 0.05, 0.5, 0.95, 0.99])]
                for f, r in sorted(self.ratios.items()) if r}

    def smallest_caught(self, level: float = 0.95) -> float | None:
        caught = [f for f in sorted(self.detected) if self.rate(f) >= level]
        return caught[0] if caught else None


def summarize(outcomes: Sequence[Outcome]) -> list[list[str]]:
    """Table rows: mode, injected slowdown, judgements, flagged, rate, median measured ratio."""
    rows = []
    for o in outcomes:
        rows.append([o.mode, "0% (A/A)", str(o.aa[0]), str(o.aa[1]), f"{o.false_rate():.1%}",
                     f"{median(o.ratios.get(0.0, [float('nan')])):.3f}"])
        for f in sorted(o.detected):
            n, hit = o.detected[f]
            rows.append([o.mode, f"{f:.0%}", str(n), str(hit), f"{hit / n:.1%}", f"{median(o.ratios[f]):.3f}"])
    return rows
