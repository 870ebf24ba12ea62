"""Save a quantized model and load it in another process: ``ptq.save`` / ``ptq.load``.

A quantized ``state_dict`` alone cannot be loaded into the float model: its keys and tensors
belong to the quantized modules (packed int8 weights, scales, zero points, FX's rewritten
graph). Loading therefore rebuilds that structure first, from a manifest saved beside the
weights: the registry's float model, then the same recipe applied to it, then
``load_state_dict`` overwrites every value (calibration results included).

File layout: a zip archive (stored, not compressed) holding ``manifest.json`` (readable with
``unzip -p model.ptq manifest.json``) and ``state_dict.pt`` (``torch.save`` of the state_dict).

Loading checks every saved value's layout (tensor class, dtype, shape; packed parameters unpacked
by their own ``__getstate__``) against the rebuilt model before returning: a quantized module
takes packed weights of any shape, so another model's file would load and fail on its first call.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path
from typing import IO, Any, TypeVar

import torch
from torch import nn

from ptq.errors import DuplicateRegistration, PtqError, UserError
from ptq.host.cache import atomic_write
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
            raise DuplicateRegistration(f"a rebuild for {recipe_type.__name__} is already registered")
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


def _recipe_types(base: type[Recipe] = Recipe) -> dict[str, type[Recipe]]:
    found: dict[str, type[Recipe]] = {}
    for sub in base.__subclasses__():
        found[sub.__name__] = sub
        found.update(_recipe_types(sub))
    return found


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


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
        raise UserError(
            f"recipe type {type_name!r} has no field(s) {', '.join(unknown)}; was it saved by another version?"
        )
    for key, value in fields.items():
        if isinstance(value, list):  # to_dict writes tuples and frozensets as lists, nested ones too
            fields[key] = frozenset(value) if "frozenset" in declared[key] else _tuples(value)
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


def _damaged(path: str | os.PathLike[str], member: str, exc: BaseException) -> UserError:
    """A member that does not read back as written (a CRC mismatch, a truncated deflate stream):
    the file was cut short or changed after ptq.save wrote it."""
    return UserError(
        f"{os.fspath(path)!r}: damaged: its {member} does not read back as ptq.save wrote it "
        f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'}); the file was "
        "truncated or changed after it was written: copy it again, or save the model again with ptq.save"
    )


#: What reading a zip member raises where its bytes are not the ones written: zipfile's CRC check
#: (``BadZipFile``), a cut-short member (``EOFError``), a damaged compressed stream (``zlib.error``).
_UNREADABLE = (zipfile.BadZipFile, EOFError, zlib.error)


def _starts_as_zip(path: str | os.PathLike[str]) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                raw = archive.read(_MANIFEST)
            except _UNREADABLE as exc:
                raise _damaged(path, _MANIFEST, exc) from None
        manifest = json.loads(raw)
    except zipfile.BadZipFile as exc:
        if _starts_as_zip(path):  # a zip's first member, but no directory at its end: cut short
            raise _damaged(path, "zip directory", exc) from None
        raise UserError(f"{os.fspath(path)!r} is not a model file written by ptq.save") from None
    except (KeyError, json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{os.fspath(path)!r} is not a model file written by ptq.save") from None
    except OSError as exc:
        raise UserError(f"{os.fspath(path)!r}: cannot read it: {exc.strerror or exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{os.fspath(path)!r} is not a model file written by ptq.save")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{os.fspath(path)!r} has format version {manifest.get('format_version')!r}; "
            f"this ptq reads version {FORMAT_VERSION}: save it again with this ptq"
        )
    missing = [k for k in ("model", "model_version", "recipe_config") if k not in manifest]
    if missing:
        raise UserError(
            f"{os.fspath(path)!r}: its manifest lacks {', '.join(missing)}; the file is damaged: save it again"
        )
    return manifest


@contextmanager
def _naming(path: str | os.PathLike[str]) -> Iterator[None]:
    """Any ptq error inside (an unknown model or recipe type, a recipe that no longer applies)
    names the file it was loading."""
    try:
        yield
    except PtqError as exc:
        raise UserError(f"{os.fspath(path)!r}: {exc}") from None


def _read_state(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The saved state_dict, unpickled with ``weights_only=True``. A refusal is not retried in
    any other mode, and the message does not suggest one: the file may be hostile."""
    try:
        with zipfile.ZipFile(path) as archive:
            payload = io.BytesIO(archive.read(_WEIGHTS))
    except KeyError:
        raise UserError(f"{os.fspath(path)!r}: no {_WEIGHTS} in it; it is damaged or not written by ptq.save") from None
    except _UNREADABLE as exc:
        raise _damaged(path, _WEIGHTS, exc) from None
    except OSError as exc:
        raise UserError(f"{os.fspath(path)!r}: cannot read it: {exc.strerror or exc}") from None
    try:
        with torch.serialization.safe_globals([torch.ScriptObject]):
            state = torch.load(payload, weights_only=True)
    except pickle.UnpicklingError as exc:
        asked = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f" (it asks for {asked.group(1)})" if asked else ""
        raise UserError(
            f"{os.fspath(path)!r}: refused to unpickle its {_WEIGHTS}: it holds more than tensors{what}; the file "
            "may be malicious or not a ptq file: do not load it; save the model again with ptq.save"
        ) from None
    except RuntimeError as exc:
        raise UserError(
            f"{os.fspath(path)!r}: its {_WEIGHTS} is damaged ({str(exc).splitlines()[0]}); save the model again"
        ) from None
    if not isinstance(state, Mapping):
        raise UserError(
            f"{os.fspath(path)!r}: its {_WEIGHTS} holds a {type(state).__name__}, not a state_dict; "
            "save the model again with ptq.save"
        )
    return state  # as loaded: its ``_metadata`` holds the module versions load_state_dict needs


def _layout(value: Any) -> list[str]:
    """What must match for ``value`` to replace a rebuilt model's value: per tensor its class
    (a torchao subclass), dtype, shape and quantization scheme. Packed parameters (torch.ao's
    ``_packed_params``, quantized RNN cells) are unpacked by their own ``__getstate__``, the way
    the modules' ``weight()`` / ``_weight_bias()`` read them; strings inside name the packing."""
    if isinstance(value, torch.Tensor):
        kind = "" if type(value) in (torch.Tensor, nn.Parameter) else f"{type(value).__name__} "
        scheme = f" {value.qscheme()}".replace("torch.", "") if value.is_quantized else ""
        return [f"{kind}{str(value.dtype).removeprefix('torch.')} {list(value.shape)}{scheme}"]
    if isinstance(value, torch.ScriptObject):
        script: Any = value  # torch's stub of ScriptObject has neither _has_method nor __getstate__
        return _layout(script.__getstate__()) if script._has_method("__getstate__") else [str(value._type())]
    if isinstance(value, (tuple, list)):
        return [part for item in value for part in _layout(item)]
    if isinstance(value, (str, torch.dtype)):
        return [str(value).removeprefix("torch.")]
    return [type(value).__name__]


def _check_state(path: str | os.PathLike[str], state: Mapping[str, Any], model: nn.Module, what: str) -> None:
    """Refuse ``state`` unless its keys and every value's layout are the rebuilt model's: one
    error naming the file, the first differing key, both layouts and the fix."""
    expected = model.state_dict()
    fix = (
        "the weights are another model's or recipe's than the manifest names; save the model again with "
        "ptq.save, naming the entry and recipe that produced it"
    )
    missing, extra = [k for k in expected if k not in state], [k for k in state if k not in expected]
    if missing or extra:
        keys = "; ".join(
            f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", extra))
            if keys
        )
        raise UserError(f"{os.fspath(path)!r}: keys differ from {what} ({keys}): {fix}")
    differ = [(k, _layout(state[k]), _layout(expected[k])) for k in expected]
    differ = [(k, saved, want) for k, saved, want in differ if saved != want]
    if differ:
        key, saved, want = differ[0]
        got, wanted = next(pair for pair in zip_longest(saved, want, fillvalue="nothing") if pair[0] != pair[1])
        more = f" ({len(differ) - 1} more tensor(s) differ)" if len(differ) > 1 else ""
        raise UserError(
            f"{os.fspath(path)!r}: tensor {key!r} is {got} in the file, but {wanted} in {what}{more}: {fix}"
        )


def load(path: str | os.PathLike[str]) -> Loaded:
    """Rebuild the quantized structure the manifest names, check the saved values fit it, then
    load them into it.

    The float model is built with seeded random weights (no download; every value is then
    replaced), the recipe's structure re-applied, each saved value's layout compared with the
    rebuilt one, and the state_dict loaded strictly. The file is read with
    ``torch.load(weights_only=True)``, allowing ``torch.ScriptObject``: quantized RNNs keep their
    packed weights in TorchScript objects. Every error names the file.
    """
    manifest = read_manifest(path)
    with _naming(path):
        entry = get_model(manifest["model"])
        if entry.version != manifest["model_version"]:
            raise UserError(
                f"holds {entry.name!r} version {manifest['model_version']}, but the registry's is "
                f"version {entry.version}: the model definition changed, so quantize and save it again"
            )
        recipe = recipe_from_dict(manifest["recipe_config"])
        built = entry.build(weights="random")
        model = apply_recipe(_structure_recipe(recipe), entry, built).model
    # Read after the rebuild: applying the recipe imports its stack, and torchao allows its tensor
    # subclasses in weights_only unpickling only once imported.
    state = _read_state(path)
    _check_state(path, state, model, f"model {entry.name!r} quantized by {recipe.name!r}")
    model.load_state_dict(state, strict=True)
    model.eval()
    return Loaded(model=model, manifest=manifest, entry=entry, recipe=recipe, data=built.data)
