"""Save a quantized model and load it in another process: ``ptq.save`` / ``ptq.load``.

A quantized ``state_dict`` alone cannot be loaded into the float model: its keys and tensors
belong to the quantized modules (packed int8 weights, scales, zero points, FX's rewritten
graph). Loading therefore rebuilds that structure first, from a manifest saved beside the
weights: the registry's float model, then the same recipe applied to it, then
``load_state_dict`` overwrites every value (calibration results included).

File layout: a zip archive (stored, not compressed) holding ``manifest.json`` (readable with
``unzip -p model.ptq manifest.json``) and ``state_dict.pt`` (``torch.save`` of the state_dict).
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import torch
from torch import nn

from ptq.cache import atomic_write
from ptq.errors import UserError
from ptq.models import DataSource, ModelEntry, get_model
from ptq.recipes import Recipe, StaticInt8, apply_recipe, get_recipe

__all__ = ["FORMAT", "FORMAT_VERSION", "Loaded", "load", "recipe_from_dict", "register_rebuild", "save"]

FORMAT = "ptq.quantized-model"
FORMAT_VERSION = 1
_MANIFEST, _WEIGHTS = "manifest.json", "state_dict.pt"

R = TypeVar("R", bound=Recipe)
_REBUILDS: dict[type, Callable[[Any], Recipe]] = {}


def register_rebuild(recipe_type: type[R]) -> Callable[[Callable[[R], Recipe]], Callable[[R], Recipe]]:
    """Register ``fn(recipe) -> recipe`` giving a cheaper recipe that builds the same modules.

    Loading only needs the quantized *structure*; every value comes from the file. Static
    recipes use it to calibrate on one sample instead of their full calibration set.
    """

    def decorator(fn: Callable[[R], Recipe]) -> Callable[[R], Recipe]:
        if recipe_type in _REBUILDS:
            raise UserError(f"a rebuild for {recipe_type.__name__} is already registered")
        _REBUILDS[recipe_type] = fn
        return fn

    return decorator


@register_rebuild(StaticInt8)
def _static_structure(recipe: StaticInt8) -> Recipe:
    # Same qconfig, engine and observers, hence the same graph; observed ranges are overwritten.
    return dataclasses.replace(recipe, calib_batches=1, calib_batch_size=1)


def _structure_recipe(recipe: Recipe) -> Recipe:
    for klass in type(recipe).__mro__:
        if klass in _REBUILDS:
            return _REBUILDS[klass](recipe)
    return recipe


def _recipe_types(base: type = Recipe) -> dict[str, type]:
    found: dict[str, type] = {}
    for sub in base.__subclasses__():
        found[sub.__name__] = sub
        found.update(_recipe_types(sub))
    return found


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """The recipe a ``Recipe.to_dict()`` describes; its type must be imported in this process."""
    try:
        type_name, fields = data["_type"], dict(data["_data"])
    except (KeyError, TypeError):
        raise UserError(f"not a recipe description (want {{_type, _version, _data}}): {data!r}") from None
    types = _recipe_types()
    if type_name not in types:
        raise UserError(
            f"recipe type {type_name!r} is not defined in this process; import the module that defines it "
            f"(known: {', '.join(sorted(types))})"
        )
    klass = types[type_name]
    declared = {f.name: str(f.type) for f in dataclasses.fields(klass)}
    unknown = sorted(set(fields) - set(declared))
    if unknown:
        raise UserError(f"recipe type {type_name!r} has no field(s) {', '.join(unknown)}; was it saved by another version?")
    for key, value in fields.items():
        if isinstance(value, list):  # to_dict writes tuples and frozensets as lists
            fields[key] = frozenset(value) if "frozenset" in declared[key] else tuple(value)
    return klass(**fields)


@dataclass
class Loaded:
    """A model read back by :func:`load`, in eval mode, and what it was saved as."""

    model: nn.Module
    manifest: dict[str, Any]
    entry: ModelEntry
    recipe: Recipe
    data: DataSource  #: the model entry's data, for evaluation inputs


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def savable(recipe: Recipe) -> bool:
    """Recipes whose result is an eager PyTorch module that a state_dict rebuilds.

    Deployed forms (TorchScript, torch.compile), PT2E graphs and ONNX Runtime sessions have
    their own formats (``torch.jit.save``, ``torch.export.save``, the ONNX file).
    """
    from ptq.recipes import DynamicQuant, Float32, StaticInt8, TorchaoRecipe

    return isinstance(recipe, (Float32, DynamicQuant, StaticInt8, TorchaoRecipe))


def save(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    entry: ModelEntry | str,
    recipe: Recipe | str,
    weights: str = "",
) -> Path:
    """Write ``model`` (quantized by ``recipe`` from registry model ``entry``) to ``path``, atomically.

    ``weights`` is the float weights' provenance (``Built.weights``), kept for the record.
    """
    entry = get_model(entry) if isinstance(entry, str) else entry
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    if not savable(recipe):
        raise UserError(
            f"ptq.save stores eager PyTorch modules; recipe {recipe.name!r} ({type(recipe).__name__}, "
            f"stack {type(recipe).stack}) has its own format: torch.jit.save for TorchScript, "
            "torch.export.save for PT2E, the ONNX file for onnxruntime"
        )
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": entry.name,
        "model_version": entry.version,
        "weights": weights,
        "recipe": recipe.name,
        "recipe_config": recipe.to_dict(),
        "torch": torch.__version__,
        "torchao": _version("torchao"),
    }
    state = model.state_dict()

    def write(fh: IO[bytes]) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(_MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
            with archive.open(_WEIGHTS, "w", force_zip64=True) as member:
                torch.save(state, member)

    return atomic_write(path, write)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read(_MANIFEST))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        raise UserError(f"{os.fspath(path)!r} is not a model file written by ptq.save") from None
    if manifest.get("format") != FORMAT:
        raise UserError(f"{os.fspath(path)!r} is not a model file written by ptq.save")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{os.fspath(path)!r} has format version {manifest.get('format_version')!r}; "
            f"this ptq reads version {FORMAT_VERSION}: save it again with this ptq"
        )
    return manifest


def load(path: str | os.PathLike[str]) -> Loaded:
    """Rebuild the quantized structure the manifest names, then load the saved values into it.

    The float model is built with seeded random weights (no download; every value is then
    replaced), the recipe's structure re-applied, and the state_dict loaded strictly. The file
    is read with ``torch.load(weights_only=True)``, allowing ``torch.ScriptObject``: quantized
    RNNs keep their packed weights in TorchScript objects.
    """
    manifest = read_manifest(path)
    entry = get_model(manifest["model"])
    if entry.version != manifest["model_version"]:
        raise UserError(
            f"{os.fspath(path)!r} holds {entry.name!r} version {manifest['model_version']}, but the registry's is "
            f"version {entry.version}: the model definition changed, so quantize and save it again"
        )
    recipe = recipe_from_dict(manifest["recipe_config"])
    built = entry.build(weights="random")
    model = apply_recipe(_structure_recipe(recipe), entry, built).model
    with zipfile.ZipFile(path) as archive:
        payload = io.BytesIO(archive.read(_WEIGHTS))
    with torch.serialization.safe_globals([torch.ScriptObject]):
        state = torch.load(payload, weights_only=True)
    model.load_state_dict(state, strict=True)
    model.eval()
    return Loaded(model=model, manifest=manifest, entry=entry, recipe=recipe, data=built.data)
