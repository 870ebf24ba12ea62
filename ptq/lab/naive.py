"""The tutorial's timing method, reproduced on purpose, beside ptq's.

The tutorial times one call of each model with ``time.time()`` in a fresh process, no
warm-up. The float model goes first and pays for the process's one-time costs (allocator
growth, kernel selection, thread-pool start), so whatever runs second looks faster. This
module measures that ratio in fresh subprocesses and the warm, interleaved ratio, so the
difference is shown rather than asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from ptq.models import get_model
from ptq.probes.speedup import interleaved_speedup
from ptq.recipes import apply_recipe, get_recipe
from ptq.stats.estimate import RatioEstimate

__all__ = ["NaiveComparison", "compare_naive", "naive_once"]


def _float_and_quantized(
    model: str, recipe: str, threads: int | None
) -> tuple[torch.nn.Module, torch.nn.Module, tuple]:
    if threads:
        torch.set_num_threads(threads)
    entry = get_model(model)
    built = entry.build()
    return built.model, apply_recipe(get_recipe(recipe), entry, built).model, entry.example_inputs(built)


def naive_once(model: str, recipe: str, *, threads: int | None = None) -> dict[str, float]:
    """One tutorial-style measurement in *this* process: one call each, float first."""
    float_model, quantized, x = _float_and_quantized(model, recipe, threads)
    start = time.time()
    float_model(*x)
    float_s = time.time() - start
    start = time.time()
    quantized(*x)
    quant_s = time.time() - start
    return {"float_s": float_s, "quantized_s": quant_s, "ratio": quant_s / float_s}


def _naive_in_fresh_process(model: str, recipe: str, threads: int | None) -> dict[str, float]:
    code = (
        "import json, sys, warnings; warnings.simplefilter('ignore');"
        "from ptq.lab.naive import naive_once; from ptq.project import load_project; load_project();"
        f"print(json.dumps(naive_once({model!r}, {recipe!r}, threads={threads!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class NaiveComparison:
    model: str
    recipe: str
    naive_ratios: tuple[float, ...]  # quantized/float time, one per fresh process
    warm: RatioEstimate  # float/quantized, i.e. speedup; warm-up excluded, interleaved

    @property
    def naive_speedups(self) -> tuple[float, ...]:
        return tuple(1 / r for r in self.naive_ratios)


def compare_naive(
    model: str, recipe: str, *, repeat: int = 8, threads: int | None = None, pair_time: float = 3.0
) -> NaiveComparison:
    naive = tuple(_naive_in_fresh_process(model, recipe, threads)["ratio"] for _ in range(repeat))
    float_model, quantized, x = _float_and_quantized(model, recipe, threads)
    with torch.inference_mode():
        for _ in range(10):
            float_model(*x)
            quantized(*x)
        warm = interleaved_speedup(lambda: float_model(*x), lambda: quantized(*x), budget_s=pair_time, min_pairs=20)
    return NaiveComparison(model, recipe, naive, warm)
