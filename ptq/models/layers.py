"""Counting what a recipe quantized: the quantized layers and the weighted layers left in float."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["LAYER_TYPES", "count_layers", "has_layer_types", "is_quantized", "layer_types"]

#: Layer types a recipe's ``layers`` field may name.
LAYER_TYPES: dict[str, type[nn.Module]] = {
    "Linear": nn.Linear,
    "LSTM": nn.LSTM,
    "GRU": nn.GRU,
    "Conv1d": nn.Conv1d,
    "Conv2d": nn.Conv2d,
    "Conv3d": nn.Conv3d,
    "Embedding": nn.Embedding,
}

_QUANTIZED_NAMESPACES = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized", "torch.nn.quantized")


def layer_types(names: Iterable[str]) -> set[type[nn.Module]]:
    from ptq.errors import UserError

    out = set()
    for name in names:
        if name not in LAYER_TYPES:
            raise UserError(f"unknown layer type {name!r}; valid: {', '.join(LAYER_TYPES)}")
        out.add(LAYER_TYPES[name])
    return out


def has_layer_types(model: nn.Module, types: set[type[nn.Module]]) -> bool:
    return any(isinstance(m, tuple(types)) for m in model.modules())


_WEIGHTED_NAMES = ("Linear", "Conv", "LSTM", "GRU", "RNN", "Embedding")


def _is_quantized(module: nn.Module) -> bool:
    """A weighted layer from torch's quantized namespaces, or one holding a torchao weight."""
    if type(module).__module__.startswith(_QUANTIZED_NAMESPACES):
        name = type(module).__name__
        return "PackedParams" not in name and any(part in name for part in _WEIGHTED_NAMES)
    # torchao swaps weights for tensor subclasses and keeps the module class.
    weight = getattr(module, "weight", None)
    return isinstance(weight, torch.Tensor) and type(weight) not in (torch.Tensor, nn.Parameter)


def is_quantized(module: nn.Module) -> bool:
    """Whether ``module`` is a quantized weighted layer (torch.ao module or torchao weight)."""
    return _is_quantized(module)


def count_layers(model: nn.Module) -> tuple[int, int]:
    """(quantized weighted layers, weighted layers still in float) in ``model``.

    Float counts the Linear/Conv/RNN/Embedding modules a recipe could have touched and did not.
    """
    float_types = tuple(LAYER_TYPES.values())
    quantized = floats = 0
    for module in model.modules():
        if _is_quantized(module):
            quantized += 1
        elif isinstance(module, float_types):
            floats += 1
    return quantized, floats
