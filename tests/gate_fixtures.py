"""Synthetic stored runs for the gate's tests: pytest-benchmark JSON as the plugin writes it."""

from __future__ import annotations

from typing import Any

import numpy as np

from ptq.storage.results import SCHEMA_VERSION


def samples(median: float, n: int = 200, seed: int = 0, sigma: float = 0.03) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).lognormal(np.log(median), sigma, n)]


def bench(case: str, data: list[float] | None, **extra: Any) -> dict[str, Any]:
    model, _, recipe = case.partition("-")
    stats: dict[str, Any] = {"median": float(np.median(data)) if data else None}
    if data is not None:
        stats["data"] = data
    return {
        "name": f"test_case[{case}]",
        "extra_info": {"case": case, "model": model, "recipe": recipe, **extra},
        "stats": stats,
    }


def run(
    *benches: dict[str, Any], fingerprint: str = "aaaa", torch: str = "2.14.1", schema: int = SCHEMA_VERSION
) -> dict[str, Any]:
    env = {"cpu_model": "test cpu", "torch": torch, "threads": 2}
    return {
        "machine_info": {"ptq": {"environment": env, "fingerprint": fingerprint}},
        "benchmarks": list(benches),
        "ptq": {"schema_version": schema, "environment": env, "fingerprint": fingerprint},
    }
