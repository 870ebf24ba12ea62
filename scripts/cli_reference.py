"""Write ``docs/cli.md``, the ``ptq`` command reference, from the argparse parsers themselves.

    python scripts/cli_reference.py            # rewrite docs/cli.md
    python scripts/cli_reference.py --check    # exit 1 if docs/cli.md is not what the parsers give

The page is built from the parsers' structure (arguments, help strings, epilogs), not from
``format_help()``, whose wrapping depends on the terminal and the Python version, so the page is
the same wherever it is generated. ``tests/test_docs.py`` fails when it is out of date.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "cli.md"
REGENERATE = "python scripts/cli_reference.py"

HEADER = f"""# Command reference

<!-- Generated from the argparse parsers by `{REGENERATE}`; do not edit by hand.
     tests/test_docs.py fails when this page and the parsers disagree. -->

Every `ptq` command with its arguments, as `ptq COMMAND --help` gives them. Commands that build
cases (`--rootdir`) load the project's `conftest.py` first, so they see the models and recipes a
pytest session sees. The pytest options (`--ptq-*`) are in [usage](usage.md) and
`pytest --help`.
"""

_MARKDOWN_SPECIAL = "\\`*_[]|#"


def _escape(text: str) -> str:
    """``text`` as literal Markdown inside a table cell or a paragraph."""
    out = "".join(f"\\{c}" if c in _MARKDOWN_SPECIAL else c for c in text)
    return out.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _help(action: argparse.Action, prog: str) -> str:
    """The help string with ``%(default)s`` and the like filled in, as argparse prints it."""
    text = action.help or ""
    params = {**vars(action), "prog": prog}
    params = {k: v for k, v in params.items() if v is not argparse.SUPPRESS}
    if params.get("choices") is not None:
        params["choices"] = ", ".join(map(str, params["choices"]))
    return " ".join((text % params).split())


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        name = action.metavar if isinstance(action.metavar, str) else " ".join(action.metavar)
    elif action.choices is not None:
        name = "{" + ",".join(map(str, action.choices)) + "}"
    else:
        name = action.dest if not action.option_strings else action.dest.upper()
    return {"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [{name} ...]"}.get(action.nargs, name)


def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        return _metavar(action)
    takes_value = action.nargs != 0
    return ", ".join(f"{opt} {_metavar(action)}" if takes_value else opt for opt in action.option_strings)


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _section(path: str, parser: argparse.ArgumentParser, depth: int) -> Iterator[str]:
    yield f"{'#' * depth} `{path}`"
    yield ""
    if parser.description:
        yield _escape(parser.description)
        yield ""
    rows = [
        a
        for a in parser._actions
        if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and a.help != argparse.SUPPRESS
    ]
    subs = _subparsers(parser)
    if subs is not None:
        yield "| command | what it does |"
        yield "| --- | --- |"
        for choice in subs._choices_actions:
            yield f"| `{choice.dest}` | {_escape(choice.help or '')} |"
        yield ""
    if rows:
        yield "| argument | what it does |"
        yield "| --- | --- |"
        for action in rows:
            yield f"| `{_argument(action)}` | {_escape(_help(action, parser.prog))} |"
        yield ""
    if parser.epilog:
        yield "```text"
        yield parser.epilog.rstrip()
        yield "```"
        yield ""
    if subs is not None:
        for name, sub in subs.choices.items():
            yield from _section(f"{path} {name}", sub, min(depth + 1, 4))


def render() -> str:
    """The whole page, from :func:`ptq.cli.build_parser`."""
    from ptq.cli import build_parser

    parser = build_parser()
    parser.prog = "ptq"
    lines = [HEADER]
    lines.extend(_section("ptq", parser, 2))
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is out of date; write nothing")
    check = args.parse_args(argv).check
    page = render()
    if check:
        if not PAGE.exists() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
