"""The gate's pytest options, run as a user would: save a baseline, compare, fail on a regression."""

from __future__ import annotations

import json

import pytest

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
    slower.stdout.fnmatch_lines(["*ptq: regression gate*", "micro_linear_256-fp32*latency*REGRESSION", "FAIL: 1 regression(s)*"])
    assert "**REGRESSION**" in (pytester.path / "summary.md").read_text()

    baseline.write_text('{"benchmarks": [')
    broken = pytester.runpytest_subprocess(*FAST, "--ptq-compare", "--ptq-save-baseline")
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    broken.stdout.fnmatch_lines([f"ptq gate: error: {baseline}: corrupt or truncated JSON*"])
    assert baseline.read_text() == '{"benchmarks": ['

