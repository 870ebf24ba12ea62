"""Labeled ImageNet evaluation on a folder of the user's own images (``root/<class>/<image>``).

The torchvision entries use it instead of the offline photo crops when a folder is set: by the
pytest option ``--ptq-image-folder``, the config key ``[tool.ptq.data] image_folder``, or the
environment variable ``PTQ_IMAGE_FOLDER`` (read by every build, so ``ptq diagnose`` sees it too).
Class folders are named by ImageNet class index (``"207"``) or category name (``"golden retriever"``,
``"golden_retriever"``); torchvision ships no WordNet-id list, so ``n02099601`` is refused with
that advice. Every image is decoded once and kept in memory: a few hundred images is the intended size.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ptq.config.sections import DATA
from ptq.errors import UserError
from ptq.models.base import SPLITS, Batch

__all__ = [
    "CALIB_FRACTION",
    "ENV_VAR",
    "SECTION",
    "ImageFolderData",
    "class_label",
    "image_folder",
    "load_image_folder",
    "preprocessing",
    "set_image_folder",
]

ENV_VAR = "PTQ_IMAGE_FOLDER"
#: Without ``calib``/``eval`` subfolders, this share of a seeded permutation calibrates.
CALIB_FRACTION = 0.2
SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WNID = re.compile(r"n\d{8}")

#: ``[tool.ptq.data]`` (declared in :mod:`ptq.config.sections`).
SECTION = DATA

_FOLDER: Path | None = None


def set_image_folder(path: str | os.PathLike[str] | None) -> Path | None:
    """Set (or clear, with None) the folder the torchvision entries read; returns the previous one."""
    global _FOLDER
    previous, _FOLDER = _FOLDER, (Path(path) if path is not None else None)
    return previous


def image_folder() -> Path | None:
    """The folder set by :func:`set_image_folder`, else ``$PTQ_IMAGE_FOLDER``, else None."""
    if _FOLDER is not None:
        return _FOLDER
    env = os.environ.get(ENV_VAR, "")
    return Path(env) if env else None


def preprocessing(weights_enum=None) -> Callable:
    """The weights' own transforms; without weights, resize 256, center-crop 224, ImageNet normalisation."""
    if weights_enum is not None:
        return weights_enum.transforms()
    from torchvision.transforms import v2

    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(256, antialias=True),
            v2.CenterCrop(224),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def _normalise(name: str) -> str:
    return name.replace("_", " ").strip().casefold()


def class_label(folder: str, categories: Sequence[str], *, where: str = "") -> tuple[int, str]:
    """(ImageNet class index, how the folder named it: ``indices`` or ``categories``)."""
    at = f" in {where}" if where else ""
    if folder.isdigit():
        index = int(folder)
        if index >= len(categories):
            raise UserError(
                f"image folder class {folder!r}{at}: index out of range; class indices run 0-{len(categories) - 1}"
            )
        return index, "indices"
    hits = [i for i, c in enumerate(categories) if _normalise(c) == _normalise(folder)]
    if len(hits) > 1:  # names differing only in case ("Cardigan" the dog, "cardigan" the sweater)
        hits = [i for i in hits if categories[i] == folder.replace("_", " ")] or hits
    if len(hits) == 1:
        return hits[0], "categories"
    if hits:
        raise UserError(
            f"image folder class {folder!r}{at} names {len(hits)} categories "
            f"(indices {', '.join(map(str, hits))}); rename the folder to one of those indices"
        )
    wnid = (
        " looks like a WordNet id, but torchvision ships no WordNet-id list;"
        if _WNID.fullmatch(folder)
        else " is not a known class;"
    )
    raise UserError(
        f"image folder class {folder!r}{at}{wnid} name class folders by ImageNet class index "
        f"(0-{len(categories) - 1}) or category name (e.g. {categories[0]!r}; "
        "'_' may stand for ' ')"
    )


def _scan(root: Path) -> list[tuple[str, str]]:
    """(image path, class folder name) of every image under ``root``, sorted."""
    from torchvision.datasets import ImageFolder

    try:
        found = ImageFolder(str(root))
    except FileNotFoundError as exc:
        raise UserError(f"image folder {root}: {exc}; expected layout <root>/<class>/<image>") from None
    return [(path, found.classes[target]) for path, target in found.samples]


def _labelled(
    samples: list[tuple[str, str]], categories: Sequence[str], root: Path, forms: Counter
) -> tuple[tuple[str, int], ...]:
    labels: dict[str, int] = {}
    out = []
    for path, folder in samples:
        if folder not in labels:
            labels[folder], form = class_label(folder, categories, where=str(root))
            forms[form] += 1
        out.append((path, labels[folder]))
    return tuple(out)


@dataclass(frozen=True)
class ImageFolderData:
    """Deterministic, disjoint ``calib`` and ``eval`` lists of (image path, ImageNet label).

    ``labeled``: batches carry targets (only meaningful for trained weights). Batches are cyclic
    slices of a split, like every finite data source here; ``size(split)`` is its length.
    """

    root: Path
    calib: tuple[tuple[str, int], ...]
    eval: tuple[tuple[str, int], ...]
    transform: Callable = field(compare=False, repr=False)
    labeled: bool = True
    description: str = ""
    _decoded: dict[str, torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def _split(self, split: str) -> tuple[tuple[str, int], ...]:
        if split not in SPLITS:
            raise UserError(f"unknown data split {split!r}; valid splits: {', '.join(SPLITS)}")
        return self.calib if split == "calib" else self.eval

    def size(self, split: str) -> int:
        return len(self._split(split))

    def _image(self, path: str) -> torch.Tensor:
        if path not in self._decoded:
            from torchvision.datasets.folder import default_loader

            self._decoded[path] = self.transform(default_loader(path))
        return self._decoded[path]

    def batch(self, split: str, index: int, batch_size: int) -> Batch:
        items = self._split(split)
        chosen = [items[i % len(items)] for i in range(index * batch_size, (index + 1) * batch_size)]
        inputs = torch.stack([self._image(path) for path, _ in chosen])
        target = torch.tensor([label for _, label in chosen]) if self.labeled else None
        return Batch((inputs,), target)


def load_image_folder(
    root: str | os.PathLike[str],
    *,
    categories: Sequence[str],
    transform: Callable,
    labeled: bool = True,
    calib_fraction: float = CALIB_FRACTION,
    seed: int = SEED,
) -> ImageFolderData:
    """Scan ``root`` and split it: its ``calib``/``eval`` subfolders if both exist, else a seeded
    permutation of the sorted image list, ``calib_fraction`` (at least one image) calibrating."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(
            f"image folder {str(root)!r} is not a directory; point --ptq-image-folder, "
            f"[tool.ptq.data] image_folder or ${ENV_VAR} at a <root>/<class>/<image> tree"
        )
    forms: Counter = Counter()
    if (root / "calib").is_dir() and (root / "eval").is_dir():
        calib = _labelled(_scan(root / "calib"), categories, root / "calib", forms)
        evaluation = _labelled(_scan(root / "eval"), categories, root / "eval", forms)
        how = "calib/eval subfolders"
    else:
        samples = _labelled(_scan(root), categories, root, forms)
        if len(samples) < 2:
            raise UserError(
                f"image folder {root} holds {len(samples)} image; it needs at least 2 "
                "(one to calibrate, one to evaluate)"
            )
        order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(seed)).tolist()
        n_calib = min(len(samples) - 1, max(1, round(calib_fraction * len(samples))))
        calib = tuple(samples[i] for i in order[:n_calib])
        evaluation = tuple(samples[i] for i in order[n_calib:])
        how = f"seeded {calib_fraction:.0%} calib split, seed {seed}"
    if not evaluation or not calib:
        raise UserError(f"image folder {root}: the calib and eval splits each need at least one image")
    labels = "+".join(sorted(forms)) if labeled else "unused (random weights)"
    description = f"ImageFolder {root} ({len(evaluation)} eval images, {len(calib)} calib; {how}; labels: {labels})"
    return ImageFolderData(root, calib, evaluation, transform, labeled, description)
