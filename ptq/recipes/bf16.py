"""bfloat16: the whole model's weights and float activations in bf16, the other common low-precision
choice on CPUs with bf16 units (AVX512-BF16, AMX). Inputs and outputs stay float32 at the
boundary, so the suite feeds and compares it as any other case.

Without those units torch runs bf16 through fp32 conversions, and the case would time an
emulation no one deploys: the recipe skips there, naming the flags the CPU lacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ptq.errors import NotApplicable
from ptq.host import env
from ptq.host.device import module_device
from ptq.models.base import Built, ModelEntry
from ptq.recipes.base import Quantized, Recipe, register_handler
from ptq.recipes.peer import first_line

__all__ = ["BF16_FLAGS", "Bf16Module", "Bfloat16", "bf16_units"]

#: CPU flags of native bf16 arithmetic (/proc/cpuinfo names).
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.LSTM, nn.GRU, nn.Embedding)


def bf16_units() -> list[str]:
    """The native bf16 flags this CPU has (empty: none)."""
    return [f for f in BF16_FLAGS if f in env.cpu_info()["cpu_flags"]]


@dataclass(frozen=True)
class Bfloat16(Recipe):
    """``model.to(torch.bfloat16)`` behind a wrapper that casts float inputs in and outputs back."""

    stack: ClassVar[str] = "torch.bf16"

    def precision(self) -> str:
        return "bf16"


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(dtype) if value.is_floating_point() else value
    if isinstance(value, (tuple, list)):
        return type(value)(_cast(v, dtype) for v in value)
    return value


class Bf16Module(nn.Module):
    """Runs a bf16 module with float32 tensors: float inputs cast to bf16, float outputs to float32."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *inputs: Any) -> Any:
        return _cast(self.inner(*_cast(inputs, torch.bfloat16)), torch.float32)


@register_handler(Bfloat16)
def _bf16(recipe: Bfloat16, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    where = module_device(model)
    units = bf16_units() if where == "cpu" else [where]  # a GPU's bf16 needs no CPU flag
    if not units:
        info = env.cpu_info()
        raise NotApplicable(
            f"recipe {recipe.name!r} needs a CPU with {' or '.join(BF16_FLAGS)} (native bf16); {info['cpu_model']} "
            f"has neither (flags recorded: {', '.join(info['cpu_flags']) or 'none'}), and torch would time an fp32 emulation"
        )
    wrapped = Bf16Module(model.to(torch.bfloat16)).eval()
    try:
        with torch.no_grad():
            wrapped(*entry.example_inputs(built))
    except (RuntimeError, NotImplementedError) as exc:  # an op without a bf16 CPU kernel: the model's limit
        if "BFloat16" not in str(exc):
            raise
        raise NotApplicable(f"{entry.name!r} has an op without a bf16 CPU kernel ({first_line(exc)})") from exc
    layers = sum(isinstance(m, _WEIGHTED) for m in model.modules())
    return Quantized(
        wrapped, stack="torch.bf16", engine="+".join(units), quantized_layers=layers, notes={"bf16_units": units}
    )
