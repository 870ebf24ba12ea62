"""Speedup over fp32 measured interleaved: fp32 and quantized calls alternate, pair by pair.

pytest-benchmark times each case in its own window; on a shared machine two windows differ
by more than the effect being measured (seen here: the same fp32 MobileNetV2 at 19 and 26 ms
a few seconds apart). Alternating ABBA pairs cancels that drift (duet benchmarking). The
speedup is the ratio of the two sides' 1st percentiles, the statistic the gate judges latency
by (:mod:`ptq.gate`); the median of per-pair ratios is kept beside it as ``pair_median``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from ptq.gate import DEFAULT_LOCATION, location
from ptq.probes import register_probe
from ptq.recipes import REFERENCE
from ptq.stats import RatioEstimate, paired_quantile_ratio, paired_ratio

if TYPE_CHECKING:
    from ptq.results import CaseResult
    from ptq.runner import PreparedCase, RunOptions

__all__ = ["interleaved_speedup"]

#: Seconds of interleaved pairs per case (``--ptq-pair-time``).
DEFAULT_PAIR_TIME = 1.5
MIN_PAIRS = 5
MAX_PAIRS = 400


def interleaved_speedup(
    reference: Callable[[], Any],
    candidate: Callable[[], Any],
    *,
    budget_s: float = DEFAULT_PAIR_TIME,
    warmup: int = 3,
    min_pairs: int = MIN_PAIRS,
    max_pairs: int = MAX_PAIRS,
    timer: Callable[[], float] = time.perf_counter,
    statistic: str = DEFAULT_LOCATION,
    pairs: list[tuple[float, float]] | None = None,
) -> RatioEstimate:
    """Alternate reference and candidate calls (ABBA order) until ``budget_s`` or ``max_pairs``;
    the ratio of the sides' ``statistic``. ``pairs``, when given, receives the raw (reference,
    candidate) times."""
    for _ in range(warmup):
        reference()
        candidate()
    ref_t: list[float] = []
    cand_t: list[float] = []
    start = timer()
    i = 0
    while i < max_pairs and (i < min_pairs or timer() - start < budget_s):
        order = ((reference, ref_t), (candidate, cand_t)) if i % 2 == 0 else ((candidate, cand_t), (reference, ref_t))
        for fn, sink in order:
            t0 = timer()
            fn()
            sink.append(timer() - t0)
        i += 1
    if pairs is not None:
        pairs.extend(zip(ref_t, cand_t, strict=True))
    return paired_quantile_ratio(ref_t, cand_t, q=location(statistic))


@register_probe("speedup", description="interleaved speedup over the same model's fp32, with a 95% CI")
def _speedup_probe(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> dict[str, Any] | None:
    if prepared.recipe.name == REFERENCE or options.pair_budget_s <= 0:
        return None
    float_model, quantized, inputs = prepared.built.model, prepared.model, prepared.inputs
    pairs: list[tuple[float, float]] = []
    with torch.inference_mode():
        est = interleaved_speedup(
            lambda: float_model(*inputs), lambda: quantized(*inputs), budget_s=options.pair_budget_s, warmup=1,
            pairs=pairs,
        )
    result.speedup_vs_fp32 = est.ratio
    return {"method": f"interleaved ABBA pairs, {DEFAULT_LOCATION} of fp32 calls / {DEFAULT_LOCATION} of quantized calls",
            **est.to_dict(), "pair_median": paired_ratio(*zip(*pairs, strict=True)).ratio}
