"""A project's own registrations, outside pytest: the ``conftest.py`` files its benchmarks load.

``ptq init`` and the README tell users to register models and recipes in their ``conftest.py``.
pytest imports it for a benchmark session; every other process that builds cases (a duet worker
of ``ptq ab``, ``ptq list``, ``ptq diagnose``, ``ptq memory-spread``, ``ptq gate-quality``) calls
:func:`load_project` on the project's root, so a case the session can run is a case they can build.

Which files: ``<root>/conftest.py`` then ``<root>/benchmarks/conftest.py`` (pytest's order for the
``benchmarks`` folder the suite runs), each with the modules its ``pytest_plugins`` names. The root
goes first on ``sys.path``, as pytest's default import mode puts it, so a conftest can import the
project's own code. A file pytest (or an earlier call) already imported is not imported again.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ptq.errors import PtqError, UserError

__all__ = [
    "CONFTESTS",
    "Project",
    "builtin_models",
    "builtin_recipes",
    "load_project",
    "peek_project",
    "project_models",
    "project_recipes",
]

#: Where a project's registrations live, relative to its root, in the order they load.
CONFTESTS = ("conftest.py", "benchmarks/conftest.py")


@dataclass(frozen=True)
class Project:
    """What :func:`load_project` found: the conftest files it imported now, and those already imported."""

    root: Path
    loaded: tuple[Path, ...]
    already: tuple[Path, ...]

    @staticmethod
    def imported(path: Path) -> bool:
        """Whether the conftest at ``path`` is imported already (by pytest, or an earlier load)."""
        return _imported(path.resolve())


def _imported(path: Path) -> bool:
    for module in list(sys.modules.values()):
        file = getattr(module, "__file__", None)
        try:
            if file and Path(file).resolve() == path:
                return True
        except OSError:  # pragma: no cover - a module with an odd __file__
            continue
    return False


#: The module name a project's conftest gets here (pytest names it ``conftest``): one per path.
PROJECT_MODULE_PREFIX = "ptq_project_conftest_"


def _import(path: Path) -> None:
    name = f"{PROJECT_MODULE_PREFIX}{hashlib.sha1(str(path).encode()).hexdigest()[:12]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a loader
        raise UserError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        plugins = getattr(module, "pytest_plugins", ())
        for plugin in [plugins] if isinstance(plugins, str) else plugins:
            if plugin not in ("pytester",):  # pytest's own: registers nothing of ptq's
                importlib.import_module(plugin)
    except PtqError:
        del sys.modules[name]
        raise
    except Exception as exc:
        del sys.modules[name]
        raise UserError(
            f"{path} cannot be imported ({type(exc).__name__}: {exc}); fix it, as pytest would "
            "fail the same way (`pytest benchmarks --collect-only` shows the traceback)"
        ) from None


def load_project(root: Path | str | None = None) -> Project:
    """Import the project's conftest files (:data:`CONFTESTS`) under ``root`` (default: the current
    directory), so what they register is in ptq's registries; a conftest that fails is a
    :class:`~ptq.errors.UserError` naming it."""
    base = Path(root if root is not None else Path.cwd()).resolve()
    if not base.is_dir():
        raise UserError(f"{root}: no such directory; name the project's root (where its conftest.py is)")
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    loaded, already = [], []
    for relative in CONFTESTS:
        path = (base / relative).resolve()
        if not path.is_file():
            continue
        if _imported(path):
            already.append(path)
            continue
        _import(path)
        loaded.append(path)
    return Project(base, tuple(loaded), tuple(already))


@contextlib.contextmanager
def peek_project(root: Path | str) -> Iterator[tuple[list[str], list[str]]]:
    """The models and recipes the project's conftest files register, as (models, recipes), for a
    command that only asks (``ptq init``); afterwards they are unregistered and the conftest
    modules forgotten, so the process's registries are as they were (a later
    :func:`load_project` imports them again)."""
    from ptq.models import list_models, unregister_model
    from ptq.recipes import list_recipes, unregister_recipe

    models, recipes, modules, path = set(list_models()), set(list_recipes()), set(sys.modules), list(sys.path)
    try:
        load_project(root)
        yield [n for n in list_models() if n not in models], [n for n in list_recipes() if n not in recipes]
    finally:
        for name in [n for n in list_models() if n not in models]:
            unregister_model(name)
        for name in [n for n in list_recipes() if n not in recipes]:
            unregister_recipe(name)
        for name in [m for m in sys.modules if m not in modules and m.startswith(PROJECT_MODULE_PREFIX)]:
            del sys.modules[name]
        sys.path[:] = path


def builtin_models() -> frozenset[str]:
    """The models ptq itself ships (registered when :mod:`ptq.models` is imported)."""
    from ptq.models import BUILTIN_MODELS

    return BUILTIN_MODELS


def builtin_recipes() -> frozenset[str]:
    """The recipes ptq itself ships."""
    from ptq.recipes import BUILTIN_RECIPES

    return BUILTIN_RECIPES


def project_models() -> list[str]:
    """Registered models that are not ptq's own: a conftest's, a plugin's or an entry point's."""
    from ptq.models import list_models

    return [n for n in list_models() if n not in builtin_models()]


def project_recipes() -> list[str]:
    """Registered recipes that are not ptq's own."""
    from ptq.recipes import list_recipes

    return [n for n in list_recipes() if n not in builtin_recipes()]
