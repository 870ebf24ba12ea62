"""Recipes on torchao's ``quantize_``, the path torch.ao's deprecation points users to."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.host.device import module_device
from ptq.models.base import Built, ModelEntry
from ptq.models.layers import count_layers, has_layer_types
from ptq.recipes.base import Quantized, Recipe, register_handler

__all__ = ["TORCHAO_CONFIGS", "TorchaoRecipe"]

#: Config name a recipe may name -> (module holding it, what it needs beyond a CPU, or "").
#: ``Int4WeightOnlyConfig`` packs for CUDA kernels (it asks for ``mslk``); the CPU int4 layout
#: (tinygemm ``_weight_int4pack_mm_for_cpu``) is torchao's ``PrototypeInt4WeightOnlyConfig``.
TORCHAO_CONFIGS: dict[str, tuple[str, str]] = {
    "Int8WeightOnlyConfig": ("torchao.quantization", ""),
    "Int8DynamicActivationInt8WeightConfig": ("torchao.quantization", ""),
    "Int4WeightOnlyConfig": ("torchao.quantization", "cuda"),
    "PrototypeInt4WeightOnlyConfig": ("torchao.prototype.quantization.int4", ""),
    "Float8WeightOnlyConfig": ("torchao.quantization", ""),
    "Float8DynamicActivationFloat8WeightConfig": ("torchao.quantization", "cuda-sm89"),
}

#: Why a config needing a device cannot run where the model is (``--ptq-device``), and the least
#: CUDA compute capability it needs.
_DEVICE_REASONS = {
    "cuda": "packs int4 weights for CUDA kernels (it needs the mslk package and a GPU, --ptq-device=cuda); "
    "the CPU int4 layout is recipe ao_int4_weight_only_cpu",
    "cuda-sm89": "needs float8 matmul kernels (CUDA compute capability >= 8.9, MI300 or XPU; --ptq-device=cuda)",
}
_CAPABILITY = {"cuda": (0, 0), "cuda-sm89": (8, 9)}


def _unmet(needs: str, model: nn.Module) -> str | None:
    """Why the model's device cannot run a config that ``needs`` one, or None when it can."""
    where = module_device(model)
    if not where.startswith("cuda"):
        return f"the model is on {where}"
    have = torch.cuda.get_device_capability(where)
    return None if tuple(have) >= _CAPABILITY[needs] else f"{where} has compute capability {have[0]}.{have[1]}"


def _int4_cpu_packable(module: nn.Module, fqn: str) -> bool:
    """out_features divisible by 16 and in_features by the group size 128 (tinygemm CPU packing)"""
    return isinstance(module, nn.Linear) and module.out_features % 16 == 0 and module.in_features % 128 == 0


#: Layer filters for configs whose kernels take only some shapes (others raise, not skip).
_FILTERS = {"PrototypeInt4WeightOnlyConfig": _int4_cpu_packable}


@dataclass(frozen=True)
class TorchaoRecipe(Recipe):
    """``torchao.quantization.quantize_(model, <config>())`` on the model's Linear layers."""

    config: str = "Int8WeightOnlyConfig"
    stack: ClassVar[str] = "torchao"

    def precision(self) -> str:
        """From the config's name: ``Int4...`` int4, ``Float8...`` fp8, the rest int8."""
        name = self.config.removeprefix("Prototype")
        return "int4" if name.startswith("Int4") else "fp8" if name.startswith("Float8") else "int8"

    def __post_init__(self) -> None:
        if self.config not in TORCHAO_CONFIGS:
            raise UserError(
                f"recipe {self.name!r}: unknown torchao config {self.config!r}; valid: {', '.join(TORCHAO_CONFIGS)}"
            )


@register_handler(TorchaoRecipe)
def _torchao(recipe: TorchaoRecipe, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    if importlib.util.find_spec("torchao") is None:
        raise NotApplicable(f"recipe {recipe.name!r} needs torchao; pip install torchao")
    module_name, needs = TORCHAO_CONFIGS[recipe.config]
    unmet = _unmet(needs, model) if needs else None
    if unmet:
        raise NotApplicable(f"torchao {recipe.config} {_DEVICE_REASONS[needs]}; {unmet}")
    if not has_layer_types(model, {nn.Linear}):
        raise NotApplicable(f"model {entry.name!r} has no Linear layer for torchao's {recipe.config}")
    import torchao.quantization as tq

    config = getattr(importlib.import_module(module_name), recipe.config)
    layer_filter = _FILTERS.get(recipe.config)
    if layer_filter is not None and not any(layer_filter(m, n) for n, m in model.named_modules()):
        raise NotApplicable(
            f"model {entry.name!r} has no Linear layer that torchao {recipe.config} can pack: {layer_filter.__doc__}"
        )
    try:
        tq.quantize_(model, config(), filter_fn=layer_filter)
    except ImportError as exc:  # e.g. int4 kernels that this CPU build does not ship
        raise NotApplicable(f"torchao {recipe.config} is unavailable here: {exc}") from exc
    q, f = count_layers(model)
    stack = f"torchao=={importlib.metadata.version('torchao')}"
    return Quantized(
        model, stack=stack, engine=None, quantized_layers=q, float_layers=f, notes={"config": recipe.config}
    )
