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

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptq.errors import UserError
from ptq.gate.judges import get_judge
from ptq.registry import Registry
from ptq.stats.decide import DEFAULT_LOCATION, location
from ptq.storage.cache import atomic_write
from ptq.storage.figures import SpeedupFigures, read_figures
from ptq.storage.runs import CaseRecord, Run

__all__ = ["EXPORTERS", "MEASURES", "Exporter", "Figure", "Measure", "export", "figures", "write_export"]


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
        return value, low, high, False, (f"{DEFAULT_LOCATION}, geometric mean and 95% t interval over "
                                         f"{len(per_block)} placements")
    return float(np.quantile(timings.pooled, q)) * 1e3, None, None, False, \
        f"{DEFAULT_LOCATION} of {len(timings.pooled)} calls"


def _interval(found: Any, how: str) -> tuple[float, float | None, float | None, bool, str] | None:
    if not isinstance(found, Mapping) or not isinstance(found.get("ratio"), int | float):
        return None
    bound = lambda k: float(found[k]) if isinstance(found.get(k), int | float) else None  # noqa: E731
    return float(found["ratio"]), bound("low"), bound("high"), True, how


def _speedup(rec: CaseRecord) -> tuple[float, float | None, float | None, bool, str] | None:
    m = read_figures(SpeedupFigures, rec.extra_info)
    return None if m is None else (float(m.ratio), float(m.low), float(m.high), True,
                                   "interleaved over eager fp32, its interval")


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
    found = get_judge("drift").extract(rec)
    if found is None:
        return None
    headline = (rec.metrics.get("drift") or {}).get("headline") or "drift"
    return abs(found[0]), None, None, found[0] < 0, str(headline)  # the judge negates higher-is-better figures


#: What an export holds per case, in order.
MEASURES: Registry[Measure] = Registry("export measure")
for _m in (Measure("latency", "ms", _latency), Measure("speedup-vs-fp32", "x", _speedup),
           Measure("speedup-vs-best-fp32", "x", _speedup_best), Measure("memory", "bytes", _memory),
           Measure("size", "bytes", _size), Measure("drift", "", _drift)):
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
            out.append(Figure(case, m.name, m.unit or how, value, low if finite else None, high if finite else None,
                              higher, how))
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
    return {"customSmallerIsBetter.json": [_gab_entry(f) for f in found if not f.higher_is_better],
            "customBiggerIsBetter.json": [_gab_entry(f) for f in found if f.higher_is_better]}


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
    """A format: the files it writes, {file name: JSON payload}, from a run's figures."""

    name: str
    build: Callable[[Sequence[Figure]], dict[str, Any]]
    docs: str


EXPORTERS: Registry[Exporter] = Registry("export format")
EXPORTERS.register("github-action-benchmark", Exporter(
    "github-action-benchmark", _github_action_benchmark,
    "https://github.com/benchmark-action/github-action-benchmark#examples (custom benchmarks)"))
EXPORTERS.register("bencher", Exporter("bencher", _bencher, "https://bencher.dev/docs/reference/bencher-metric-format"))


def export(run: Run, fmt: str) -> dict[str, Any]:
    """{file name: payload} of ``run`` in format ``fmt``; a run with no figure is refused."""
    found = figures(run)
    if not found:
        raise UserError(f"{run.path}: no case recorded a figure to export (latency needs raw samples: save with "
                        "--benchmark-json or --ptq-save-run)")
    return EXPORTERS.get(fmt).build(found)


def write_export(run: Run, fmt: str, out_dir: str | Path) -> list[Path]:
    """Write ``export(run, fmt)`` under ``out_dir``, each file atomically; the paths written."""
    written = []
    for name, payload in export(run, fmt).items():
        text = (json.dumps(payload, indent=1, allow_nan=False) + "\n").encode()
        written.append(atomic_write(Path(out_dir) / name, lambda fh, t=text: fh.write(t)))
    return written
