"""Plain-text renderings of results for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from ptq.storage.figures import MemoryFigures, SizeFigures, SpeedupFigures, metric_figures
from ptq.storage.results import CaseResult
from ptq.text import format_bytes, format_table

__all__ = ["format_bytes", "format_table", "speedup_table"]


def _speedup_cell(r: CaseResult) -> str:
    if r.speedup_vs_fp32 is None:
        return "-"
    ci = metric_figures(SpeedupFigures, r.metrics)
    return f"{r.speedup_vs_fp32:.2f}x [{ci.low:.2f}, {ci.high:.2f}]" if ci else f"{r.speedup_vs_fp32:.2f}x"


def _repeat_cell(r: CaseResult) -> str:
    """Where another run's speedup should land (:func:`ptq.stats.estimate.repeat_interval`)."""
    ci = metric_figures(SpeedupFigures, r.metrics)
    again = ci.repeat if ci is not None else None
    return f"[{again['low']:.2f}, {again['high']:.2f}]" if r.speedup_vs_fp32 is not None and again else "-"


def _spread_cell(r: CaseResult) -> str:
    """Visits the figures are over (of those made, where a bandwidth meter chose the quietest; "(cap)"
    where the case ran out of visits before its rerun interval was as narrow as asked, "(budget)"
    where ``--ptq-budget`` ended them first) and the
    spread of the case's 1st percentile between them (max/min - 1)."""
    ci = metric_figures(SpeedupFigures, r.metrics)
    placed = ci.latency_placements if ci is not None else None
    if ci is None or not placed or not placed.get("per_placement_ms"):
        return "-"
    made = f"/{len(ci.bandwidth['meter_ms'])}" if ci.bandwidth else ""
    short = ""
    if ci.precision and not ci.precision.get("reached", True):  # --ptq-rerun-target not met: by the budget, or the cap
        short = " (budget)" if ci.precision.get("stopped") == "budget" else " (cap)"
    return f"{len(placed['per_placement_ms'])}{made}{short}: {placed['spread']:.1%}"


def _memory_cell(r: CaseResult) -> str:
    """memray's high-water mark of one inference call (what the memory judge compares)."""
    m = metric_figures(MemoryFigures, r.metrics)
    return format_bytes(m.inference.increment_bytes) if m is not None and m.inference is not None else "-"


def _size_cell(r: CaseResult) -> str:
    m = metric_figures(SizeFigures, r.metrics)
    return format_bytes(m.serialized_bytes) if m is not None and m.serialized_bytes is not None else "-"


def speedup_table(results: Sequence[CaseResult]) -> str:
    """One row per timed case: median latency, speedup over the model's fp32, memory, size, what was
    quantized. Only the paired speedup is shown: the ratio of two separately timed medians
    (``speedup_unpaired``, kept in the JSON) strays far enough to be quoted instead of it."""
    rows = []
    for r in results:
        if r.latency is None:
            continue
        rows.append(
            [
                r.model,
                r.recipe,
                r.stack,
                f"{r.latency.median * 1e3:.3f}",
                f"{r.latency.stddev / r.latency.mean * 100:.1f}%" if r.latency.mean else "-",
                str(r.latency.rounds),
                _speedup_cell(r),
                _repeat_cell(r),
                _spread_cell(r),
                _memory_cell(r),
                _size_cell(r),
                f"{r.quantized_layers}/{r.quantized_layers + r.float_layers}",
                r.weights.split(" ")[0],
            ]
        )
    return format_table(
        [
            "model",
            "recipe",
            "stack",
            "median ms",
            "cv",
            "rounds",
            "speedup [CI]",
            "rerun in",
            "visits: spread",
            "inference mem",
            "size",
            "quantized",
            "weights",
        ],
        rows,
    )
