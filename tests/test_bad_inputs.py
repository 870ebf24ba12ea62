"""Every command of ``ptq --help``, walked as an unlucky user would (issue 29, "Bad inputs, round
three"): (a) a bad argument, (b) a path it cannot read or write, (c) a damaged file where it reads
one. Each is refused with one error line naming the thing and the fix (``ptq: error: ...``, or
argparse's usage and its one ``error:`` line), never a Python traceback, with the exit code the
help gives bad input (2), and nothing on disk changed: no output, no temporary file.

(a) and (c) run in this process through :func:`ptq.cli.main` (an exception escaping it is the
traceback a user would see); (b) runs ``python -m ptq.cli`` as a user whom file permissions bind
(:mod:`unprivileged`). A command added to ``ptq --help`` fails :func:`test_every_command_is_walked`
until it has its rows here (or a reason it has none)."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pytest
import unprivileged

from ptq.cli import COMMANDS, build_parser, exit_codes, main
from ptq.gate.comparison import EXIT_BAD_INPUT

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "tests" / "fixtures" / "history" / "runs" / "run-0004.json"
SHA_A, SHA_B = "a" * 40, "b" * 40


def _leaves(parser: argparse.ArgumentParser, path: str = "") -> list[str]:
    """The command paths of ``ptq --help`` that run something: ``compare``, ``chain append``, ..."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [path]
    return [leaf for name, sub in subs[0].choices.items() for leaf in _leaves(sub, f"{path} {name}".strip())]


# (a) A bad argument: a value out of range, NaN, a typo'd choice, an unknown option, one missing.
BAD_ARGUMENTS: dict[str, list[tuple[list[str], str]]] = {
    "list": [(["list", "modles"], "invalid choice: 'modles'"), (["list", "models", "--no-such"], "unrecognized")],
    "compare": [
        (["compare", str(RUN), "--judges", "latnecy"], "--judges='latnecy'"),
        (["compare", str(RUN), "--format", "pdf"], "invalid choice: 'pdf'"),
    ],
    "ab": [
        (["ab", "HEAD~1", "HEAD", "--rounds", "0"], "--rounds=0: must be >= 1"),
        (["ab", "HEAD~1", "HEAD", "--window", "nan"], "'nan' is not a finite number"),
    ],
    "chain append": [
        (["chain", "append", str(RUN), str(RUN), "--commit", "../../escaped", "--parent", SHA_B], "--commit"),
        (["chain", "append", str(RUN), str(RUN), "--parent", SHA_B], "required: --commit"),
    ],
    "chain show": [(["chain", "show"], "required: dir"), (["chain", "show", "nowhere"], "nowhere: no such directory")],
    "chain demo": [
        (["chain", "demo", "-d", "demo", "--slowdown", "inf"], "'inf' is not a finite number"),
        (["chain", "demo", "-d", "demo", "--commits", "0"], "--commits=0: must be >= 1"),
    ],
    "contention": [
        (["contention", "--window", "-1"], "--window=-1.0: must be > 0"),
        (["contention", "--threads", "0"], "--threads=0: must be >= 1"),
    ],
    "diagnose": [
        (["diagnose", "no_such_model", "fp32"], "unknown model 'no_such_model'"),
        (["diagnose", "micro_linear_256", "fp32", "--set", "nonsense"], "--set wants FIELD=VALUE"),
    ],
    "drift": [(["drift"], "required: json"), (["drift", "nowhere.json"], "nowhere.json")],
    "env": [(["env", "--threads", "-3"], "--threads=-3: must be >= 1"), (["env", "--threads", "two"], "invalid int")],
    "export": [
        (["export", str(RUN), "--format", "csv"], "invalid choice: 'csv'"),
        (["export", str(RUN)], "required: --format"),
    ],
    "gate-quality": [
        (["gate-quality", "--alpha", "2"], "--alpha=2.0: must be in (0, 1)"),
        (["gate-quality", "--trials", "0"], "--trials=0: must be >= 1"),
        (["gate-quality", "--time", "nan"], "'nan' is not a finite number"),
    ],
    "init": [
        (["init", ".", "--model", "1x"], "--model='1x': must be a Python identifier"),
        (["init", ".", "--workflows-from", "pytest-ptq/ptq@main"], "--workflows-from"),
    ],
    "memory-spread": [
        (["memory-spread", "micro_linear_256", "fp32", "--threads", "0"], "--threads=0: must be >= 1"),
        (["memory-spread", "micro_linear_256", "fp32", "--repeat", "1"], "--repeat must be >= 2"),
    ],
    "memory-table": [(["memory-table"], "required: BENCHMARK_JSON")],
    "merge": [(["merge", str(RUN)], "required: -o"), (["merge", "-o", "m.json"], "required: shards")],
    "naive": [
        (["naive", "--pair-time", "nan"], "'nan' is not a finite number"),
        (["naive", "--repeat", "0"], "--repeat=0: must be >= 1"),
    ],
    "report": [(["report"], "no history given"), (["report", str(RUN), "--format", "pdf"], "invalid choice: 'pdf'")],
}

# (b) A path it cannot read or write, in a workspace holding run.json, secret.json (mode 000), ro/
# (a directory it cannot write in) and closed/ (one it cannot enter).
PATHS: dict[str, list[tuple[list[str], str]] | str] = {
    "list": [(["list", "models", "--rootdir", "closed"], "closed/conftest.py: permission denied")],
    "compare": [(["compare", "secret.json"], "secret.json"), (["compare", "run.json", "--root", "closed"], "closed/")],
    "ab": [(["ab", ".", ".", "--root", "closed"], "closed/pyproject.toml: permission denied")],
    "chain append": [
        (
            ["chain", "append", "secret.json", "run.json", "--commit", SHA_A, "--parent", SHA_B, "-d", "c"],
            "secret.json",
        ),
        (
            ["chain", "append", "run.json", "run.json", "--commit", SHA_A, "--parent", SHA_B, "-d", "ro/c"],
            "-d ro/c: cannot write in ro (permission denied)",
        ),
    ],
    "chain show": [(["chain", "show", "nowhere", "-o", "ro/chain.html"], "nowhere")],
    "chain demo": [(["chain", "demo", "-d", "ro/demo"], "-d ro/demo: cannot write in ro (permission denied)")],
    "contention": [(["contention", "--rootdir", "closed"], "closed/conftest.py: permission denied")],
    "diagnose": [
        (["diagnose", "micro_linear_256", "fp32", "--rootdir", "closed"], "closed/conftest.py: permission denied")
    ],
    "drift": [(["drift", "secret.json"], "secret.json")],
    "env": "reads and writes no file",
    "export": [
        (["export", "secret.json", "--format", "bencher", "-o", "out"], "secret.json"),
        (["export", "run.json", "--format", "bencher", "-o", "ro/out"], "-o ro/out: cannot write in ro"),
    ],
    "gate-quality": [(["gate-quality", "--json", "ro/tallies.json"], "--json ro/tallies.json: cannot write in ro")],
    "init": [(["init", "ro"], "ro: cannot be written (permission denied)")],
    "memory-spread": [
        (
            ["memory-spread", "micro_linear_256", "fp32", "--json", "ro/spread.json"],
            "--json ro/spread.json: cannot write in ro",
        )
    ],
    "memory-table": [(["memory-table", "secret.json"], "secret.json")],
    "merge": [
        (["merge", "secret.json", "-o", "m.json"], "secret.json"),
        (["merge", "run.json", "-o", "ro/m.json"], "ro/m.json: permission denied"),
    ],
    "naive": [(["naive", "--rootdir", "closed"], "closed/conftest.py: permission denied")],
    "report": [(["report", "secret.json"], "secret.json"), (["report", "run.json", "-o", "ro/r.html"], "ro/r.html")],
}

# (c) A damaged file where it reads one: truncated.json (JSON cut short), binary.json (not text),
# chain/ (a chain summary that is not text), project/ (a conftest.py that is not Python),
# config/ (a pyproject.toml that is not text).
DAMAGED: dict[str, list[tuple[list[str], str]] | str] = {
    "list": [(["list", "models", "--rootdir", "project"], "conftest.py cannot be imported")],
    "compare": [
        (["compare", "binary.json"], "binary.json"),
        (["compare", str(RUN), "--baseline", "truncated.json"], "truncated.json: corrupt or truncated JSON"),
        (["compare", str(RUN), "--root", "config"], "cannot read ptq config config/pyproject.toml: not UTF-8"),
    ],
    "ab": [(["ab", ".", ".", "--root", "config"], "config/pyproject.toml: not UTF-8")],
    "chain append": [
        (
            ["chain", "append", "truncated.json", str(RUN), "--commit", SHA_A, "--parent", SHA_B, "-d", "c"],
            "truncated.json: corrupt or truncated JSON",
        )
    ],
    "chain show": [(["chain", "show", "chain"], "damaged chain summary")],
    "chain demo": "reads no file: it writes a new directory",
    "contention": [(["contention", "--rootdir", "project"], "conftest.py cannot be imported")],
    "diagnose": [(["diagnose", "micro_linear_256", "fp32", "--rootdir", "project"], "conftest.py cannot be imported")],
    "drift": [(["drift", "binary.json"], "binary.json"), (["drift", "truncated.json"], "truncated.json")],
    "env": "reads and writes no file",
    "export": [(["export", "truncated.json", "--format", "bencher", "-o", "out"], "truncated.json")],
    "gate-quality": [(["gate-quality", "--rootdir", "project"], "conftest.py cannot be imported")],
    "init": [(["init", "config"], "config/pyproject.toml: not UTF-8 text (byte 0xff at offset 0)")],
    "memory-spread": [
        (["memory-spread", "micro_linear_256", "fp32", "--rootdir", "project"], "conftest.py cannot be imported")
    ],
    "memory-table": [(["memory-table", "truncated.json"], "truncated.json")],
    "merge": [(["merge", str(RUN), "binary.json", "-o", "m.json"], "binary.json")],
    "naive": [(["naive", "--rootdir", "project"], "conftest.py cannot be imported")],
    "report": [
        (["report", "binary.json"], "binary.json"),
        (["report", str(RUN), "--chain", "chain"], "damaged chain summary"),
        (["report", str(RUN), "--root", "config"], "config/pyproject.toml: not UTF-8"),
    ],
}


def _rows(table: dict) -> list:
    return [
        pytest.param(argv, said, id=f"{name}:{' '.join(argv[len(name.split()) :])[:60]}")
        for name, rows in table.items()
        if not isinstance(rows, str)
        for argv, said in rows
    ]


def test_every_command_is_walked():
    leaves = set(_leaves(build_parser()))
    for table in (BAD_ARGUMENTS, PATHS, DAMAGED):
        assert set(table) == leaves
    for name in {leaf.split()[0] for leaf in leaves}:  # bad input is 2 in every command's help
        assert EXIT_BAD_INPUT == 2 and EXIT_BAD_INPUT in dict(exit_codes(COMMANDS[name]))


def _one_error(stderr: str, said: str) -> None:
    """One ``error:`` line naming ``said``: ptq's own (``ptq: error: ...``, alone), or argparse's
    (``ptq CMD: error: ...``, after its usage lines); never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1 and errors[0] == lines[-1], stderr
    if not lines[0].startswith("usage: ptq "):  # not argparse's: ptq's own line, alone
        assert len(lines) == 1 and lines[0].startswith("ptq: error: "), stderr
    assert said in errors[0], (said, errors[0])


def _files(root: Path) -> dict[str, bytes | None]:
    return unprivileged.tree(root)


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A project directory holding the damaged files (c) reads, as the working directory."""
    (tmp_path / "truncated.json").write_text('{"benchmarks": [')
    (tmp_path / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / f"{SHA_A}.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "conftest.py").write_bytes(b"\x89PNG\x00\xff not python")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "pyproject.toml").write_bytes(b"\xff\xfe[tool.ptq]\x00")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _in_process(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage error
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("argv", "said"), _rows(BAD_ARGUMENTS))
def test_a_bad_argument_is_one_error_line_and_exit_2(workspace, capsys, argv, said):
    before = _files(workspace)
    code, err = _in_process(argv, capsys)
    assert code == EXIT_BAD_INPUT, err
    _one_error(err, said)
    assert _files(workspace) == before


@pytest.mark.parametrize(("argv", "said"), _rows(DAMAGED))
def test_a_damaged_input_file_is_one_error_line_and_exit_2(workspace, capsys, argv, said):
    before = _files(workspace)
    code, err = _in_process(argv, capsys)
    assert code == EXIT_BAD_INPUT, err
    _one_error(err, said)
    assert _files(workspace) == before  # the damaged file as it was; nothing written


@pytest.fixture(scope="module")
def guarded():
    """A workspace (:mod:`unprivileged`) with run.json, secret.json (mode 000), ro/ (no writing in
    it) and closed/ (no entering it), for the commands run as a user whom permissions bind."""
    with unprivileged.workspace() as project:
        shutil.copy(RUN, project / "run.json")
        shutil.copy(RUN, project / "secret.json")
        (project / "run.json").chmod(0o644)
        (project / "secret.json").chmod(0o000)
        (project / "ro").mkdir()
        (project / "closed").mkdir()
        (project / "closed" / "conftest.py").write_text("# the project's\n")
        unprivileged.read_only(project / "ro")
        (project / "closed").chmod(0o000)
        os.chmod(project, 0o777)
        yield project


@pytest.mark.slow
@pytest.mark.parametrize(("argv", "said"), _rows(PATHS))
def test_a_path_it_cannot_read_or_write_is_one_error_line_and_exit_2(guarded, argv, said):
    (guarded / "closed").chmod(0o755)
    before = _files(guarded)
    (guarded / "closed").chmod(0o000)
    done = unprivileged.ptq(*argv, cwd=guarded)
    assert done.returncode == EXIT_BAD_INPUT, done.stdout + done.stderr
    assert "Traceback" not in done.stdout
    _one_error(done.stderr, said)
    (guarded / "closed").chmod(0o755)
    try:
        assert _files(guarded) == before  # nothing written, no temporary file left
    finally:
        (guarded / "closed").chmod(0o000)
