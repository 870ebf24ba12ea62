"""``ptq init [DIR]``: what a project needs to run ptq and gate its pull requests on it.

Writes a benchmark test file, a ``conftest.py`` with a commented example model and recipe, a
``[tool.ptq]`` section in ``pyproject.toml``, ``results/README.md``, and short workflows calling
ptq's reusable ones (pinned by commit SHA) plus a dependabot file that keeps that pin current.
It never overwrites: a file that exists is named with what would have been written; a
``pyproject.toml`` without ``[tool.ptq]`` gets the section appended as text, so its comments stay.

Exit codes: 0 every file written (with ``--dry-run``: would be); 1 some left as they were
(named, nothing overwritten); 2 usage error (no such directory, a ``pyproject.toml`` that does
not parse, a bad ``--workflows-from``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ptq import __version__
from ptq.cli import command
from ptq.errors import UserError
from ptq.storage.cache import atomic_write

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["WORKFLOWS_FROM", "Planned", "plan", "render"]

#: ptq's repository and the commit whose reusable workflows (.github/workflows/reusable-*.yml)
#: the generated callers pin; bump the SHA when their inputs change (tests/test_init.py checks it
#: against the repository's history where there is one).
WORKFLOWS_FROM = "pytest-ptq/ptq@d70cc3d673f8b3d04f6cacd6e6504cad54a4701c"
_WORKFLOWS_FROM = re.compile(r"(?P<repo>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40})")
_PLACEHOLDER = re.compile(r"\{\{ptq:(\w+)\}\}")


@dataclass(frozen=True)
class Planned:
    """One file of the plan: ``action`` is ``write`` (new), ``append`` (to an existing file) or
    ``keep`` (exists; ``why`` says so). ``text`` is ptq's part, ``content`` the file it leaves."""

    path: str
    action: str
    text: str
    why: str = ""
    content: str = ""


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


def render(template: str, values: dict[str, str]) -> str:
    """A template with every ``{{ptq:name}}`` replaced; an unknown name is a bug, said as one."""
    def value(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise KeyError(f"template placeholder {match[0]} has no value")
        return values[match[1]]

    return _PLACEHOLDER.sub(value, template)


def _template(name: str) -> str:
    return files("ptq").joinpath("templates", name).read_text(encoding="utf-8")


def _values(*, workflows_from: str, models: str, model: str, install: str, branch: str) -> dict[str, str]:
    found = _WORKFLOWS_FROM.fullmatch(workflows_from)
    if found is None:
        raise UserError(f"--workflows-from={workflows_from!r}: give OWNER/REPO@SHA, the 40-hex commit of ptq's "
                        "repository whose reusable workflows to call (zizmor requires a SHA pin)")
    return {"repo": found["repo"], "sha": found["sha"], "ref": f"pytest-ptq {__version__}", "branch": branch,
            "install": json.dumps(install), "models": models, "models_json": json.dumps(models), "model": model}


def _pyproject(root: Path, section: str) -> Planned:
    path = root / "pyproject.toml"
    if not path.exists():
        return Planned("pyproject.toml", "write", section.lstrip("\n"), content=section.lstrip("\n"))
    text = path.read_text(encoding="utf-8")
    try:
        existing = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: cannot parse it ({exc}); fix its TOML, then run ptq init again") from None
    if "ptq" in existing.get("tool", {}):
        return Planned("pyproject.toml", "keep", section, "already has [tool.ptq]; left as is")
    joined = text + ("" if text.endswith("\n") or not text else "\n") + section
    try:
        tomllib.loads(joined)
    except tomllib.TOMLDecodeError as exc:  # e.g. `tool` written as an inline table
        raise UserError(f"{path}: [tool.ptq] cannot be appended ({exc}); add the section by hand:\n{section}") from None
    return Planned("pyproject.toml", "append", section, content=joined)


def plan(root: Path, *, workflows_from: str = WORKFLOWS_FROM, models: str = "my_*", model: str = "my_mlp",
         install: str = f"pip install pytest-ptq=={__version__}", branch: str = "main") -> list[Planned]:
    """What ``ptq init`` does in ``root``, file by file, without writing anything."""
    if not root.is_dir():
        raise UserError(f"{root}: no such directory; create it, or name the project's root")
    if not re.fullmatch(r"[A-Za-z_]\w*", model):
        raise UserError(f"--model={model!r}: must be a Python identifier (it names the example's function)")
    values = _values(workflows_from=workflows_from, models=models, model=model, install=install, branch=branch)
    out = []
    for template, target in TARGETS.items():
        text = render(_template(template), values)
        exists = (root / target).exists()
        out.append(Planned(target, "keep", text, "exists; left as is") if exists else Planned(target, "write", text, content=text))
    out.append(_pyproject(root, render(_template(PYPROJECT_SECTION), values)))
    return out


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", default=".", help="the project's root (default: .)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument("--models", default="my_*",
                   help="--ptq-models of the workflows: comma-separated globs of this project's models (default: my_*)")
    p.add_argument("--model", default="my_mlp", help="the example model's name in conftest.py (default: my_mlp)")
    p.add_argument("--install", default=f"pip install pytest-ptq=={__version__}",
                   help="the workflows' install command: ptq and what the benchmarks import (default: %(default)s)")
    p.add_argument("--branch", default="main", help="the branch whose pushes record the history (default: main)")
    p.add_argument("--workflows-from", default=WORKFLOWS_FROM, metavar="OWNER/REPO@SHA",
                   help="ptq's repository and commit whose reusable workflows the callers pin (default: %(default)s)")


@command("init", _args, "write what a project needs to run ptq and gate its pull requests", exit_codes=(
    (0, "every file written (with --dry-run: would be)"),
    (1, "some files left as they were (named; nothing overwritten)"),
))
def _init(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    planned = plan(root, workflows_from=args.workflows_from, models=args.models, model=args.model,
                   install=args.install, branch=args.branch)
    verb = {"write": "would write", "append": "would append [tool.ptq] to"} if args.dry_run else \
        {"write": "wrote", "append": "appended [tool.ptq] to"}
    for item in planned:
        if item.action == "keep":
            print(f"kept {item.path}: {item.why}; what ptq init would have written:")
            print("".join(f"    {line}\n" for line in item.text.strip("\n").splitlines()), end="")
            continue
        if not args.dry_run:
            atomic_write(root / item.path, lambda fh, item=item: fh.write(item.content.encode("utf-8")))
        print(f"{verb[item.action]} {item.path}")
    kept = [item.path for item in planned if item.action == "keep"]
    if kept:
        print(f"left as they were: {', '.join(kept)} (ptq init never overwrites)")
    elif not args.dry_run:
        print("next: uncomment the example in conftest.py (or register your models), then "
              "`pytest benchmarks --benchmark-only`; README: \"Use ptq in your repository\"")
    return 1 if kept else 0
