"""Layer sensitivity: quantize one layer at a time, rank layers by the drift each causes, and
propose a recipe that keeps the worst layers in float until the case meets its tolerance.

Works for recipes whose type has ``only_layers`` and ``float_layers`` fields (``StaticInt8``,
``DynamicQuant``), as AIMET's quant analyzer and NNCF's accuracy control do per layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ptq.errors import NotApplicable, UserError
from ptq.models import Built, ModelEntry
from ptq.models.layers import LAYER_TYPES, is_quantized
from ptq.probes.drift.profiles import DriftReport, measure_drift
from ptq.progress import Progress
from ptq.recipes import Recipe, apply_recipe

__all__ = [
    "Proposal",
    "Sensitivity",
    "propose_float_layers",
    "quantized_layer_names",
    "recipe_source",
    "sweep",
    "with_fields",
]

SELECTION_FIELDS = ("only_layers", "float_layers")


def _check_selectable(recipe: Recipe) -> None:
    names = {f.name for f in dataclasses.fields(recipe)}
    if not set(SELECTION_FIELDS) <= names:
        raise UserError(
            f"recipe {recipe.name!r} ({type(recipe).__name__}) cannot quantize a subset of layers; "
            "ptq diagnose works on recipes with only_layers/float_layers fields (StaticInt8, DynamicQuant)"
        )


def _selecting(recipe: Recipe, name: str, *, only_layers: tuple[str, ...], float_layers: tuple[str, ...]) -> Recipe:
    """A renamed copy of a recipe :func:`_check_selectable` passed: its type has the selection
    fields, which ``Recipe`` itself has not (so they go through a mapping, not as keywords)."""
    selection: dict[str, Any] = {"only_layers": only_layers, "float_layers": float_layers}
    return dataclasses.replace(recipe, name=name, **selection)


def with_fields(recipe: Recipe, assignments: Mapping[str, str]) -> Recipe:
    """A copy of ``recipe`` with fields set from strings (``--set calib_split=zeros``), parsed
    by the type of each field's current value (tuples: comma-separated)."""
    fields = {f.name: f for f in dataclasses.fields(recipe)}
    changes: dict[str, Any] = {}  # parsed by each field's type, checked at run time
    for key, text in assignments.items():
        if key not in fields or key == "name":
            raise UserError(
                f"recipe {recipe.name!r} has no settable field {key!r}; valid: {', '.join(f for f in fields if f != 'name')}"
            )
        current = getattr(recipe, key)
        parsers: dict[type, Callable[[str], object]] = {
            bool: lambda s: s.lower() in ("1", "true", "yes"),
            int: int,
            float: float,
            str: str,
            tuple: lambda s: tuple(p for p in s.split(",") if p),
        }
        try:
            changes[key] = parsers[type(current)](text)
        except (KeyError, ValueError):
            raise UserError(f"cannot parse {key}={text!r} as {type(current).__name__}") from None
    label = ",".join(f"{k}={v}" for k, v in assignments.items())
    return dataclasses.replace(recipe, name=f"{recipe.name}[{label}]" if label else recipe.name, **changes)


def quantized_layer_names(entry: ModelEntry, built: Built, recipe: Recipe) -> list[str]:
    """Weighted float layers the full recipe quantizes, found by name in its quantized model."""
    q_modules = dict(apply_recipe(recipe, entry, built).model.named_modules())
    return [
        n
        for n, m in built.model.named_modules()
        if isinstance(m, tuple(LAYER_TYPES.values())) and n in q_modules and is_quantized(q_modules[n])
    ]


@dataclass(frozen=True)
class Sensitivity:
    """The drift of the case with only ``layer`` quantized."""

    layer: str
    layer_type: str
    report: DriftReport

    @property
    def sqnr_db(self) -> float:
        return self.report.figures.get("sqnr_db", -math.inf)

    def sort_key(self) -> tuple[bool, float]:
        return (self.report.passed, self.sqnr_db)


def _drift(entry: ModelEntry, built: Built, recipe: Recipe, tolerances: Mapping[str, float]) -> DriftReport:
    return measure_drift(entry, built, apply_recipe(recipe, entry, built).model, tolerances, layers=False)


def sweep(
    entry: ModelEntry,
    built: Built,
    recipe: Recipe,
    tolerances: Mapping[str, float],
    *,
    progress: Callable[[str], None] | None = None,
) -> list[Sensitivity]:
    """One case per quantized layer with only that layer quantized, worst first: failing
    cases before passing ones, then lowest output SQNR."""
    _check_selectable(recipe)
    types = {n: type(m).__name__ for n, m in built.model.named_modules()}
    out = []
    names = quantized_layer_names(entry, built, recipe)
    layers = Progress("layers", len(names), emit=progress) if progress else None
    for name in names:
        variant = _selecting(recipe, f"{recipe.name}[only={name}]", only_layers=(name,), float_layers=())
        try:
            report = _drift(entry, built, variant, tolerances)
        except NotApplicable as exc:  # the recipe quantizes nothing with this layer alone
            if layers:
                layers.step(f"{name}: skipped ({exc})")
            continue
        if layers:
            layers.step(f"{name}: output SQNR {report.figures.get('sqnr_db', float('nan')):.1f} dB")
        out.append(Sensitivity(name, types[name], report))
    return sorted(out, key=Sensitivity.sort_key)


@dataclass(frozen=True)
class Proposal:
    recipe: Recipe
    report: DriftReport

    @property
    def passed(self) -> bool:
        return self.report.passed


def propose_float_layers(
    entry: ModelEntry,
    built: Built,
    recipe: Recipe,
    ranking: list[Sensitivity],
    tolerances: Mapping[str, float],
) -> Proposal:
    """Keep the worst-ranked layers in float, one more at a time, until the drift passes.

    Returns the first passing recipe, or the last one tried (all ranked layers in float but
    one: a recipe that quantizes nothing is no proposal) with its failing report.
    """
    _check_selectable(recipe)
    candidate, report = recipe, _drift(entry, built, recipe, tolerances)
    kept: tuple[str, ...] = ()
    for s in ranking[:-1]:
        if report.passed:
            break
        kept = (*kept, s.layer)
        candidate = _selecting(recipe, f"{recipe.name.split('[')[0]}_mixed", only_layers=(), float_layers=kept)
        report = _drift(entry, built, candidate, tolerances)
    return Proposal(candidate, report)


def recipe_source(recipe: Recipe) -> str:
    """The Python line that registers ``recipe``: its type and the fields that differ from defaults."""
    defaults = type(recipe)(name=recipe.name)
    args = [repr(recipe.name)] + [
        f"{f.name}={getattr(recipe, f.name)!r}"
        for f in dataclasses.fields(recipe)
        if f.name != "name" and getattr(recipe, f.name) != getattr(defaults, f.name)
    ]
    return f"register_recipe({type(recipe).__name__}({', '.join(args)}))"
