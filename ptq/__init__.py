"""ptq: a post-training-quantization benchmark regression suite for PyTorch."""

from __future__ import annotations

from ptq.errors import NotApplicable, PtqError, RecipeFailed, UserError
from ptq.models import Built, ModelEntry, TensorData, get_model, list_models, register_model
from ptq.recipes import Recipe, apply_recipe, get_recipe, list_recipes, register_handler, register_recipe
from ptq.serialize import Loaded, load, save

__version__ = "0.1.0"

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
