"""Placements: fresh allocations of a case's model and inputs, so a latency is sampled over
where its tensors land instead of being one allocation's luck.

Measured on an Intel Xeon with AMX: re-creating one ``Conv2d(16, 16, 3)`` and a clone of its
input eight times in one process gave 1st percentiles alternating between 0.6 and 1.26 ms, and
six deep copies of MobileNetV2 ranged 17.2-24.0 ms. A placement here is a deep copy of the
model and clones of its inputs, made after a seeded pad allocation of random size that lives
as long as the placement, so the allocator's state differs from one placement to the next (the
heap half of STABILIZER's re-randomization, Curtsinger & Berger 2013). The peer runtimes' modules
deep-copy to a fresh session (:mod:`ptq.recipes.peer`). A model that cannot be deep-copied, or
whose copy does not compute what the original does, keeps its original and gets fresh inputs
only: ``kind`` says which was sampled.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["DEFAULT_PLACEMENTS", "INPUTS_ONLY", "MODEL_AND_INPUTS", "Placement", "place"]

#: Placements per case in the suite's speedup probe (``--ptq-placements``): one per visit
#: (:class:`ptq.probes.speedup.SpeedupVisits`); 6 make ``[min, max]`` of the visits a 96.9% interval
#: for their median.
DEFAULT_PLACEMENTS = 6

#: What a placement re-allocated: the model's tensors and the inputs, or the inputs only.
MODEL_AND_INPUTS, INPUTS_ONLY = "model+inputs", "inputs"


@dataclass
class Placement:
    model: Any
    inputs: tuple[Any, ...]
    kind: str
    #: Holds the seeded pad allocation for the placement's life (it shifts later allocations).
    pad: torch.Tensor | None = None
    why: str = ""  # why a placement kept the original model

    def call(self) -> Any:
        with torch.inference_mode():
            return self.model(*self.inputs)


def _clone(x: Any) -> Any:
    return x.clone() if isinstance(x, torch.Tensor) else copy.deepcopy(x)


def same_output(a: Any, b: Any) -> bool:
    """Whether two outputs agree: shapes and dtypes exact, floats up to rounding (a copy or a
    reloaded model may take another kernel path), the rest exactly."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        # a copy may take another kernel path (alignment-dependent blocking): same up to rounding
        return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-5)) if a.is_floating_point() else bool(torch.equal(a, b))
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(same_output(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_output(a[k], b[k]) for k in a)
    return type(a) is type(b)


def place(model: Any, inputs: Sequence[Any], *, seed: int, reference_output: Any = None) -> Placement:
    """A fresh placement of ``model`` and ``inputs``. With ``reference_output`` (the original's
    output on ``inputs``), a copy whose output differs is refused and the original kept."""
    rng = random.Random(seed)
    pad = torch.empty(rng.randrange(1, 1 << 16), dtype=torch.uint8)
    fresh_inputs = tuple(_clone(x) for x in inputs)
    try:
        fresh = copy.deepcopy(model)
    except Exception as exc:  # ORT sessions, some compiled forms: cannot be copied, sampled by inputs alone
        return Placement(model, fresh_inputs, INPUTS_ONLY, pad, f"deepcopy failed: {type(exc).__name__}")
    placed = Placement(fresh, fresh_inputs, MODEL_AND_INPUTS, pad)
    if reference_output is not None:
        try:
            same = same_output(placed.call(), reference_output)
        except Exception as exc:
            same, placed.why = False, f"the copy failed to run: {type(exc).__name__}"
        if not same:
            return Placement(model, fresh_inputs, INPUTS_ONLY, pad, placed.why or "the copy computed other outputs")
    return placed
