"""What a report follows over commits (latency, speedup, peak memory, drift) and the marker on
each point: the regression gate's verdict (:mod:`ptq.gate.judges`, thresholds from ``[tool.ptq.gate]``)
of that run against the previous comparable run, so a chart shows *when* the gate would have failed.

Each metric pairs a reading for drawing (value and spread of a :class:`~ptq.storage.runs.CaseRecord`) with
the gate judge that decides it. A metric a run did not record reads as ``None`` and is shown as
"not recorded", never as zero. Every marker's verdict comes from :func:`ptq.gate.comparison.judge_case`,
as every row of ``ptq compare``; the report's table of the latest run is that command's
:class:`~ptq.gate.comparison.Comparison` itself (:func:`ptq.gate.comparison.render`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ptq.config import Config
from ptq.gate.comparison import judge_case
from ptq.gate.judges import Judgement, get_judge
from ptq.host.env import KEYS, differing_keys, key_hash
from ptq.stats import decide as gate
from ptq.storage.figures import DRIFT_FIGURES, DriftFigures, MemoryFigures, SizeFigures, SpeedupFigures, read_figures
from ptq.storage.runs import CaseRecord, Run

__all__ = ["METRICS", "Marker", "Metric", "Reading", "Step", "dig", "keyed_series", "layer_sqnr", "marker", "series"]


class Marker(str, Enum):
    """How a chart point or a Markdown row shows the gate's verdict."""

    REGRESSION = "regression"
    IMPROVEMENT = "improvement"
    UNCHANGED = "unchanged"
    NEW = "new"
    INCOMPARABLE = "not comparable"


#: The gate's verdicts as the report's markers.
MARKERS: dict[gate.Verdict, Marker] = {
    gate.Verdict.REGRESSION: Marker.REGRESSION,
    gate.Verdict.IMPROVED: Marker.IMPROVEMENT,
    gate.Verdict.OK: Marker.UNCHANGED,
    gate.Verdict.NEW: Marker.NEW,
    gate.Verdict.NOT_MEASURED: Marker.INCOMPARABLE,
    gate.Verdict.NOT_COMPARED: Marker.INCOMPARABLE,
}


def marker(judgement: Judgement) -> Marker:
    return MARKERS[judgement.verdict]


@dataclass(frozen=True)
class Reading:
    """One figure of one case in one run, with its spread where measured (IQR, confidence interval):
    what a chart draws. Verdicts come from the gate's judges, not from these."""

    value: float
    low: float | None = None
    high: float | None = None
    label: str = ""
    higher_is_better: bool = False


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    read: Callable[[CaseRecord], Reading | None]
    #: Name of the gate judge (:func:`ptq.gate.judges.get_judge`) whose verdicts mark the points.
    judge: str


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
    return Reading(
        median * 1e3,
        q1 * 1e3 if q1 is not None else None,
        q3 * 1e3 if q3 is not None else None,
        label="median (IQR band)",
    )


def _speedup(rec: CaseRecord) -> Reading | None:
    ci = read_figures(SpeedupFigures, rec.extra_info)
    if ci is not None:
        return Reading(
            float(ci.ratio), float(ci.low), float(ci.high), label="interleaved, its interval", higher_is_better=True
        )
    ratio = _number(rec.extra_info.get("speedup_vs_fp32"))
    return Reading(ratio, label="interleaved", higher_is_better=True) if ratio is not None else None


def _memory(rec: CaseRecord) -> Reading | None:
    m = read_figures(MemoryFigures, rec.extra_info)
    step = m.inference if m is not None else None
    return Reading(float(step.increment_bytes) / 2**20, label="peak inference") if step is not None else None


def _size(rec: CaseRecord) -> Reading | None:
    m = read_figures(SizeFigures, rec.extra_info)
    return Reading(float(m.serialized_bytes) / 2**20, label="serialized") if m and m.serialized_bytes else None


def _drift(rec: CaseRecord) -> Reading | None:
    m = read_figures(DriftFigures, rec.extra_info)
    if m is None:
        return None
    drift = m.to_dict()
    order = [m.headline] if m.headline in DRIFT_FIGURES else []
    for key in order + list(DRIFT_FIGURES):
        value = _number(drift.get(key))
        if value is not None:
            label, higher = DRIFT_FIGURES[key]
            return Reading(value, label=label, higher_is_better=higher)
    return None


METRICS: dict[str, Metric] = {
    m.key: m
    for m in (
        Metric("latency", "latency", "ms", _latency, "latency"),
        Metric("speedup", "speedup over fp32", "x", _speedup, "speedup"),
        Metric("memory", "peak memory", "MiB", _memory, "memory"),
        Metric("size", "serialized size", "MiB", _size, "size"),
        Metric("drift", "drift", "", _drift, "drift"),
    )
}


def layer_sqnr(rec: CaseRecord) -> dict[str, float] | None:
    """Per-layer SQNR (dB) of a case, from ``drift.layer_sqnr_db`` ({layer: dB}) or
    ``drift.layers`` ([{name, sqnr_db}]); ``None`` when the run did not record it."""
    found = dig(rec.metrics, "drift", "layer_sqnr_db")
    if isinstance(found, Mapping):
        return {str(k): float(v) for k, v in found.items() if _number(v) is not None}
    layers = dig(rec.metrics, "drift", "worst_layers")
    if isinstance(layers, list):
        return {
            str(x["name"]): float(x["sqnr_db"])
            for x in layers
            if isinstance(x, Mapping) and "name" in x and _number(x.get("sqnr_db")) is not None
        }
    return None


def _fingerprint(run: Run, rec: CaseRecord) -> str:
    """A merged run of shards from several machines keeps each case's own fingerprint."""
    return str(rec.extra_info.get("fingerprint") or run.fingerprint)


@dataclass(frozen=True)
class Step:
    """A case's metric in one run, marked with the gate's verdict against the previous comparable
    run that had the judged figure (``verdict`` None where the judge does not apply, e.g. fp32)."""

    run: Run
    reading: Reading | None
    verdict: Marker | None
    previous: Run | None = None
    judgement: Judgement | None = None


def _step(metric: Metric, case: str, run: Run, rec: CaseRecord, earlier: Sequence[Run], config: Config) -> Step:
    reading = metric.read(rec)
    judge = get_judge(metric.judge)
    if reading is None or not judge.applies(rec):
        return Step(run, reading, None)
    had = [r for r in earlier if case in r.cases and judge.extract(r.cases[case]) is not None]
    if not had:
        return Step(run, reading, Marker.NEW)

    def unlike(other: Run) -> dict[str, list[str]]:
        keys = {kind: differing_keys(other.environment, run.environment, kind) for kind in KEYS}
        if _fingerprint(other, other.cases[case]) != _fingerprint(run, rec) and not keys["timing"]:
            keys["timing"] = ["fingerprint"]  # a merged run's shard from another machine
        return keys

    same = [r for r in had if not unlike(r)[judge.key]]
    prev = (same or had)[-1]
    judgement = judge_case(metric.judge, prev.cases[case], rec, config=config, unlike=unlike(prev))
    return Step(run, reading, marker(judgement) if judgement else Marker.INCOMPARABLE, prev, judgement)


def series(metric: Metric, case: str, runs: Sequence[Run], config: Config | None = None) -> list[Step]:
    """One step per run (``reading`` None where the run lacks the case or the metric)."""
    config = config or Config()
    return [
        _step(metric, case, run, run.cases[case], runs[:i], config) if case in run.cases else Step(run, None, None)
        for i, run in enumerate(runs)
    ]


def keyed_series(
    metric: Metric, case: str, runs: Sequence[Run], *, kind: str = "numerics", config: Config | None = None
) -> dict[str, list[Step]]:
    """One series per key of ``kind`` (:func:`ptq.host.env.key_hash` of each run's environment), each
    step judged against the previous run of its own series, so a runner with another key starts
    a series instead of showing a step. Each list is aligned with ``runs`` (a run of another key
    is a step without a reading); keys under which the case has no reading are left out."""
    groups: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(key_hash(run.environment, kind), []).append(i)
    out: dict[str, list[Step]] = {}
    for key, members in groups.items():
        steps = series(metric, case, [runs[i] for i in members], config)
        if all(s.reading is None for s in steps):
            continue
        aligned = [Step(run, None, None) for run in runs]
        for i, step in zip(members, steps, strict=True):
            aligned[i] = step
        out[key] = aligned
    return out
