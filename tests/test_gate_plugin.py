"""The gate's pytest options, run as a user would: save a baseline, compare, fail on a regression."""

from __future__ import annotations

import json

import pytest

from ptq.comparison import EXIT_NO_BASELINE
from ptq.plugins.gate import PYTEST_EXIT

TEST_FILE = '''
def test_case(ptq_bench):
    ptq_bench()
'''

FAST = ["--benchmark-only", "--ptq-models=micro_linear_256", "--ptq-recipes=fp32", "--benchmark-min-rounds=20",
        "--benchmark-max-time=0.02", "--ptq-warmup=1", "--ptq-pair-time=0", "-p", "no:cacheprovider"]


def test_save_compare_regress_and_refuse_a_corrupt_baseline(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite=TEST_FILE)
    saved = pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline", "--ptq-save-run")
    assert saved.ret == 0
    [baseline] = (pytester.path / "results" / "baselines").glob("*.json")
    assert len(list((pytester.path / "results" / "runs").glob("*.json"))) == 1
    saved.stdout.fnmatch_lines([f"saved baseline (1 case(s) merged): {baseline}"])

    # Make the stored baseline a few nanoseconds per call, faster than any real call: a regression.
    data = json.loads(baseline.read_text())
    stats = data["benchmarks"][0]["stats"]
    stats["data"] = [1e-9 * (1 + i / 100) for i in range(len(stats["data"]))]
    baseline.write_text(json.dumps(data))
    slower = pytester.runpytest_subprocess(*FAST, "--ptq-compare", "--ptq-compare-md=summary.md")
    assert slower.ret == pytest.ExitCode.TESTS_FAILED
    slower.stdout.fnmatch_lines(["*ptq: regression gate*", "micro_linear_256-fp32*latency*REGRESSION", "FAIL: 1 regression*"])
    assert "**REGRESSION**" in (pytester.path / "summary.md").read_text()

    baseline.write_text('{"benchmarks": [')
    broken = pytester.runpytest_subprocess(*FAST, "--ptq-compare", "--ptq-save-baseline")
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    broken.stdout.fnmatch_lines([f"ptq gate: error: {baseline}: corrupt or truncated JSON*"])
    assert baseline.read_text() == '{"benchmarks": ['



def test_no_baseline_fails_with_its_own_status_and_new_cases_need_accepting(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite=TEST_FILE)
    missing = pytester.runpytest_subprocess(*FAST, "--ptq-compare", "--ptq-accept-new")
    assert missing.ret == PYTEST_EXIT[EXIT_NO_BASELINE] == 6  # accepting new cases does not accept no baseline
    missing.stdout.fnmatch_lines([
        "*ptq: regression gate (exit status 0 pass, 1 a row failed, 4 bad input, 6 no baseline)*",
        "error: no baseline for fingerprint * does not exist); stored in *results/baselines: none; "
        "record this machine's with `pytest benchmarks --benchmark-only --ptq-save-baseline`",
        "FAIL: no baseline (1 new accepted)",
    ])
    assert pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline").ret == 0
    both = [*FAST, "--ptq-models=micro_linear_256", "--ptq-recipes=fp32,dynamic_int8"]  # the second one is new
    new = pytester.runpytest_subprocess(*both, "--ptq-compare", "--ptq-save-baseline")
    assert new.ret == 6
    new.stdout.fnmatch_lines(["FAIL: 1 new (*)", "ptq: nothing saved (--ptq-save-baseline): the session failed the "
                              "regression gate; fix it and rerun, or pass --ptq-save-partial *"])
    accepted = pytester.runpytest_subprocess(*both, "--ptq-compare", "--ptq-accept-new")
    assert accepted.ret == 0
    accepted.stdout.fnmatch_lines(["PASS (1 new accepted, *)"])


def test_accept_new_and_save_partial_need_the_option_they_modify(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite=TEST_FILE)
    for option, needs in (("--ptq-accept-new", "--ptq-compare"), ("--ptq-save-partial", "--ptq-save-baseline or --ptq-save-run")):
        result = pytester.runpytest_subprocess(*FAST, option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: {option} needs {needs}"])
