"""ptq: a post-training-quantization benchmark regression suite for PyTorch.

The public names below load on first use (PEP 562), so ``import ptq`` and the commands that
only read result files (``ptq --help``, ``compare``, ``report``, ``merge``) do not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: The distribution's version, its one source (pyproject.toml reads it); released as tag v<version>.
__version__ = "0.2.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    **dict.fromkeys(["NotApplicable", "PtqError", "RecipeFailed", "UserError"], "ptq.errors"),
    **dict.fromkeys(["Built", "ModelEntry", "TensorData", "get_model", "list_models", "register_model"], "ptq.models"),
    **dict.fromkeys(
        ["Recipe", "apply_recipe", "get_recipe", "list_recipes", "register_handler", "register_recipe"], "ptq.recipes"
    ),
    **dict.fromkeys(["Loaded", "load", "save"], "ptq.recipes.serialize"),
}

__all__ = [
    "Built",
    "Loaded",
    "ModelEntry",
    "NotApplicable",
    "PtqError",
    "Recipe",
    "RecipeFailed",
    "TensorData",
    "UserError",
    "__version__",
    "apply_recipe",
    "get_model",
    "get_recipe",
    "list_models",
    "list_recipes",
    "load",
    "register_handler",
    "register_model",
    "register_recipe",
    "save",
]

if TYPE_CHECKING:
    from ptq.errors import NotApplicable, PtqError, RecipeFailed, UserError
    from ptq.models import Built, ModelEntry, TensorData, get_model, list_models, register_model
    from ptq.recipes import Recipe, apply_recipe, get_recipe, list_recipes, register_handler, register_recipe
    from ptq.recipes.serialize import Loaded, load, save


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ptq' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
