"""A benchmark of the gate itself: how often does it cry wolf, and what does it catch?

Real models are timed on this machine and judged by :func:`ptq.stats.decide.decide_latency`, the
statistics ``ptq compare`` and ``ptq ab`` use. Each trial times a baseline and a current
side; on the current side the chosen (quantized) cases get an injected slowdown, a busy-wait
of ``fraction x`` the case's calibrated median added to every call (in the duet modes, ``fraction
x`` a fast call, the calibration's 5th percentile, as the duet's judge compares the 1st
percentile), while the other cases stay untouched and count as A/A controls, as do whole trials
with no injection.

The modes: ``plain`` times the whole baseline side, then the whole current side (two
separate runs, as ``ptq compare`` sees them); ``interleaved`` alternates short rounds ABBA...
in this one process; ``processes`` alternates them too, but runs each round in a fresh Python
process and judges per round (``ptq ab --latency=rounds``); ``duet`` has two fresh worker
processes take turns in short windows (what ``ptq ab`` does, see :mod:`ptq.run.duet`); ``speedup``
judges two separate runs by each quantized case's interleaved speedup over its fp32 (the
``speedup`` judge of ``ptq compare``). Run it on a quiet machine: ``ptq gate-quality``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np

from ptq.errors import UserError
from ptq.run.duet import DuetPlan, TimedCases, Worker, busy_wait, default_decide, run_plan, time_calls
from ptq.stats.decide import (
    DEFAULT_LOCATION,
    Verdict,
    decide_interval,
    decide_latency,
    decide_latency_placements,
    decide_latency_rounds,
    location,
)

__all__ = [
    "Outcome",
    "Target",
    "build_targets",
    "busy_wait",
    "collect",
    "process_round",
    "run_duet_trial",
    "run_process_trial",
    "run_trial",
    "speedups",
    "summarize",
    "time_calls",
]

MODES = ("plain", "interleaved", "processes", "duet", "duet-compute", "speedup")


@dataclass(frozen=True)
class Target:
    case: str
    call: Callable[[], Any]
    median_s: float
    inject: bool  # gets the slowdown in slowdown trials; otherwise an A/A control
    reference: Callable[[], Any] | None = None  # the same model's fp32 call, for the speedup judge


def build_targets(cases: str, threads: int, *, calibrate_s: float = 0.3) -> list[Target]:
    """The cases named ``model-recipe,...``, prepared as the suite prepares them (seeded random
    weights), each with its median call time measured over ``calibrate_s`` in this process (a
    fresh process can run a case 20-40% slower or faster than the last, so a slowdown injected
    in a round process is sized by that process's own median)."""
    specs = [c.strip() for c in cases.split(",") if c.strip()]
    for spec in specs:
        if "-" not in spec:
            raise UserError(f"--cases: {spec!r} is not model-recipe, e.g. micro_linear_1024-dynamic_int8")
    timed = TimedCases()
    failed = timed.prepare(specs, threads=threads, weights="random", calibrate_s=calibrate_s)["failed"]
    if failed:
        raise UserError("--cases: " + "; ".join(f"{spec}: {why}" for spec, why in failed.items()))
    targets = [
        Target(
            spec,
            timed.calls[spec],
            timed.medians[spec],
            inject=not spec.endswith("-fp32"),
            reference=timed.calls.get(f"{spec.rpartition('-')[0]}-fp32"),
        )
        for spec in specs
    ]
    if not any(t.inject for t in targets):
        raise UserError(f"--cases={cases!r}: no non-fp32 case to inject slowdowns into")
    return targets


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


def run_trial(
    targets: Sequence[Target], fraction: float, *, mode: str, budget_s: float, rounds: int = 4
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """(baseline samples, current samples) per case for one trial in ``mode``."""
    if mode == "plain":
        return collect(targets, 0.0, budget_s), collect(targets, fraction, budget_s)
    if mode != "interleaved":
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    base: dict[str, list[float]] = {t.case: [] for t in targets}
    cur: dict[str, list[float]] = {t.case: [] for t in targets}
    for r in range(rounds):
        for side in (0, 1) if r % 2 == 0 else (1, 0):
            sink, frac = (base, 0.0) if side == 0 else (cur, fraction)
            for case, samples in collect(targets, frac, budget_s / rounds).items():
                sink[case].extend(samples)
    return base, cur


def process_round(spec: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    """One side's round in a fresh process (run by ``python -m ptq.lab.gate_quality SPEC``): every
    case timed once per fraction in ``spec["fractions"]`` (injected cases only; 0 first, as the
    other side's), for ``spec["budget_s"]``. Returns {case: {fraction: samples}}."""
    targets = build_targets(spec["cases"], spec["threads"], calibrate_s=0.1)
    out: dict[str, dict[str, list[float]]] = {}
    for t in targets:
        for fraction in spec["fractions"] if t.inject else [0.0]:
            out.setdefault(t.case, {})[f"{fraction:g}"] = time_calls(_slowed(t, fraction), spec["budget_s"])
    return out


def _spawn(spec: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    done = subprocess.run(
        [sys.executable, "-m", "ptq.lab.gate_quality", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-10:])
        raise UserError(f"a gate-quality round process failed (exit {done.returncode}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_process_trial(
    targets: Sequence[Target],
    fractions: Sequence[float],
    *,
    cases: str,
    threads: int,
    budget_s: float,
    rounds: int = 4,
    spawn: Callable[[Mapping[str, Any]], dict[str, dict[str, list[float]]]] = _spawn,
) -> tuple[dict[str, list[list[float]]], dict[tuple[str, float], list[list[float]]]]:
    """One trial of the ``processes`` mode: ``rounds`` ABBA rounds, each side's round a fresh
    process timing every case for ``budget_s / rounds``. Side B also times each injected case
    slowed by every fraction, after its unslowed window, so one trial judges them all against
    the same A rounds. Returns (A rounds per case, B rounds per (case, fraction))."""
    from ptq.run.ab import schedule

    spec = {"cases": cases, "threads": threads, "budget_s": budget_s / rounds}
    base: dict[str, list[list[float]]] = {t.case: [] for t in targets}
    cur: dict[tuple[str, float], list[list[float]]] = {}
    for _, side in schedule(rounds):
        got = spawn({**spec, "fractions": [0.0] if side == "A" else [0.0, *fractions]})
        for case, by_fraction in got.items():
            for fraction, samples in by_fraction.items():
                if side == "A":
                    base[case].append(samples)
                else:
                    cur.setdefault((case, float(fraction)), []).append(samples)
    return base, cur


def run_duet_trial(
    targets: Sequence[Target],
    fractions: Sequence[float],
    *,
    threads: int,
    plan: DuetPlan,
    worker: Callable[[str], Worker] = Worker,
    slow_kind: str = "spin",
    alpha: float = 0.01,
    threshold: float = 0.05,
    statistic: str = DEFAULT_LOCATION,
) -> tuple[dict[tuple[str, float], list[list[float]]], dict[tuple[str, float], list[list[float]]]]:
    """One trial of the ``duet`` mode, what ``ptq ab`` does for latency: :func:`ptq.run.duet.run_plan`
    with fresh worker pairs and placements. Per sweep each injected case is paired once per
    fraction (0 first: its A/A), fp32 cases included (nothing here needs them unslowed), so
    every (case, fraction) has its own adjacent A windows. Returns (A, B) samples per (case,
    fraction), split by placement. ``slow_kind``: a busy-wait (``spin``) or real compute (``compute``,
    the case's first layer run again). A sequential plan stops each (case, fraction) by the gate's
    ``alpha`` and ``threshold`` (:mod:`ptq.stats.sequential`), as ``ptq ab`` does."""
    got = run_plan(
        plan,
        [t.case for t in targets],
        new_worker=worker,
        threads=threads,
        weights="random",
        slowdowns={t.case: (0.0, *fractions) for t in targets},
        slow_kind=slow_kind,
        decide=default_decide(plan, alpha=alpha, threshold=threshold),
        q=location(statistic),
    )
    if got.failed:
        raise UserError(f"a duet worker could not prepare: {got.failed}")
    return got.blocks["A"], got.blocks["B"]


def speedups(targets: Sequence[Target], fraction: float, budget_s: float) -> dict[str, tuple[float, float, float]]:
    """One side of the speedup judge: each injected case against its fp32, pairs interleaved
    as the ``speedup`` probe does; (ratio, low, high) per case."""
    from ptq.probes.speedup import interleaved_speedup

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
    #: The processes and duet modes' judgements with each round's or placement's statistic, so a
    #: rule can be studied offline.
    judgements: list[dict[str, Any]] = field(default_factory=list)
    #: case -> fraction -> [judgements, flagged] (the duet mode's per-case tallies).
    per_case: dict[str, dict[float, list[int]]] = field(default_factory=dict)
    #: The duet modes: placements each judgement was made over (a sequential plan stops early).
    placements: list[int] = field(default_factory=list)

    def record(
        self,
        fraction: float,
        targets: Sequence[Target],
        base: Mapping[str, list[float]],
        cur: Mapping[str, list[float]],
        *,
        threshold: float,
        alpha: float,
        statistic: str = DEFAULT_LOCATION,
    ) -> None:
        for t in targets:
            d = decide_latency(base[t.case], cur[t.case], threshold=threshold, alpha=alpha, statistic=statistic)
            self.tally(fraction if t.inject else 0.0, d.verdict, d.ratio)

    def record_rounds(
        self,
        base: Mapping[str, list[list[float]]],
        cur: Mapping[tuple[str, float], list[list[float]]],
        *,
        threshold: float,
        alpha: float,
        statistic: str = DEFAULT_LOCATION,
    ) -> None:
        """A ``processes`` trial: each (case, fraction) of side B judged per round against A."""
        q = location(statistic)
        for (case, fraction), rounds in cur.items():
            d = decide_latency_rounds(base[case], rounds, threshold=threshold, alpha=alpha, statistic=statistic)
            self.tally(fraction, d.verdict, d.ratio)
            self.judgements.append(
                {
                    "case": case,
                    "fraction": fraction,
                    "ratio": d.ratio,
                    "p": d.p,
                    "verdict": d.verdict.name,
                    "base": [float(np.quantile(r, q)) for r in base[case]],
                    "current": [float(np.quantile(r, q)) for r in rounds],
                }
            )

    def record_placements(
        self,
        base: Mapping[tuple[str, float], list[list[float]]],
        cur: Mapping[tuple[str, float], list[list[float]]],
        *,
        threshold: float,
        alpha: float,
        statistic: str = DEFAULT_LOCATION,
    ) -> None:
        """A ``duet`` trial: each (case, fraction) judged over its paired placements, as ``ptq ab``."""
        q = location(statistic)
        for (case, fraction), blocks in cur.items():
            d = decide_latency_placements(
                base[(case, fraction)], blocks, threshold=threshold, alpha=alpha, statistic=statistic
            )
            self.tally(fraction, d.verdict, d.ratio, case)
            self.placements.append(len(blocks))
            self.judgements.append(
                {
                    "case": case,
                    "fraction": fraction,
                    "ratio": d.ratio,
                    "p": d.p,
                    "verdict": d.verdict.name,
                    "spread": d.spread,
                    "base": [float(np.quantile(b, q)) for b in base[(case, fraction)]],
                    "current": [float(np.quantile(b, q)) for b in blocks],
                }
            )

    def record_speedups(
        self,
        fraction: float,
        base: Mapping[str, tuple[float, float, float]],
        cur: Mapping[str, tuple[float, float, float]],
        *,
        threshold: float,
    ) -> None:
        """Speedup judge: a slower quantized case shows as a lower speedup (ratio: base/current)."""
        for case in base:
            self.tally(
                fraction, decide_interval(base[case], cur[case], threshold=threshold), base[case][0] / cur[case][0]
            )

    def tally(self, fraction: float, verdict: Verdict, ratio: float, case: str | None = None) -> None:
        tally = self.detected.setdefault(fraction, [0, 0]) if fraction > 0 else self.aa
        self.ratios.setdefault(fraction, []).append(ratio)
        tally[0] += 1
        tally[1] += verdict is Verdict.REGRESSION
        if case is not None:
            per = self.per_case.setdefault(case, {}).setdefault(fraction, [0, 0])
            per[0] += 1
            per[1] += verdict is Verdict.REGRESSION

    def false_rate(self) -> float:
        return self.aa[1] / self.aa[0] if self.aa[0] else float("nan")

    def rate(self, fraction: float) -> float:
        n, hit = self.detected.get(fraction, (0, 0))
        return hit / n if n else float("nan")

    def ratio_quantiles(self) -> dict[str, list[float]]:
        """Per injected fraction, the 1/5/50/95/99th percentiles of the measured ratios: the
        A/A row is the noise a threshold must clear."""
        return {
            f"{f:g}": [round(float(x), 4) for x in np.quantile(r, [0.01, 0.05, 0.5, 0.95, 0.99])]
            for f, r in sorted(self.ratios.items())
            if r
        }

    def case_rows(self) -> list[list[str]]:
        """Per case: A/A judgements and false regressions, each slowdown's catch rate, and the
        median over trials of side A's between-placement spread (max/min - 1 of its placements'
        statistic)."""
        spreads: dict[str, list[float]] = {}
        for j in self.judgements:
            if j["fraction"] == 0 and j.get("base"):
                spreads.setdefault(j["case"], []).append(max(j["base"]) / min(j["base"]) - 1)
        rows = []
        for case, tallies in sorted(self.per_case.items()):
            n, hit = tallies.get(0.0, [0, 0])
            caught = [f"{f:.0%}: {h}/{m}" for f, (m, h) in sorted(tallies.items()) if f > 0]
            spread = f"{median(spreads[case]):.1%}" if spreads.get(case) else "-"
            rows.append([case, f"{hit}/{n}", ", ".join(caught), spread])
        return rows

    def smallest_caught(self, level: float = 0.95) -> float | None:
        caught = [f for f in sorted(self.detected) if self.rate(f) >= level]
        return caught[0] if caught else None


def summarize(outcomes: Sequence[Outcome]) -> list[list[str]]:
    """Table rows: mode, injected slowdown, judgements, flagged, rate, median measured ratio."""
    rows = []
    for o in outcomes:
        rows.append(
            [
                o.mode,
                "0% (A/A)",
                str(o.aa[0]),
                str(o.aa[1]),
                f"{o.false_rate():.1%}",
                f"{median(o.ratios.get(0.0, [float('nan')])):.3f}",
            ]
        )
        for f in sorted(o.detected):
            n, hit = o.detected[f]
            rows.append([o.mode, f"{f:.0%}", str(n), str(hit), f"{hit / n:.1%}", f"{median(o.ratios[f]):.3f}"])
    return rows


if __name__ == "__main__":  # a round of the processes mode: spec JSON in argv[1], samples JSON out
    print(json.dumps(process_round(json.loads(sys.argv[1]))))
