"""Metric judges: each knows where its figure lives in a case's ``extra_info`` and how to
judge a baseline value against a current one. The built-in judges are :data:`JUDGES`, in one
tuple; others come from :func:`register_judge` (a conftest) or entry points in group
``ptq.judges`` (an installed package), each resolving to a :class:`Judge`.

A judge's ``extract`` returns None when the case did not measure the metric (reported as
"not measured", never as a failure). Key paths read (lower is better unless noted):

- ``latency``: pytest-benchmark's raw samples (``stats.data``), same fingerprint only; judged
  by ``latency_statistic`` (the 1st percentile by default, see :mod:`ptq.stats.decide`), per placement
  where both sides were timed as ``ptq ab``'s duet (``extra_info.ab_placement_sizes``), per
  session where both sides were timed in several (``extra_info.ab_round_sizes``, ``--latency=rounds``).
- ``speedup``: ``extra_info.metrics.speedup = {ratio, low, high}`` (higher is better), same
  fingerprint only; fp32 cases have none.
- ``memory``: ``extra_info.metrics.memory.inference.increment_bytes`` (memray's high-water
  mark of one inference over the process before it: unlike the absolute peak, it does not
  depend on what earlier cases left loaded); optional ``...inference.samples`` gives the spread.
- ``quantize_memory``: the same for the quantization step (``metrics.memory.quantize``).
- ``size``: ``extra_info.metrics.size.serialized_bytes`` (bytes of the deployed form: state_dict, TorchScript archive or ONNX file).
- ``drift``: ``extra_info.metrics.drift.value``, the drift profile's headline figure
  (``metrics.drift.headline`` names it; ``higher_is_better: true`` flips it) and its allowed
  change ``metrics.drift.tolerance``.

Thresholds come from ``[tool.ptq.gate]`` (scoped per model / recipe / case like every section).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ptq.registry import NamedRegistry
from ptq.render.tables import format_bytes
from ptq.run.sections import GATE_DEFAULTS
from ptq.stats.decide import (
    Verdict,
    decide_interval,
    decide_latency,
    decide_latency_placements,
    decide_latency_rounds,
    decide_threshold,
    location,
)
from ptq.storage.runs import CaseRecord

__all__ = ["DEFAULTS", "JUDGES", "Judge", "Judgement", "get_judge", "list_judges", "register_judge"]

#: Defaults of ``[tool.ptq.gate]``, declared with the section in :mod:`ptq.run.sections`.
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
    #: Which environment key must match for the figure to be compared (:data:`ptq.run.env.KEYS`):
    #: "timing" for latencies, "numerics" for what the selected kernels compute or allocate.
    key: str = "numerics"
    #: ``extra_info`` fields that must match between the two records (drift: the same weights and
    #: data, e.g. a model trained on another CPU has other weights under the same recipe).
    same_case: tuple[str, ...] = ()
    #: Whether a case should have this metric at all (speedup: not on fp32).
    applies: Callable[[CaseRecord], bool] = lambda record: True
    #: Said where the metric is missing on one side.
    missing_hint: str = ""

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


def path(info: Mapping[str, Any], dotted: str) -> Any:
    """``info["a"]["b"]`` for ``"a.b"``; None where any step is missing."""
    node: Any = info
    for key in dotted.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


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

    @property
    def pooled(self) -> tuple[float, ...]:
        return tuple(x for block in self.blocks for x in block)


def _latency(base: Timings, cur: Timings, s: Mapping[str, Any]) -> Judgement:
    """Paired placements on both sides (the duet): the placement is the unit; sessions on both
    sides: the session; else the call."""
    kw = {"threshold": s["latency_threshold"], "alpha": s["alpha"], "statistic": s["latency_statistic"]}
    pooled = [base.pooled, cur.pooled]
    try:
        if base.unit == cur.unit == "placement":  # paired, or refused: never pooled back into one draw
            d = decide_latency_placements(base.blocks, cur.blocks, **kw)
        elif base.unit == cur.unit == "round" and len(base.blocks) > 1 and len(cur.blocks) > 1:
            d = decide_latency_rounds(base.blocks, cur.blocks, **kw)
        else:
            d = decide_latency(*pooled, **kw)
    except ValueError as exc:  # e.g. one placement with samples on a side: no interval, so no verdict
        return Judgement(Verdict.NOT_MEASURED, _ms(pooled[0], s["latency_statistic"]),
                         _ms(pooled[1], s["latency_statistic"]), "-", f"no interval could be estimated: {exc}")
    if not all(math.isfinite(x) for x in (d.ratio, d.low, d.high)):
        return Judgement(Verdict.NOT_MEASURED, _ms(pooled[0], d.statistic), _ms(pooled[1], d.statistic), "-",
                         f"no finite interval could be estimated ({d.test})")
    spread = "" if math.isnan(d.spread) else f", placements spread {d.spread:.1%}"
    return Judgement(
        d.verdict, _ms(pooled[0], d.statistic), _ms(pooled[1], d.statistic),
        f"{_pct(d.ratio)} [{_pct(d.low)}, {_pct(d.high)}]",
        f"{d.statistic} ratio (median {_pct(d.median_ratio)}), {d.test} p={d.p:.2g}{spread}, "
        f"n={len(pooled[0])}/{len(pooled[1])}",
    )


def _samples(record: CaseRecord) -> Timings | None:
    if len(record.samples) < 5:
        return None
    placements = record.placements
    if placements is not None:
        return Timings(placements, "placement")
    rounds = record.rounds
    return Timings(rounds, "round" if len(rounds) > 1 else "call")


def _speedup_value(record: CaseRecord) -> tuple[float, float, float, float] | None:
    """(ratio, low, high, spread between visits (placements) or NaN where one was timed)."""
    m = path(record.extra_info, "metrics.speedup")
    if not isinstance(m, Mapping) or not all(isinstance(m.get(k), int | float) for k in ("ratio", "low", "high")):
        return None
    spread = m.get("spread")
    return (float(m["ratio"]), float(m["low"]), float(m["high"]),
            float(spread) if isinstance(spread, int | float) else math.nan)


def _speedup(base: tuple[float, ...], cur: tuple[float, ...], s: Mapping[str, Any]) -> Judgement:
    verdict = decide_interval(base[:3], cur[:3], threshold=s["speedup_threshold"])
    show = lambda v: f"{v[0]:.2f}x [{v[1]:.2f}, {v[2]:.2f}]"  # noqa: E731
    spreads = "" if math.isnan(base[3]) and math.isnan(cur[3]) else \
        f"; spread between visits {base[3]:.1%} -> {cur[3]:.1%}"
    return Judgement(verdict, show(base), show(cur), _pct(cur[0] / base[0]),
                     f"interleaved speedup over fp32 with its interval (coverage: metrics.speedup.level){spreads}")


def _number(dotted: str) -> Callable[[CaseRecord], float | None]:
    def extract(record: CaseRecord) -> float | None:
        v = path(record.extra_info, dotted)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    return extract


def _memory_value(step: str) -> Callable[[CaseRecord], tuple[float, float] | None]:
    def extract(record: CaseRecord) -> tuple[float, float] | None:
        grown = _number(f"metrics.memory.{step}.increment_bytes")(record)
        if grown is None:
            return None
        samples = path(record.extra_info, f"metrics.memory.{step}.samples")
        nums = [float(x) for x in samples] if isinstance(samples, list) and samples else []
        return (grown, max(nums) - min(nums) if nums else 0.0)

    return extract


def _memory(base: tuple[float, float], cur: tuple[float, float], s: Mapping[str, Any]) -> Judgement:
    spread = 3 * max(base[1], cur[1])
    verdict = decide_threshold(base[0], cur[0], relative=s["memory_threshold"], spread=spread,
                               absolute=s["memory_absolute"])
    return Judgement(verdict, format_bytes(base[0]), format_bytes(cur[0]), _pct(cur[0] / base[0]) if base[0] else "-",
                     f"allowed: max({s['memory_threshold']:.0%}, 3 x spread {format_bytes(spread / 3)}, "
                     f"{format_bytes(s['memory_absolute'])})")


def _size(base: float, cur: float, s: Mapping[str, Any]) -> Judgement:
    verdict = decide_threshold(base, cur, relative=s["size_threshold"])
    return Judgement(verdict, format_bytes(base), format_bytes(cur), _pct(cur / base) if base else "-",
                     f"allowed: {s['size_threshold']:.0%}")


def _drift_value(record: CaseRecord) -> tuple[float, float | None] | None:
    value = _number("metrics.drift.value")(record)
    if value is None:
        return None
    sign = -1.0 if path(record.extra_info, "metrics.drift.higher_is_better") is True else 1.0
    return (sign * value, _number("metrics.drift.tolerance")(record))


def _drift(base: tuple[float, float | None], cur: tuple[float, float | None], s: Mapping[str, Any]) -> Judgement:
    tolerance = cur[1] if cur[1] is not None else s["drift_tolerance"]
    verdict = decide_threshold(base[0], cur[0], relative=0.0, absolute=tolerance)
    return Judgement(verdict, f"{abs(base[0]):.4g}", f"{abs(cur[0]):.4g}", f"{abs(cur[0]) - abs(base[0]):+.4g}",
                     f"allowed: {tolerance:g} absolute")


def _quantized(record: CaseRecord) -> bool:
    return record.extra_info.get("recipe") != "fp32"


#: The built-in judges, in the order a comparison lists them.
JUDGES: tuple[Judge, ...] = (
    Judge("latency", _samples, _latency, key="timing",
          missing_hint="no raw samples: save with --ptq-save-run or --benchmark-json"),
    Judge("speedup", _speedup_value, _speedup, key="timing", applies=_quantized),
    Judge("memory", _memory_value("inference"), _memory),
    Judge("quantize_memory", _memory_value("quantize"), _memory, applies=_quantized),
    Judge("size", _number("metrics.size.serialized_bytes"), _size),
    Judge("drift", _drift_value, _drift, same_case=("weights", "data"), applies=_quantized),
)

_REGISTRY: NamedRegistry[Judge] = NamedRegistry("judge", Judge, entry_point_group="ptq.judges", builtins=JUDGES)
