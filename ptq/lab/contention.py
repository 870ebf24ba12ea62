"""Which machine resource moves a case's latency: the case timed between meters, one placement.

One process builds the model and the case once, then for ``rounds`` rounds times, each in its
own window, five things: a cache-resident 64x64 fp32 matmul (it follows the CPU's clock), a
4 MiB copy (inside any recent last-level cache), the bandwidth meter's DRAM copy
(:class:`ptq.probes.bandwidth.BandwidthMeter`), the fp32 model and the case's model. The
placement never changes, so whatever moves the case's time across rounds is the machine's state;
the correlations say which meter it follows. This is the measurement behind the suite's quiet
visits (docs/methodology.md, "Memory bandwidth").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptq.probes.bandwidth import BandwidthMeter

__all__ = ["METERS", "ContentionStudy", "study"]

#: The meters, in the order each round times them, and the seconds each is timed for.
METERS = (("compute", 0.2), ("cache_copy", 0.2), ("dram_copy", 0.3))


@dataclass(frozen=True)
class ContentionStudy:
    """Per round, each series' 1st percentile in ms (``rows[k][name]``), and what they say."""

    model: str
    recipe: str
    rows: tuple[dict[str, float], ...]

    def series(self, name: str) -> np.ndarray:
        return np.array([r[name] for r in self.rows])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.rows[0])

    def range(self) -> dict[str, float]:
        """max/min - 1 of each series over the rounds."""
        return {n: float(self.series(n).max() / self.series(n).min() - 1) for n in self.names}

    def correlation(self, a: str, b: str) -> float:
        """Pearson's r between two series over the rounds."""
        return float(np.corrcoef(self.series(a), self.series(b))[0, 1])

    def speedup_by_dram(self, share: float = 0.2) -> tuple[float, float]:
        """Median speedup (fp32 / case) over the ``share`` of rounds whose DRAM copy was fastest, and
        over the same share where it was slowest."""
        order = np.argsort(self.series("dram_copy"), kind="stable")
        k = max(1, int(len(order) * share))
        speedup = self.series("fp32") / self.series("case")
        return float(np.median(speedup[order[:k]])), float(np.median(speedup[order[-k:]]))


def _p1_ms(fn: Callable[[], Any], seconds: float) -> float:
    from ptq.run.duet import time_calls

    with torch.inference_mode():
        times = time_calls(fn, seconds, min_rounds=2, warmup=1)
    return float(np.quantile(times, 0.01)) * 1e3


def study(model: str, recipe: str, *, rounds: int = 40, window_s: float = 0.8, threads: int = 1) -> ContentionStudy:
    """Build ``model`` and its ``recipe`` case, then time the meters and both models ``rounds`` times."""
    from ptq.models import get_model
    from ptq.recipes import apply_recipe, get_recipe

    if rounds < 3:
        raise ValueError(f"a correlation over rounds needs >= 3 rounds, got {rounds}")
    torch.set_num_threads(threads)
    entry = get_model(model)
    built = entry.build()
    case = apply_recipe(get_recipe(recipe), entry, built).model
    inputs = entry.example_inputs(built)
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    small = torch.randn(1 << 20)  # 4 MiB
    small_out = torch.empty_like(small)
    dram = BandwidthMeter(copies=1)
    meters: dict[str, Callable[[], Any]] = {
        "compute": lambda: [torch.mm(a, b) for _ in range(200)],
        "cache_copy": lambda: [small_out.copy_(small) for _ in range(10)],
        "dram_copy": dram.read,
    }
    rows = []
    for _ in range(rounds):
        row = {name: _p1_ms(meters[name], seconds) for name, seconds in METERS}
        row["fp32"] = _p1_ms(lambda: built.model(*inputs), window_s)
        row["case"] = _p1_ms(lambda: case(*inputs), window_s)
        rows.append(row)
    return ContentionStudy(model, recipe, tuple(rows))
