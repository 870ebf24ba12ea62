"""The per-case result record: identity, provenance, and what each probe measured."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SCHEMA_VERSION", "CaseResult", "LatencyStats", "unpaired_speedups"]

#: Version of the ``extra_info`` layout written into pytest-benchmark JSON.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class LatencyStats:
    """Seconds per call over the timed rounds (warm-up excluded), raw samples kept."""

    median: float
    mean: float
    stddev: float
    min: float
    max: float
    rounds: int
    samples: tuple[float, ...] = ()

    @classmethod
    def from_samples(cls, samples: list[float] | tuple[float, ...]) -> LatencyStats:
        if not samples:
            raise ValueError("no latency samples")
        return cls(
            median=statistics.median(samples),
            mean=statistics.fmean(samples),
            stddev=statistics.stdev(samples) if len(samples) > 1 else 0.0,
            min=min(samples),
            max=max(samples),
            rounds=len(samples),
            samples=tuple(samples),
        )


@dataclass
class CaseResult:
    """One model x recipe case. Later measurements add entries to ``metrics`` (drift, memory,
    size...) rather than new fields, so the record and its readers stay stable."""

    case: str
    model: str
    model_version: int
    family: str
    recipe: str
    recipe_version: int
    recipe_config: dict[str, Any]
    stack: str
    engine: str | None
    weights: str
    data: str
    input_shapes: list[list[int]]
    batch_size: int
    threads: int
    warmup_rounds: int
    quantized_layers: int
    float_layers: int
    quantize_seconds: float
    latency: LatencyStats | None = None
    #: Interleaved fp32/quantized pairs (see ptq.probes.speedup); the figure to trust.
    speedup_vs_fp32: float | None = None
    #: Ratio of the two cases' separately timed medians; kept to show how far it can stray.
    speedup_unpaired: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    #: Wall-clock seconds of each step after quantizing: ``timing`` (warm-up and pytest-benchmark's
    #: rounds) and each probe by name (the first speedup visit under ``speedup``), so a run shows
    #: where its time went.
    phase_seconds: dict[str, float] = field(default_factory=dict)

    def to_extra_info(self) -> dict[str, Any]:
        info = asdict(self)
        info["schema_version"] = SCHEMA_VERSION
        if self.latency is not None:
            # pytest-benchmark keeps the raw samples itself (``--benchmark-save-data``).
            info["latency"] = {k: v for k, v in info["latency"].items() if k != "samples"}
        return info


def unpaired_speedups(results: list[CaseResult], reference: str = "fp32") -> dict[str, float]:
    """case -> median latency of the model's reference case / its own, within one run.

    A ratio of two medians measured in the same session cancels most of the machine's drift.
    """
    ref = {r.model: r.latency.median for r in results if r.recipe == reference and r.latency}
    return {
        r.case: ref[r.model] / r.latency.median
        for r in results
        if r.latency and r.model in ref and r.latency.median > 0
    }
