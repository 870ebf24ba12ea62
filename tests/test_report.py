"""History loading, step verdicts, Markdown and HTML reports, on the fixture history
(tests/fixtures/make_history.py says what each run holds and which events it injects)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ptq.cli import main
from ptq.errors import UserError
from ptq.history import load_history
from ptq.html_report import render_html
from ptq.md_report import MARKER, render_markdown
from ptq.trends import METRICS, Reading, Verdict, compare, judge, layer_sqnr, series

HISTORY = Path(__file__).parent / "fixtures" / "history"
SLOWED, FATTER = "micro_linear_256-static_int8", "digits_cnn-static_int8"


@pytest.fixture(scope="module")
def runs():
    return load_history([HISTORY])


def test_history_reads_ptq_runs_and_plain_benchmark_save_files_in_commit_order(runs):
    assert len(runs) == 5
    assert [r.time for r in runs] == sorted(r.time for r in runs)
    plain = runs[1]
    assert "benchmark-save" in plain.source and plain.fingerprint.startswith("machine:")
    assert plain.cases["micro_linear_256-fp32"].model == "micro_linear_256"  # from param and group
    assert runs[0].cases[SLOWED].recipe == "static_int8"
    assert runs[4].fingerprint != runs[3].fingerprint


def test_judge_needs_both_factor_and_separated_spreads():
    lat = METRICS["latency"]
    base = Reading(10.0, 9.5, 10.5)
    assert judge(lat, base, Reading(13.0, 12.5, 13.5)) is Verdict.REGRESSION
    assert judge(lat, base, Reading(13.0, 10.0, 16.0)) is Verdict.UNCHANGED  # spreads overlap
    assert judge(lat, base, Reading(10.5, 10.4, 10.6)) is Verdict.UNCHANGED  # under the factor
    assert judge(lat, base, Reading(7.0, 6.8, 7.2)) is Verdict.IMPROVEMENT
    assert judge(lat, None, base) is Verdict.NEW
    sp = METRICS["speedup"]
    assert judge(sp, Reading(2.0, 1.9, 2.1, higher_is_better=True), Reading(1.5, 1.4, 1.6, higher_is_better=True)) is Verdict.REGRESSION
    drift = METRICS["drift"]
    a = Reading(0.004, label="accuracy drop", min_delta=0.005)
    assert judge(drift, a, Reading(0.008, label="accuracy drop", min_delta=0.005)) is Verdict.UNCHANGED  # under the floor
    assert judge(drift, a, Reading(0.02, label="accuracy drop", min_delta=0.005)) is Verdict.REGRESSION
    assert judge(drift, a, Reading(40.0, label="output SQNR (dB)", higher_is_better=True)) is Verdict.INCOMPARABLE


def test_series_marks_the_injected_events(runs):
    lat = [s.verdict for s in series(METRICS["latency"], SLOWED, runs)]
    assert lat[3] is Verdict.REGRESSION and lat[4] is Verdict.INCOMPARABLE  # slower at run 4, other CPU at 5
    speed = [s.verdict for s in series(METRICS["speedup"], SLOWED, runs)]
    assert speed[3] is Verdict.REGRESSION and speed[4] is Verdict.IMPROVEMENT
    mem = series(METRICS["memory"], FATTER, runs)
    assert [s.reading is None for s in mem] == [True, True, False, False, False]  # not recorded before run 3
    assert mem[3].verdict is Verdict.REGRESSION
    assert series(METRICS["drift"], FATTER, runs)[4].verdict is Verdict.REGRESSION
    assert layer_sqnr(runs[4].cases[FATTER])["classifier.3"] < 20 and layer_sqnr(runs[2].cases[FATTER]) is None


def test_markdown_lists_regressions_then_improvements_then_counts(runs):
    md = render_markdown(runs[3], runs[4])
    assert md.startswith(MARKER)
    assert "1 regression, 1 improvement" in md
    assert md.index("#### Regressions") < md.index("#### Improvements")
    regressions = md[md.index("#### Regressions"):md.index("#### Improvements")]
    assert FATTER in regressions and "accuracy drop" in regressions and SLOWED not in regressions
    n_changes = len(compare(runs[3], runs[4]))
    unchanged = int(re.search(r"(\d+) unchanged", md).group(1))
    incomparable = int(re.search(r"(\d+) not comparable", md).group(1))
    assert unchanged + incomparable + 2 == n_changes
    assert incomparable == len(runs[4].cases)  # every latency: other fingerprint


def test_html_report_is_self_contained_and_says_what_is_missing(runs):
    html = render_html(runs)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched
    assert "<script src" not in html and "<link" not in html
    assert html.count("<svg") > 50
    assert "peak memory not recorded in any run" not in html  # memory arrives at run 3...
    assert "not recorded in 2 of 5 runs" in html  # ...and the charts say where it is missing
    for section in ("Speedup over fp32", "Latency vs drift", "Per-layer SQNR", "Environment of each run"):
        assert section in html


def test_html_report_of_runs_without_memory_or_drift(runs):
    html = render_html(runs[:2])
    assert "peak memory not recorded in any run" in html
    assert "drift not recorded for digits_cnn" in html
    assert "per-layer SQNR not recorded in any run" in html


def test_report_command_writes_html_and_md(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(HISTORY), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    base = HISTORY / "runs" / "run-0003.json"
    assert main(["report", str(HISTORY / "runs" / "run-0004.json"), "--baseline", str(base), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert "3 regressions" in md and SLOWED in md and FATTER in md  # latency, speedup; memory


def test_report_command_bad_input_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"benchmarks": [')
    assert main(["report", str(bad)]) == 2
    assert "bad.json: not a readable JSON file" in capsys.readouterr().err
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(UserError, match="no 'benchmarks' list"):
        load_history([tmp_path / "x.json"])
    assert main(["report", str(HISTORY / "runs" / "run-0001.json"), "--format", "md"]) == 2
