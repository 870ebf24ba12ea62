"""Shared fixtures for the library's own tests: tiny models, so the suite stays fast."""

from __future__ import annotations

import signal

import pytest
import torch
from torch import nn

from ptq.models import Built, ModelEntry, TensorData

# The tests that interrupt a child process (an atomic write, a baseline save, a session) need the
# child to get a terminal's signal handling. A suite started from a background job of a
# non-interactive shell inherits SIGINT ignored, Python keeps an inherited SIG_IGN, and every child
# inherits it too: their SIGINT then did nothing. A handler set here is reset to the default in
# each child that execs, so the children behave as they would under a user's terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.relu(self.conv(x))), 1))


def _build_tiny(*, weights: str) -> Built:
    torch.manual_seed(0)
    data = TensorData(lambda g, n: (torch.randn(n, 3, 16, 16, generator=g),), "randn(3,16,16)")
    return Built(Tiny().eval(), weights="random:seed=0", data=data)


@pytest.fixture
def tiny_entry() -> ModelEntry:
    return ModelEntry(name="tiny", build_fn=_build_tiny, batch_size=2, family="test", description="tiny conv+linear")


@pytest.fixture
def tiny_built(tiny_entry: ModelEntry) -> Built:
    return tiny_entry.build()
