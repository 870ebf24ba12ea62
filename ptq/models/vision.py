"""torchvision classifiers, with their real weight enums, offline photographs or the user's image folder."""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass
from urllib.parse import urlparse

import torch
import torchvision

from ptq.errors import UserError
from ptq.models.base import SPLITS, Batch, Built, TensorData
from ptq.models.image_folder import image_folder, load_image_folder, preprocessing

__all__ = ["PhotoCrops", "recalibrate_batchnorm", "resolve_torchvision_weights"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SEED = 0


def _cached_checkpoint(url: str) -> str:
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def resolve_torchvision_weights(name: str, policy: str):
    """(weights enum or None, provenance string) for a torchvision model under a policy.

    ``auto`` never downloads: it takes the DEFAULT enum only when its file is already
    in the torch hub cache, so an offline machine gets seeded random weights, recorded as such.
    """
    if policy == "random":
        return None, f"random:seed={SEED}"
    enum = torchvision.models.get_model_weights(name).DEFAULT
    label = f"pretrained:torchvision:{type(enum).__name__}.{enum.name}"
    if policy == "pretrained" or os.path.exists(_cached_checkpoint(enum.url)):
        return enum, label
    return None, f"random:seed={SEED} (pretrained {type(enum).__name__}.{enum.name} not in torch hub cache)"


@functools.lru_cache(maxsize=1)
def _sample_photos() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(torch.tensor(img).permute(2, 0, 1).float().div(255.0) for img in load_sample_images().images)


@dataclass(frozen=True)
class PhotoCrops:
    """Crops of scikit-learn's two sample photographs (china, flower), ImageNet-normalised.

    Calibration crops come from the left half of each photo and evaluation crops from the
    right half, so the splits share no pixel. Positions and sizes are seeded.
    """

    size: int = 224
    seed: int = SEED
    description: str = "crops of scikit-learn sample photographs (calib: left halves, eval: right halves)"

    def batch(self, split: str, index: int, batch_size: int) -> Batch:
        if split not in SPLITS:
            raise UserError(f"unknown data split {split!r}; valid splits: {', '.join(SPLITS)}")
        photos = _sample_photos()
        g = torch.Generator().manual_seed(self.seed + 7919 * (SPLITS.index(split) + 1) + index)
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        out = []
        for _ in range(batch_size):
            img = photos[int(torch.randint(len(photos), (1,), generator=g))]
            _, h, w = img.shape
            half = w // 2
            x0 = 0 if split == "calib" else half
            side = int(torch.randint(self.size * 2 // 3, min(h, half) + 1, (1,), generator=g))
            top = int(torch.randint(0, h - side + 1, (1,), generator=g))
            left = x0 + int(torch.randint(0, half - side + 1, (1,), generator=g))
            crop = img[:, top : top + side, left : left + side].unsqueeze(0)
            crop = torch.nn.functional.interpolate(
                crop, size=(self.size, self.size), mode="bilinear", antialias=True, align_corners=False
            )[0]
            out.append((crop - mean) / std)
        return Batch((torch.stack(out),))


#: Calibration photos used to re-estimate BatchNorm statistics of random-weight models.
BN_RECAL_BATCHES, BN_RECAL_BATCH_SIZE = 2, 16


def recalibrate_batchnorm(
    model: torch.nn.Module, data, *, batches: int = BN_RECAL_BATCHES, batch_size: int = BN_RECAL_BATCH_SIZE
) -> int:
    """Re-estimate every BatchNorm's running mean and variance on ``calib`` batches.

    Seeded random init leaves BatchNorm at mean 0 / variance 1, so activations shrink layer by
    layer (MobileNetV2 outputs ~1e-9: denormal floats, slow, and drift between two near-zero
    outputs is meaningless). With statistics of real photographs every layer sees unit-scale
    activations, as in a trained network. Returns how many BatchNorm layers were updated.
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    with torch.no_grad():
        for i in range(batches):
            model(*data.batch("calib", i, batch_size).inputs)
    for m in norms:
        m.momentum = 0.1
    model.eval()
    return len(norms)


def _image_data(name: str, enum):
    """The user's image folder when one is set (labels only with trained weights), else photo crops."""
    folder = image_folder()
    if folder is not None:
        categories = (enum or torchvision.models.get_model_weights(name).DEFAULT).meta["categories"]
        return load_image_folder(folder, categories=categories, transform=preprocessing(enum), labeled=enum is not None)
    if importlib.util.find_spec("sklearn") is not None:
        return PhotoCrops()
    return TensorData(
        lambda g, n: (torch.randn(n, 3, 224, 224, generator=g),),
        "randn(3, 224, 224) (scikit-learn missing: no sample photographs)",
    )


def _register(name: str, description: str) -> None:
    from ptq.models import register_model

    # version 2: random weights get BatchNorm statistics re-estimated on the calibration photos
    @register_model(name, batch_size=1, family="vision", description=description, version=2, tags=("cnn",))
    def build(*, weights: str) -> Built:
        enum, label = resolve_torchvision_weights(name, weights)
        data = _image_data(name, enum)  # first: a bad image folder fails before the model is built
        torch.manual_seed(SEED)
        model = torchvision.models.get_model(name, weights=enum)
        if enum is None and recalibrate_batchnorm(model, data):
            label = label.replace(f"random:seed={SEED}", f"random:seed={SEED}+bn-recalibrated", 1)
        return Built(model, weights=label, data=data)


_register("mobilenet_v2", "torchvision MobileNetV2, the quantization tutorial's model")
_register("resnet18", "torchvision ResNet-18")
_register("mobilenet_v3_large", "torchvision MobileNetV3-Large")
