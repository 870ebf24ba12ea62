"""Recipes on torchao's ``quantize_``, the path torch.ao's deprecation points users to."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ptq.errors import NotApplicable, UserError
from ptq.layers import count_layers, has_layer_types
from ptq.models.base import Built, ModelEntry
from ptq.recipes.base import Quantized, Recipe, register_handler

__all__ = ["TorchaoRecipe"]

#: torchao config class names a recipe may name (those that run on CPU tensors).
TORCHAO_CONFIGS = (
    "Int8WeightOnlyConfig",
    "Int8DynamicActivationInt8WeightConfig",
    "Int4WeightOnlyConfig",
)


@dataclass(frozen=True)
class TorchaoRecipe(Recipe):
    """``torchao.quantization.quantize_(model, <config>())`` on the model's Linear layers."""

    config: str = "Int8WeightOnlyConfig"
    stack: ClassVar[str] = "torchao"

    def __post_init__(self) -> None:
        if self.config not in TORCHAO_CONFIGS:
            raise UserError(
                f"recipe {self.name!r}: unknown torchao config {self.config!r}; valid: {', '.join(TORCHAO_CONFIGS)}"
            )


@register_handler(TorchaoRecipe)
def _torchao(recipe: TorchaoRecipe, model: nn.Module, built: Built, entry: ModelEntry) -> Quantized:
    if importlib.util.find_spec("torchao") is None:
        raise NotApplicable(f"recipe {recipe.name!r} needs torchao; pip install torchao")
    if not has_layer_types(model, {nn.Linear}):
        raise NotApplicable(f"model {entry.name!r} has no Linear layer for torchao's {recipe.config}")
    import torchao.quantization as tq

    try:
        tq.quantize_(model, getattr(tq, recipe.config)())
    except ImportError as exc:  # e.g. int4 kernels that this CPU build does not ship
        raise NotApplicable(f"torchao {recipe.config} is unavailable here: {exc}") from exc
    q, f = count_layers(model)
    stack = f"torchao=={importlib.metadata.version('torchao')}"
    return Quantized(model, stack=stack, engine=None, quantized_layers=q, float_layers=f)
