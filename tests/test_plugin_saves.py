"""Issue 29 (bad inputs, round three): the gate's saves and the run JSON, run as a user runs pytest.

A damaged baseline refuses a save with a fix that works; a partial save keeps the untouched cases'
provenance; Ctrl-C or SIGTERM during the save's write is a clean exit; a run JSON marks the cases
whose test failed, and ``ptq export`` leaves them out, naming them.
"""

from __future__ import annotations

import json

import pytest

from ptq.storage.runs import load_run

pytestmark = pytest.mark.slow  # every test runs pytest sessions in fresh processes

TEST_FILE = """
def test_case(ptq_bench):
    ptq_bench()
"""

FAST = [
    "--benchmark-only",
    "--ptq-models=micro_linear_256",
    "--ptq-recipes=fp32",
    "--benchmark-min-rounds=20",
    "--benchmark-max-time=0.02",
    "--ptq-warmup=1",
    "--ptq-pair-time=0",
    "-p",
    "no:cacheprovider",
]

#: Loaded by every session below: with $PTQ_TEST_SIGNAL set, the baseline's write signals its own
#: process half-way through, as a Ctrl-C or a CI runner's SIGTERM would.
CONFTEST = """
import os, signal
import ptq.storage.runs as runs

if os.environ.get("PTQ_TEST_SIGNAL"):
    real = runs._dump

    def _dump(data):
        rest = real(data)

        def write(fh):
            fh.write(b"{" * 100_000)
            fh.flush()
            os.kill(os.getpid(), getattr(signal, os.environ["PTQ_TEST_SIGNAL"]))
            rest(fh)

        return write

    runs._dump = _dump
"""


def _baseline(pytester: pytest.Pytester):
    [path] = (pytester.path / "results" / "baselines").glob("*.json")
    return path


def _litter(pytester: pytest.Pytester) -> list[str]:
    return sorted(p.name for p in pytester.path.rglob("*.tmp"))


def test_a_damaged_baseline_refuses_a_save_with_a_fix_that_works(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite=TEST_FILE)
    assert pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline").ret == 0
    baseline = _baseline(pytester)
    baseline.write_text('{"benchmarks": [{"na')  # truncated
    refused = pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    [line] = [x for x in refused.stdout.lines if x.startswith("ptq gate: error:")]
    moved = baseline.with_name(baseline.name + ".damaged")
    assert line == (
        f"ptq gate: error: {baseline}: corrupt or truncated JSON (Unterminated string starting at: line 1 "
        f"column 18); restore it (`git checkout -- {baseline}`), or move it aside (`mv {baseline} {moved}`) "
        "and re-record it: `pytest --benchmark-only --ptq-save-baseline` (or `--ptq-save-run` for a run)"
    )
    assert "Traceback" not in refused.stdout.str() + refused.stderr.str()
    assert baseline.read_text() == '{"benchmarks": [{"na' and _litter(pytester) == []
    baseline.rename(moved)  # what the message says; then the same command records a new baseline
    again = pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline")
    assert again.ret == 0
    again.stdout.fnmatch_lines([f"saved baseline (1 case(s) merged): {baseline}"])
    assert list(load_run(baseline).cases) == ["micro_linear_256-fp32"] and moved.read_text() == '{"benchmarks": [{"na'

    # a partial save into a baseline recorded under another version of a numerics-key package (the same
    # timing key, so the same file): the case it did not run keeps the environment it was measured in
    data = json.loads(baseline.read_text())
    data["ptq"]["environment"]["transformers"] = "0.0.1-old"
    old_case = json.loads(json.dumps(data["benchmarks"][0]))
    old_case["extra_info"]["case"], old_case["extra_info"]["recipe"] = "micro_linear_256-old", "old"
    data["benchmarks"].append(old_case)
    baseline.write_text(json.dumps(data))
    partial = pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline")
    assert partial.ret == 0
    merged = load_run(baseline)
    assert merged.environment["transformers"] != "0.0.1-old"  # the file: this session's
    assert merged.environment_of("micro_linear_256-old")["transformers"] == "0.0.1-old"  # not relabelled
    assert merged.environment_of("micro_linear_256-fp32") == merged.environment


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_interrupt_during_the_saves_write_is_a_clean_exit_and_leaves_the_old_baseline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, signal_name
):
    pytester.makepyfile(test_suite=TEST_FILE)
    pytester.makeconftest(CONFTEST)
    assert pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline").ret == 0
    baseline = _baseline(pytester)
    before = baseline.read_bytes()
    monkeypatch.setenv("PTQ_TEST_SIGNAL", signal_name)
    cut = pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline")
    assert cut.ret == pytest.ExitCode.INTERRUPTED
    said = "Ctrl-C" if signal_name == "SIGINT" else "signal SIGTERM"
    [line] = [x for x in cut.stdout.lines if x.startswith("ptq gate: error:")]
    assert line == (
        f"ptq gate: error: interrupted ({said}) while comparing or saving: every file it was writing is as "
        "it was before (each write is a temporary file renamed into place); the saves listed above "
        "completed; rerun to save the rest"
    )
    assert "Traceback" not in cut.stdout.str() + cut.stderr.str()
    assert baseline.read_bytes() == before and _litter(pytester) == []


def test_a_run_json_marks_failing_tests_and_export_leaves_them_out_naming_them(pytester: pytest.Pytester, capsys):
    from ptq.cli import main

    pytester.makepyfile(
        test_suite="""
def test_case(ptq_bench, ptq_case):
    ptq_bench()
    assert ptq_case.recipe != "fp32", "fp32 failed its check"
"""
    )
    result = pytester.runpytest_subprocess(*FAST, "--ptq-recipes=fp32,dynamic_int8", "--benchmark-json=run.json")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    run = pytester.path / "run.json"
    outcome = {
        b["extra_info"]["case"]: b["extra_info"].get("test_outcome") for b in json.loads(run.read_text())["benchmarks"]
    }
    assert outcome == {"micro_linear_256-fp32": "failed", "micro_linear_256-dynamic_int8": None}
    out = pytester.path / "out"
    capsys.readouterr()  # the session's own output
    assert main(["export", str(run), "--format", "github-action-benchmark", "-o", str(out)]) == 0
    stderr = capsys.readouterr().err
    assert stderr.splitlines()[0] == (
        "note: left out 1 case(s) whose test failed in this run: micro_linear_256-fp32; "
        "fix them and rerun to export their figures"
    )
    names = [e["name"] for f in sorted(out.iterdir()) for e in json.loads(f.read_text())]
    assert names and all(n.startswith("micro_linear_256-dynamic_int8 ") for n in names)
    # a run whose every case failed is refused: its figures are not results
    data = json.loads(run.read_text())
    for b in data["benchmarks"]:
        b["extra_info"]["test_outcome"] = "failed"
    run.write_text(json.dumps(data))
    assert main(["export", str(run), "--format", "bencher", "-o", str(pytester.path / "none")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"ptq: error: {run}: every case's test failed in this run (micro_linear_256-dynamic_int8, micro_linear_256-fp32); "
        "its figures are not results: fix the failures and export a run whose tests passed"
    ]
    assert not (pytester.path / "none").exists()
