"""Layer-level micro models: one Linear, Conv2d or LSTM, so a regression pins to a layer type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ptq.models.base import Built, TensorData

__all__ = ["MICRO_SPECS", "MicroSpec"]

SEED = 0


class _LastOutput(nn.Module):
    """Wraps an LSTM so ``forward`` returns a tensor, not a tuple."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lstm(x)[0]


@dataclass(frozen=True)
class MicroSpec:
    name: str
    batch_size: int
    make_layer: Callable[[], nn.Module]
    input_shape: tuple[int, ...]  # per sample
    description: str


def _spec_linear(n: int) -> MicroSpec:
    return MicroSpec(f"micro_linear_{n}", 32, lambda: nn.Linear(n, n), (n,), f"Linear({n}, {n})")


def _spec_conv(c: int, hw: int) -> MicroSpec:
    return MicroSpec(
        f"micro_conv_{c}",
        1,
        lambda: nn.Conv2d(c, c, 3, padding=1),
        (c, hw, hw),
        f"Conv2d({c}, {c}, 3x3) on {hw}x{hw}",
    )


def _spec_lstm(h: int) -> MicroSpec:
    return MicroSpec(
        f"micro_lstm_{h}",
        8,
        lambda: _LastOutput(nn.LSTM(h, h, batch_first=True)),
        (32, h),
        f"LSTM({h}, {h}) over 32 steps",
    )


MICRO_SPECS: tuple[MicroSpec, ...] = (
    _spec_linear(256),
    _spec_linear(1024),
    _spec_linear(4096),
    _spec_conv(16, 112),
    _spec_conv(64, 56),
    _spec_conv(256, 14),
    _spec_lstm(128),
    _spec_lstm(512),
)


def _register(spec: MicroSpec) -> None:
    from ptq.models import register_model

    shape = spec.input_shape

    @register_model(
        spec.name,
        batch_size=spec.batch_size,
        family="micro",
        description=spec.description,
        tags=("micro",),
    )
    def build(*, weights: str) -> Built:
        torch.manual_seed(SEED)
        data = TensorData(lambda g, n: (torch.randn(n, *shape, generator=g),), f"standard normal {shape}")
        # A container around the layer: quantize_dynamic and FX swap children, never the root.
        return Built(nn.Sequential(spec.make_layer()), weights=f"random:seed={SEED}", data=data)


for _spec in MICRO_SPECS:
    _register(_spec)
