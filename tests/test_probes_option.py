"""``--ptq-probes`` is checked before any work, like ``--ptq-models``: a blank value (which ran
every probe) or a glob that matches no registered probe (which ran none) is a usage error."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # every test runs pytest sessions in fresh processes

TEST_FILE = """
def test_case(ptq_bench):
    ptq_bench()
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_suite=TEST_FILE)
    return pytester.runpytest_subprocess(
        "--benchmark-only", "--ptq-models=micro_linear_256", "--ptq-recipes=fp32", *args, "-p", "no:cacheprovider"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            " ",
            "--ptq-probes=' ' is blank; give comma-separated globs of probe names (*drift*), or drop the option to run "
            "every probe",
        ),
        (",", "--ptq-probes=',' is blank; *"),
        (
            "drift,memry",
            "--ptq-probes='drift,memry': 'memry' matches no registered probe; nearest: memory; valid: *size*",
        ),
        ("nothing_*", "--ptq-probes='nothing_*': 'nothing_*' matches no registered probe; valid: *drift*"),
    ],
    ids=["blank", "only-commas", "typo", "glob"],
)
def test_bad_probe_selection_is_one_line_usage_error_before_any_work(pytester: pytest.Pytester, value, message):
    result = _run(pytester, f"--ptq-probes={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "passed" not in result.stdout.str()


def test_valid_probe_globs_are_accepted(pytester: pytest.Pytester):
    result = _run(pytester, "--ptq-probes=drift, mem*", "--collect-only")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(["*test_case*micro_linear_256-fp32*"])


def test_without_the_speedup_probe_the_progress_lines_promise_no_speedup_visits(pytester: pytest.Pytester):
    result = _run(pytester, "--ptq-probes=size", "--benchmark-max-time=0.01", "--ptq-warmup=1")
    assert result.ret == pytest.ExitCode.OK, result.stderr.str()
    result.stdout.fnmatch_lines(
        [
            "ptq: 1 case(s) of matrix 'default', --ptq-models=micro_linear_256, --ptq-recipes=fp32",
            "ptq: 1/1 cases, * elapsed, about 0s left",
        ]
    )
    assert "speedup visits" not in result.stdout.str()
