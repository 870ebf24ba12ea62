"""User configuration: ``[tool.ptq]`` in pyproject.toml, or ``results/ptq.toml``.

The sections and the keys each accepts are listed in :mod:`ptq.config.sections` (torch-free: no
feature is imported to validate), so an unknown key, a wrong type or a value outside the key's
declared range is one clear error, raised when the config loads (before any work), naming the
file, the table, the key and what is allowed. Layout, by example::

    [tool.ptq.tolerance]                    # defaults for every case
    max_relative_accuracy_drop = 0.01
    [tool.ptq.tolerance.models.resnet18]    # per model
    [tool.ptq.tolerance.recipes.static_int8]            # per recipe
    [tool.ptq.tolerance.cases."resnet18-static_int8"]   # per model x recipe (most specific wins)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ptq.config.sections import BUILTIN_SECTIONS, Range, Section
from ptq.errors import UserError
from ptq.registry import NamedRegistry

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Config", "Range", "Section", "check_names", "list_sections", "load_config", "register_section"]

#: Sub-tables that scope a section's keys; the most specific wins: case > recipe > model > top.
SCOPES = ("models", "recipes", "cases")

_REGISTRY: NamedRegistry[Section] = NamedRegistry(
    "config section", Section, entry_point_group="ptq.config_sections", builtins=BUILTIN_SECTIONS
)


def register_section(section: Section, *, replace: bool = False) -> Section:
    """Add a section after the built-ins (:mod:`ptq.config.sections`), e.g. from a conftest."""
    return _REGISTRY.add(section, replace=replace)


def list_sections() -> list[str]:
    return _REGISTRY.names()


#: How a type error names what a key takes; a key typed (int, float) is "a number".
_TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _type_name(expected: type | tuple[type, ...]) -> str:
    types = expected if isinstance(expected, tuple) else (expected,)
    if float in types:  # a float key takes integers too
        types = tuple(t for t in types if t is not int)
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def _header(prefix: str, *parts: str) -> str:
    """The TOML table header the user wrote, e.g. ``tool.ptq.gate.cases."a.b-c"``."""
    return prefix + ".".join(p if _BARE_KEY.fullmatch(p) else f'"{p}"' for p in parts)


def _check_value(where: str, header: str, key: str, value: Any, section: Section) -> None:
    expected = section.keys[key]
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise UserError(f"{where}: [{header}] {key} = {value!r}: must be {_type_name(expected)}")
    if key in section.choices and value not in section.choices[key]:
        valid = ", ".join(map(str, section.choices[key]))
        raise UserError(f"{where}: [{header}] {key} = {value!r} is not one of {valid}; set one of them")
    bound = section.bounds.get(key)
    if bound is not None and isinstance(value, int | float) and value not in bound:
        why = f" ({bound.why})" if bound.why else ""
        raise UserError(f"{where}: [{header}] {key} = {value!r} is out of range: it must be {bound}{why}")
    if isinstance(value, float) and not math.isfinite(value):  # TOML has nan and inf; no key means them
        raise UserError(f"{where}: [{header}] {key} = {value!r}: must be a finite number")
    check = section.checks.get(key)
    problem = check(value) if check is not None else None
    if problem:
        raise UserError(f"{where}: [{header}] {key} = {value!r}: {problem}")


def _check_keys(where: str, header: str, table: Mapping[str, Any], section: Section) -> None:
    for key, value in table.items():
        if key in SCOPES and section.scoped:
            if not isinstance(value, Mapping):
                raise UserError(f"{where}: {key} in [{header}] must hold tables such as [{header}.{key}.NAME]")
            continue
        if key not in section.keys:
            valid = ", ".join(sorted(section.keys)) or "(none)"
            raise UserError(f"{where}: unknown key {key!r} in [{header}]; valid keys: {valid}")
        _check_value(where, header, key, value, section)


@dataclass(frozen=True)
class Config:
    """The validated ``[tool.ptq]`` table and where it came from."""

    data: Mapping[str, Any] = field(default_factory=dict)
    source: str = "(defaults)"

    def section(self, name: str) -> Mapping[str, Any]:
        return self.data.get(name, {})

    def resolve(
        self, name: str, *, model: str, recipe: str, defaults: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The section's keys for one case: defaults < top level < model < recipe < case."""
        table = self.section(name)
        out = dict(defaults or {})
        out.update({k: v for k, v in table.items() if k not in SCOPES})
        for scope, key in (("models", model), ("recipes", recipe), ("cases", f"{model}-{recipe}")):
            out.update(table.get(scope, {}).get(key, {}))
        return out


def validate(data: Mapping[str, Any], where: str, *, prefix: str = "tool.ptq.") -> Config:
    """``data`` as a :class:`Config`, every key checked against its section; ``prefix`` is how
    the file spells a section's header (``results/ptq.toml`` has none)."""
    valid = _REGISTRY.names()
    for name, table in data.items():
        if name not in valid:
            raise UserError(
                f"{where}: unknown section [{_header(prefix, name)}]; valid sections: {', '.join(sorted(valid))}"
            )
        if not isinstance(table, Mapping):
            raise UserError(f"{where}: [{_header(prefix, name)}] must be a table")
        section = _REGISTRY.get(name)
        _check_keys(where, _header(prefix, name), table, section)
        for scope in SCOPES if section.scoped else ():
            for target, sub in table.get(scope, {}).items():
                header = _header(prefix, name, scope, target)
                if not isinstance(sub, Mapping):
                    raise UserError(f"{where}: [{header}] must be a table")
                _check_keys(where, header, sub, dataclasses.replace(section, scoped=False))
    return Config(dict(data), where)


def _read_toml(path: Path, fix: str) -> dict[str, Any]:
    """The file's TOML; a file that cannot be read, is not text or not TOML is one line naming it
    and ``fix`` (what to do where its bytes are not text)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"cannot read ptq config {path}: {(exc.strerror or str(exc)).lower()}; make it a readable file"
        ) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"cannot read ptq config {path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}), so not TOML; {fix}"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"cannot parse ptq config {path}: {exc}; fix the TOML syntax") from None


def _tool_ptq(data: Mapping[str, Any], path: Path) -> Mapping[str, Any]:
    """``[tool.ptq]`` of a parsed pyproject.toml, ``{}`` where it has none."""
    tool = data.get("tool", {})
    if not isinstance(tool, Mapping):
        raise UserError(f"{path}: tool = {tool!r} must be a table ([tool.*] sections); fix it")
    ptq = tool.get("ptq", {})
    if not isinstance(ptq, Mapping):
        raise UserError(f"{path}: tool.ptq = {ptq!r} must be a table ([tool.ptq.*] sections); fix it")
    return ptq


def load_config(rootdir: str | Path) -> Config:
    """``results/ptq.toml`` if present, else ``[tool.ptq]`` of ``pyproject.toml``, else defaults.

    Both holding settings is refused: one of them would be ignored without a word.
    """
    root = Path(rootdir)
    dedicated, pyproject = root / "results" / "ptq.toml", root / "pyproject.toml"
    in_pyproject = (
        _tool_ptq(_read_toml(pyproject, "restore it (e.g. git checkout -- pyproject.toml)"), pyproject)
        if pyproject.exists()
        else {}
    )
    if not dedicated.exists():
        return validate(in_pyproject, str(pyproject)) if pyproject.exists() else Config({})
    if in_pyproject:
        raise UserError(
            f"{dedicated} and [tool.ptq] in {pyproject} both configure ptq, and only one is read; "
            f"keep one: move the settings into {dedicated} (headers without 'tool.ptq.') and delete "
            "[tool.ptq], or delete the file"
        )
    return validate(
        _read_toml(dedicated, "restore it, write its settings as TOML, or delete it"), str(dedicated), prefix=""
    )


def _nearest(name: str, valid: Collection[str]) -> str:
    close = difflib.get_close_matches(name, list(valid), n=3)
    return f"nearest: {', '.join(close)}; " if close else ""


def check_names(config: Config, *, models: Collection[str], recipes: Collection[str]) -> None:
    """Every ``models.NAME``, ``recipes.NAME`` and ``cases."MODEL-RECIPE"`` table of a scoped
    section names a registered model, recipe or case: a misspelt one would apply to nothing, and
    the setting it holds would be ignored without a word. The first that does not is one error."""
    models, recipes = set(models), set(recipes)

    def known(scope: str, name: str) -> bool:
        if scope == "models":
            return name in models
        if scope == "recipes":
            return name in recipes
        return any(name[:i] in models and name[i + 1 :] in recipes for i, c in enumerate(name) if c == "-")

    prefix = "tool.ptq." if Path(config.source).name == "pyproject.toml" else ""
    for section_name, table in config.data.items():
        if not _REGISTRY.get(section_name).scoped:
            continue
        for scope in SCOPES:
            for name in table.get(scope, {}):
                if known(scope, name):
                    continue
                what, listing = {
                    "models": ("model", "ptq list models"),
                    "recipes": ("recipe", "ptq list recipes"),
                    "cases": ("case", "MODEL-RECIPE: ptq list models, ptq list recipes"),
                }[scope]
                valid = (
                    models
                    if scope == "models"
                    else recipes
                    if scope == "recipes"
                    else {f"{m}-{r}" for m in models for r in recipes}
                )
                raise UserError(
                    f"{config.source}: [{_header(prefix, section_name, scope, name)}] names no registered "
                    f"{what} {name!r}, so its settings would apply to nothing; {_nearest(name, valid)}fix "
                    f"the name ({listing}) or delete the table"
                )
