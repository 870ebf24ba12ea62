"""Per-layer SQNR between a float model and its quantized copy, on the same inputs.

Layers are matched by qualified name (as PyTorch's Numeric Suite does for eager models).
FX graph mode keeps the names of the modules it keeps, but folds a BatchNorm and fuses a
ReLU into the conv or linear before them, and those modules vanish. So a quantized layer's
output is compared with the float output at the end of its chain: the float modules after it
that (a) take the previous module's output as their input and (b) are absent from the
quantized model. Quantized tensors are dequantized before comparing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ptq.models.layers import LAYER_TYPES, is_quantized
from ptq.probes.drift.measures import sqnr_db

__all__ = ["LayerDrift", "layer_drift", "worst_layers"]


@dataclass(frozen=True)
class LayerDrift:
    """One weighted layer: its output SQNR (dB) against the float model's, call by call."""

    name: str
    float_type: str
    quantized_type: str
    quantized: bool
    compared_with: str  # the float module whose output stands for this layer's (end of a fused chain)
    sqnr_db: float
    order: int  # position in the float model's execution

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.quantized_type,
            "float_type": self.float_type,
            "quantized": self.quantized,
            "compared_with": self.compared_with,
            "sqnr_db": _finite(self.sqnr_db),
        }


def _finite(x: float) -> float | str:
    """JSON has no inf: write it as a string, rounded figures otherwise."""
    return round(x, 2) if math.isfinite(x) else str(x)


def _first_tensor(out: Any) -> torch.Tensor | None:
    while isinstance(out, (tuple, list)) and out:
        out = out[0]
    return out if isinstance(out, torch.Tensor) else None


def _as_float(t: torch.Tensor) -> torch.Tensor:
    return t.dequantize() if t.is_quantized else t


@dataclass
class _Call:
    name: str
    input_key: tuple[int, int] | None
    output_key: tuple[int, int]
    output: torch.Tensor


def _key(t: torch.Tensor) -> tuple[int, int]:
    """Identity and version of a tensor: equal keys mean the very same, unmodified data."""
    return (id(t), t._version)


@contextmanager
def _recording(model: nn.Module, names: set[str]) -> Iterator[list[_Call]]:
    """Record each call of the named modules: keys of input (before the call) and output, to
    follow chains, and a float copy of the output (an in-place op later would change it)."""
    calls: list[_Call] = []
    pending: dict[str, tuple[int, int] | None] = {}
    handles = []

    def pre(name: str):
        def fn(_module: nn.Module, args: tuple[Any, ...]) -> None:
            t = _first_tensor(args)
            pending[name] = None if t is None else _key(t)

        return fn

    def post(name: str):
        def fn(_module: nn.Module, _args: tuple[Any, ...], out: Any) -> None:
            t = _first_tensor(out)
            if t is not None:
                calls.append(_Call(name, pending.pop(name, None), _key(t), _as_float(t).detach().float().clone()))

        return fn

    for name, module in model.named_modules():
        if name in names:
            handles.append(module.register_forward_pre_hook(pre(name)))
            handles.append(module.register_forward_hook(post(name)))
    try:
        yield calls
    finally:
        for h in handles:
            h.remove()


def _leaves(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if n and next(m.children(), None) is None}


def layer_drift(
    float_model: nn.Module, quantized_model: nn.Module, inputs: tuple[torch.Tensor, ...]
) -> list[LayerDrift]:
    """SQNR of every weighted float layer that the quantized model still has by name, in
    execution order. Layers called several times are compared call by call (worst call kept)."""
    leaves = _leaves(float_model)
    q_modules = dict(quantized_model.named_modules())
    anchors = {n for n, m in leaves.items() if isinstance(m, tuple(LAYER_TYPES.values())) and n in q_modules}
    with torch.no_grad():  # not inference_mode: its tensors keep no version counter
        with _recording(float_model, set(leaves)) as f_calls:
            float_model(*inputs)
        with _recording(quantized_model, anchors) as q_calls:
            quantized_model(*inputs)

    q_by_name: dict[str, list[torch.Tensor]] = {}
    for c in q_calls:
        q_by_name.setdefault(c.name, []).append(c.output)
    seen: dict[str, int] = {}
    worst: dict[str, LayerDrift] = {}
    for i, call in enumerate(f_calls):
        if call.name not in anchors:
            continue
        k = seen.get(call.name, 0)
        seen[call.name] = k + 1
        outs = q_by_name.get(call.name, [])
        if k >= len(outs):
            continue
        end, prev = call, call
        for nxt in f_calls[i + 1 :]:  # follow the chain FX folded into this module
            if nxt.name in q_modules or nxt.input_key != prev.output_key or nxt.output.shape != call.output.shape:
                break
            end = prev = nxt
        if end.output.shape != outs[k].shape:
            continue
        drift = LayerDrift(
            name=call.name,
            float_type=type(leaves[call.name]).__name__,
            quantized_type=type(q_modules[call.name]).__name__,
            quantized=is_quantized(q_modules[call.name]),
            compared_with=end.name,
            sqnr_db=sqnr_db(end.output, outs[k]),
            order=len(worst) if call.name not in worst else worst[call.name].order,
        )
        if call.name not in worst or drift.sqnr_db < worst[call.name].sqnr_db:
            worst[call.name] = drift
    return sorted(worst.values(), key=lambda d: d.order)


def worst_layers(layers: list[LayerDrift], k: int = 3) -> list[LayerDrift]:
    """The ``k`` layers of lowest SQNR; near-ties (0.1 dB) go to the earlier layer, where the
    error entered."""
    return sorted(layers, key=lambda d: (round(d.sqnr_db, 1), d.order))[:k]
