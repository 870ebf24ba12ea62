"""Options are checked before the first benchmark runs: one line naming the option, the value
and what is allowed, pytest exit status 4 (a usage error), and nothing written."""

from __future__ import annotations

import pytest

TEST_FILE = """
def test_case(ptq_bench):
    ptq_bench()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ptq-threads=0"], "--ptq-threads=0: must be >= 1 (torch intra-op threads; omit it for the default)"),
        (["--ptq-threads=-2"], "--ptq-threads=-2: must be >= 1 *"),
        (["--ptq-warmup-time=-5"], "--ptq-warmup-time=-5.0: must be >= 0 (seconds of warm-up)"),
        (["--ptq-pair-time=-1"], "--ptq-pair-time=-1.0: must be >= 0 (0 disables the speedup pairs)"),
        (["--ptq-placements=1"], "--ptq-placements=1: must be >= 2 (an interval over placements needs two)"),
        (["--ptq-rerun-target=-0.1"], "--ptq-rerun-target=-0.1: must be >= 0 (0 adds no visits)"),
        # Bad inputs, round three (issue 29), row 17: NaN passed every check (a NaN target turned the reruns off).
        (["--ptq-pair-time=nan"], "--ptq-pair-time=nan: must be a finite number >= 0 (0 disables the speedup pairs)"),
        (["--ptq-rerun-target=nan"], "--ptq-rerun-target=nan: must be a finite number >= 0 (0 adds no visits)"),
        (["--ptq-rerun-target=inf"], "--ptq-rerun-target=inf: must be a finite number >= 0 (0 adds no visits)"),
        (["--ptq-warmup-time=inf"], "--ptq-warmup-time=inf: must be a finite number >= 0 (seconds of warm-up)"),
        (["--ptq-pair-time=-inf"], "--ptq-pair-time=-inf: must be a finite number >= 0 *"),
        (
            ["--ptq-max-visits=3"],
            "--ptq-max-visits=3: must be >= the visits made (6: --ptq-placements + "
            "--ptq-quiet-extra); raise it or lower those",
        ),
        (
            ["--ptq-models= "],
            "--ptq-models=' ' is blank; give comma-separated globs of model names, or drop the option "
            "for every model of matrix 'default'",
        ),
        (
            ["--ptq-recipes=fp32,dynamci_int8"],
            "--ptq-recipes='fp32,dynamci_int8': 'dynamci_int8' matches no recipe of "
            "matrix 'default'; nearest: dynamic_int8, *",
        ),
        (
            ["--ptq-save-baseline", "test_suite.py"],
            "--ptq-save-baseline='test_suite.py' is a test path, not a baseline "
            "file (the option takes the next argument as its value); write "
            "--ptq-save-baseline=PATH.json, or put the test paths first",
        ),
        (["--ptq-compare", "."], "--ptq-compare='.' is a test path, not a baseline file *"),
    ],
    ids=[
        "threads-0",
        "threads-negative",
        "warmup-time",
        "pair-time",
        "placements",
        "rerun-target",
        "pair-time-nan",
        "rerun-target-nan",
        "rerun-target-inf",
        "warmup-time-inf",
        "pair-time-minus-inf",
        "max-visits",
        "blank-models",
        "glob-typo",
        "save-baseline-test-file",
        "compare-test-dir",
    ],
)
def test_bad_option_is_one_line_usage_error_before_any_work(pytester: pytest.Pytester, args, message):
    test_file = pytester.makepyfile(test_suite=TEST_FILE)
    result = pytester.runpytest_subprocess(
        "--benchmark-only", "--ptq-models=micro_linear_256", "--ptq-recipes=fp32", *args, "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.stderr.str()
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "passed" not in result.stdout.str()
    assert not (pytester.path / "results").exists() and not list(pytester.path.glob("*.lock"))  # nothing saved
    assert test_file.read_text().strip() == TEST_FILE.strip()


def test_every_numeric_ptq_option_is_checked_in_one_place(pytestconfig: pytest.Config):
    """Row 17's second half: each int or float option of ptq's is in ptq.pytest_plugin.BOUNDS, checked
    (finite, and at least its minimum) when pytest configures, before any case is collected."""
    from ptq.pytest_plugin import BOUNDS

    options = pytestconfig._parser.getgroup("ptq").options
    numeric = {o.names()[-1] for o in options if o.attrs().get("type") in (int, float, "int", "float")}
    assert numeric and numeric == {b.option for b in BOUNDS}
