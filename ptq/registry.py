"""A small named registry shared by models, recipes, probes, judges and config sections.

Modelled on torchvision's ``register_model`` / ``list_models``: duplicates are refused,
listing filters with fnmatch globs, and an unknown name is answered with the valid ones.
Installed packages extend a registry through an entry-point group, read once, on first use.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Iterable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, Protocol, TypeVar

from ptq.errors import DuplicateRegistration, UserError

__all__ = ["NamedRegistry", "Registry", "match_globs", "resolve"]

T = TypeVar("T")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=_Named)


def resolve(target: Any) -> Any:
    """``target`` itself, or the object a ``"package.module:attribute"`` string names, imported
    now: built-ins are declared as such strings so that listing them imports nothing (their
    modules import torch)."""
    if not isinstance(target, str):
        return target
    module, _, attribute = target.partition(":")
    found: Any = importlib.import_module(module)
    for part in filter(None, attribute.split(".")):
        found = getattr(found, part)
    return found


def _loaded(ep: EntryPoint, kind: str) -> Any:
    """``ep.load()``, a failure told as the distribution's, with the fix."""
    try:
        return ep.load()
    except Exception as exc:
        raise UserError(f"{_named(ep)} cannot load: {type(exc).__name__}: {exc}; {_fix(ep, kind)}") from exc


def _named(ep: EntryPoint) -> str:
    dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
    return f"entry point {ep.name} = {ep.value!r} (group {ep.group}) of {dist}"


def _fix(ep: EntryPoint, kind: str) -> str:
    dist = ep.dist.name if ep.dist is not None else "the package that declares it"
    return (
        f'point it at a {kind} in [project.entry-points."{ep.group}"] of {dist} and reinstall it, or uninstall {dist}'
    )


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
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}
        self._group = entry_point_group  # until its entry points are loaded

    def _load_entry_points(self) -> None:
        group, self._group = self._group, None
        if group:
            for ep in entry_points(group=group):
                self._add_entry_point(ep)

    def _add_entry_point(self, ep: EntryPoint) -> None:
        """A callable that registers its items when called."""
        _loaded(ep, f"callable that registers a {self.kind}")()

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        if not name or not isinstance(name, str):
            raise UserError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self._items and not replace:
            raise DuplicateRegistration(
                f"{self.kind} {name!r} is already registered; pick another name or pass replace=True to override it"
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
            raise UserError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {valid}") from None

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


class NamedRegistry(Registry[N]):
    """A registry of items that carry their ``name``: the built-ins are data handed to it (in
    their order, which is the listing's), and each entry point of the group resolves to an item
    of ``item_type`` itself, registered after the built-ins and after ``register`` calls made
    before first use.

    Example, in a third party's pyproject.toml::

        [project.entry-points."ptq.probes"]
        energy = "my_pkg.probes:ENERGY"   # a ptq.probes.Probe
    """

    def __init__(self, kind: str, item_type: type[N], *, entry_point_group: str, builtins: Iterable[N] = ()) -> None:
        super().__init__(kind, entry_point_group=entry_point_group)
        self.item_type = item_type
        self.builtins: tuple[N, ...] = tuple(builtins)
        for item in self.builtins:
            self.add(item)

    def add(self, item: N, *, replace: bool = False) -> N:
        return self.register(item.name, item, replace=replace)

    def _add_entry_point(self, ep: EntryPoint) -> None:
        item = _loaded(ep, self.item_type.__name__)
        if not isinstance(item, self.item_type):
            raise UserError(
                f"{_named(ep)} resolves to a {type(item).__name__}, not a "
                f"{self.item_type.__module__}.{self.item_type.__name__}; {_fix(ep, self.item_type.__name__)}"
            )
        self.add(item)

    def items(self) -> list[N]:
        """Every item, in order (entry points loaded)."""
        return [self.get(name) for name in self.names()]
