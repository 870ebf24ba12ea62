"""Torch's own CPU fast path, as PyTorch documents it for x86 inference (docs/fast-paths.md has the
sources): channels_last memory format for convolutional models, ``torch.autocast("cpu",
dtype=torch.bfloat16)`` on CPUs with bf16 units (AVX512-BF16, AMX), and ``torch.compile`` (inductor)
with ``freezing``. The int8 side of that path, PT2E with the x86 inductor quantizer, is
:class:`ptq.recipes.pt2e.Pt2eInt8` (``pt2e_static_int8``; ``pt2e_static_int8_bf16`` adds autocast:
int8-mixed-bf16).

The model and every 4-d input go channels_last inside the case's module (the conversion of the
suite's NCHW input is part of each call, fused into the graph when compiled). Autocast wraps the
call, and float outputs come back float32 so the suite compares them with fp32's.

Without bf16 units, autocast bf16 runs through fp32 conversions, an emulation no one deploys: those
recipes skip there, naming the flags the CPU lacks, as ``bf16`` does. A recipe whose only change
is channels_last skips on a model without a 2-d convolution (it would time fp32 again).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.host import env
from ptq.models.base import Built, ModelEntry
from ptq.recipes.base import Quantized, Recipe, register_handler
from ptq.recipes.bf16 import BF16_FLAGS, bf16_units
from ptq.recipes.deploy import compile_model

__all__ = ["AUTOCAST_DTYPES", "FastPathModule", "TorchFastPath", "require_bf16_units"]

AUTOCAST_DTYPES = {"bfloat16": torch.bfloat16}
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.LSTM, nn.GRU, nn.Embedding)


def require_bf16_units(recipe: str) -> list[str]:
    """The CPU's native bf16 flags; none is a skip naming what the CPU lacks (torch would emulate)."""
    units = bf16_units()
    if not units:
        info = env.cpu_info()
        raise NotApplicable(
            f"recipe {recipe!r} runs bf16 and needs a CPU with {' or '.join(BF16_FLAGS)} (native bf16); "
            f"{info['cpu_model']} has neither, and torch would time an fp32 emulation of bf16"
        )
    return units


@dataclass(frozen=True)
class TorchFastPath(Recipe):
    """The float model in torch's documented CPU form: ``channels_last``, ``autocast`` (None or
    ``"bfloat16"``), ``compile`` with inductor ``freezing``."""

    channels_last: bool = True
    autocast: str | None = None
    compile: bool = False
    freezing: bool = True
    warmup_calls: int = 3
    stack: ClassVar[str] = "torch"

    def __post_init__(self) -> None:
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise UserError(
                f"recipe {self.name!r}: autocast must be None or one of {', '.join(AUTOCAST_DTYPES)}, "
                f"got {self.autocast!r}"
            )
        if self.warmup_calls < 1:
            raise UserError(f"recipe {self.name!r}: warmup_calls must be >= 1 (the first call compiles)")

    def quantizes(self) -> bool:
        """bf16 counts as a low precision, as the suite's ``bf16`` recipe does; fp32 is a float form."""
        return self.autocast is not None

    def precision(self) -> str:
        return "bf16" if self.autocast else "fp32"


def _channels_last(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dim() == 4:
        return value.contiguous(memory_format=torch.channels_last)
    return value


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_to_float32(v) for v in value)
    return value


class FastPathModule(nn.Module):
    """Runs ``inner`` with 4-d inputs in channels_last and under autocast; float outputs as float32."""

    def __init__(self, inner: nn.Module, *, channels_last: bool, autocast: torch.dtype | None) -> None:
        super().__init__()
        self.inner, self.channels_last, self.autocast = inner, channels_last, autocast

    def forward(self, *inputs: Any) -> Any:
        if self.channels_last:
            inputs = tuple(_channels_last(t) for t in inputs)
        context = torch.autocast("cpu", dtype=self.autocast) if self.autocast is not None else contextlib.nullcontext()
        with context:
            out = self.inner(*inputs)
        return _to_float32(out) if self.autocast is not None else out


def has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


@register_handler(TorchFastPath)
def _fast_path(recipe: TorchFastPath, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    units = require_bf16_units(recipe.name) if recipe.autocast else []
    channels_last = recipe.channels_last and has_conv2d(model)
    if recipe.channels_last and not channels_last and recipe.autocast is None:
        same = "fp32_compile" if recipe.compile else "fp32"
        raise NotApplicable(
            f"{entry.name!r} has no 2-d convolution: channels_last changes nothing, the case would be {same}"
        )
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    dtype = AUTOCAST_DTYPES[recipe.autocast] if recipe.autocast else None
    wrapped = FastPathModule(model, channels_last=channels_last, autocast=dtype).eval()
    notes: dict[str, Any] = {
        "memory_format": "channels_last" if channels_last else "contiguous (no 2-d convolution)",
        "autocast": recipe.autocast or "off",
        "precision_ran": recipe.precision(),
        "precision_label": (f"bf16 (autocast; {'+'.join(units)})" if recipe.autocast else "fp32"),
    }
    if units:
        notes["bf16_units"] = units
    weighted = sum(isinstance(m, _WEIGHTED) for m in model.modules())
    layers = (weighted, 0) if recipe.autocast else (0, weighted)  # (bf16 layers, fp32 layers)
    if recipe.compile:
        inputs = entry.example_inputs(built)
        deployed, seconds = compile_model(wrapped, inputs, freezing=recipe.freezing, warmup_calls=recipe.warmup_calls)
        notes.update(
            deploy="compile",
            deploy_seconds=round(seconds, 3),
            deploy_detail="torch.compile(backend='inductor')" + (" (inductor freezing)" if recipe.freezing else ""),
        )
        return Quantized(
            deployed, stack="torch", engine="inductor", quantized_layers=layers[0], float_layers=layers[1], notes=notes
        )
    return Quantized(
        wrapped, stack="torch", engine="eager", quantized_layers=layers[0], float_layers=layers[1], notes=notes
    )
