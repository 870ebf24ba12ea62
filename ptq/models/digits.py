"""A small CNN trained at first use on scikit-learn's handwritten digits: real weights, real labels.

The trained weights are cached on disk, keyed by a hash of the training config, so every
session after the first loads them; the held-out split gives a real accuracy offline.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ptq.errors import UserError
from ptq.host.cache import atomic_write, cache_dir
from ptq.models.base import SPLITS, Batch, Built

__all__ = ["TRAIN_CONFIG", "DigitsCNN", "DigitsData", "TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 20
    lr: float = 2e-3
    batch_size: int = 64
    n_eval: int = 360  # held out, never trained or calibrated on
    n_calib: int = 256  # drawn from the training split


TRAIN_CONFIG = TrainConfig()


class DigitsCNN(nn.Module):
    """8x8 grey digit -> two conv blocks -> two linear layers -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 4 * 4, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@functools.cache
def _splits(cfg: TrainConfig) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(cfg.seed))
    eval_idx, train_idx = order[: cfg.n_eval], order[cfg.n_eval :]
    return {
        "eval": (x[eval_idx], y[eval_idx]),
        "train": (x[train_idx], y[train_idx]),
        "calib": (x[train_idx[: cfg.n_calib]], y[train_idx[: cfg.n_calib]]),
    }


@dataclass(frozen=True)
class DigitsData:
    """Cyclic slices of a fixed split; ``calib`` is drawn from training data, ``eval`` is held out."""

    cfg: TrainConfig = TRAIN_CONFIG
    description: str = (
        f"scikit-learn digits: {TRAIN_CONFIG.n_eval} held-out eval images, "
        f"{TRAIN_CONFIG.n_calib} calibration images from the training split (seed {TRAIN_CONFIG.seed})"
    )

    def size(self, split: str) -> int:
        return len(self._split(split)[1])

    def _split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in SPLITS:
            raise UserError(f"unknown data split {split!r}; valid splits: {', '.join(SPLITS)}")
        return _splits(self.cfg)[split]

    def batch(self, split: str, index: int, batch_size: int) -> Batch:
        x, y = self._split(split)
        idx = torch.arange(index * batch_size, (index + 1) * batch_size) % len(y)
        return Batch((x[idx],), y[idx])


def _config_key(cfg: TrainConfig) -> str:
    blob = json.dumps({"model": "DigitsCNN-v1", **asdict(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train(cfg: TrainConfig = TRAIN_CONFIG) -> DigitsCNN:
    """Train from scratch, deterministically (fixed seed, single-threaded for repeatability)."""
    x, y = _splits(cfg)["train"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(cfg.seed)
        model = DigitsCNN()
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        g = torch.Generator().manual_seed(cfg.seed + 1)
        model.train()
        for _ in range(cfg.epochs):
            for idx in torch.randperm(len(y), generator=g).split(cfg.batch_size):
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def trained_model(cfg: TrainConfig = TRAIN_CONFIG) -> tuple[DigitsCNN, str]:
    """The cached trained model (training it on first use) and its provenance string."""
    key = _config_key(cfg)
    path = cache_dir() / f"digits_cnn-{key}.pt"
    model = DigitsCNN()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        how = "loaded"
    else:
        model = train(cfg)
        buf = io.BytesIO()
        torch.save(model.state_dict(), buf)
        atomic_write(path, lambda fh: fh.write(buf.getvalue()))
        how = "trained now"
    return model.eval(), (
        f"trained:digits:seed={cfg.seed},epochs={cfg.epochs},key={key},sha256={weights_hash(model)} ({how})"
    )


def weights_hash(model: nn.Module) -> str:
    """Content hash of the trained tensors: training is deterministic per CPU, not across CPUs
    (another ISA takes other kernels), so two runs' drift is comparable only where this matches."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:12]


def _register() -> None:
    from ptq.models import register_model

    @register_model(
        "digits_cnn",
        batch_size=64,
        family="vision",
        description="small CNN trained on scikit-learn's digits (real labels, held-out accuracy)",
        requires=("sklearn",),
        tags=("cnn", "labeled"),
    )
    def build(*, weights: str) -> Built:
        if weights == "random":
            torch.manual_seed(TRAIN_CONFIG.seed)
            return Built(DigitsCNN(), weights=f"random:seed={TRAIN_CONFIG.seed}", data=DigitsData())
        model, label = trained_model()
        return Built(model, weights=label, data=DigitsData())


_register()
