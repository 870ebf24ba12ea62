"""A small named registry shared by models and recipes.

Modelled on torchvision's ``register_model`` / ``list_models``: duplicates are refused,
listing filters with fnmatch globs, and an unknown name is answered with the valid ones.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from ptq.errors import DuplicateRegistration, UserError

__all__ = ["Registry", "match_globs"]

T = TypeVar("T")


def _as_list(patterns: str | Iterable[str] | None) -> list[str]:
    if patterns is None:
        return []
    if isinstance(patterns, str):
        return [p.strip() for p in patterns.split(",") if p.strip()]
    return [p for p in patterns if p]


def match_globs(
    names: Iterable[str],
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> list[str]:
    """Names matching any ``include`` glob (all when none) and no ``exclude`` glob.

    A string holds comma-separated globs, so ``"resnet*,mobilenet_v2"`` works on a command line.
    """
    inc, exc = _as_list(include), _as_list(exclude)
    out = []
    for name in names:
        if inc and not any(fnmatch.fnmatchcase(name, p) for p in inc):
            continue
        if any(fnmatch.fnmatchcase(name, p) for p in exc):
            continue
        out.append(name)
    return out


class Registry(Generic[T]):
    """Name -> item, in registration order.

    ``entry_point_group``: installed packages register into it by exposing a callable in that
    group; the callables run once, on the first lookup or listing.
    """

    def __init__(self, kind: str, *, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._group = entry_point_group

    def _load_entry_points(self) -> None:
        group, self._group = self._group, None
        if group:
            for ep in entry_points(group=group):
                ep.load()()

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        if not name or not isinstance(name, str):
            raise UserError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._items and not replace:
            raise DuplicateRegistration(
                f"{self.kind} {name!r} is already registered; pick another name "
                "or pass replace=True to override it"
            )
        self._items[name] = item
        return item

    def unregister(self, name: str) -> T:
        self.get(name)
        return self._items.pop(name)

    def get(self, name: str) -> T:
        self._load_entry_points()
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(self._items) or "(none registered)"
            raise UserError(
                f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}"
            ) from None

    def names(
        self,
        include: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
    ) -> list[str]:
        self._load_entry_points()
        return match_globs(self._items, include, exclude)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)
