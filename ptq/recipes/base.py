"""Recipes are data: a frozen config says what to do, a handler registered for its type does it."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, TypeVar

from torch import nn

from ptq.errors import NotApplicable, PtqError, RecipeFailed, UserError
from ptq.models.base import Built, ModelEntry

__all__ = ["Quantized", "Recipe", "apply_recipe", "handler_for", "register_handler"]


@dataclass(frozen=True)
class Recipe:
    """Base of every recipe config. Subclasses add their knobs as fields.

    ``version`` changes whenever the recipe's meaning changes, so results stored under
    the old meaning stop being compared. Instances are hashable and safe as pytest params.
    """

    name: str
    version: int = 1
    description: str = ""

    #: The quantization stack the handler uses, recorded with every result.
    stack: ClassVar[str] = "none"

    def quantizes(self) -> bool:
        """False for float forms (eager, compiled, exported fp32): they need quantize no layer."""
        return True

    def precision(self) -> str:
        """The arithmetic the recipe's weighted layers run in (``fp32``, ``int8``, ``bf16``...), so
        summaries can pick the fastest case of one precision."""
        return "int8" if self.quantizes() else "fp32"

    def to_dict(self) -> dict[str, Any]:
        """``{_type, _version, _data}``, the shape torchao uses to serialise configs."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, (tuple, frozenset)):
                data[key] = sorted(value) if isinstance(value, frozenset) else list(value)
        return {"_type": type(self).__name__, "_version": self.version, "_data": data}


@dataclass
class Quantized:
    """What a handler returns: the model to run, and what it did to get there."""

    model: nn.Module
    stack: str
    engine: str | None = None
    quantized_layers: int = 0
    float_layers: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    quantize_seconds: float = 0.0


Handler = Callable[[Any, nn.Module, Built, ModelEntry], Quantized]
R = TypeVar("R", bound=Recipe)
_HANDLERS: dict[type, Handler] = {}


def register_handler(config_type: type[R]) -> Callable[[Callable[..., Quantized]], Callable[..., Quantized]]:
    """Register ``fn(recipe, float_copy, built, entry) -> Quantized`` for a recipe type.

    ``float_copy`` is a private deep copy of the float model: the handler may mutate it.
    """

    def decorator(fn: Callable[..., Quantized]) -> Callable[..., Quantized]:
        if config_type in _HANDLERS:
            raise UserError(f"a handler for {config_type.__name__} is already registered")
        _HANDLERS[config_type] = fn
        return fn

    return decorator


def handler_for(recipe: Recipe) -> Handler:
    for klass in type(recipe).__mro__:
        if klass in _HANDLERS:
            return _HANDLERS[klass]
    raise UserError(
        f"recipe {recipe.name!r} has type {type(recipe).__name__}, which has no handler; "
        "decorate one with ptq.recipes.register_handler"
    )


def apply_recipe(recipe: Recipe, entry: ModelEntry, built: Built) -> Quantized:
    """Quantize a copy of ``built.model``; the float model is left untouched.

    :class:`NotApplicable` passes through (the case is skipped); any other exception becomes
    :class:`RecipeFailed` naming model and recipe, so only that case fails.
    """
    handler = handler_for(recipe)
    start = time.perf_counter()
    try:
        result = handler(recipe, copy.deepcopy(built.model), built, entry)
    except PtqError:
        raise
    except Exception as exc:
        raise RecipeFailed(entry.name, recipe.name, exc) from exc
    result.quantize_seconds = time.perf_counter() - start
    result.model.eval()
    if recipe.quantizes() and result.quantized_layers == 0:
        raise NotApplicable(f"recipe {recipe.name!r} quantized no layer of model {entry.name!r}")
    return result
