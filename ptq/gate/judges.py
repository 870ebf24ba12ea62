"""Metric judges: each knows where its figure lives in a case's ``extra_info`` and how to
judge a baseline value against a current one. The built-in judges are :data:`JUDGES`, in one
tuple; others come from :func:`register_judge` (a conftest) or entry points in group
``ptq.judges`` (an installed package), each resolving to a :class:`Judge`.

A judge's ``extract`` returns None when the case did not measure the metric (reported as
"not measured", never as a failure). Figures are read through the typed results schema
(:mod:`ptq.storage.figures`); each judge names the figures it reads in ``reads`` (lower is
better unless noted), and the judge table of docs/gate-and-statistics.md is checked against them:

- ``latency``: pytest-benchmark's raw samples (``stats.data``), same fingerprint only; judged
  by ``latency_statistic`` (the 1st percentile by default, see :mod:`ptq.stats.decide`), per placement
  where both sides were timed as ``ptq ab``'s duet (``extra_info.ab_placement_sizes``), per
  session where both sides were timed in several (``extra_info.ab_round_sizes``, ``--latency=rounds``).
- ``speedup``: ratio and interval (higher is better), same fingerprint only; fp32 has none.
- ``memory`` / ``quantize_memory``: memray's high-water mark of one inference / of the
  quantization step over the process before it (unlike the absolute peak, it does not depend on
  what earlier cases left loaded); ``ptq ab``'s per-session samples give the spread.
- ``size``: bytes of the deployed form (state_dict, TorchScript archive, ONNX or OpenVINO file).
- ``drift``: the drift profile's headline figure (``higher_is_better`` flips it) and its allowed
  change.

Thresholds come from ``[tool.ptq.gate]`` (scoped per model / recipe / case like every section).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ptq.config.sections import GATE_DEFAULTS
from ptq.errors import UserError
from ptq.registry import NamedRegistry
from ptq.stats.decide import (
    Verdict,
    decide_interval,
    decide_latency,
    decide_latency_placements,
    decide_latency_rounds,
    decide_threshold,
    location,
)
from ptq.storage.figures import DriftFigures, MemoryFigures, SizeFigures, SpeedupFigures, read_figures
from ptq.storage.runs import CaseRecord, path
from ptq.text import format_bytes

__all__ = ["DEFAULTS", "JUDGES", "Judge", "Judgement", "get_judge", "list_judges", "register_judge", "select_judges"]

#: Defaults of ``[tool.ptq.gate]``, declared with the section in :mod:`ptq.config.sections`.
DEFAULTS = GATE_DEFAULTS


@dataclass(frozen=True)
class Judgement:
    """A judge's answer for one case: verdict and the cells of its table row."""

    verdict: Verdict
    baseline: str
    current: str
    change: str
    detail: str = ""


@dataclass(frozen=True)
class Judge:
    name: str
    extract: Callable[[CaseRecord], Any]
    judge: Callable[[Any, Any, Mapping[str, Any]], Judgement]
    #: Which environment key must match for the figure to be compared (:data:`ptq.host.env.KEYS`):
    #: "timing" for latencies, "numerics" for what the selected kernels compute or allocate.
    key: str = "numerics"
    #: ``extra_info`` fields that must match between the two records (drift: the same weights and
    #: data, e.g. a model trained on another CPU has other weights under the same recipe).
    same_case: tuple[str, ...] = ()
    #: Whether a case should have this metric at all (speedup: not on fp32).
    applies: Callable[[CaseRecord], bool] = lambda record: True
    #: Said where the metric is missing on one side.
    missing_hint: str = ""
    #: The stored figures ``extract`` reads (paths of :func:`ptq.storage.figures.schema_rows`, or
    #: pytest-benchmark's own fields): what the docs' judge table must name.
    reads: tuple[str, ...] = ()
    #: Why a case should have had the figure though it has none (a probe that ran and said
    #: ``not_measured``, a duet that could not prepare the case), else None: where neither side
    #: has the figure, this makes the row a failing "not measured" instead of leaving it out.
    expected: Callable[[CaseRecord], str | None] = lambda record: None

    @property
    def same_environment(self) -> bool:
        """Only comparable where the timing keys match (latency, speedup)."""
        return self.key == "timing"


def register_judge(judge: Judge, *, replace: bool = False) -> Judge:
    """Add a judge after the built-ins."""
    return _REGISTRY.add(judge, replace=replace)


def get_judge(name: str) -> Judge:
    return _REGISTRY.get(name)


def list_judges(include: str | None = None) -> list[str]:
    return _REGISTRY.names(include)


def select_judges(globs: str | None, *, option: str = "--judges") -> list[str] | None:
    """The judges ``globs`` names (None: the caller's default); a glob matching none is an error
    naming the valid ones."""
    if globs is None:
        return None
    chosen = list_judges(globs)
    missing = [g for g in (x.strip() for x in globs.split(",")) if g and not list_judges(g)]
    if missing or not chosen:
        raise UserError(
            f"{option}={globs!r}: {', '.join(missing) or 'nothing'} matches no judge; valid: {', '.join(list_judges())}"
        )
    return chosen


def _pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def _ms(samples: tuple[float, ...], statistic: str) -> str:
    import numpy as np

    return f"{float(np.quantile(samples, location(statistic))) * 1e3:.4g} ms {statistic}"


@dataclass(frozen=True)
class Timings:
    """A case's latency samples and how they were taken: ``blocks`` split by placement (the
    duet's, paired between sides) or by session (``--latency=rounds``), else one block."""

    blocks: tuple[tuple[float, ...], ...]
    unit: str  # "placement", "round" or "call"
    #: Where the duet stopped the case sequentially, the alpha it spent per look
    #: (:mod:`ptq.stats.sequential`): the verdict's test uses it, so looks cannot inflate false alarms.
    alpha_look: float | None = None
    #: Where ``ptq ab --budget`` ended the case's placements before its verdict was clear: said in the row.
    cut_short: int | None = None

    @property
    def pooled(self) -> tuple[float, ...]:
        return tuple(x for block in self.blocks for x in block)


def _latency(base: Timings, cur: Timings, s: Mapping[str, Any]) -> Judgement:
    """Paired placements on both sides (the duet): the placement is the unit; sessions on both
    sides: the session; else the call."""
    looked = [t.alpha_look for t in (base, cur) if t.alpha_look is not None]
    alpha = min([s["alpha"], *looked])
    kw = {"threshold": s["latency_threshold"], "alpha": alpha, "statistic": s["latency_statistic"]}
    pooled = [base.pooled, cur.pooled]
    try:
        if base.unit == cur.unit == "placement":  # paired, or refused: never pooled back into one draw
            d = decide_latency_placements(base.blocks, cur.blocks, **kw)
        elif base.unit == cur.unit == "round" and len(base.blocks) > 1 and len(cur.blocks) > 1:
            d = decide_latency_rounds(base.blocks, cur.blocks, **kw)
        else:
            d = decide_latency(*pooled, **kw)
    except ValueError as exc:  # e.g. one placement with samples on a side: no interval, so no verdict
        return Judgement(
            Verdict.NOT_MEASURED,
            _ms(pooled[0], s["latency_statistic"]),
            _ms(pooled[1], s["latency_statistic"]),
            "-",
            f"no interval could be estimated: {exc}",
        )
    if not all(math.isfinite(x) for x in (d.ratio, d.low, d.high)):
        return Judgement(
            Verdict.NOT_MEASURED,
            _ms(pooled[0], d.statistic),
            _ms(pooled[1], d.statistic),
            "-",
            f"no finite interval could be estimated ({d.test})",
        )
    spread = "" if math.isnan(d.spread) else f", placements spread {d.spread:.1%}"
    cut = next((t.cut_short for t in (base, cur) if t.cut_short is not None), None)
    if cut is not None:
        spread += f"; the --budget ended it after {cut} placements, before its answer was clear"
    return Judgement(
        d.verdict,
        _ms(pooled[0], d.statistic),
        _ms(pooled[1], d.statistic),
        f"{_pct(d.ratio)} [{_pct(d.low)}, {_pct(d.high)}]",
        f"{d.statistic} ratio judged (all samples' median {_pct(d.median_ratio)}, not judged), {d.test} p={d.p:.2g}"
        f"{f' (alpha {alpha:.2g} per look)' if looked else ''}{spread}, n={len(pooled[0])}/{len(pooled[1])}",
    )


def _samples(record: CaseRecord) -> Timings | None:
    if len(record.samples) < 5:
        return None
    placements = record.placements
    if placements is not None:
        looked = record.extra_info.get("ab_sequential")
        alpha_look = looked.get("alpha_look") if isinstance(looked, Mapping) else None
        cut = looked.get("placements") if isinstance(looked, Mapping) and looked.get("stopped") == "budget" else None
        return Timings(
            placements,
            "placement",
            float(alpha_look) if isinstance(alpha_look, int | float) else None,
            int(cut) if isinstance(cut, int) else None,
        )
    rounds = record.rounds
    return Timings(rounds, "round" if len(rounds) > 1 else "call")


def _speedup_value(record: CaseRecord) -> tuple[float, float, float, float] | None:
    """(ratio, low, high, spread between visits (placements) or NaN where one was timed)."""
    m = read_figures(SpeedupFigures, record.extra_info)
    if m is None:
        return None
    return (float(m.ratio), float(m.low), float(m.high), float(m.spread) if m.spread is not None else math.nan)


def _speedup(
    base: tuple[float, float, float, float], cur: tuple[float, float, float, float], s: Mapping[str, Any]
) -> Judgement:
    verdict = decide_interval(base[:3], cur[:3], threshold=s["speedup_threshold"])
    show = lambda v: f"{v[0]:.2f}x [{v[1]:.2f}, {v[2]:.2f}]"  # noqa: E731
    spreads = (
        "" if math.isnan(base[3]) and math.isnan(cur[3]) else f"; spread between visits {base[3]:.1%} -> {cur[3]:.1%}"
    )
    return Judgement(
        verdict,
        show(base),
        show(cur),
        _pct(cur[0] / base[0]),
        f"interleaved speedup over fp32 with its interval (coverage: metrics.speedup.level){spreads}",
    )


def _memory_value(step: str) -> Callable[[CaseRecord], tuple[float, float] | None]:
    def extract(record: CaseRecord) -> tuple[float, float] | None:
        m = read_figures(MemoryFigures, record.extra_info)
        figures = getattr(m, step) if m is not None else None
        if figures is None:
            return None
        nums = [float(x) for x in figures.samples or ()]
        return (float(figures.increment_bytes), max(nums) - min(nums) if nums else 0.0)

    return extract


def _memory(base: tuple[float, float], cur: tuple[float, float], s: Mapping[str, Any]) -> Judgement:
    spread = 3 * max(base[1], cur[1])
    verdict = decide_threshold(
        base[0], cur[0], relative=s["memory_threshold"], spread=spread, absolute=s["memory_absolute"]
    )
    return Judgement(
        verdict,
        format_bytes(base[0]),
        format_bytes(cur[0]),
        _pct(cur[0] / base[0]) if base[0] else "-",
        f"allowed: max({s['memory_threshold']:.0%}, 3 x spread {format_bytes(spread / 3)}, "
        f"{format_bytes(s['memory_absolute'])})",
    )


def _size(base: float, cur: float, s: Mapping[str, Any]) -> Judgement:
    verdict = decide_threshold(base, cur, relative=s["size_threshold"])
    return Judgement(
        verdict,
        format_bytes(base),
        format_bytes(cur),
        _pct(cur / base) if base else "-",
        f"allowed: {s['size_threshold']:.0%}",
    )


def _size_value(record: CaseRecord) -> float | None:
    m = read_figures(SizeFigures, record.extra_info)
    return float(m.serialized_bytes) if m is not None and m.serialized_bytes is not None else None


def _drift_value(record: CaseRecord) -> tuple[float, float | None, str] | None:
    """(the headline, negated where higher is better; its tolerance; what it is, over how many samples)."""
    m = read_figures(DriftFigures, record.extra_info)
    if m is None or m.value is None:
        return None
    what = f"{m.headline or 'drift'}" + (f" over {m.samples} samples" if m.samples else "")
    return ((-1.0 if m.higher_is_better is True else 1.0) * float(m.value), m.tolerance, what)


def _drift(
    base: tuple[float, float | None, str], cur: tuple[float, float | None, str], s: Mapping[str, Any]
) -> Judgement:
    tolerance = cur[1] if cur[1] is not None else s["drift_tolerance"]
    verdict = decide_threshold(base[0], cur[0], relative=0.0, absolute=tolerance)
    name = cur[2].split(" over ")[0]
    return Judgement(
        verdict,
        f"{name} {abs(base[0]):.4g}",
        f"{abs(cur[0]):.4g}",
        f"{abs(cur[0]) - abs(base[0]):+.4g}",
        f"{cur[2]}{' (higher is better)' if cur[0] < 0 else ''}; allowed: {tolerance:g} absolute",
    )


def _quantized(record: CaseRecord) -> bool:
    return record.extra_info.get("recipe") != "fp32"


def _said_not_measured(probe: str, step: str | None = None) -> Callable[[CaseRecord], str | None]:
    """The ``not_measured`` reason a probe (or one of its steps) wrote for the case, if any."""

    def why(record: CaseRecord) -> str | None:
        node = path(record.metrics, probe if step is None else f"{probe}.{step}")
        if node is None and step is not None:
            node = record.metrics.get(probe)
        return str(node["not_measured"]) if isinstance(node, Mapping) and "not_measured" in node else None

    return why


def _latency_expected(record: CaseRecord) -> str:
    """A timed case always has latency: its absence is a failure, with the duet's reason if it gave one."""
    return str(record.extra_info.get("ab_latency_why") or "no latency samples (timing disabled, or the case failed)")


#: The built-in judges, in the order a comparison lists them.
JUDGES: tuple[Judge, ...] = (
    Judge(
        "latency",
        _samples,
        _latency,
        key="timing",
        missing_hint="no raw samples: save with --ptq-save-run or --benchmark-json",
        reads=("stats.data",),
        expected=_latency_expected,
    ),
    Judge(
        "speedup",
        _speedup_value,
        _speedup,
        key="timing",
        applies=_quantized,
        reads=("metrics.speedup.ratio", "metrics.speedup.low", "metrics.speedup.high"),
        expected=_said_not_measured("speedup"),
    ),
    Judge(
        "memory",
        _memory_value("inference"),
        _memory,
        reads=("metrics.memory.inference.increment_bytes", "metrics.memory.inference.samples"),
        expected=_said_not_measured("memory", "inference"),
    ),
    Judge(
        "quantize_memory",
        _memory_value("quantize"),
        _memory,
        applies=_quantized,
        reads=("metrics.memory.quantize.increment_bytes", "metrics.memory.quantize.samples"),
        expected=_said_not_measured("memory", "quantize"),
    ),
    Judge("size", _size_value, _size, reads=("metrics.size.serialized_bytes",), expected=_said_not_measured("size")),
    Judge(
        "drift",
        _drift_value,
        _drift,
        same_case=("weights", "data"),
        applies=_quantized,
        reads=("metrics.drift.value", "metrics.drift.higher_is_better", "metrics.drift.tolerance"),
        expected=_said_not_measured("drift"),
    ),
)

_REGISTRY: NamedRegistry[Judge] = NamedRegistry("judge", Judge, entry_point_group="ptq.judges", builtins=JUDGES)
