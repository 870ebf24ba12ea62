"""History loading, step verdicts, Markdown and HTML reports, on the fixture history
(tests/fixtures/make_history.py says what each run holds and which events it injects)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ptq.cli import main
from ptq.config import Config, validate
from ptq.errors import UserError
from ptq.gate.comparison import compare, render
from ptq.render.html import render_html
from ptq.render.trends import METRICS, Marker, layer_sqnr, series
from ptq.stats.decide import Verdict
from ptq.storage.history import load_history

HISTORY = Path(__file__).parent / "fixtures" / "history"
SLOWED, FATTER = "micro_linear_256-static_int8", "digits_cnn-static_int8"


@pytest.fixture(scope="module")
def runs():
    return load_history([HISTORY])


def test_history_reads_ptq_runs_and_plain_benchmark_save_files_in_commit_order(runs):
    assert len(runs) == 5
    assert [r.time for r in runs] == sorted(r.time for r in runs)
    plain = runs[1]
    assert "benchmark-save" in plain.path and plain.fingerprint.startswith("machine:")
    assert plain.cases["micro_linear_256-fp32"].model == "micro_linear_256"  # from param and group
    assert runs[0].cases[SLOWED].recipe == "static_int8"
    assert runs[4].fingerprint != runs[3].fingerprint


def test_steps_are_the_gates_verdicts_with_its_thresholds(runs):
    lat = series(METRICS["latency"], SLOWED, runs)
    assert lat[3].judgement is not None and "Mann-Whitney" in lat[3].judgement.detail  # the gate's latency judge
    assert lat[3].previous is runs[2]  # the previous comparable run
    mem = series(METRICS["memory"], FATTER, runs)
    assert mem[3].judgement is not None and 23 < float(mem[3].judgement.change.rstrip("%")) < 27  # +25% injected
    # [tool.ptq.gate] decides: allow 30% memory growth and the injected +25% is no longer flagged.
    lenient = validate({"gate": {"memory_threshold": 0.3}}, "test")
    assert series(METRICS["memory"], FATTER, runs, lenient)[3].verdict is Marker.UNCHANGED
    assert series(METRICS["memory"], FATTER, runs, Config())[3].verdict is Marker.REGRESSION


def test_series_marks_the_injected_events(runs):
    lat = [s.verdict for s in series(METRICS["latency"], SLOWED, runs)]
    # new; plain file (no raw samples); unchanged; 1.5x slower at run 4; other CPU at run 5
    assert lat == [Marker.NEW, Marker.INCOMPARABLE, Marker.UNCHANGED, Marker.REGRESSION, Marker.INCOMPARABLE]
    speed = [s.verdict for s in series(METRICS["speedup"], SLOWED, runs)]
    # the gate compares speedups on one fingerprint only: run 5's recovery is on another CPU
    assert speed == [Marker.NEW, None, Marker.UNCHANGED, Marker.REGRESSION, Marker.INCOMPARABLE]
    flagged = {
        (m, case)
        for m in METRICS
        for case in runs[0].cases
        if any(s.verdict in (Marker.REGRESSION, Marker.IMPROVEMENT) for s in series(METRICS[m], case, runs))
    }
    assert flagged == {("latency", SLOWED), ("speedup", SLOWED), ("memory", FATTER), ("drift", FATTER)}  # no noise
    mem = series(METRICS["memory"], FATTER, runs)
    assert [s.reading is None for s in mem] == [True, True, False, False, False]  # not recorded before run 3
    assert mem[3].verdict is Marker.REGRESSION and mem[4].verdict is Marker.UNCHANGED  # memory: any machine
    assert series(METRICS["drift"], FATTER, runs)[4].verdict is Marker.REGRESSION
    assert layer_sqnr(runs[4].cases[FATTER])["classifier.3"] < 20 and layer_sqnr(runs[2].cases[FATTER]) is None


def test_markdown_is_the_gates_comparison_failing_rows_first(runs):
    c = compare(runs[2], runs[3])
    md = render(c, "md")
    assert md.startswith("### ptq regression gate: FAIL: 3 regressions")
    failing = md[md.index("Failing the gate") : md.index("<details>")]
    assert {(r.case, r.metric) for r in c.failing} == {(SLOWED, "latency"), (SLOWED, "speedup"), (FATTER, "memory")}
    for r in c.failing:  # each with the judge's explanation
        assert f"| {r.case} | {r.metric} |" in failing and r.judgement.detail.split(",")[0] in failing
    assert "Mann-Whitney" in failing and "allowed: max(5%" in failing
    assert md[md.index("<details>") :].count("\n| ") == len(c.rows) + 1  # every row, and the header
    # Run 5 is on another CPU: its latency and speedup rows are not compared, and fail the gate.
    other = compare(runs[3], runs[4])
    assert {r.verdict for r in other.rows if r.metric in ("latency", "speedup")} == {Verdict.NOT_COMPARED}
    assert other.exit_code == 1 and "not compared" in render(other, "md").splitlines()[0]


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
    assert "1 regression (33 ok)" in md and FATTER in md and "| latency |" not in md  # memory; no latency across runs
    assert (
        main(
            [
                "report",
                str(HISTORY / "runs" / "run-0004.json"),
                "--baseline",
                str(base),
                "--format",
                "md",
                "--judges",
                "*",
            ]
        )
        == 0
    )
    md = capsys.readouterr().out
    assert "3 regressions" in md and SLOWED in md and FATTER in md  # asked for by name: latency, speedup; memory


@pytest.mark.parametrize("fmt", ["md", "json"])
def test_report_renders_exactly_what_ptq_compare_renders(capsys, fmt):
    """One engine: same run, baseline, judges and --accept-new give the same text, whichever command."""
    run4, run3 = str(HISTORY / "runs" / "run-0004.json"), str(HISTORY / "runs" / "run-0003.json")
    for judges in (["--judges", "*memory,size,drift"], []):
        assert main(["compare", run4, "--baseline", run3, "--format", fmt, "--accept-new", *judges]) == 1
        compared = capsys.readouterr().out
        assert main(["report", run4, "--baseline", run3, "--format", fmt, "--accept-new", *judges]) == 0
        assert capsys.readouterr().out.rstrip("\n") == compared.rstrip("\n")
    assert main(["report", run4, "--baseline", run3, "--judges", "latncy"]) == 2
    assert "--judges='latncy': latncy matches no judge" in capsys.readouterr().err


def test_html_report_embeds_the_comparison_it_is_given(runs):
    gate = compare(runs[2], runs[3], judges=["memory", "size", "drift"])
    html = render_html(runs[:4], comparison=gate)
    assert render(gate, "html") in html and "FAIL: 1 regression" in html
    assert "allowed: max(5%" in html  # the memory row's explanation
    default = render_html(runs[:4])  # the latest run against the one before it, every judge
    assert render(compare(runs[2], runs[3]), "html") in default and "FAIL: 3 regressions" in default


def test_report_to_an_existing_directory_is_one_line_naming_it_and_the_fix(tmp_path, capsys):
    assert main(["report", str(HISTORY), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"ptq: error: -o {tmp_path}: is a directory; name a file in it, e.g. -o {tmp_path / 'report.html'}"
    assert list(tmp_path.iterdir()) == []


def test_report_command_bad_input_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"benchmarks": [')
    assert main(["report", str(bad)]) == 2
    assert "bad.json: corrupt or truncated JSON" in capsys.readouterr().err
    (tmp_path / "x.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(UserError, match="no 'benchmarks' list"):
        load_history([tmp_path / "x.json"])
    assert main(["report", str(HISTORY / "runs" / "run-0001.json"), "--format", "md"]) == 2
