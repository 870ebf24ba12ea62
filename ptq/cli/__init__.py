"""The ``ptq`` command line. Each module of this package is one subcommand (or a few related ones) and
registers in ``COMMANDS`` through :func:`command`; each is one small function."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ptq.errors import DuplicateRegistration, PtqError

__all__ = ["COMMANDS", "Command", "ExitCodes", "build_parser", "command", "exit_codes", "general_exit_codes", "main"]

#: ``(code, meaning)`` rows of an exit-code table, in the order ``--help`` prints them.
ExitCodes = tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class Command:
    """A subcommand: its parser's arguments, what runs it, the line ``ptq --help`` lists it with,
    and the exit codes it adds to (or means otherwise than) :func:`general_exit_codes`, which its own
    ``--help`` then lists with the general ones."""

    name: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    summary: str
    exit_codes: ExitCodes = ()
    #: Builds cases: the project's own registrations (its conftest.py, :mod:`ptq.project`) are
    #: loaded from ``--rootdir`` first, so it sees the models and recipes a pytest session sees.
    project: bool = False


COMMANDS: dict[str, Command] = {}


def general_exit_codes() -> ExitCodes:
    """What every command returns unless it says otherwise: the gate's own constants for ok and bad input."""
    from ptq.gate.comparison import EXIT_BAD_INPUT, EXIT_OK

    return ((EXIT_OK, "success"), (EXIT_BAD_INPUT, "usage error or bad input (one line: ptq: error: ...)"))


def command(name: str, configure: Callable[[argparse.ArgumentParser], None], summary: str, *, exit_codes: ExitCodes = (),
            project: bool = False):
    """Register ``fn(args) -> exit code`` as ``ptq NAME``; ``summary`` is its line in ``ptq --help``;
    ``project``: the command builds cases, so the project's conftest registrations load first."""

    def decorator(fn: Callable[[argparse.Namespace], int]):
        if name in COMMANDS and COMMANDS[name].run is not fn:
            raise DuplicateRegistration(f"command {name!r} is registered twice ({COMMANDS[name].run.__module__} and {fn.__module__})")
        COMMANDS[name] = Command(name, configure, fn, summary, exit_codes, project)
        return fn

    return decorator


def exit_codes(c: Command) -> ExitCodes:
    """Every code ``c`` returns: its own rows over the general ones, by code."""
    return tuple(sorted({**dict(general_exit_codes()), **dict(c.exit_codes)}.items()))


def _table(codes: ExitCodes) -> str:
    return "\n".join(f"  {code}  {meaning}" for code, meaning in codes)


def _epilog(commands: Sequence[Command]) -> str:
    """The exit codes: one table per set of commands sharing theirs, the general one first."""
    groups: dict[ExitCodes, list[str]] = {general_exit_codes(): []}
    for c in commands:
        groups.setdefault(exit_codes(c), []).append(c.name)
    parts = [f"exit codes of {', '.join(names)}:\n{_table(codes)}" for codes, names in groups.items() if names]
    return "\n\n".join(parts) + "\n\nA command whose codes differ says so in its own --help."


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=["models", "recipes", "matrices"], help="which registry to list")
    p.add_argument("--include", help="comma-separated fnmatch globs of the names to keep (default: all)")
    p.add_argument("--exclude", help="comma-separated fnmatch globs of the names to drop (default: none)")


@command("list", _list_args, "list the registered models, recipes or matrices", project=True)
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
    """The ``ptq`` parser: every registered command with its summary; the exit codes in the epilogs."""
    _load_command_modules()
    from ptq import __version__

    raw = argparse.RawDescriptionHelpFormatter
    commands = list(COMMANDS.values())
    parser = argparse.ArgumentParser(prog="ptq", description="Post-training-quantization benchmark regression suite.",
                                     epilog=_epilog(commands), formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"ptq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in commands:
        epilog = f"exit codes:\n{_table(exit_codes(c))}" if c.exit_codes else None
        p = sub.add_parser(c.name, help=c.summary, description=c.summary, epilog=epilog, formatter_class=raw)
        c.configure(p)
        if c.project and not any(a.dest == "rootdir" for a in p._actions):
            p.add_argument("--rootdir", default=".",
                           help="the project whose conftest.py registers models and recipes (default: .)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if COMMANDS[args.command].project:
            from ptq.project import load_project

            load_project(args.rootdir)
        return COMMANDS[args.command].run(args)
    except PtqError as exc:
        from ptq.gate.comparison import EXIT_BAD_INPUT

        print(f"ptq: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
