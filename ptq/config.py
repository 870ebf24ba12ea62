"""User configuration: ``[tool.ptq]`` in pyproject.toml, or ``results/ptq.toml``.

Each feature registers the section it owns (``register_section``) with the keys it accepts,
so an unknown key anywhere is one clear error naming the file, the key and the valid keys.
Layout, by example::

    [tool.ptq.tolerance]                    # defaults for every case
    max_relative_accuracy_drop = 0.01
    [tool.ptq.tolerance.models.resnet18]    # per model
    [tool.ptq.tolerance.recipes.static_int8]            # per recipe
    [tool.ptq.tolerance.cases."resnet18-static_int8"]   # per model x recipe (most specific wins)
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptq.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Config", "Section", "load_config", "register_section"]

#: Sub-tables that scope a section's keys; the most specific wins: case > recipe > model > top.
SCOPES = ("models", "recipes", "cases")


@dataclass(frozen=True)
class Section:
    """A config section: its valid keys with their types (and, for some, their allowed values),
    and whether it takes scopes."""

    name: str
    keys: Mapping[str, type | tuple[type, ...]]
    scoped: bool = True
    description: str = ""
    choices: Mapping[str, Collection[Any]] = field(default_factory=dict)


_SECTIONS: dict[str, Section] = {}


def register_section(section: Section) -> Section:
    if section.name in _SECTIONS:
        raise UserError(f"config section {section.name!r} is already registered")
    _SECTIONS[section.name] = section
    return section


def _check_keys(where: str, table: Mapping[str, Any], section: Section) -> None:
    for key, value in table.items():
        if key in SCOPES and section.scoped:
            continue
        if key not in section.keys:
            valid = ", ".join(sorted(section.keys)) or "(none)"
            raise UserError(f"{where}: unknown key {key!r} in [tool.ptq.{section.name}]; valid keys: {valid}")
        expected = section.keys[key]
        if isinstance(value, bool) and bool not in (expected if isinstance(expected, tuple) else (expected,)):
            raise UserError(f"{where}: [tool.ptq.{section.name}] {key} must be {expected}, got {value!r}")
        if not isinstance(value, expected):
            raise UserError(f"{where}: [tool.ptq.{section.name}] {key} must be {expected}, got {value!r}")
        if key in section.choices and value not in section.choices[key]:
            valid = ", ".join(map(str, section.choices[key]))
            raise UserError(f"{where}: [tool.ptq.{section.name}] {key} = {value!r} is not one of {valid}; set one of them")


@dataclass(frozen=True)
class Config:
    """The validated ``[tool.ptq]`` table and where it came from."""

    data: Mapping[str, Any] = field(default_factory=dict)
    source: str = "(defaults)"

    def section(self, name: str) -> Mapping[str, Any]:
        return self.data.get(name, {})

    def resolve(self, name: str, *, model: str, recipe: str, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The section's keys for one case: defaults < top level < model < recipe < case."""
        table = self.section(name)
        out = dict(defaults or {})
        out.update({k: v for k, v in table.items() if k not in SCOPES})
        for scope, key in (("models", model), ("recipes", recipe), ("cases", f"{model}-{recipe}")):
            out.update(table.get(scope, {}).get(key, {}))
        return out


#: Modules that register the built-in sections; imported before a config is validated, so a
#: command that never loads, say, the drift probe still accepts ``[tool.ptq.tolerance]``.
SECTION_MODULES = ("ptq.judges", "ptq.drift", "ptq.memory", "ptq.models.image_folder")


def validate(data: Mapping[str, Any], where: str) -> Config:
    for module in SECTION_MODULES:
        importlib.import_module(module)
    for name, table in data.items():
        if name not in _SECTIONS:
            valid = ", ".join(sorted(_SECTIONS)) or "(none)"
            raise UserError(f"{where}: unknown section [tool.ptq.{name}]; valid sections: {valid}")
        if not isinstance(table, Mapping):
            raise UserError(f"{where}: [tool.ptq.{name}] must be a table")
        section = _SECTIONS[name]
        _check_keys(where, table, section)
        for scope in SCOPES if section.scoped else ():
            for target, sub in table.get(scope, {}).items():
                if not isinstance(sub, Mapping):
                    raise UserError(f"{where}: [tool.ptq.{name}.{scope}.{target}] must be a table")
                _check_keys(f"{where} [{scope}.{target}]", sub, dataclasses.replace(section, scoped=False))
    return Config(dict(data), where)


def load_config(rootdir: str | Path) -> Config:
    """``results/ptq.toml`` if present, else ``[tool.ptq]`` of ``pyproject.toml``, else defaults."""
    root = Path(rootdir)
    dedicated, pyproject = root / "results" / "ptq.toml", root / "pyproject.toml"
    try:
        if dedicated.exists():
            return validate(tomllib.loads(dedicated.read_text(encoding="utf-8")), str(dedicated))
        if pyproject.exists():
            data = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("ptq", {})
            return validate(data, str(pyproject))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"cannot parse ptq config: {exc}; fix the TOML syntax") from None
    return Config({})
