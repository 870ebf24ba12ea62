"""What a report follows over commits (latency, speedup, peak memory, drift) and the step verdicts
it marks on each point: a change must pass a factor *and* clear the measured spread to count.

Each metric is one registry entry reading a :class:`~ptq.history.CaseRecord`; a metric a run did
not record reads as ``None`` and is shown as "not recorded", never as zero. Where a metric can come
from several figures (drift: accuracy drop, cosine, SQNR...) the first one present is used and
named on the chart. The regression gate (``ptq compare``) judges a run against its baseline; these
verdicts judge each run against the previous comparable one, to show *when* something moved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ptq.history import CaseRecord, Run

__all__ = [
    "METRICS", "Change", "Metric", "Reading", "Step", "Verdict", "compare", "dig", "judge", "layer_sqnr", "series",
]


class Verdict(str, Enum):
    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    NEW = "new"
    INCOMPARABLE = "not comparable"


@dataclass(frozen=True)
class Reading:
    """One figure of one case in one run, with its spread where measured (IQR, confidence interval)."""

    value: float
    low: float | None = None
    high: float | None = None
    label: str = ""
    higher_is_better: bool = False
    min_delta: float = 0.0


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    read: Callable[[CaseRecord], Reading | None]
    #: Relative change a step must pass (besides clearing the spread) to count.
    threshold: float = 0.10
    #: Only comparable between runs with the same environment fingerprint (wall-clock figures).
    same_machine: bool = False


def dig(tree: Mapping[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _latency(rec: CaseRecord) -> Reading | None:
    median = _number(rec.stats.get("median"))
    if median is None:
        return None
    q1, q3 = _number(rec.stats.get("q1")), _number(rec.stats.get("q3"))
    return Reading(median * 1e3, q1 * 1e3 if q1 is not None else None, q3 * 1e3 if q3 is not None else None,
                   label="median (IQR band)")


def _speedup(rec: CaseRecord) -> Reading | None:
    ci = rec.metrics.get("speedup")
    if isinstance(ci, Mapping) and _number(ci.get("ratio")) is not None:
        return Reading(float(ci["ratio"]), _number(ci.get("low")), _number(ci.get("high")),
                       label="interleaved, 95% CI", higher_is_better=True)
    ratio = _number(rec.extra.get("speedup_vs_fp32"))
    return Reading(ratio, label="interleaved", higher_is_better=True) if ratio is not None else None


#: Where peak inference memory may sit in ``extra_info["metrics"]`` (bytes).
MEMORY_PATHS: tuple[tuple[str, ...], ...] = (
    ("memory", "inference", "increment_bytes"),
)


def _memory(rec: CaseRecord) -> Reading | None:
    for path in MEMORY_PATHS:
        value = _number(dig(rec.metrics, *path))
        if value is not None:
            return Reading(value / 2**20, label="peak inference")
    return None


@dataclass(frozen=True)
class DriftFigure:
    path: tuple[str, ...]
    label: str
    higher_is_better: bool
    min_delta: float


#: Drift figures in order of preference: a labelled task's accuracy first, output error last.
DRIFT_FIGURES: tuple[DriftFigure, ...] = (
    DriftFigure(("drift", "absolute_accuracy_drop"), "accuracy drop", False, 0.005),
    DriftFigure(("drift", "cosine_mean"), "mean cosine to fp32", True, 0.001),
    DriftFigure(("drift", "top1_agreement"), "top-1 agreement", True, 0.005),
    DriftFigure(("drift", "sqnr_db"), "output SQNR (dB)", True, 1.0),
    DriftFigure(("drift", "max_abs_error"), "max abs error", False, 0.0),
)


def _drift(rec: CaseRecord) -> Reading | None:
    for fig in DRIFT_FIGURES:
        value = _number(dig(rec.metrics, *fig.path))
        if value is not None:
            return Reading(value, label=fig.label, higher_is_better=fig.higher_is_better, min_delta=fig.min_delta)
    return None


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("latency", "latency", "ms", _latency, same_machine=True),
    Metric("speedup", "speedup over fp32", "x", _speedup),
    Metric("memory", "peak memory", "MiB", _memory),
    Metric("drift", "drift", "", _drift, threshold=0.02),
)}


def layer_sqnr(rec: CaseRecord) -> dict[str, float] | None:
    """Per-layer SQNR (dB) of a case, from ``drift.layer_sqnr_db`` ({layer: dB}) or
    ``drift.layers`` ([{name, sqnr_db}]); ``None`` when the run did not record it."""
    found = dig(rec.metrics, "drift", "layer_sqnr_db")
    if isinstance(found, Mapping):
        return {str(k): float(v) for k, v in found.items() if _number(v) is not None}
    layers = dig(rec.metrics, "drift", "worst_layers")
    if isinstance(layers, list):
        return {str(x["name"]): float(x["sqnr_db"]) for x in layers
                if isinstance(x, Mapping) and "name" in x and _number(x.get("sqnr_db")) is not None}
    return None


def judge(metric: Metric, old: Reading | None, new: Reading | None) -> Verdict:
    """Regression/improvement when the change passes the metric's factor (and the figure's
    absolute floor) and the two spreads do not overlap; otherwise unchanged."""
    if new is None:
        raise ValueError("judge needs a current reading")
    if old is None:
        return Verdict.NEW
    worse_up = not new.higher_is_better
    delta = new.value - old.value
    big = abs(delta) > max(abs(old.value) * metric.threshold, new.min_delta)
    if old.label != new.label:
        return Verdict.INCOMPARABLE
    if not big or delta == 0:
        return Verdict.UNCHANGED
    up = delta > 0
    separated = (
        new.low is None or new.high is None or old.low is None or old.high is None
        or (new.low > old.high if up else new.high < old.low)
    )
    if not separated:
        return Verdict.UNCHANGED
    return Verdict.REGRESSION if up == worse_up else Verdict.IMPROVEMENT


@dataclass(frozen=True)
class Step:
    """A case's metric in one run, judged against the previous comparable run that had it."""

    run: Run
    reading: Reading | None
    verdict: Verdict | None
    previous: Run | None = None


def series(metric: Metric, case: str, runs: Sequence[Run]) -> list[Step]:
    """One step per run (``reading`` None where the run lacks the case or the metric)."""
    steps: list[Step] = []
    last: dict[str, tuple[Run, Reading]] = {}  # comparability key -> latest reading
    latest: tuple[Run, Reading] | None = None
    for run in runs:
        rec = run.cases.get(case)
        reading = metric.read(rec) if rec is not None else None
        if reading is None:
            steps.append(Step(run, None, None))
            continue
        key = run.fingerprint if metric.same_machine else ""
        prev = last.get(key)
        if prev is None and latest is not None and metric.same_machine:
            verdict, prev_run = Verdict.INCOMPARABLE, latest[0]
        else:
            verdict, prev_run = judge(metric, prev[1] if prev else None, reading), prev[0] if prev else None
        steps.append(Step(run, reading, verdict, prev_run))
        last[key] = latest = (run, reading)
    return steps


@dataclass(frozen=True)
class Change:
    case: str
    metric: Metric
    old: Reading | None
    new: Reading
    verdict: Verdict

    @property
    def ratio(self) -> float | None:
        return self.new.value / self.old.value if self.old is not None and self.old.value else None


def compare(base: Run, current: Run, metrics: Sequence[Metric] | None = None) -> list[Change]:
    """Every recorded metric of every case of ``current`` judged against ``base``: regressions
    first, then improvements, then the rest; wall-clock metrics only on the same fingerprint."""
    changes: list[Change] = []
    for case, rec in current.cases.items():
        old_rec = base.cases.get(case)
        for metric in metrics or METRICS.values():
            new = metric.read(rec)
            if new is None:
                continue
            old = metric.read(old_rec) if old_rec is not None else None
            if old is not None and metric.same_machine and base.fingerprint != current.fingerprint:
                verdict = Verdict.INCOMPARABLE
            else:
                verdict = judge(metric, old, new)
            changes.append(Change(case, metric, old, new, verdict))
    order = list(Verdict)
    return sorted(changes, key=lambda c: order.index(c.verdict))
