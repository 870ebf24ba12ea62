"""Speedup over fp32 measured interleaved: fp32 and quantized calls alternate, pair by pair.

pytest-benchmark times each case in its own window; on a shared machine two windows differ
by more than the effect being measured (seen here: the same fp32 MobileNetV2 at 19 and 26 ms
a few seconds apart). Alternating ABBA pairs cancels that drift (duet benchmarking). The
speedup is the ratio of the two sides' 1st percentiles, the statistic the gate judges latency
by (:mod:`ptq.gate`).

One allocation is one draw: where the two models' tensors landed moved a speedup by a third on
an Intel Xeon. So the pairs are split over several placements (fresh copies of both models and
the inputs, :mod:`ptq.placement`), each placement gives one ratio, and the figure is their
geometric mean with a t interval over placements: an interval that covers the spread a single
allocation hides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ptq.gate import DEFAULT_LOCATION, location
from ptq.placement import place
from ptq.probes import register_probe
from ptq.recipes import REFERENCE
from ptq.stats import PlacementEstimate, RatioEstimate, geometric_interval, paired_quantile_ratio, placement_ratio

if TYPE_CHECKING:
    from ptq.results import CaseResult
    from ptq.runner import PreparedCase, RunOptions

__all__ = ["interleaved_speedup", "placement_speedup"]

#: Seconds of interleaved pairs per case (``--ptq-pair-time``).
DEFAULT_PAIR_TIME = 1.5
MIN_PAIRS = 5
MAX_PAIRS = 400


def time_pairs(
    reference: Callable[[], Any], candidate: Callable[[], Any], *, budget_s: float, warmup: int = 3,
    min_pairs: int = MIN_PAIRS, max_pairs: int = MAX_PAIRS, timer: Callable[[], float] = time.perf_counter,
) -> list[tuple[float, float]]:
    """(reference, candidate) call times, alternated ABBA until ``budget_s`` or ``max_pairs``
    (at least ``min_pairs``), after ``warmup`` untimed pairs."""
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
    return list(zip(ref_t, cand_t, strict=True))


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
    got = time_pairs(reference, candidate, budget_s=budget_s, warmup=warmup, min_pairs=min_pairs,
                     max_pairs=max_pairs, timer=timer)
    if pairs is not None:
        pairs.extend(got)
    return paired_quantile_ratio([r for r, _ in got], [c for _, c in got], q=location(statistic))


#: Turns each placement gets in ``placement_speedup``: its windows spread over the whole budget.
TURNS = 3


def placement_speedup(
    reference: Any, candidate: Any, inputs: tuple[Any, ...], *, budget_s: float, placements: int,
    statistic: str = DEFAULT_LOCATION, seed: int = 0,
) -> tuple[PlacementEstimate, dict[str, Any]]:
    """The interleaved speedup of ``candidate`` over ``reference`` sampled over ``placements``
    fresh placements of both (:mod:`ptq.placement`), ``budget_s`` split among them: per
    placement the ratio of the sides' ``statistic``, combined with an interval over placements.
    The placements live side by side and take ``TURNS`` turns each, round-robin, so a slow
    episode of the machine (1-3 s on the reference VM) cannot fall on one placement's pairs
    alone. Also returns the candidate's per-placement latency (the spread one allocation hides)."""
    q = location(statistic)
    with torch.inference_mode():
        ref_out, cand_out = reference(*inputs), candidate(*inputs)
    placed = [(place(reference, inputs, seed=seed + 2 * k, reference_output=ref_out),
               place(candidate, inputs, seed=seed + 2 * k + 1, reference_output=cand_out)) for k in range(placements)]
    kinds = sorted({p.kind + (f" ({p.why})" if p.why else "") for pair in placed for p in pair})
    ref_blocks: list[list[float]] = [[] for _ in placed]
    cand_blocks: list[list[float]] = [[] for _ in placed]
    window = budget_s / (placements * TURNS)
    for turn in range(TURNS):  # round-robin, so each placement's pairs span the whole budget
        for k in (range(placements) if turn % 2 == 0 else reversed(range(placements))):
            ref, cand = placed[k]
            for r, c in time_pairs(ref.call, cand.call, budget_s=window, warmup=1, min_pairs=2):
                ref_blocks[k].append(r)
                cand_blocks[k].append(c)
    est = placement_ratio(ref_blocks, cand_blocks, q=q)
    per = [float(np.quantile(b, q)) for b in cand_blocks]
    mid, low, high, _ = geometric_interval(per)
    latency = {"statistic": statistic, "ms": mid * 1e3, "low_ms": low * 1e3, "high_ms": high * 1e3,
               "per_placement_ms": [x * 1e3 for x in per], "spread": max(per) / min(per) - 1,
               "placed": kinds}
    return est, latency


@register_probe("speedup", description="interleaved speedup over the same model's fp32 over several placements, "
                "with a 95% CI across placements")
def _speedup_probe(prepared: PreparedCase, result: CaseResult, options: RunOptions) -> dict[str, Any] | None:
    """fp32 itself is timed too, against a second placement of itself: its ratio is the A/A
    spread between placements, and its per-placement latency is recorded like every case's."""
    if options.pair_budget_s <= 0:
        return None
    est, latency = placement_speedup(prepared.built.model, prepared.model, prepared.inputs,
                                     budget_s=options.pair_budget_s, placements=options.placements)
    if prepared.recipe.name != REFERENCE:
        result.speedup_vs_fp32 = est.ratio
    return {"method": f"interleaved ABBA pairs over {est.n} placements: per placement {DEFAULT_LOCATION} of fp32 "
                      f"calls / {DEFAULT_LOCATION} of the case's calls; geometric mean, t interval over placements",
            **est.to_dict(), "latency_placements": latency}
