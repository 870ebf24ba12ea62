"""The gate's pytest options, run as a user would: save a baseline, compare, fail on a regression."""

from __future__ import annotations

import json

import pytest

from ptq.gate.comparison import EXIT_NO_BASELINE
from ptq.plugins.gate import PYTEST_EXIT

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
    # two runs: latency is not judged unless asked for (ptq ab judges it, both sides interleaved)
    unjudged = pytester.runpytest_subprocess(*FAST, "--ptq-compare")
    assert unjudged.ret == pytest.ExitCode.OK
    unjudged.stdout.fnmatch_lines(["note: latency and speedup are not judged across two runs*", "PASS*"])
    slower = pytester.runpytest_subprocess(*FAST, "--ptq-compare", "--ptq-judges=*", "--ptq-compare-md=summary.md")
    assert slower.ret == pytest.ExitCode.TESTS_FAILED
    slower.stdout.fnmatch_lines(
        ["*ptq: regression gate*", "micro_linear_256-fp32*latency*REGRESSION", "FAIL: 1 regression*"]
    )
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
    missing.stdout.fnmatch_lines(
        [
            "*ptq: regression gate (exit status 0 pass, 1 a row failed, 4 bad input, 6 no baseline)*",
            "error: no baseline for fingerprint * does not exist); stored in *results/baselines: none; "
            "record this machine's with `pytest benchmarks --benchmark-only --ptq-save-baseline`",
            "FAIL: no baseline (1 new accepted)",
        ]
    )
    assert pytester.runpytest_subprocess(*FAST, "--ptq-save-baseline").ret == 0
    # Latency is not judged across two runs (two processes are two placements, issue 20): memory and size are.
    both = [*FAST, "--ptq-models=micro_linear_256", "--ptq-recipes=fp32,dynamic_int8"]  # the second one is new
    new = pytester.runpytest_subprocess(*both, "--ptq-compare", "--ptq-save-baseline")
    assert new.ret == 6
    new.stdout.fnmatch_lines(
        [
            "FAIL: 1 new (*)",
            "ptq: nothing saved (--ptq-save-baseline): the session failed the "
            "regression gate; fix it and rerun, or pass --ptq-save-partial *",
        ]
    )
    accepted = pytester.runpytest_subprocess(*both, "--ptq-compare", "--ptq-accept-new")
    assert accepted.ret == 0
    accepted.stdout.fnmatch_lines(["PASS (1 new accepted, 2 ok)"])


def test_accept_new_and_save_partial_need_the_option_they_modify(pytester: pytest.Pytester):
    pytester.makepyfile(test_suite=TEST_FILE)
    for option, needs in (
        ("--ptq-accept-new", "--ptq-compare"),
        ("--ptq-save-partial", "--ptq-save-baseline or --ptq-save-run"),
    ):
        result = pytester.runpytest_subprocess(*FAST, option)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: {option} needs {needs}"])


CONFTEST = '''
import os
import signal

import torch

from ptq.models import Built, TensorData, register_model

# The session under test gets the signal handling of one a user starts in a terminal. A process
# started from a background job of a non-interactive shell (`pytest tests &` in a script, some CI
# wrappers) inherits SIGINT ignored, its children too, and Python leaves an inherited SIG_IGN as
# it is: the SIGINT below then did nothing and the session ended normally, exit 0 (issue 29, row 24).
signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class StopMidway(torch.nn.Module):
    """Sends its own process $STOP_SIGNAL on its 30th call: while pytest-benchmark times it."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == 30:
            os.kill(os.getpid(), getattr(signal, os.environ["STOP_SIGNAL"]))
        return self.fc(x)


@register_model("user_stop", batch_size=2)
def user_stop(*, weights):
    return Built(StopMidway().eval(), weights="random:seed=0",
                 data=TensorData(lambda g, n: (torch.randn(n, 8, generator=g),), "randn(8)"))


@register_model("user_nan", batch_size=2)
def user_nan(*, weights):
    model = torch.nn.Linear(4, 4)
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    return Built(model, weights="random:seed=0", data=TensorData(lambda g, n: (torch.randn(n, 4, generator=g),), "randn(4)"))
'''


def _files(root) -> list[str]:
    results = root / "results"
    return sorted(str(p.relative_to(root)) for p in results.rglob("*") if p.is_file()) if results.exists() else []


def test_a_failing_session_saves_nothing_unless_asked_for_its_passed_cases(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TEST_FILE)
    args = [*FAST, "--ptq-models=micro_linear_256,user_nan", "--ptq-save-baseline", "--ptq-save-run"]
    failing = pytester.runpytest_subprocess(*args)
    failing.assert_outcomes(passed=1, failed=1)
    failing.stdout.fnmatch_lines(
        [
            "ptq: nothing saved (--ptq-save-baseline, --ptq-save-run): the session had 1 failing "
            "test(s); fix it and rerun, or pass --ptq-save-partial to save the 1 case(s) whose "
            "tests passed"
        ]
    )
    assert _files(pytester.path) == []
    partial = pytester.runpytest_subprocess(*args, "--ptq-save-partial")
    assert partial.ret == pytest.ExitCode.TESTS_FAILED
    [baseline] = (pytester.path / "results" / "baselines").glob("*.json")
    assert [b["extra_info"]["case"] for b in json.loads(baseline.read_text())["benchmarks"]] == [
        "micro_linear_256-fp32"
    ]
    partial.stdout.fnmatch_lines([f"saved baseline (1 case(s) merged): {baseline}"])


def test_an_interrupted_session_saves_nothing_and_never_a_half_timed_case(pytester: pytest.Pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=TEST_FILE)
    args = [*FAST, "--benchmark-min-rounds=200", "--ptq-models=micro_linear_256,user_stop", "--ptq-save-baseline"]
    # SIGTERM, which ends a process at once by default, is an interrupt like Ctrl-C while saving is wanted.
    monkeypatch.setenv("STOP_SIGNAL", "SIGTERM")
    partial = pytester.runpytest_subprocess(*args, "--ptq-save-partial")
    assert partial.ret == pytest.ExitCode.INTERRUPTED
    [baseline] = (pytester.path / "results" / "baselines").glob("*.json")
    partial.stdout.fnmatch_lines(
        [f"saved baseline (1 case(s) merged; 1 left out: their tests did not pass): {baseline}"]
    )
    saved = baseline.read_bytes()
    data = json.loads(saved)
    assert [b["extra_info"]["case"] for b in data["benchmarks"]] == ["micro_linear_256-fp32"]  # user_stop was cut short

    monkeypatch.setenv("STOP_SIGNAL", "SIGINT")
    interrupted = pytester.runpytest_subprocess(*args)
    assert interrupted.ret == pytest.ExitCode.INTERRUPTED
    interrupted.stdout.fnmatch_lines(
        [
            "ptq: nothing saved (--ptq-save-baseline): the session was interrupted "
            "(KeyboardInterrupt*); fix it and rerun, or pass --ptq-save-partial *"
        ]
    )
    assert baseline.read_bytes() == saved
    assert _files(pytester.path) == [
        str(baseline.relative_to(pytester.path)),
        f"{baseline.relative_to(pytester.path)}.lock",
    ]
