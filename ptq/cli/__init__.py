"""The ``ptq`` command line. Each module of this package is one subcommand (or a few related ones) and
registers in ``COMMANDS`` through :func:`command`; each is one small function."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence

from ptq.errors import DuplicateRegistration, PtqError

__all__ = ["COMMANDS", "main"]

COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, configure: Callable[[argparse.ArgumentParser], None]):
    def decorator(fn: Callable[[argparse.Namespace], int]):
        if name in COMMANDS and COMMANDS[name][1] is not fn:
            raise DuplicateRegistration(f"command {name!r} is registered twice ({COMMANDS[name][1].__module__} and {fn.__module__})")
        COMMANDS[name] = (configure, fn)
        return fn

    return decorator


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["models", "recipes", "matrices"])
    p.add_argument("--include", help="comma-separated fnmatch globs")
    p.add_argument("--exclude", help="comma-separated fnmatch globs")


@command("list", _list_args)
def _list(args: argparse.Namespace) -> int:
    from ptq.models import get_model, list_models
    from ptq.recipes import get_recipe, list_recipes
    from ptq.registry import match_globs
    from ptq.render.tables import format_table
    from ptq.run.matrix import MATRICES

    if args.what == "models":
        rows = []
        for name in list_models(args.include, args.exclude):
            e = get_model(name)
            missing = e.missing_requirements()
            rows.append([name, e.family, str(e.batch_size), e.description + (f" (needs {', '.join(missing)})" if missing else "")])
        print(format_table(["model", "family", "batch", "description"], rows))
    elif args.what == "recipes":
        rows = []
        for name in list_recipes(args.include, args.exclude):
            r = get_recipe(name)
            rows.append([name, type(r).stack, str(r.version), r.description])
        print(format_table(["recipe", "stack", "version", "description"], rows))
    else:
        names = match_globs(MATRICES, args.include, args.exclude)
        print(format_table(["matrix", "models", "recipes", "description"],
                           [[n, MATRICES[n].models, MATRICES[n].recipes, MATRICES[n].description] for n in names]))
    return 0


def _load_command_modules() -> None:
    import ptq.cli

    for info in pkgutil.iter_modules(ptq.cli.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"ptq.cli.{info.name}")


def build_parser() -> argparse.ArgumentParser:
    _load_command_modules()
    from ptq import __version__

    parser = argparse.ArgumentParser(prog="ptq", description="Post-training-quantization benchmark regression suite.")
    parser.add_argument("--version", action="version", version=f"ptq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, _fn) in COMMANDS.items():
        configure(sub.add_parser(name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except PtqError as exc:
        print(f"ptq: error: {exc}", file=sys.stderr)
        return 2
