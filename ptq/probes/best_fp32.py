"""Speedup over the fastest fp32 form of the same model in the same run, and the deployment
record of each case.

A quantized model's speedup over *eager* fp32 flatters it when the float model could itself
run faster traced, compiled, in ONNX Runtime or in OpenVINO. At the end of a run, each model's fastest
float case (every recipe with ``quantizes() == False``: fp32, fp32_jit, fp32_compile,
ort_fp32, ov_fp32...) is its best fp32 form, and every case of the model gets

- ``paired``: its interleaved speedup over eager fp32 divided by the best form's. Both were
  measured in ABBA pairs against the same eager model, so machine drift cancels in each, at
  no extra timing cost;
- ``unpaired``: the best form's median latency over the case's, two separate windows.

``ratio`` is ``paired`` where both interleaved figures exist, else ``unpaired``. A float form
need not run fp32: OpenVINO's default precision (``ov_default``) is bf16 on CPUs with bf16 units,
and is a float form a user gets without asking; ``best_precision`` says what the best form ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ptq.recipes.deploy import deployment_form
from ptq.storage.figures import DeploymentFigures, SpeedupFigures, metric_figures

if TYPE_CHECKING:
    from ptq.run.workbench import PreparedCase, RunOptions
    from ptq.storage.results import CaseResult

__all__ = ["best_fp32_speedups"]


def _interval(r: CaseResult) -> tuple[float, float] | None:
    m = metric_figures(SpeedupFigures, r.metrics)
    return (float(m.low), float(m.high)) if m is not None else None


def _faster(a: CaseResult, b: CaseResult) -> bool:
    """Is float form ``a`` faster than ``b``: by their paired speedups over eager fp32 where both
    have one (sampled over placements), else by pytest-benchmark's medians."""
    if a.speedup_vs_fp32 and b.speedup_vs_fp32:
        return a.speedup_vs_fp32 > b.speedup_vs_fp32
    return _median_s(a) < _median_s(b)


def _median_s(r: CaseResult) -> float:
    """pytest-benchmark's median of a timed case (the only ones compared here)."""
    if r.latency is None:
        raise ValueError(f"{r.case}: not timed, so it has no median")
    return r.latency.median


def _precision_ran(r: CaseResult) -> str:
    d = metric_figures(DeploymentFigures, r.metrics)
    return str((d.extra or {}).get("precision_ran", "fp32")) if d is not None else "fp32"


def best_fp32_speedups(results: Sequence[CaseResult], is_float: Callable[[str], bool]) -> dict[str, dict[str, Any]]:
    """case -> {best_form, best_ms, ratio, low, high, paired, unpaired, method} for every timed case.

    ``low``/``high`` bound the paired ratio by the two speedups' intervals (case low over best
    high, case high over best low): both intervals are over placements, so this one is too."""
    best: dict[str, CaseResult] = {}
    for r in results:
        if r.latency and is_float(r.recipe) and (r.model not in best or _faster(r, best[r.model])):
            best[r.model] = r
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        b = best.get(r.model)
        if b is None or r.latency is None or r.latency.median <= 0:
            continue
        unpaired = _median_s(b) / r.latency.median
        paired = low = high = None
        if r.speedup_vs_fp32 and b.speedup_vs_fp32:
            paired = r.speedup_vs_fp32 / b.speedup_vs_fp32
            mine, theirs = _interval(r), _interval(b)
            if r is b:
                low = high = 1.0
            elif mine and theirs and theirs[0] > 0:
                low, high = mine[0] / theirs[1], mine[1] / theirs[0]
        out[r.case] = {
            "best_form": b.recipe,
            # The precision the best form ran, read back where its recipe recorded one (ov_default: bf16
            # on CPUs with bf16 units), so a "best float" that is not fp32 says so.
            "best_precision": _precision_ran(b),
            "best_ms": round(_median_s(b) * 1e3, 4),
            "ratio": paired if paired is not None else unpaired,
            "low": low,
            "high": high,
            "paired": paired,
            "unpaired": unpaired,
            "method": "paired: speedup_vs_fp32 / best form's speedup_vs_fp32"
            if paired is not None
            else "unpaired medians",
        }
    return out


def _deployment_probe(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> DeploymentFigures:
    q = prepared.quantized
    return DeploymentFigures(
        form=deployment_form(q), stack=q.stack, float_form=not prepared.recipe.quantizes(), extra=dict(q.notes)
    )
