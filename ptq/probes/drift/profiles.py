"""Accuracy drift: how far a quantized model's outputs moved from its float model's, on the
entry's evaluation split, judged against tolerances from ``[tool.ptq.tolerance]``.

What is measured and gated depends on what the model outputs, so each model family maps to a
:class:`DriftProfile` (classifier logits, sentence embeddings, raw tensors). Defaults follow
practice: MLPerf Inference wants >= 99% of fp32 accuracy and Intel Neural Compressor allows a
1% relative loss (the same bound: ``max_relative_accuracy_drop = 0.01``); NNCF's accuracy
control allows a 0.01 absolute drop (``max_absolute_accuracy_drop``).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ptq.config.sections import DEFAULT_TOLERANCES, TOLERANCE
from ptq.errors import UserError
from ptq.models import Batch, Built, ModelEntry
from ptq.probes import CheckFailed
from ptq.probes.drift import measures as m
from ptq.probes.drift.layerwise import LayerDrift, layer_drift, worst_layers
from ptq.storage.figures import DriftFigures

if TYPE_CHECKING:
    from ptq.config import Config
    from ptq.run.workbench import PreparedCase, RunOptions
    from ptq.storage.results import CaseResult

__all__ = [
    "DEFAULT_TOLERANCES",
    "DriftProfile",
    "DriftReport",
    "Gate",
    "assign_profile",
    "measure_drift",
    "profile_for",
    "register_profile",
    "tolerances_for",
]

#: ``[tool.ptq.tolerance]``, its keys and their defaults (declared in :mod:`ptq.config.sections`).
TOLERANCE_SECTION = TOLERANCE

#: How many lowest-SQNR layers a result records and a failure names.
WORST_RECORDED, WORST_NAMED = 5, 3


@dataclass(frozen=True)
class Gate:
    """``metric`` (a key of the measured figures) must stay within tolerance ``key``.

    ``real_weights_only``: the figure means something only for trained weights. Seeded random
    classifiers have near-tied logits, so top-1 agreement there measures the ties, not the
    recipe; it is still recorded, but not gated, and the result says so.
    """

    metric: str
    key: str
    real_weights_only: bool = False

    @property
    def upper(self) -> bool:
        return self.key.startswith("max_")

    def passes(self, value: float, bound: float) -> bool:
        return value <= bound if self.upper else value >= bound

    def describe(self, value: float, bound: float) -> str:
        op = "<=" if self.upper else ">="
        return f"{self.metric} = {value:.4g} (tolerance {self.key} {op} {bound:g})"


Measure = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], dict[str, float]]


@dataclass(frozen=True)
class DriftProfile:
    """What to measure on one kind of output, and which figures are gated.

    ``generated_samples``: how many evaluation samples to draw from an unbounded (generated)
    data source; a finite one (``data.size("eval")``) is evaluated whole. ``layer_samples``:
    samples for the per-layer pass, which keeps every activation of both models.
    """

    name: str
    measure: Measure
    gates: tuple[Gate, ...]
    generated_samples: int
    layer_samples: int
    description: str = ""
    #: Candidates for the one figure a baseline comparison follows, in order of preference:
    #: (metric, higher_is_better, change allowed against the baseline).
    headline: tuple[tuple[str, bool, float], ...] = ()


def _output_errors(ref: torch.Tensor, cand: torch.Tensor) -> dict[str, float]:
    cos = m.cosine_similarity(ref, cand)
    return {
        "cosine_mean": cos.mean,
        "cosine_min": cos.min,
        "sqnr_db": m.sqnr_db(ref, cand),
        "max_abs_error": m.max_abs_error(ref, cand),
    }


def _classifier(ref: torch.Tensor, cand: torch.Tensor, target: torch.Tensor | None) -> dict[str, float]:
    out = {
        "top1_agreement": m.topk_agreement(ref, cand, 1),
        "top5_agreement": m.topk_agreement(ref, cand, 5),
        **_output_errors(ref, cand),
    }
    if target is not None:
        drop = m.accuracy_drop(m.accuracy(ref, target), m.accuracy(cand, target))
        out.update(
            accuracy_fp32=drop.reference,
            accuracy=drop.candidate,
            absolute_accuracy_drop=drop.absolute,
            relative_accuracy_drop=drop.relative,
            accuracy_ratio=drop.ratio,
        )
        if ref.shape[-1] > 5:  # recorded, not gated: ImageNet's other headline figure
            out.update(top5_accuracy_fp32=m.accuracy(ref, target, 5), top5_accuracy=m.accuracy(cand, target, 5))
    return out


def _embedding(ref: torch.Tensor, cand: torch.Tensor, target: torch.Tensor | None) -> dict[str, float]:
    out = {
        "neighbour_agreement": m.neighbour_agreement(ref, cand),
        "similarity_rank_correlation": m.rank_correlation(ref, cand),
        **_output_errors(ref, cand),
    }
    if target is not None:  # paraphrase pair ids: retrieval accuracy of each model
        drop = m.accuracy_drop(m.pair_retrieval_accuracy(ref, target), m.pair_retrieval_accuracy(cand, target))
        out.update(
            retrieval_accuracy_fp32=drop.reference,
            retrieval_accuracy=drop.candidate,
            retrieval_accuracy_drop=drop.absolute,
        )
    return out


def _lm(ref: torch.Tensor, cand: torch.Tensor, target: torch.Tensor | None) -> dict[str, float]:
    """Next-token logits (batch, positions, vocabulary); ``target`` the next tokens of the text."""
    out = {
        "top1_agreement": m.topk_agreement(ref, cand, 1),
        "kl_divergence": m.kl_divergence(ref, cand),
        **_output_errors(ref, cand),
    }
    if target is not None:
        ppl_ref, ppl = m.perplexity(ref, target), m.perplexity(cand, target)
        out.update(perplexity_fp32=ppl_ref, perplexity=ppl, perplexity_rise=ppl / ppl_ref - 1)
    return out


def _tensor(ref: torch.Tensor, cand: torch.Tensor, target: torch.Tensor | None) -> dict[str, float]:
    return _output_errors(ref, cand)


_PROFILES: dict[str, DriftProfile] = {}
_FAMILY_PROFILES: dict[str, str] = {}
DEFAULT_PROFILE = "tensor"


def register_profile(profile: DriftProfile, *, families: tuple[str, ...] = ()) -> DriftProfile:
    if profile.name in _PROFILES:
        raise UserError(f"drift profile {profile.name!r} is already registered")
    _PROFILES[profile.name] = profile
    for family in families:
        assign_profile(family, profile.name)
    return profile


def assign_profile(family: str, profile: str) -> None:
    """Judge models of ``family`` (``ModelEntry.family``) with drift profile ``profile``."""
    if profile not in _PROFILES:
        raise UserError(f"unknown drift profile {profile!r}; valid: {', '.join(_PROFILES)}")
    _FAMILY_PROFILES[family] = profile


def profile_for(entry: ModelEntry) -> DriftProfile:
    return _PROFILES[_FAMILY_PROFILES.get(entry.family, DEFAULT_PROFILE)]


register_profile(
    DriftProfile(
        "classifier",
        _classifier,
        gates=(
            Gate("relative_accuracy_drop", "max_relative_accuracy_drop"),
            Gate("absolute_accuracy_drop", "max_absolute_accuracy_drop"),
            Gate("top1_agreement", "min_top1_agreement", real_weights_only=True),
            Gate("top5_agreement", "min_top5_agreement", real_weights_only=True),
            Gate("sqnr_db", "min_output_sqnr_db"),
        ),
        generated_samples=16,
        layer_samples=2,
        # one flipped sample of 16 moves agreement by 0.0625
        headline=(("accuracy", True, 0.005), ("top1_agreement", True, 0.07)),
        description="logits: labeled accuracy where the data has labels, top-1/top-5 agreement with float",
    ),
    families=("vision", "sequence"),
)
register_profile(
    DriftProfile(
        "embedding",
        _embedding,
        gates=(
            Gate("cosine_mean", "min_cosine"),
            Gate("neighbour_agreement", "min_neighbour_agreement"),
            Gate("retrieval_accuracy_drop", "max_absolute_accuracy_drop"),
        ),
        generated_samples=32,
        layer_samples=2,
        headline=(("cosine_mean", True, 0.005),),
        description="embeddings: cosine to float, nearest-neighbour and similarity-ranking agreement",
    ),
    families=("text",),
)
register_profile(
    DriftProfile(
        "lm",
        _lm,
        gates=(
            Gate("perplexity_rise", "max_perplexity_rise", real_weights_only=True),
            Gate("top1_agreement", "min_top1_agreement", real_weights_only=True),
            Gate("sqnr_db", "min_output_sqnr_db"),
        ),
        generated_samples=4,
        layer_samples=1,
        headline=(("kl_divergence", False, 0.01),),
        description="next-token logits: held-out perplexity fp32 / quantized and its relative rise, "
        "top-1 agreement and KL divergence with float",
    ),
    families=("lm",),
)
register_profile(
    DriftProfile(
        "tensor",
        _tensor,
        gates=(Gate("sqnr_db", "min_sqnr_db"),),
        generated_samples=1,
        layer_samples=8,
        headline=(("sqnr_db", True, 1.0),),
        description="raw outputs: SQNR, max abs error, cosine",
    ),
    families=("micro",),
)


def tolerances_for(config: Config, model: str, recipe: str) -> dict[str, float]:
    return config.resolve(TOLERANCE_SECTION.name, model=model, recipe=recipe, defaults=DEFAULT_TOLERANCES)


def _first_tensor(out: Any) -> torch.Tensor:
    while isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise UserError(f"drift needs a tensor output, got {type(out).__name__}; return a tensor from forward()")
    return out.dequantize() if out.is_quantized else out


def eval_batch(entry: ModelEntry, built: Built, profile: DriftProfile) -> Batch:
    """The evaluation samples: a finite split whole, else ``generated_samples`` (at least a batch)."""
    size = getattr(built.data, "size", None)
    n = size("eval") if callable(size) else max(entry.batch_size, profile.generated_samples)
    return built.data.batch("eval", 0, n)


#: Float outputs per float model (weakly held): every case of a model shares its reference.
_FLOAT_OUTPUTS: weakref.WeakKeyDictionary[nn.Module, tuple[int, torch.Tensor]] = weakref.WeakKeyDictionary()


def _run(model: nn.Module, batch: Batch) -> torch.Tensor:
    with torch.inference_mode():
        return _first_tensor(model(*batch.inputs)).float()


def _float_outputs(model: nn.Module, batch: Batch) -> torch.Tensor:
    n = batch.inputs[0].shape[0]
    cached = _FLOAT_OUTPUTS.get(model)
    if cached is None or cached[0] != n:
        cached = (n, _run(model, batch))
        _FLOAT_OUTPUTS[model] = cached
    return cached[1]


def _json(x: float) -> float | str:
    return round(x, 6) if math.isfinite(x) else str(x)


@dataclass
class DriftReport:
    """The figures of one case, the tolerances applied, and what broke them."""

    profile: str
    samples: int
    figures: dict[str, float]
    tolerances: dict[str, float]
    violations: list[str]
    layers: list[LayerDrift]
    nonfinite: str | None = None
    not_gated: list[str] = field(default_factory=list)
    headline: tuple[str, bool, float] | None = None

    @property
    def passed(self) -> bool:
        return not self.violations and self.nonfinite is None

    def worst(self, k: int) -> list[LayerDrift]:
        return worst_layers(self.layers, k)

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "samples": self.samples,
            **{k: _json(v) for k, v in self.figures.items()},
            "tolerances": self.tolerances,
            "not_gated": self.not_gated,
            **self._headline(),
            "passed": self.passed,
            "violations": self.violations,
            "nonfinite": self.nonfinite,
            "layers_compared": len(self.layers),
            "worst_layers": [d.to_dict() for d in self.worst(WORST_RECORDED)],
        }

    def _headline(self) -> dict[str, Any]:
        """``value``/``higher_is_better``/``tolerance``: the figure baseline comparisons follow."""
        if self.headline is None:
            return {}
        metric, higher, allowed = self.headline
        return {
            "headline": metric,
            "value": _json(self.figures[metric]),
            "higher_is_better": higher,
            "tolerance": allowed,
        }

    def message(self, case: str) -> str:
        worst = ", ".join(f"{d.name} ({d.quantized_type}, {d.sqnr_db:.1f} dB)" for d in self.worst(WORST_NAMED))
        where = f"; lowest-SQNR layers: {worst}" if worst else ""
        if self.nonfinite is not None:
            return (
                f"{case}: the quantized model produced {self.nonfinite} outputs on the evaluation data{where}; "
                "check the recipe's calibration data and observers"
            )
        model, recipe = case.split("-", 1)
        return (
            f"{case}: drift beyond tolerance: {'; '.join(self.violations)} over {self.samples} evaluation "
            f"sample{'' if self.samples == 1 else 's'}{where}. "
            f"Rank layers with: ptq diagnose {model} {recipe}"
        )


def measure_drift(
    entry: ModelEntry, built: Built, quantized: nn.Module, tolerances: Mapping[str, float], *, layers: bool = True
) -> DriftReport:
    """Run both models on the evaluation data, measure, gate, and (optionally) diagnose layers."""
    profile = profile_for(entry)
    batch = eval_batch(entry, built, profile)
    ref = _float_outputs(built.model, batch)
    if m.nonfinite(ref):
        raise UserError(
            f"the float model {entry.name!r} produced {m.nonfinite(ref)} on its evaluation data; fix the model"
        )
    same = quantized is built.model
    cand = ref if same else _run(quantized, batch)
    per_layer: list[LayerDrift] = []
    if layers and not same:
        sub = tuple(t[: profile.layer_samples] for t in batch.inputs)
        per_layer = layer_drift(built.model, quantized, sub)
    bad = m.nonfinite(cand)
    if bad:
        return DriftReport(profile.name, len(ref), {}, {}, [], per_layer, nonfinite=bad)
    figures = profile.measure(ref, cand, batch.target)
    random_weights = built.weights.startswith("random")
    gates = [g for g in profile.gates if g.metric in figures]
    not_gated = [f"{g.metric}: random weights" for g in gates if g.real_weights_only and random_weights]
    gates = [g for g in gates if not (g.real_weights_only and random_weights)]
    applied = {g.key: float(tolerances[g.key]) for g in gates}
    violations = [
        g.describe(figures[g.metric], applied[g.key]) for g in gates if not g.passes(figures[g.metric], applied[g.key])
    ]
    headline = next((h for h in profile.headline if math.isfinite(figures.get(h[0], math.nan))), None)
    return DriftReport(
        profile.name, len(ref), figures, applied, violations, per_layer, not_gated=not_gated, headline=headline
    )


def _drift_probe(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> DriftFigures:
    tolerances = tolerances_for(options.config, prepared.entry.name, prepared.recipe.name)
    report = measure_drift(prepared.entry, prepared.built, prepared.model, tolerances)
    value = DriftFigures.from_dict(report.to_dict())  # checked against the schema as it is written
    if not report.passed:
        raise CheckFailed(report.message(prepared.case.id), value=value)
    return value
