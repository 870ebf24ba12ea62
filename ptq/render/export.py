"""A run's figures in the formats of the history tools users already run.

Per case: latency (the gated statistic, :data:`ptq.stats.decide.DEFAULT_LOCATION`, with a t interval
over placements where the duet timed several, never over the calls of one allocation), the
speedup over the same model's fp32 and over its best fp32 form (each with its interval),
inference memory, serialized size and drift: read through the gate's own judges
(:mod:`ptq.gate.judges`), so an export shows the figures ``ptq compare`` judges.

Formats (``ptq export RUN --format F``):

- ``github-action-benchmark``: the action's custom tools, a JSON list of ``{name, unit, value,
  range?, extra?}`` (``value`` a number, the others strings), one file per direction:
  ``customSmallerIsBetter.json`` and ``customBiggerIsBetter.json`` (the action takes one tool
  per step). Documented in the action's README, "Examples" > custom benchmarks, and its
  ``BenchmarkResult`` type (https://github.com/benchmark-action/github-action-benchmark,
  ``src/extract.ts``); ``range`` is read as "± number" (``src/extractRangeInfo.ts``), so it
  holds the interval's larger half-width, the bounds themselves going in ``extra``.
- ``bencher``: Bencher Metric Format, ``{benchmark: {measure: {value, lower_value?,
  upper_value?}}}`` with numbers only (https://bencher.dev/docs/reference/bencher-metric-format,
  JSON Schema https://bencher.dev/bmf.json). Latency goes to Bencher's built-in ``latency``
  measure, which is in nanoseconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import methodcaller
from pathlib import Path
from typing import Any

from ptq.errors import UserError
from ptq.gate.judges import get_judge
from ptq.host.cache import atomic_write
from ptq.registry import Registry
from ptq.stats.decide import DEFAULT_LOCATION, location
from ptq.storage.figures import DriftFigures, SpeedupFigures, read_figures
from ptq.storage.runs import CaseRecord, Run

__all__ = [
    "EXPORTERS",
    "MEASURES",
    "TEST_FAILED",
    "Exporter",
    "Figure",
    "Measure",
    "export",
    "figures",
    "plan_export",
    "write_export",
]


@dataclass(frozen=True)
class Figure:
    """One exported figure of one case: ``low``/``high`` its interval where measured (the run's own coverage)."""

    case: str
    measure: str
    unit: str
    value: float
    low: float | None = None
    high: float | None = None
    higher_is_better: bool = False
    how: str = ""


@dataclass(frozen=True)
class Measure:
    """A figure to export: its ``unit`` and how to read it from a case (None: not recorded)."""

    name: str
    unit: str
    read: Callable[[CaseRecord], tuple[float, float | None, float | None, bool, str] | None]


def _latency(rec: CaseRecord) -> tuple[float, float | None, float | None, bool, str] | None:
    import numpy as np

    from ptq.stats.estimate import geometric_interval

    timings = get_judge("latency").extract(rec)
    if timings is None:
        return None
    q = location(DEFAULT_LOCATION)
    per_block = [float(np.quantile(b, q)) * 1e3 for b in timings.blocks if b]
    if timings.unit == "placement" and len(per_block) > 1:  # the judge's figure: a geometric mean over placements
        value, low, high, _ = geometric_interval(per_block)
        return (
            value,
            low,
            high,
            False,
            (f"{DEFAULT_LOCATION}, geometric mean and 95% t interval over {len(per_block)} placements"),
        )
    return (
        float(np.quantile(timings.pooled, q)) * 1e3,
        None,
        None,
        False,
        f"{DEFAULT_LOCATION} of {len(timings.pooled)} calls",
    )


def _interval(found: Any, how: str) -> tuple[float, float | None, float | None, bool, str] | None:
    if not isinstance(found, Mapping) or not isinstance(found.get("ratio"), int | float):
        return None
    bound = lambda k: float(found[k]) if isinstance(found.get(k), int | float) else None  # noqa: E731
    return float(found["ratio"]), bound("low"), bound("high"), True, how


def _speedup(rec: CaseRecord) -> tuple[float, float | None, float | None, bool, str] | None:
    m = read_figures(SpeedupFigures, rec.extra_info)
    return (
        None
        if m is None
        else (float(m.ratio), float(m.low), float(m.high), True, "interleaved over eager fp32, its interval")
    )


def _speedup_best(rec: CaseRecord) -> tuple[float, float | None, float | None, bool, str] | None:
    best = rec.extra_info.get("speedup_vs_best_fp32")
    form = best.get("best_form") if isinstance(best, Mapping) else None
    return _interval(best, f"over the fastest fp32 form ({form})")


def _memory(rec: CaseRecord) -> tuple[float, float | None, float | None, bool, str] | None:
    found = get_judge("memory").extract(rec)
    return None if found is None else (found[0], None, None, False, "inference increment (memray high-water mark)")


def _size(rec: CaseRecord) -> tuple[float, float | None, float | None, bool, str] | None:
    found = get_judge("size").extract(rec)
    return None if found is None else (found, None, None, False, "serialized deployed form")


def _drift(rec: CaseRecord) -> tuple[float, float | None, float | None, bool, str] | None:
    """The headline as recorded, sign kept (an SQNR of -3 dB is -3, not 3), in the direction the
    record says (``higher_is_better``; lower is better where it does not say), as the judge reads it."""
    m = read_figures(DriftFigures, rec.extra_info)
    if m is None or m.value is None:
        return None
    return float(m.value), None, None, m.higher_is_better is True, str(m.headline or "drift")


#: What an export holds per case, in order.
MEASURES: Registry[Measure] = Registry("export measure")
for _m in (
    Measure("latency", "ms", _latency),
    Measure("speedup-vs-fp32", "x", _speedup),
    Measure("speedup-vs-best-fp32", "x", _speedup_best),
    Measure("memory", "bytes", _memory),
    Measure("size", "bytes", _size),
    Measure("drift", "", _drift),
):
    MEASURES.register(_m.name, _m)


def figures(run: Run) -> list[Figure]:
    """Every measure every case of ``run`` recorded (finite values only), case by case."""
    out: list[Figure] = []
    for case in sorted(run.cases):
        for name in MEASURES:
            m = MEASURES.get(name)
            found = m.read(run.cases[case])
            if found is None or not math.isfinite(found[0]):
                continue
            value, low, high, higher, how = found
            finite = low is not None and high is not None and math.isfinite(low) and math.isfinite(high)
            out.append(
                Figure(
                    case, m.name, m.unit or how, value, low if finite else None, high if finite else None, higher, how
                )
            )
    return out


def _gab_entry(f: Figure) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": f"{f.case} [{f.measure}]", "unit": f.unit, "value": f.value}
    extra = f.how
    if f.low is not None and f.high is not None:
        entry["range"] = f"± {max(f.high - f.value, f.value - f.low):.6g}"
        extra += f"; interval [{f.low:.6g}, {f.high:.6g}]"
    entry["extra"] = extra
    return entry


def _github_action_benchmark(found: Sequence[Figure]) -> dict[str, Any]:
    """One file per direction that has a figure: the action fails on an empty list ("No benchmark
    result was found"), so a direction without one is not written (see :func:`write_export`)."""
    files = {
        "customSmallerIsBetter.json": [_gab_entry(f) for f in found if not f.higher_is_better],
        "customBiggerIsBetter.json": [_gab_entry(f) for f in found if f.higher_is_better],
    }
    return {name: entries for name, entries in files.items() if entries}


#: Bencher measure slug and the factor from ptq's unit: latency in Bencher's built-in ns.
BENCHER_LATENCY_NS = 1e6


def _bencher(found: Sequence[Figure]) -> dict[str, Any]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for f in found:
        scale = BENCHER_LATENCY_NS if f.measure == "latency" else 1.0
        metric = {"value": f.value * scale}
        if f.low is not None and f.high is not None:
            metric.update(lower_value=f.low * scale, upper_value=f.high * scale)
        out.setdefault(f.case, {})[f.measure] = metric
    return {"bencher.json": out}


@dataclass(frozen=True)
class Exporter:
    """A format: the files it writes, {file name: JSON payload}, from a run's figures; ``files``:
    every file it may write, each with what goes in it (said when a run has nothing for one)."""

    name: str
    build: Callable[[Sequence[Figure]], dict[str, Any]]
    docs: str
    files: Mapping[str, str] = field(default_factory=dict)


EXPORTERS: Registry[Exporter] = Registry("export format")
EXPORTERS.register(
    "github-action-benchmark",
    Exporter(
        "github-action-benchmark",
        _github_action_benchmark,
        "https://github.com/benchmark-action/github-action-benchmark#examples (custom benchmarks)",
        {
            "customSmallerIsBetter.json": "a lower-is-better figure (latency from raw samples, memory, size, drift where "
            "lower is better)",
            "customBiggerIsBetter.json": "a higher-is-better figure (a speedup: the speedup probe; drift where higher is "
            "better)",
        },
    ),
)
EXPORTERS.register(
    "bencher",
    Exporter(
        "bencher", _bencher, "https://bencher.dev/docs/reference/bencher-metric-format", {"bencher.json": "a figure"}
    ),
)

#: ``extra_info`` mark of a case whose test failed (:mod:`ptq.plugins.gate` sets it in every run JSON).
TEST_FAILED = ("test_outcome", "failed")


def plan_export(run: Run, fmt: str) -> tuple[dict[str, Any], list[str]]:
    """{file name: payload} of ``run`` in format ``fmt``, and notes on what was left out: cases whose
    test failed (their figures are not exported) and files with nothing to hold. A run with no
    figure, or whose every case failed, is refused."""
    exporter = EXPORTERS.get(fmt)
    key, value = TEST_FAILED
    failed = sorted(c for c, rec in run.cases.items() if rec.extra_info.get(key) == value)
    notes = []
    if failed and len(failed) == len(run.cases):
        raise UserError(
            f"{run.path}: every case's test failed in this run ({', '.join(failed)}); its figures are "
            "not results: fix the failures and export a run whose tests passed"
        )
    if failed:
        notes.append(
            f"left out {len(failed)} case(s) whose test failed in this run: {', '.join(failed)}; fix them and "
            "rerun to export their figures"
        )
        run = dataclasses.replace(run, cases={c: r for c, r in run.cases.items() if c not in failed})
    found = figures(run)
    if not found:
        raise UserError(
            f"{run.path}: no case recorded a figure to export (latency needs raw samples: save with "
            "--benchmark-json or --ptq-save-run)"
        )
    files = exporter.build(found)
    for name, holds in exporter.files.items():
        if name not in files:
            notes.append(
                f"{name} not written: no case of {run.path} recorded {holds}; {fmt} refuses an empty file, "
                "so leave out the step that uploads it (or record such a figure)"
            )
    return files, notes


def export(run: Run, fmt: str) -> dict[str, Any]:
    """{file name: payload} of ``run`` in format ``fmt`` (:func:`plan_export`, without its notes)."""
    return plan_export(run, fmt)[0]


def write_export(run: Run, fmt: str, out_dir: str | Path, *, notes: list[str] | None = None) -> list[Path]:
    """Write ``export(run, fmt)`` under ``out_dir``, each file atomically; the paths written.

    A file of the format this run has nothing for is not written, and one an earlier export left
    in ``out_dir`` is removed, so no step uploads another run's figures as this one's; ``notes``
    (where given) gets a line for each of these and for cases left out."""
    files, said = plan_export(run, fmt)
    written = []
    for name, payload in files.items():
        text = (json.dumps(payload, indent=1, allow_nan=False) + "\n").encode()
        written.append(atomic_write(Path(out_dir) / name, methodcaller("write", text)))
    for name in EXPORTERS.get(fmt).files:
        stale = Path(out_dir) / name
        if name not in files and stale.is_file():
            stale.unlink()
            said.append(f"removed {stale}: an earlier export's, not this run's")
    if notes is not None:
        notes.extend(said)
    return written
