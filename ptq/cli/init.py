"""``ptq init [DIR]``: what a project needs to run ptq and gate its pull requests on it.

Writes a benchmark test file, a ``conftest.py``, a ``[tool.ptq]`` section in ``pyproject.toml``,
``results/README.md``, a ``.gitignore`` for ptq's lock and temporary files, and short workflows
calling ptq's reusable ones (pinned by commit SHA) plus a dependabot file that keeps that pin current.

Which models the workflows run (``--models``): by default the ones the project's conftest files
register (:func:`ptq.project.load_project`, what pytest loads); a project that registers none gets
a working example model in ``conftest.py``, and the workflows run that. Where the project
registers models, the example is written commented out.

It never overwrites: a file that exists is named with what would have been written (delete it and
run again to have it written); a ``pyproject.toml`` without ``[tool.ptq]`` gets the section
appended as text, so its comments stay, and a ``.gitignore`` gets the lines it lacks appended
(each edited in place: a symbolic link stays one, the file keeps its mode and its line endings).
A project configured through ``results/ptq.toml`` keeps its ``pyproject.toml`` as it is (ptq
reads one of the two, never both).

All or nothing: every file is checked writable before the first is written (a directory that
cannot be written is one error, exit 2, nothing written), and a write that fails anyway undoes
the ones made before it. Run in a subdirectory of a git repository, it warns that GitHub reads
workflows only from the repository's root.

Exit codes: 0 every file written (with ``--dry-run``: would be); 1 some left as they were
(named, nothing overwritten); 2 usage error (no such directory, a ``pyproject.toml`` that does
not parse, a conftest that cannot be imported, a bad ``--workflows-from``, a file or directory
that cannot be written).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from importlib.resources import files
from operator import methodcaller
from pathlib import Path

from ptq import __version__
from ptq.cli import command
from ptq.errors import UserError
from ptq.host.cache import atomic_write

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["GITIGNORE", "WORKFLOWS_FROM", "Models", "Planned", "choose_models", "default_install", "plan", "render"]

#: ptq's repository and the commit whose reusable workflows (.github/workflows/reusable-*.yml)
#: the generated callers pin; bump the SHA when their inputs change (tests/test_init.py checks it
#: against the repository's history where there is one).
WORKFLOWS_FROM = "pytest-ptq/ptq@2f516dd5fd3adf7881bd2096d577f95f8fb821e0"
_WORKFLOWS_FROM = re.compile(r"(?P<repo>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40})")
_PLACEHOLDER = re.compile(r"\{\{ptq:(\w+)\}\}")

#: What ``.gitignore`` gets: the lock files saving a baseline takes (results/baselines/*.json.lock),
#: the temporary files of ptq's atomic writes (``.<name>.*.tmp``, left by a killed process),
#: pytest-benchmark's saved runs, and the bytecode a local run leaves, so ``git add -A`` adds none.
GITIGNORE = ("results/**/*.lock", ".*.tmp", ".benchmarks/", "__pycache__/")
_GITIGNORE_HEADER = "# ptq (pytest-ptq): lock and temporary files, pytest-benchmark's saved runs, bytecode"


@dataclass(frozen=True)
class Planned:
    """One file of the plan: ``action`` is ``write`` (new), ``append`` (to an existing file),
    ``keep`` (exists; ``why`` says so) or ``skip`` (exists, and ptq's is not needed: a conftest.py
    of a project that registers its models). ``text`` is ptq's part, ``content`` the file it
    leaves; ``part`` names what an ``append`` adds."""

    path: str
    action: str
    text: str
    why: str = ""
    content: str = ""
    part: str = ""


@dataclass(frozen=True)
class Models:
    """The workflows' ``--ptq-models``: ``globs`` (comma-separated); ``registered`` the models the
    project's conftest files register (none: ptq init writes its example model live)."""

    globs: str
    registered: tuple[str, ...]
    source: str


#: Where each template goes in the project.
TARGETS = {
    "test_ptq.py.tmpl": "benchmarks/test_ptq.py",
    "conftest.py.tmpl": "conftest.py",
    "results-README.md.tmpl": "results/README.md",
    "ptq.yml.tmpl": ".github/workflows/ptq.yml",
    "ptq-comment.yml.tmpl": ".github/workflows/ptq-comment.yml",
    "dependabot.yml.tmpl": ".github/dependabot.yml",
}
PYPROJECT_SECTION = "pyproject-section.toml.tmpl"
EXAMPLE = "example.py.tmpl"
_KEEP_WHY = "exists; left as is (to have it written again, delete it and rerun ptq init; --dry-run shows the plan)"


def render(template: str, values: dict[str, str]) -> str:
    """A template with every ``{{ptq:name}}`` replaced; an unknown name is a bug, said as one."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise KeyError(f"template placeholder {match[0]} has no value")
        return values[match[1]]

    return _PLACEHOLDER.sub(value, template)


def _template(name: str) -> str:
    return (files("ptq") / "templates" / name).read_text(encoding="utf-8")


def _example(model: str, *, live: bool) -> str:
    """The example model and recipe between its markers: live (the project registers no model of its
    own, so the first run measures this one) or commented out (it does)."""
    code = render(_template(EXAMPLE), {"model": model}).rstrip("\n")
    if live:
        return (
            "# ptq example: a model that passes every default recipe within the default tolerances;\n"
            "# edit it, or replace it with your models (and set `models:` in .github/workflows/ptq.yml).\n"
            f"{code}\n# ptq example end\n"
        )
    commented = "\n".join(f"# {line}" if line else "#" for line in code.splitlines())
    return (
        f"# ptq example: to use it, uncomment every line down to the end marker, then build your own model.\n"
        f"{commented}\n# ptq example end\n"
    )


def _registered(root: Path) -> tuple[str, ...]:
    """The models the project's conftest files (``conftest.py``, ``benchmarks/conftest.py``) register."""
    from ptq.project import CONFTESTS, Project, load_project, peek_project, project_models

    if not any((root / name).is_file() for name in CONFTESTS):
        return ()
    already = [p for p in (root.resolve() / n for n in CONFTESTS) if p.is_file() and Project.imported(p)]
    if already:  # imported before (inside pytest): its models are registered
        load_project(root)
        return tuple(project_models())
    try:
        with peek_project(root) as (models, _):  # asks only: leaves the registries as they were
            return tuple(models)
    except UserError as exc:
        raise UserError(f"{exc}; or name the models with --models") from None


def choose_models(root: Path, models: str | None, model: str) -> Models:
    """``--models`` as given, else the models the project registers, else the example's name."""
    registered = _registered(root)
    if models is not None:
        return Models(models, registered, "--models")
    if registered:
        return Models(",".join(registered), registered, "registered by the project's conftest")
    return Models(model, registered, "the example model ptq init writes in conftest.py")


def _installable(root: Path) -> bool:
    """Whether ``pip install .`` can build the project: a setup.py / setup.cfg, or a pyproject.toml
    declaring the project (``[project]``) or its build backend (``[build-system]``)."""
    if (root / "setup.py").is_file() or (root / "setup.cfg").is_file():
        return True
    try:
        pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, not text, or unparseable (TOMLDecodeError): _pyproject says so
        return False
    return "project" in pyproject or "build-system" in pyproject


def default_install(root: Path) -> str:
    """The runners' install command: ptq with every extra (ONNX Runtime, OpenVINO, torchao, ...: the
    recipes that skip without them), pinned to this version, and the project itself, editable, where
    it can be installed, so what its conftest imports is there."""
    ptq = shlex.quote(f"pytest-ptq[all]=={__version__}")
    return f"pip install {ptq} -e ." if _installable(root) else f"pip install {ptq}"


def _pinned(workflows_from: str) -> re.Match[str]:
    found = _WORKFLOWS_FROM.fullmatch(workflows_from)
    if found is None:
        raise UserError(
            f"--workflows-from={workflows_from!r}: give OWNER/REPO@SHA, the 40-hex commit of ptq's "
            "repository whose reusable workflows to call (zizmor requires a SHA pin)"
        )
    return found


def _check(root: Path, *, model: str, workflows_from: str) -> None:
    """Usage errors, before anything is imported or written."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory; create it, or name the project's root")
    if not re.fullmatch(r"[A-Za-z_]\w*", model):
        raise UserError(f"--model={model!r}: must be a Python identifier (it names the example's function)")
    _pinned(workflows_from)


def _values(*, workflows_from: str, models: str, model: str, install: str, branch: str, example: str) -> dict[str, str]:
    found = _pinned(workflows_from)
    return {
        "repo": found["repo"],
        "sha": found["sha"],
        "ref": f"pytest-ptq {__version__}",
        "branch": branch,
        "install": json.dumps(install),
        "models": models,
        "models_json": json.dumps(models),
        "model": model,
        "example": example,
    }


def _text(path: Path) -> str:
    """A file ptq init appends to, as it is on disk: its line endings kept (no newline translation)."""
    try:
        data = path.read_bytes()
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); fix or restore it, "
            "then run ptq init again"
        ) from None
    except OSError as exc:
        raise UserError(
            f"{path}: cannot read it ({exc.strerror or exc}); make it readable, then run ptq init again"
        ) from None


def _appended(text: str, part: str) -> str:
    """``text`` with ``part`` (written with ``\\n``) appended in the file's own line endings: CRLF
    where its first line ends so."""
    first = re.search(r"\r?\n", text)
    eol = first[0] if first else "\n"
    return text + (eol if text and not text.endswith("\n") else "") + part.replace("\n", eol)


#: ptq's settings file other than ``[tool.ptq]`` (:func:`ptq.config.load_config` reads one of the two).
DEDICATED_CONFIG = "results/ptq.toml"


def _pyproject(root: Path, section: str) -> Planned:
    path = root / "pyproject.toml"
    if (root / DEDICATED_CONFIG).exists():  # [tool.ptq] too would make every pytest run a usage error
        return Planned(
            "pyproject.toml",
            "skip",
            section,
            f"ptq is configured in {DEDICATED_CONFIG}, and reads that or [tool.ptq], not both; "
            f"[tool.ptq] not added (put settings in {DEDICATED_CONFIG})",
        )
    if not path.exists():
        return Planned("pyproject.toml", "write", section.lstrip("\n"), content=section.lstrip("\n"))
    text = _text(path)
    try:
        existing = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: cannot parse it ({exc}); fix its TOML, then run ptq init again") from None
    if "ptq" in existing.get("tool", {}):
        return Planned(
            "pyproject.toml",
            "keep",
            section,
            "already has [tool.ptq]; left as is (remove the section to have it appended again)",
        )
    joined = _appended(text, section)
    try:
        tomllib.loads(joined)
    except tomllib.TOMLDecodeError as exc:  # e.g. `tool` written as an inline table
        raise UserError(f"{path}: [tool.ptq] cannot be appended ({exc}); add the section by hand:\n{section}") from None
    return Planned("pyproject.toml", "append", section, content=joined, part="[tool.ptq]")


def _gitignore(root: Path) -> Planned:
    """A new ``.gitignore``, or the lines of :data:`GITIGNORE` an existing one lacks, appended."""
    path = root / ".gitignore"
    full = "\n".join((_GITIGNORE_HEADER, *GITIGNORE)) + "\n"
    if not path.exists():
        return Planned(".gitignore", "write", full, content=full)
    text = _text(path)
    have = {line.strip().strip("/") for line in text.splitlines()}
    missing = [line for line in GITIGNORE if line.strip("/") not in have]
    if not missing:
        return Planned(".gitignore", "keep", full, "already ignores ptq's files; left as is")
    part = "\n".join((_GITIGNORE_HEADER, *missing)) + "\n"
    return Planned(".gitignore", "append", part, content=_appended(text, part), part="ptq's ignores")


def _unwritable(root: Path, planned: list[Planned]) -> None:
    """Every file the plan writes or appends to, checked before the first is written: its directory
    (or the nearest that exists, where ptq init creates the rest) must be a directory this process
    may create files in, as the atomic write creates a file beside the target and renames it."""
    for item in planned:
        if item.action not in ("write", "append"):
            continue
        target = Path(os.path.realpath(root / item.path)) if item.action == "append" else root / item.path
        directory = target.parent
        while not directory.exists() and not directory.is_symlink():
            directory = directory.parent
        if not directory.is_dir():
            raise UserError(
                f"{directory}: not a directory, so {item.path} cannot be written; nothing written: move "
                "it away (or name another project directory), then run ptq init again"
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise UserError(
                f"{directory}: cannot be written (permission denied), so {item.path} cannot be; nothing "
                "written: make it writable (or run ptq init as its owner), then run ptq init again"
            )


def _git_top(root: Path) -> Path | None:
    """The root of the git repository ``root`` is in (the nearest directory holding ``.git``), or None."""
    for directory in (root.resolve(), *root.resolve().parents):
        if (directory / ".git").exists():
            return directory
    return None


def _warn_subdirectory(root: Path) -> None:
    """GitHub reads workflows only from ``.github/workflows`` at the repository's root: a project in
    a subdirectory gets its workflows written all the same, with this said once."""
    top = _git_top(root)
    if top is not None and top != root.resolve():
        print(
            f"ptq: warning: {root} is a subdirectory of the git repository {top}: GitHub reads workflows only from "
            f"{top / '.github' / 'workflows'}, so the ones written under {root / '.github'} never run; move them "
            f"there (and set their working-directory), or run ptq init {top}",
            file=sys.stderr,
        )


def _write_all(root: Path, planned: list[Planned]) -> None:
    """Write the plan's files, all or none: a write that fails (or is interrupted) undoes the ones
    made before it: new files removed with the directories made for them, appended ones given
    their text back."""
    made: list[Path] = []
    restore: list[tuple[Path, bytes]] = []
    directories: list[Path] = []
    item = None
    try:
        for item in planned:
            if item.action not in ("write", "append"):
                continue
            path = root / item.path
            if item.action == "append":
                restore.append((path, path.read_bytes()))
            else:
                parent = path.parent
                while not parent.exists():
                    directories.append(parent)
                    parent = parent.parent
            atomic_write(path, methodcaller("write", item.content.encode("utf-8")))
            if item.action == "write":
                made.append(path)
    except BaseException as exc:
        for path in made:
            with contextlib.suppress(OSError):
                path.unlink()
        for path, before in restore:
            with contextlib.suppress(OSError):
                if path.read_bytes() != before:
                    atomic_write(path, methodcaller("write", before))
        for directory in sorted(set(directories), key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        if not isinstance(exc, OSError) or item is None:
            raise
        raise UserError(
            f"{root / item.path}: cannot be written ({exc.strerror or exc}); nothing written (the files "
            "written before it were removed again): fix it, then run ptq init again"
        ) from None


def plan(
    root: Path,
    *,
    workflows_from: str = WORKFLOWS_FROM,
    models: str | None = None,
    model: str = "my_mlp",
    install: str | None = None,
    branch: str = "main",
    chosen: Models | None = None,
) -> list[Planned]:
    """What ``ptq init`` does in ``root``, file by file, without writing anything. ``models`` None:
    the project's registered models, else the example's (``chosen``: that choice, made already);
    ``install`` None: :func:`default_install`."""
    _check(root, model=model, workflows_from=workflows_from)
    chosen = chosen or choose_models(root, models, model)
    values = _values(
        workflows_from=workflows_from,
        models=chosen.globs,
        model=model,
        install=default_install(root) if install is None else install,
        branch=branch,
        example=_example(model, live=not chosen.registered),
    )
    out = []
    for template, target in TARGETS.items():
        text = render(_template(template), values)
        if not (root / target).exists():
            out.append(Planned(target, "write", text, content=text))
        elif target == "conftest.py" and chosen.registered:  # the project's own, and the example not needed
            out.append(Planned(target, "skip", text, f"the project's; its models: {', '.join(chosen.registered)}"))
        else:
            out.append(Planned(target, "keep", text, _KEEP_WHY))
    out.append(_pyproject(root, render(_template(PYPROJECT_SECTION), values)))
    out.append(_gitignore(root))
    return out


def next_commands(models: str) -> list[str]:
    """The commands ``ptq init``'s hint prints, the README's sequence after ``ptq init``."""
    return [
        f"pytest benchmarks --benchmark-only --ptq-models={shlex.quote(models)} --ptq-save-baseline",
        'git add -A && git commit -m "ptq: benchmarks and workflows"',
    ]


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default=".", help="the project's root (default: .)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument(
        "--models",
        default=None,
        metavar="GLOBS",
        help="--ptq-models of the workflows: comma-separated globs of this project's models (default: the "
        "models its conftest.py registers; where none, the example model ptq init writes)",
    )
    p.add_argument("--model", default="my_mlp", help="the example model's name in conftest.py (default: my_mlp)")
    p.add_argument(
        "--install",
        default=None,
        metavar="CMD",
        help="the workflows' install command: ptq and what the benchmarks import (default: pip install "
        f"'pytest-ptq[all]=={__version__}', plus -e . where the project has a setup.py, setup.cfg, or a "
        "pyproject.toml with [project] or [build-system])",
    )
    p.add_argument("--branch", default="main", help="the branch whose pushes record the history (default: main)")
    p.add_argument(
        "--workflows-from",
        default=WORKFLOWS_FROM,
        metavar="OWNER/REPO@SHA",
        help="ptq's repository and commit whose reusable workflows the callers pin (default: %(default)s)",
    )


@command(
    "init",
    _args,
    "write what a project needs to run ptq and gate its pull requests",
    exit_codes=(
        (0, "every file written (with --dry-run: would be)"),
        (1, "some files left as they were (named; nothing overwritten)"),
    ),
)
def _init(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    _check(root, model=args.model, workflows_from=args.workflows_from)
    chosen = choose_models(root, args.models, args.model)
    planned = plan(
        root,
        workflows_from=args.workflows_from,
        models=args.models,
        model=args.model,
        install=args.install,
        branch=args.branch,
        chosen=chosen,
    )
    _unwritable(root, planned)
    _warn_subdirectory(root)
    if not args.dry_run:
        _write_all(root, planned)
    print(f"models: {chosen.globs} ({chosen.source})")
    for item in planned:
        if item.action == "keep":
            print(f"kept {item.path}: {item.why}; what ptq init would have written:")
            print("".join(f"    {line}\n" for line in item.text.strip("\n").splitlines()), end="")
            continue
        if item.action == "skip":
            state = "as it is" if (root / item.path).exists() else "unwritten"
            print(f"{'would leave' if args.dry_run else 'left'} {item.path} {state}: {item.why}")
            continue
        did, do = (
            (f"appended {item.part} to", f"append {item.part} to") if item.action == "append" else ("wrote", "write")
        )
        print(f"would {do} {item.path}" if args.dry_run else f"{did} {item.path}")
    kept = [item.path for item in planned if item.action == "keep"]
    if kept:
        print(
            f"left as they were: {', '.join(kept)} (ptq init never overwrites; delete a file to have it written again)"
        )
    if args.dry_run:
        return 1 if kept else 0
    example_kept = not chosen.registered and "conftest.py" in kept
    print(
        "next: register your models in conftest.py (the example above), then run:"
        if example_kept
        else 'next: measure the models here, then commit (README: "Use ptq in your repository"):'
    )
    for line in next_commands(chosen.globs):
        print(f"  {line}")
    print(
        "then push to main, which records this runner's baseline, or open a pull request: its gate passes as "
        '"bootstrap" (its base has no benchmarks/), and the push merging it records the baseline'
    )
    return 1 if kept else 0
