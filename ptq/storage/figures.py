"""The results schema: one frozen dataclass per probe's figures, as stored in a run's
``extra_info["metrics"][probe]``.

Why typed: probes wrote plain dicts and judges, renderers and ``ptq ab`` read them back through
dotted strings, so a renamed key broke a reader silently and the README's description of the
schema drifted from the code (it named ``inference.peak_bytes`` where the memory judge read
``increment_bytes``). Here each figure is declared once, with its kind and meaning; readers get
an object or ``None``, the docs' table (docs/output.md) is generated from these declarations
(:func:`schema_table`, tested), and keys a class does not declare (a drift profile's own
measures, fields added by a later version) ride along in ``extra`` so a round trip loses
nothing. The run file's version and migrations stay in :mod:`ptq.storage.runs`.

Torch-free on purpose: ``ptq compare`` reads runs without importing torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from ptq.errors import PtqError

__all__ = [
    "DRIFT_FIGURES",
    "FIGURES",
    "DeploymentFigures",
    "DriftFigures",
    "Figures",
    "LmFigures",
    "MemoryFigures",
    "MemoryStep",
    "NotMeasured",
    "SchemaError",
    "SizeFigures",
    "SpeedupFigures",
    "metric_figures",
    "read_figures",
    "schema_rows",
    "schema_table",
]

F = TypeVar("F", bound="Figures")


class SchemaError(PtqError):
    """A stored figure does not have the declared kind (or a required one is missing)."""


@dataclass(frozen=True)
class NotMeasured:
    """A probe ran but could not produce its figures: ``{"not_measured": why}`` in the file."""

    why: str


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


#: kind -> (check, how the docs' schema table names it)
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "number": (lambda v: _number(v) and math.isfinite(v), "number"),
    "count": (lambda v: isinstance(v, int) and not isinstance(v, bool), "integer"),
    "text": (lambda v: isinstance(v, str), "string"),
    "flag": (lambda v: isinstance(v, bool), "boolean"),
    "numbers": (lambda v: isinstance(v, list | tuple) and all(_number(x) for x in v), "list of numbers"),
    "list": (lambda v: isinstance(v, list | tuple), "list"),
    "mapping": (lambda v: isinstance(v, Mapping), "object"),
    "any": (lambda v: True, "any"),
}


def figure(kind: str, doc: str, *, required: bool = False, nested: type[Figures] | None = None) -> Any:
    """A declared figure: its kind (``_KINDS``, or ``nested`` for a sub-object), what it means,
    and whether a stored object without it is malformed. Optional figures default to None."""
    meta = {"kind": kind, "doc": doc, "nested": nested}
    return field(metadata=meta) if required else field(default=None, metadata=meta)


@dataclass(frozen=True, kw_only=True)
class Figures:
    """Base of every probe's figures: ``from_dict`` checks kinds, ``to_dict`` writes them back."""

    PROBE: ClassVar[str] = ""
    #: Keys this class does not declare, kept as stored (a profile's own measures, newer fields).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def declared(cls) -> list[Any]:
        return [f for f in fields(cls) if f.name != "extra"]

    @classmethod
    def from_dict(cls: type[F], stored: Mapping[str, Any], *, where: str = "") -> F:
        where = where or f"metrics.{cls.PROBE}"
        if not isinstance(stored, Mapping):
            raise SchemaError(f"{where} is {type(stored).__name__}, not an object")
        values: dict[str, Any] = {}
        for f in cls.declared():
            name, meta = f.name, f.metadata
            if name not in stored or stored[name] is None:
                if f.default is MISSING:
                    raise SchemaError(f"{where}.{name} is missing ({meta['doc']})")
                continue
            v = stored[name]
            if meta["nested"] is not None:
                v = meta["nested"].from_dict(v, where=f"{where}.{name}")
            elif not _KINDS[meta["kind"]][0](v):
                raise SchemaError(f"{where}.{name} = {v!r} is not a {_KINDS[meta['kind']][1]}")
            elif meta["kind"] in ("numbers", "list"):
                v = tuple(v)
            values[name] = v
        declared = {f.name for f in cls.declared()}
        return cls(**values, extra={k: v for k, v in stored.items() if k not in declared})

    def to_dict(self) -> dict[str, Any]:
        """The stored form; an optional figure that is None is left out."""
        out: dict[str, Any] = {}
        for f in self.declared():
            v = getattr(self, f.name)
            if v is not None:
                out[f.name] = v.to_dict() if isinstance(v, Figures) else list(v) if isinstance(v, tuple) else v
        out.update(self.extra)
        return out

    @classmethod
    def read(cls: type[F], extra_info: Mapping[str, Any]) -> F | NotMeasured | None:
        """The case's figures; ``NotMeasured`` where the probe said why it has none; None where the
        probe did not run or stored something malformed (a reader then says "not measured")."""
        metrics = extra_info.get("metrics") if isinstance(extra_info, Mapping) else None
        stored = metrics.get(cls.PROBE) if isinstance(metrics, Mapping) else None
        if not isinstance(stored, Mapping):
            return None
        try:
            return cls.from_dict(stored)
        except SchemaError:
            why = stored.get("not_measured")
            return NotMeasured(str(why)) if why else None


def read_figures(cls: type[F], extra_info: Mapping[str, Any]) -> F | None:
    """:meth:`Figures.read` for readers that treat "not measured" and "absent" alike."""
    got = cls.read(extra_info)
    return got if isinstance(got, cls) else None


def metric_figures(cls: type[F], metrics: Mapping[str, Any]) -> F | None:
    """:func:`read_figures` from a case result's ``metrics`` (before it becomes ``extra_info``)."""
    return read_figures(cls, {"metrics": metrics})


@dataclass(frozen=True, kw_only=True)
class SpeedupFigures(Figures):
    PROBE: ClassVar[str] = "speedup"

    ratio: float = figure(
        "number",
        "fp32 time / the case's time: median over visits of the per-visit ratio of "
        "1st percentiles (interleaved ABBA pairs)",
        required=True,
    )
    low: float = figure("number", "lower bound of the median's interval", required=True)
    high: float = figure("number", "upper bound of the median's interval", required=True)
    level: float = figure("number", "coverage of `low`..`high` (6 visits: 0.969)")
    n: int = figure("count", "visits (or placements) the figure is over")
    unit: str = figure("text", "`visit` (median, order-statistic interval) or `placement` (geometric mean, t interval)")
    spread: float = figure("number", "max/min - 1 of the per-visit ratios")
    per_placement: tuple[float, ...] = figure("numbers", "the per-visit ratios, in visit order")
    repeat: Mapping[str, float] = figure(
        "mapping", "`{low, high, level}`: where another run's figure should land (99%)"
    )
    latency_placements: Mapping[str, Any] = figure(
        "mapping",
        "the case's own 1st percentile per visit (`ms`, "
        "`per_placement_ms`, `spread`, `repeat`, `placed`: what each "
        "placement re-allocated)",
    )
    bandwidth: Mapping[str, Any] = figure(
        "mapping",
        "CPU: the memory-bandwidth meter around each visit (`meter_ms`, "
        "`session_best_ms`), the visits `kept` (quietest), `kept_excess` (their "
        "worst reading over the session's best - 1), every visit's ratio",
    )
    precision: Mapping[str, Any] = figure(
        "mapping",
        "`--ptq-rerun-target`: the `target`, the rerun interval's "
        "`half_width` reached (relative), whether it was `reached`, the `visits` made, "
        "`max_visits`, and why they `stopped` (`target`, `max_visits`, or "
        "`budget`: `--ptq-budget` ran out)",
    )
    method: str = figure("text", "how the figure was measured, in words")


@dataclass(frozen=True, kw_only=True)
class MemoryStep(Figures):
    increment_bytes: int = figure(
        "number",
        "memray's high-water mark of the step: the most it had allocated at once (the memory judge reads this)",
        required=True,
    )
    baseline_bytes: int = figure("number", "the process's resident memory just before the step")
    peak_bytes: int = figure("number", "`baseline_bytes` + `increment_bytes`")
    top_sites: tuple[Any, ...] = figure(
        "list", "where the memory live at the peak was allocated: `{bytes, allocations, where}`, largest first"
    )
    limit_bytes: int = figure("number", "the budget the step was held to, where one is set")
    samples: tuple[float, ...] = figure(
        "numbers", "`ptq ab`: each session's `increment_bytes` (their spread widens the judge's allowance)"
    )
    device_peak_allocated_bytes: int = figure(
        "number", "`--ptq-device=cuda`: the device's peak bytes held by tensors during the step"
    )
    device_peak_reserved_bytes: int = figure(
        "number", "`--ptq-device=cuda`: the device's peak bytes held by the caching allocator during the step"
    )


@dataclass(frozen=True, kw_only=True)
class MemoryFigures(Figures):
    PROBE: ClassVar[str] = "memory"

    inference: MemoryStep = figure("step", "one call of the warmed-up model", nested=MemoryStep)
    quantize: MemoryStep = figure(
        "step", "the recipe's quantization (none for fp32); judged as `quantize_memory`", nested=MemoryStep
    )
    method: str = figure("text", "how the figures were measured, in words")


@dataclass(frozen=True, kw_only=True)
class SizeFigures(Figures):
    PROBE: ClassVar[str] = "size"

    method: str = figure("text", "what was measured: the state_dict, TorchScript archive or ONNX/OpenVINO file")
    serialized_bytes: int | None = figure(
        "number", "bytes of the deployed form (the size judge reads this); absent where the form cannot be serialized"
    )
    fp32_state_dict_bytes: int = figure("number", "the same model's fp32 state_dict")
    ratio_vs_fp32: float | None = figure("number", "`serialized_bytes` / `fp32_state_dict_bytes`")


@dataclass(frozen=True, kw_only=True)
class DriftFigures(Figures):
    """The profile's own measures (cosine, top-1 agreement, perplexity...) are in ``extra``."""

    PROBE: ClassVar[str] = "drift"

    profile: str = figure("text", "the drift profile of the model's family (classifier, embedding, lm...)")
    passed: bool = figure("flag", "every gated measure within its tolerance")
    headline: str = figure("text", "the measure the gate compares between runs")
    value: float = figure("number", "the headline measure's value (the drift judge reads this)")
    higher_is_better: bool = figure("flag", "whether a larger `value` is better")
    tolerance: float = figure("number", "the change of `value` the gate allows between runs")
    samples: int = figure("count", "evaluation samples compared")
    tolerances: Mapping[str, Any] = figure("mapping", "the limit per gated measure")
    violations: tuple[Any, ...] = figure("list", "the measures outside their limit")
    nonfinite: Any = figure("any", "where the outputs held NaN or inf, if they did")
    layers_compared: int = figure("count", "layers whose outputs were compared to fp32's")
    worst_layers: tuple[Any, ...] = figure("list", "the lowest-SQNR layers")
    not_gated: tuple[Any, ...] = figure("list", "measures recorded but not held to a limit")


@dataclass(frozen=True, kw_only=True)
class DeploymentFigures(Figures):
    """Recipe notes (compile or freeze seconds, q/dq node counts...) are in ``extra``."""

    PROBE: ClassVar[str] = "deployment"

    form: str = figure(
        "text", "the form that ran: eager, TorchScript, compiled, exported, ONNX Runtime, OpenVINO", required=True
    )
    stack: str = figure("text", "the library and version that quantized or ran it")
    float_form: bool = figure("flag", "the case computes in float (a candidate for the best fp32 form)")


@dataclass(frozen=True, kw_only=True)
class LmFigures(Figures):
    """Decode figures of a causal LM; latency percentiles per token are in ``extra``."""

    PROBE: ClassVar[str] = "lm"

    batch: int = figure("count", "sequences decoded at once", required=True)
    prompt_tokens: int = figure("count", "prompt length before decoding")
    new_tokens: int = figure("count", "tokens generated per sequence (EOS ignored)")
    decoding: str = figure("text", "the decoding rule, in words")
    kv_cache_bytes: int = figure("number", "bytes of the KV cache at the end of decoding")
    generated_token_agreement: float = figure("number", "share of generated tokens equal to fp32's")
    decode_speedup: Mapping[str, Any] = figure("mapping", "interleaved speedup of one decode step over fp32")
    memory: Mapping[str, Any] = figure(
        "mapping",
        "one decode run's peak split into `weights_bytes`, "
        "`kv_cache_bytes` and `activations_bytes` (memray, as the memory probe)",
    )
    not_measured: str = figure("text", "why the decode figures are missing, where they are")


#: Every built-in probe's figures, in the docs' order.
FIGURES: tuple[type[Figures], ...] = (
    SpeedupFigures,
    MemoryFigures,
    SizeFigures,
    DriftFigures,
    DeploymentFigures,
    LmFigures,
)


def schema_rows(classes: tuple[type[Figures], ...] = FIGURES) -> list[tuple[str, str, str]]:
    """(dotted path under ``extra_info``, kind, meaning) for every declared figure."""

    def rows(cls: type[Figures], prefix: str) -> list[tuple[str, str, str]]:
        out = []
        for f in cls.declared():
            meta, path = f.metadata, f"{prefix}.{f.name}"
            kind = "object" if meta["nested"] is not None else _KINDS[meta["kind"]][1]
            out.append((path, kind + ("" if f.default is MISSING else ", optional"), meta["doc"]))
            if meta["nested"] is not None:
                out.extend(rows(meta["nested"], path))
        return out

    return [row for cls in classes for row in rows(cls, f"metrics.{cls.PROBE}")]


def schema_table(classes: tuple[type[Figures], ...] = FIGURES) -> str:
    """The results-schema table of docs/output.md (Markdown), generated from the declarations."""
    lines = ["| figure | kind | meaning |", "|---|---|---|"]
    lines += [f"| `{path}` | {kind} | {doc} |" for path, kind, doc in schema_rows(classes)]
    return "\n".join(lines)


#: Drift figures (key of ``metrics.drift``: chart label, higher is better), in order of preference
#: where a case records no headline (``metrics.drift.headline``, the figure the gate judges).
DRIFT_FIGURES: dict[str, tuple[str, bool]] = {
    "accuracy": ("accuracy", True),
    "absolute_accuracy_drop": ("accuracy drop", False),
    "cosine_mean": ("mean cosine to fp32", True),
    "top1_agreement": ("top-1 agreement", True),
    "sqnr_db": ("output SQNR (dB)", True),
    "max_abs_error": ("max abs error", False),
}
