"""The model registry: ``register_model``, ``get_model``, ``list_models``.

Built-in entries register on import. Users add theirs from their own ``conftest.py``
(a plain call) or from an installed package (an entry point in group ``ptq.models``
pointing at a callable that registers).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ptq.models.base import WEIGHT_POLICIES, Batch, Built, DataSource, ModelEntry, TensorData
from ptq.registry import Registry

__all__ = [
    "BUILTIN_MODELS",
    "WEIGHT_POLICIES",
    "Batch",
    "Built",
    "DataSource",
    "ModelEntry",
    "TensorData",
    "get_model",
    "list_models",
    "register_model",
    "unregister_model",
]

_REGISTRY: Registry[ModelEntry] = Registry("model", entry_point_group="ptq.models")


def register_model(
    name: str,
    *,
    batch_size: int,
    family: str = "custom",
    description: str = "",
    version: int = 1,
    requires: Sequence[str] = (),
    tags: Sequence[str] = (),
    replace: bool = False,
) -> Callable[[Callable[..., Built]], Callable[..., Built]]:
    """Decorator registering a builder ``fn(*, weights: str) -> Built`` under ``name``.

    Example, in your ``conftest.py``::

        import torch
        from ptq.models import Built, TensorData, register_model

        @register_model("tiny_mlp", batch_size=8)
        def tiny_mlp(*, weights):
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU())
            data = TensorData(lambda g, n: (torch.randn(n, 16, generator=g),), "randn(16)")
            return Built(model, weights="random:seed=0", data=data)
    """

    def decorator(fn: Callable[..., Built]) -> Callable[..., Built]:
        _REGISTRY.register(
            name,
            ModelEntry(
                name=name,
                build_fn=fn,
                batch_size=batch_size,
                family=family,
                description=description or (fn.__doc__ or "").strip().split("\n")[0],
                version=version,
                requires=tuple(requires),
                tags=tuple(tags),
            ),
            replace=replace,
        )
        return fn

    return decorator


def unregister_model(name: str) -> ModelEntry:
    return _REGISTRY.unregister(name)


def get_model(name: str) -> ModelEntry:
    return _REGISTRY.get(name)


def list_models(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
    """Registered model names, filtered by comma-separated or listed fnmatch globs."""
    return _REGISTRY.names(include, exclude)


# Built-in entries register themselves on import.
from ptq.models import vision, text, sequence, digits, micro, lm  # noqa: E402,F401,I001

#: The models ptq ships; any other registered model is a project's (:mod:`ptq.project`).
BUILTIN_MODELS: frozenset[str] = frozenset(_REGISTRY)
