"""What a model entry is: how to build it, what it eats, where its weights came from."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn

from ptq.errors import NotApplicable, UserError

__all__ = [
    "WEIGHT_POLICIES",
    "Batch",
    "Built",
    "DataSource",
    "ModelEntry",
    "TensorData",
]

#: ``auto`` takes pretrained weights when they are already on disk (or shipped by a
#: package) and seeded random weights otherwise; ``pretrained`` insists (and may download);
#: ``random`` always uses seeded random weights.
WEIGHT_POLICIES = ("auto", "pretrained", "random")

SPLITS = ("calib", "eval")


@dataclass(frozen=True)
class Batch:
    """Positional inputs for ``model(*inputs)``, and labels where the data has them."""

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor | None = None


class DataSource(Protocol):
    """Deterministic batches; ``calib`` and ``eval`` never share a sample."""

    @property
    def description(self) -> str: ...  # read-only: the sources are frozen dataclasses

    def batch(self, split: str, index: int, batch_size: int) -> Batch: ...


@dataclass(frozen=True)
class TensorData:
    """Batches drawn from a seeded generator, one seed stream per split.

    ``make(generator, batch_size)`` returns the model's positional inputs.
    """

    make: Callable[[torch.Generator, int], tuple[torch.Tensor, ...]]
    description: str
    seed: int = 0

    def batch(self, split: str, index: int, batch_size: int) -> Batch:
        if split not in SPLITS:
            raise UserError(f"unknown data split {split!r}; valid splits: {', '.join(SPLITS)}")
        # Disjoint streams: the split picks the high bits of the seed.
        g = torch.Generator().manual_seed(self.seed + 1_000_003 * (SPLITS.index(split) + 1) + index)
        return Batch(self.make(g, batch_size))


@dataclass
class Built:
    """A float model ready to run, the provenance of its weights, and its data."""

    model: nn.Module
    weights: str
    data: DataSource
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model.

    ``build(weights=policy)`` returns a :class:`Built` in eval mode. ``version`` changes
    whenever the definition changes, so stored results of the old one stop comparing.
    ``requires`` names importable modules; a missing one skips the model's cases.
    """

    name: str
    build_fn: Callable[..., Built]
    batch_size: int
    family: str
    description: str
    version: int = 1
    requires: Sequence[str] = ()
    tags: Sequence[str] = ()

    def missing_requirements(self) -> list[str]:
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def build(self, *, weights: str = "auto") -> Built:
        if weights not in WEIGHT_POLICIES:
            raise UserError(f"unknown weights policy {weights!r}; valid: {', '.join(WEIGHT_POLICIES)}")
        missing = self.missing_requirements()
        if missing:
            raise NotApplicable(
                f"model {self.name!r} needs {', '.join(missing)}; install them (pip install 'pytest-ptq[all]')"
            )
        built = self.build_fn(weights=weights)
        built.model.eval()
        return built

    def example_inputs(self, built: Built, batch_size: int | None = None) -> tuple[torch.Tensor, ...]:
        return built.data.batch("eval", 0, batch_size or self.batch_size).inputs
