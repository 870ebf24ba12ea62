"""Peer parity: does a peer case (ONNX Runtime, OpenVINO) cost, called the way the suite times it,
what the same compiled model costs called standalone?

Both callables run in one process, interleaved ABBA in every round (suite, standalone, standalone,
suite), so machine drift and a neighbour's load land on both alike. The figure is the median over
rounds of ``(suite + suite) / (standalone + standalone)``, with a distribution-free 95% interval
of that median (order statistics); ``same`` is the standalone callable against itself (its two
calls in each round), the method's noise floor on this machine at this moment. No wall-clock time
is compared across runs. docs/fast-paths.md has the method and the figures measured with it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Parity", "interleaved_parity", "median_interval"]


@dataclass(frozen=True)
class Parity:
    suite_ms: float  # median per call, suite's call path
    standalone_ms: float  # median per call, standalone
    ratio: float  # median over rounds of suite pair / standalone pair
    low: float
    high: float
    same_ratio: float  # standalone's first call / its second, median over rounds (noise floor)
    same_low: float
    same_high: float
    rounds: int

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def median_interval(values: list[float], z: float = 1.96) -> tuple[float, float, float]:
    """(median, low, high): the order-statistic interval of the median (binomial, normal approximation)."""
    ordered = sorted(values)
    n = len(ordered)
    k = max(0, math.floor(n / 2 - z * math.sqrt(n) / 2))
    return statistics.median(ordered), ordered[k], ordered[min(n - 1, n - 1 - k)]


def interleaved_parity(
    suite: Callable[[], Any],
    standalone: Callable[[], Any],
    *,
    rounds: int = 100,
    warmup: int = 5,
    timer: Callable[[], float] = time.perf_counter,
) -> Parity:
    """Time ``suite`` and ``standalone`` (no-argument callables) in ``rounds`` ABBA rounds."""
    if rounds < 4:
        raise ValueError("rounds must be >= 4")
    for _ in range(warmup):
        suite()
        standalone()
    a_times: list[float] = []
    b_times: list[float] = []
    ratios: list[float] = []
    same: list[float] = []
    for _ in range(rounds):
        t0 = timer()
        suite()
        t1 = timer()
        standalone()
        t2 = timer()
        standalone()
        t3 = timer()
        suite()
        t4 = timer()
        a1, b1, b2, a2 = t1 - t0, t2 - t1, t3 - t2, t4 - t3
        a_times += [a1, a2]
        b_times += [b1, b2]
        ratios.append((a1 + a2) / (b1 + b2))
        same.append(b1 / b2)
    ratio, low, high = median_interval(ratios)
    same_ratio, same_low, same_high = median_interval(same)
    return Parity(
        statistics.median(a_times) * 1e3,
        statistics.median(b_times) * 1e3,
        ratio,
        low,
        high,
        same_ratio,
        same_low,
        same_high,
        rounds,
    )
