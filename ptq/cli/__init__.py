"""The ``ptq`` command line. Each module of this package is one subcommand (or a few related ones) and
registers in ``COMMANDS`` through :func:`command`; each is one small function."""

from __future__ import annotations

import argparse
import errno
import importlib
import math
import os
import pkgutil
import re
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ptq.errors import DuplicateRegistration, PtqError

if TYPE_CHECKING:
    from ptq.config.sections import Range

__all__ = [
    "COMMANDS",
    "Command",
    "ExitCodes",
    "build_parser",
    "command",
    "exit_codes",
    "finite_float",
    "general_exit_codes",
    "main",
    "numeric_actions",
    "os_error",
    "output_directory",
    "output_file",
]

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


def command(
    name: str,
    configure: Callable[[argparse.ArgumentParser], None],
    summary: str,
    *,
    exit_codes: ExitCodes = (),
    project: bool = False,
):
    """Register ``fn(args) -> exit code`` as ``ptq NAME``; ``summary`` is its line in ``ptq --help``;
    ``project``: the command builds cases, so the project's conftest registrations load first."""

    def decorator(fn: Callable[[argparse.Namespace], int]):
        if name in COMMANDS and COMMANDS[name].run is not fn:
            raise DuplicateRegistration(
                f"command {name!r} is registered twice ({COMMANDS[name].run.__module__} and {fn.__module__})"
            )
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
            rows.append(
                [
                    name,
                    e.family,
                    str(e.batch_size),
                    e.description + (f" (needs {', '.join(missing)})" if missing else ""),
                ]
            )
        print(format_table(["model", "family", "batch", "description"], rows))
    elif args.what == "recipes":
        rows = []
        for name in list_recipes(args.include, args.exclude):
            r = get_recipe(name)
            rows.append([name, type(r).stack, str(r.version), r.description])
        print(format_table(["recipe", "stack", "version", "description"], rows))
    else:
        names = match_globs(MATRICES, args.include, args.exclude)
        print(
            format_table(
                ["matrix", "models", "recipes", "description"],
                [[n, MATRICES[n].models, MATRICES[n].recipes, MATRICES[n].description] for n in names],
            )
        )
    return 0


def _load_command_modules() -> None:
    import ptq.cli

    for info in pkgutil.iter_modules(ptq.cli.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"ptq.cli.{info.name}")


def output_directory(option: str, path: str) -> Path:
    """A directory a command writes files into (``-o DIR``, ``-d DIR``), checked before any work:
    not a file, and (it or the nearest directory above it that exists) one this process may write in."""
    from ptq.errors import UserError

    given = Path(path)
    if given.exists() and not given.is_dir():
        raise UserError(
            f"{option} {path}: is a file, not a directory; {option} names the directory the files go to: "
            "name a directory (a new one is created)"
        )
    _writable_above(option, path, given, "a directory")
    return given


def _writable_above(option: str, path: str, start: Path, what: str) -> None:
    """The nearest existing directory at or above ``start`` must be one this process may write in."""
    from ptq.errors import UserError

    existing = start
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(
            f"{option} {path}: {existing} is a file, not a directory; name {what} in a directory"
            if what != "a directory"
            else f"{option} {path}: {existing} is a file, not a directory; name a directory"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(
            f"{option} {path}: cannot write in {existing} (permission denied); name {what} "
            f"{'you can write in' if what == 'a directory' else 'in a directory you can write in'}"
        )


def output_file(option: str, path: str) -> Path:
    """A file a command writes at its end (``--json PATH``, ``-o FILE``), checked before any work, so
    minutes of measuring are not lost to a path that cannot be written: not a directory, and its
    directory (or the nearest one above it that exists) one this process may write in."""
    from ptq.errors import UserError

    given = Path(path)
    if given.is_dir():
        raise UserError(f"{option} {path}: is a directory; name a file in it, e.g. {option} {given / 'out.json'}")
    _writable_above(option, path, given.parent, "a file")
    return given


def finite_float(text: str) -> float:
    """``float`` for an argument: ``nan`` and ``inf`` are refused (a NaN passes no comparison, so it
    slips past every range check after it; ``inf`` is no number of seconds or fraction)."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _finite_floats(parser: argparse.ArgumentParser) -> None:
    """Every ``type=float`` argument of ``parser`` and its subcommands' parsers made :func:`finite_float`:
    one place, so no command's numeric option takes NaN or infinity."""
    for action in parser._actions:
        if action.type is float:
            action.type = finite_float
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _finite_floats(sub)


def _numbers() -> dict[str, Range]:
    """The range of every numeric option of any command, by flag (a flag means the same in each
    command that has it), with why: checked once, in :func:`main`, after parsing and before the
    command (or its project's conftest) starts any work. A command checks what is stricter itself
    (``contention --rounds`` >= 3, a duet's ``--placements <= --sweeps``); tests/test_cli_help.py
    checks that every numeric option is here."""
    from ptq.config.sections import Range

    count, seconds = (lambda what: Range(1, why=what)), (lambda what: Range(0, low_open=True, why=f"seconds {what}"))
    return {
        "--threads": count("torch intra-op threads; omit it for the default"),
        "--repeat": count("fresh processes"),
        "--warmup": Range(0, why="untimed calls"),
        "--rounds": count("rounds"),
        "--process-rounds": count("rounds"),
        "--aa-trials": count("trials"),
        "--trials": count("trials"),
        "--process-trials": count("trials"),
        "--duet-trials": count("trials"),
        "--sweeps": Range(2, why="sweeps; a duet needs two"),
        "--placements": Range(2, why="placements; an interval over placements needs two"),
        "--workers": count("workers"),
        "--sweeps-per-placement": count("sweeps"),
        "--worker-placements": count("placements"),
        "--commits": count("commits"),
        "--step-at": count("the commit whose code is slower"),
        "--window": seconds("each model is timed per window"),
        "--time": seconds("of timing"),
        "--pair-time": seconds("of interleaved pairs"),
        "--slowdown": Range(0, why="a fraction: 0.05 is 5%"),
        "--threshold": Range(0, why="a fraction of the latency statistic: 0.05 is 5%"),
        "--alpha": Range(0, 1, low_open=True, high_open=True, why="a p-value cutoff"),
    }


def numeric_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The options of ``parser`` (not its subcommands') that take a number."""
    return [a for a in parser._actions if a.option_strings and a.type in (int, float, finite_float)]


def _chosen(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[argparse.ArgumentParser]:
    """The parsers ``args`` went through: ``parser``, its chosen subcommand's, and so on."""
    out = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            out += _chosen(action.choices[getattr(args, action.dest)], args)
    return out


def _check_numbers(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    from ptq.errors import UserError

    ranges = _numbers()
    for sub in _chosen(parser, args):
        for action in numeric_actions(sub):
            value = getattr(args, action.dest, None)
            flag = max(action.option_strings, key=len)
            if value is not None and flag in ranges and value not in ranges[flag]:
                bound = ranges[flag]
                raise UserError(f"{flag}={value}: must be {bound} ({bound.why})")


def build_parser() -> argparse.ArgumentParser:
    """The ``ptq`` parser: every registered command with its summary; the exit codes in the epilogs."""
    _load_command_modules()
    from ptq import __version__

    raw = argparse.RawDescriptionHelpFormatter
    commands = list(COMMANDS.values())
    parser = argparse.ArgumentParser(
        prog="ptq",
        description="Post-training-quantization benchmark regression suite.",
        epilog=_epilog(commands),
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"ptq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for c in commands:
        epilog = f"exit codes:\n{_table(exit_codes(c))}" if c.exit_codes else None
        p = sub.add_parser(c.name, help=c.summary, description=c.summary, epilog=epilog, formatter_class=raw)
        c.configure(p)
        _finite_floats(p)
        if c.project and not any(a.dest == "rootdir" for a in p._actions):
            p.add_argument(
                "--rootdir", default=".", help="the project whose conftest.py registers models and recipes (default: .)"
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_numbers(parser, args)
        if COMMANDS[args.command].project:
            from ptq.project import load_project

            load_project(args.rootdir)
        return COMMANDS[args.command].run(args)
    except PtqError as exc:
        from ptq.gate.comparison import EXIT_BAD_INPUT

        print(f"ptq: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:  # a path the command was given cannot be read or written: bad input, one line
        from ptq.gate.comparison import EXIT_BAD_INPUT

        print(f"ptq: error: {os_error(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a write (ptq.host.cache.atomic_write)
        said = str(exc) or "Ctrl-C"
        print(
            f"ptq: interrupted ({said}); a file being written was left as it was (each write is a temporary "
            "file renamed into place, and the temporary file is removed): rerun the command",
            file=sys.stderr,
        )
        return 128 + (signal.SIGTERM if said == "signal SIGTERM" else signal.SIGINT)


def os_error(exc: OSError) -> str:
    """An ``OSError`` in one line: the path, what the system said, and what to do."""
    # An atomic write's temporary file (``.<name>.<random>.tmp``, ptq.host.cache) is no news: its target is.
    name = exc.filename2 if exc.filename2 is not None else exc.filename
    if name is not None:
        temporary = re.fullmatch(r"\.(.+)\.\w+\.tmp", Path(os.fsdecode(name)).name)
        name = Path(os.fsdecode(name)).with_name(temporary[1]) if temporary else name
    where = f"{name}: " if name is not None else ""
    fix = {
        errno.EACCES: "check its permissions, or name a path you can use",
        errno.EPERM: "check its permissions, or name a path you can use",
        errno.EROFS: "name a path on a writable file system",
        errno.ENOSPC: "free some space, or name a path on another disk",
        errno.EISDIR: "name a file, not a directory",
        errno.ENOTDIR: "a part of the path is a file; name a path whose directories are directories",
        errno.EEXIST: "it exists and is in the way; move it, or name another path",
        errno.ENOENT: "check the path",
    }.get(exc.errno or 0, "check the path")
    return f"{where}{(exc.strerror or str(exc)).lower()}; {fix}"
