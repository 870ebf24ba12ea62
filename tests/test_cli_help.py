"""``ptq --help``: every argument says what it does, every command has its line, and the exit
codes printed are the constants the code returns."""

from __future__ import annotations

import argparse
import re

import pytest

from ptq import __version__
from ptq.cli import COMMANDS, build_parser, general_exit_codes, main
from ptq.gate.comparison import EXIT_BAD_INPUT, EXIT_NO_BASELINE, EXIT_OK, EXIT_REGRESSION


def _parsers(parser: argparse.ArgumentParser, path: str = "ptq"):
    """Every parser under ``parser`` (nested subcommands too), with its command path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _exit_tables(epilog: str) -> dict[str, set[int]]:
    """``exit codes of a, b:`` sections of an epilog -> the codes each command is said to return."""
    tables: dict[str, set[int]] = {}
    for names, rows in re.findall(r"exit codes of ([^:\n]+):\n((?:  \d+  .*\n?)+)", epilog):
        codes = {int(code) for code in re.findall(r"^  (\d+)  ", rows, flags=re.M)}
        for name in names.split(", "):
            assert name not in tables, f"{name} is in two exit-code tables"
            tables[name] = codes
    return tables


def test_every_argument_of_every_command_has_help():
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, parser in _parsers(build_parser())
        for action in parser._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and action.help != argparse.SUPPRESS  # hidden on purpose (memory-spread's child mode)
        and not (action.help or "").strip()
    ]
    assert missing == []


def test_every_command_and_subcommand_has_a_summary_in_the_listing():
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert {a.dest: bool((a.help or "").strip()) for a in action._choices_actions} == dict.fromkeys(
                    action.choices, True
                ), path


def test_help_lists_each_command_with_its_summary(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps long summaries
    for command in COMMANDS.values():
        assert f"{command.name} {command.summary}" in out


def test_the_epilog_gives_each_commands_exit_codes_from_the_constants():
    tables = _exit_tables(build_parser().epilog)
    assert set(tables) == set(COMMANDS)
    gate = {EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT, EXIT_NO_BASELINE}
    assert tables["compare"] == tables["ab"] == gate and len(gate) == 4
    assert tables["list"] == {code for code, _ in general_exit_codes()} == {EXIT_OK, EXIT_BAD_INPUT}
    for name, command in COMMANDS.items():  # a command's own rows are in its table, with the general ones
        assert tables[name] == {code for code, _ in general_exit_codes()} | {code for code, _ in command.exit_codes}


def test_a_command_whose_codes_differ_lists_them_in_its_own_help():
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, command in COMMANDS.items():
        epilog = subs[name].epilog or ""
        if command.exit_codes:
            codes = {int(c) for c in re.findall(r"^  (\d+)  ", epilog, flags=re.M)}
            assert epilog.startswith("exit codes:") and codes == set(_exit_tables(parser.epilog)[name]), name
        else:
            assert "exit codes" not in epilog, name


def test_bad_input_returns_the_code_the_help_gives_it(capsys):
    assert main(["compare", "no-such-run.json"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.startswith("ptq: error: ")


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ptq {__version__}"


def test_every_numeric_option_of_every_command_has_its_range_checked_before_any_work(capsys):
    """Issue 29, row 17, for the commands: every int or float option is in one table
    (``ptq.cli._numbers``), checked after parsing, before a command or its project loads; a float
    option takes no NaN or infinity."""
    from ptq.cli import _numbers, finite_float, numeric_actions

    ranges = _numbers()
    seen = set()
    for path, parser in _parsers(build_parser()):
        for action in numeric_actions(parser):
            flag = max(action.option_strings, key=len)
            assert flag in ranges, f"{path} {flag}: not in ptq.cli._numbers"
            assert action.type is not float, f"{path} {flag}: type float takes nan (finite_float is the type)"
            seen.add(flag)
            if action.type is finite_float:
                for text in ("nan", "inf", "-inf"):
                    with pytest.raises(SystemExit) as exit_:
                        main([*path.split()[1:], *_required(parser), f"{flag}={text}"])
                    assert exit_.value.code == EXIT_BAD_INPUT
                    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(f"'{text}' is not a finite number")
    assert seen == set(ranges)  # no stale row


def _required(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for ``parser``'s required arguments, so a parse reaches the option under test."""
    out = []
    for action in parser._actions:
        if (
            not action.option_strings
            and action.nargs not in ("?", "*")
            and not isinstance(action, argparse._SubParsersAction)
        ):
            out.append("x")
        elif action.option_strings and action.required:
            out += [action.option_strings[0], "x"]
    return out
