"""An LSTM sequence classifier: the classic case for dynamic quantization of ``nn.LSTM``."""

from __future__ import annotations

import torch
from torch import nn

from ptq.models.base import Built, TensorData

__all__ = ["LSTMClassifier"]

SEED = 0
VOCAB, EMBED, HIDDEN, LAYERS, CLASSES, SEQ_LEN = 5000, 128, 256, 2, 10, 64


class LSTMClassifier(nn.Module):
    """Token ids -> embedding -> 2-layer LSTM -> linear head on the last step."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, num_layers=LAYERS, batch_first=True)
        self.head = nn.Linear(HIDDEN, CLASSES)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embed(tokens))
        return self.head(out[:, -1])


def _tokens(g: torch.Generator, n: int) -> tuple[torch.Tensor, ...]:
    return (torch.randint(0, VOCAB, (n, SEQ_LEN), generator=g),)


def _register() -> None:
    from ptq.models import register_model

    @register_model(
        "lstm_classifier",
        batch_size=16,
        family="sequence",
        description=f"Embedding({VOCAB},{EMBED}) + {LAYERS}-layer LSTM({HIDDEN}) + Linear, seq {SEQ_LEN}",
        tags=("rnn",),
    )
    def build(*, weights: str) -> Built:
        torch.manual_seed(SEED)
        return Built(
            LSTMClassifier(),
            weights=f"random:seed={SEED}",
            data=TensorData(_tokens, f"uniform token ids in [0, {VOCAB}), length {SEQ_LEN}"),
        )


_register()
