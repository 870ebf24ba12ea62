"""Comparing a run with a baseline: verdicts, ordering, fingerprints, missing metrics, CLI exit codes."""

from __future__ import annotations

import json

import pytest
from gate_fixtures import bench, run, samples

from ptq.cli import main
from ptq.config import validate
from ptq.errors import UserError
from ptq.gate.comparison import EXIT_NO_BASELINE, EXIT_OK, EXIT_REGRESSION, compare, render
from ptq.stats.decide import Verdict
from ptq.storage.runs import parse_run


def _verdicts(comparison):
    return {(r.case, r.metric): r.verdict for r in comparison.rows}


def _speedup(ratio: float, half: float = 0.02) -> dict:
    return {"speedup": {"ratio": ratio, "low": ratio - half, "high": ratio + half, "n": 50}}


BASE = run(
    bench("m-fp32", samples(1e-3, seed=1), metrics={"size": {"serialized_bytes": 1000}}),
    bench("m-int8", samples(5e-4, seed=2), metrics={**_speedup(2.0), "size": {"serialized_bytes": 300}}),
    bench("m-fp16", samples(8e-4, seed=3), metrics={"size": {"serialized_bytes": 500}}),
)


def test_regressions_come_first_and_set_the_exit_code():
    cur = run(
        bench("m-fp32", samples(1e-3, seed=11), metrics={"size": {"serialized_bytes": 1000}}),
        bench("m-int8", samples(6e-4, seed=12), metrics={**_speedup(1.6), "size": {"serialized_bytes": 300}}),
        bench("m-fp16", samples(6e-4, seed=13), metrics={"size": {"serialized_bytes": 400}}),
        bench("m-new", samples(1e-3, seed=14)),
    )
    c = compare(parse_run(BASE, "base.json"), parse_run(cur, "cur.json"))
    v = _verdicts(c)
    assert v[("m-int8", "latency")] is Verdict.REGRESSION and v[("m-int8", "speedup")] is Verdict.REGRESSION
    assert v[("m-fp16", "latency")] is Verdict.IMPROVED and v[("m-fp16", "size")] is Verdict.IMPROVED
    assert v[("m-fp32", "latency")] is Verdict.OK and v[("m-new", "*")] is Verdict.NEW
    assert [r.verdict for r in c.rows[:2]] == [Verdict.REGRESSION] * 2
    assert c.exit_code == EXIT_REGRESSION
    assert "memory: recorded by neither run, and no probe said it should be (3 case(s))" in c.notes


def test_new_cases_fail_unless_accepted():
    cur = run(
        bench("m-fp32", samples(1e-3, seed=21), metrics={"size": {"serialized_bytes": 1000}}),
        bench("x-fp32", samples(1.0)),
    )
    c = compare(parse_run(BASE, "base.json"), parse_run(cur, "cur.json"))
    assert c.exit_code == EXIT_NO_BASELINE and _verdicts(c)[("x-fp32", "*")] is Verdict.NEW
    assert render(c).endswith("FAIL: 1 new (2 ok)")
    assert any("1 case(s) have no baseline figure" in n and "--accept-new" in n for n in c.notes)
    assert any("2 baseline case(s) not in this run" in n for n in c.notes)
    accepted = compare(parse_run(BASE, "base.json"), parse_run(cur, "cur.json"), accept_new=True)
    assert accepted.exit_code == EXIT_OK and render(accepted).endswith("PASS (1 new accepted, 2 ok)")


def _elsewhere(data: dict, **env: object) -> dict:
    """The run as if measured in another environment (its keys are read from it, not the stored fingerprint)."""
    data["ptq"]["environment"] = {**data["ptq"]["environment"], **env}
    return data


def test_another_cpu_model_compares_size_but_not_latency_and_names_the_timing_key():
    cur = _elsewhere(
        run(bench("m-fp16", samples(1e-2, seed=5), metrics={"size": {"serialized_bytes": 900}})),
        cpu_model="another cpu",
    )
    c = compare(parse_run(BASE, "base.json"), parse_run(cur, "cur.json"))
    v = _verdicts(c)
    assert v[("m-fp16", "latency")] is Verdict.NOT_COMPARED and v[("m-fp16", "size")] is Verdict.REGRESSION
    row = next(r for r in c.rows if r.metric == "latency")
    assert row.judgement.detail == "not comparable: timing keys differ (cpu_model)"
    assert any("latency and speedup not compared" in n and "(cpu_model)" in n for n in c.notes)


def test_other_isa_flags_or_versions_make_memory_size_and_drift_not_comparable_naming_the_keys():
    drift = {"drift": {"value": 0.1, "tolerance": 0.01}}
    base = run(bench("m-int8", samples(1e-3), metrics={"size": {"serialized_bytes": 100}, **drift}))
    cur = _elsewhere(
        run(bench("m-int8", samples(1e-3), metrics={"size": {"serialized_bytes": 900}, **drift})),
        cpu_flags=["avx2", "amx_int8"],
        torch="2.15",
    )
    c = compare(parse_run(base, "base.json"), parse_run(cur, "cur.json"))
    details = {r.metric: r.judgement.detail for r in c.rows}
    assert {r.verdict for r in c.rows} == {Verdict.NOT_COMPARED} and c.exit_code == EXIT_REGRESSION
    assert details["size"] == details["drift"] == "not comparable: numerics keys differ (cpu_flags, torch)"
    assert any("memory, size and drift not compared" in n for n in c.notes)


def test_drift_of_other_weights_is_not_comparable_even_on_the_same_machine():
    def one(weights: str) -> dict:
        return run(bench("m-int8", None, weights=weights, metrics={"drift": {"value": 0.1}}))

    same = compare(
        parse_run(one("trained:k,sha256=aa (loaded)"), "b"),
        parse_run(one("trained:k,sha256=aa (trained now)"), "c"),
        judges=["drift"],
    )
    assert [r.verdict for r in same.rows] == [Verdict.OK]  # how the weights were obtained is not what they are
    other = compare(
        parse_run(one("trained:k,sha256=aa (loaded)"), "b"),
        parse_run(one("trained:k,sha256=bb (loaded)"), "c"),
        judges=["drift"],
    )
    assert [r.judgement.detail for r in other.rows] == [
        "not comparable: weights differ (trained:k,sha256=aa vs trained:k,sha256=bb)"
    ]


def test_metric_missing_on_one_side_is_not_measured_and_fails_the_gate():
    cur = run(bench("m-fp32", samples(1e-3, seed=31)))
    c = compare(parse_run(BASE, "base.json"), parse_run(cur, "cur.json"))
    row = next(r for r in c.rows if r.metric == "size")
    assert row.verdict is Verdict.NOT_MEASURED and row.judgement.detail == "not in the current run"
    assert c.exit_code == EXIT_REGRESSION and c.failing == [row]
    assert render(c).endswith("FAIL: 1 not measured (1 ok)")
    assert "| **not measured** |" in render(c, "md")


def test_summary_names_every_failing_outcome():
    cur = _elsewhere(
        run(bench("m-int8", samples(6e-4, seed=12)), bench("m-fp16", samples(1e-2, seed=5))), cpu_model="another cpu"
    )
    c = compare(parse_run(BASE, "base.json"), parse_run(cur, "cur.json"), accept_new=True)
    # latency of another CPU: not compared; size, and m-int8's speedup, missing in the current run: not measured
    assert _verdicts(c)[("m-int8", "latency")] is Verdict.NOT_COMPARED
    assert c.exit_code == EXIT_REGRESSION
    assert render(c).endswith("FAIL: 3 not measured, 2 not compared")


def test_memory_and_drift_judges_read_their_documented_keys():
    mib = 1 << 20

    def mem(peak, spread):
        return {
            "memory": {"inference": {"increment_bytes": peak * mib, "samples": [(peak - spread) * mib, peak * mib]}}
        }

    def drift(value):
        return {"drift": {"value": value}}

    base = run(
        bench("a-int8", samples(1.0), metrics={**mem(100, 0), **drift(0.010)}),
        bench("b-int8", samples(1.0), metrics={**mem(100, 10), **drift(0.010)}),
    )
    cur = run(
        bench("a-int8", samples(1.0, seed=9), metrics={**mem(110, 0), **drift(0.020)}),
        bench("b-int8", samples(1.0, seed=9), metrics={**mem(110, 0), **drift(0.012)}),
    )
    v = _verdicts(compare(parse_run(base, "b"), parse_run(cur, "c")))
    assert v[("a-int8", "memory")] is Verdict.REGRESSION and v[("b-int8", "memory")] is Verdict.OK  # spread 10 MiB x 3
    assert v[("a-int8", "drift")] is Verdict.REGRESSION and v[("b-int8", "drift")] is Verdict.OK


@pytest.mark.parametrize(
    ("grown_mib", "absolute", "verdict"),
    [
        (1.0, None, Verdict.OK),  # one pymalloc arena more: the measured run-to-run step
        (1.5, None, Verdict.REGRESSION),
        (1.0, 0, Verdict.REGRESSION),  # memory_absolute = 0: every byte past 5% counts
    ],
)
def test_a_small_step_may_move_by_one_arena(grown_mib, absolute, verdict):
    mib = 1 << 20
    mem = lambda n: {"memory": {"quantize": {"increment_bytes": n}}}  # noqa: E731
    base = run(bench("m-int8", samples(1.0), metrics=mem(2 * mib)))
    cur = run(bench("m-int8", samples(1.0, seed=3), metrics=mem(int((2 + grown_mib) * mib))))
    config = validate({} if absolute is None else {"gate": {"memory_absolute": absolute}}, "test")
    [row] = compare(parse_run(base, "b"), parse_run(cur, "c"), config=config, judges=["quantize_memory"]).rows
    assert row.verdict is verdict
    assert ("1.2 MiB" in row.judgement.detail) == (absolute is None)  # the allowance is named


def test_thresholds_come_from_the_gate_config_section():
    cur = run(bench("m-fp16", samples(8e-4, seed=3), metrics={"size": {"serialized_bytes": 520}}))
    loose = validate({"gate": {"cases": {"m-fp16": {"size_threshold": 0.1}}}}, "cfg")
    assert _verdicts(compare(parse_run(BASE, "b"), parse_run(cur, "c")))[("m-fp16", "size")] is Verdict.REGRESSION
    assert _verdicts(compare(parse_run(BASE, "b"), parse_run(cur, "c"), config=loose))[("m-fp16", "size")] is Verdict.OK


def test_latency_statistic_comes_from_the_gate_config_section():
    base = run(bench("m-int8", [1e-3] * 150 + [1.3e-3] * 50))
    cur = run(bench("m-int8", [1e-3] * 100 + [1.3e-3] * 100))  # more stalled calls, same fastest calls
    by_p1 = compare(parse_run(base, "b"), parse_run(cur, "c"))
    assert _verdicts(by_p1)[("m-int8", "latency")] is Verdict.OK
    assert "p1 ratio" in by_p1.rows[0].judgement.detail and by_p1.rows[0].judgement.baseline == "1 ms p1"
    by_median = validate({"gate": {"latency_statistic": "median"}}, "cfg")
    assert (
        _verdicts(compare(parse_run(base, "b"), parse_run(cur, "c"), config=by_median))[("m-int8", "latency")]
        is Verdict.REGRESSION
    )
    with pytest.raises(
        UserError, match=r"cfg: \[tool.ptq.gate\] latency_statistic = 'p3' is not one of min, p1, p5, p10, p25, median"
    ):
        validate({"gate": {"latency_statistic": "p3"}}, "cfg")
    with pytest.raises(UserError, match=r"latency_statistic = 'p3' is not one of"):  # in a scope too
        validate({"gate": {"cases": {"m-int8": {"latency_statistic": "p3"}}}}, "cfg")
    with pytest.raises(UserError, match=r"latency_statistic = 1: must be a string"):
        validate({"gate": {"latency_statistic": 1}}, "cfg")


def test_markdown_has_a_table_and_the_summary():
    cur = run(bench("m-int8", samples(6e-4, seed=12), metrics={**_speedup(1.6), "size": {"serialized_bytes": 300}}))
    md = render(compare(parse_run(BASE, "base.json"), parse_run(cur, "cur.json")), "md")
    assert md.startswith("### ptq regression gate: FAIL: 2 regressions (1 ok)")
    assert "| case | metric | baseline | current | change | verdict |" in md and "| **REGRESSION** |" in md


@pytest.mark.slow
def test_cli_exit_codes(tmp_path, capsys):
    base, ok, bad = tmp_path / "base.json", tmp_path / "ok.json", tmp_path / "slow.json"
    base.write_text(json.dumps(BASE))
    ok.write_text(
        json.dumps(run(bench("m-fp32", samples(1e-3, seed=41), metrics={"size": {"serialized_bytes": 1000}})))
    )
    bad.write_text(
        json.dumps(run(bench("m-fp32", samples(2e-3, seed=42), metrics={"size": {"serialized_bytes": 1000}})))
    )
    assert main(["compare", str(ok), "--baseline", str(base)]) == 0
    # two separate runs: latency is ptq ab's, so the 2x slower run passes on memory, size, drift, and says so
    assert main(["compare", str(bad), "--baseline", str(base)]) == 0
    out = capsys.readouterr().out
    assert "latency and speedup are not judged across two runs" in out and "latency  " not in out
    assert main(["compare", str(bad), "--baseline", str(base), "--format", "md", "--judges", "latency,size"]) == 1
    out = capsys.readouterr().out
    assert "**REGRESSION**" in out and "latency judged across two runs because --judges asked" in out
    (tmp_path / "trunc.json").write_text(base.read_text()[:40])
    assert main(["compare", str(ok), "--baseline", str(tmp_path / "trunc.json")]) == 2
    assert "trunc.json: corrupt or truncated JSON" in capsys.readouterr().err
    # --judges: latency left to ptq ab, the 2x slower run passes on the judges kept
    assert main(["compare", str(bad), "--baseline", str(base), "--judges", "size,*memory"]) == 0
    assert "latency" not in capsys.readouterr().out
    assert main(["compare", str(bad), "--baseline", str(base), "--judges", "size,latncy"]) == 2
    assert "--judges='size,latncy': latncy matches no judge; valid: latency, speedup" in capsys.readouterr().err


@pytest.mark.parametrize("accept_new", [[], ["--accept-new"]], ids=["plain", "accept-new"])
def test_cli_without_a_baseline_fails_and_lists_the_stored_ones(tmp_path, capsys, accept_new):
    (tmp_path / "results" / "runs").mkdir(parents=True)
    (tmp_path / "results" / "runs" / "r.json").write_text(json.dumps(BASE))
    (tmp_path / "results" / "baselines").mkdir()
    (tmp_path / "results" / "baselines" / "bbbb.json").write_text(json.dumps(run(fingerprint="bbbb", torch="2.15")))
    (tmp_path / "results" / "baselines" / "cccc.json").write_text("{")
    assert main(["compare", "--root", str(tmp_path), *accept_new]) == EXIT_NO_BASELINE  # accepted new or not
    out = capsys.readouterr().out
    [error] = [line for line in out.splitlines() if line.startswith("error: ")]
    assert error.startswith(
        f"error: no baseline for fingerprint aaaa ({tmp_path}/results/baselines/aaaa.json does not exist)"
    )
    assert "bbbb.json (fingerprint bbbb: torch differ)" in error and "cccc.json (unreadable: " in error
    assert error.endswith("record this machine's with `pytest benchmarks --benchmark-only --ptq-save-baseline`")
    assert out.count("  new\n") == 3 and out.rstrip().endswith(
        "FAIL: no baseline (3 new" + (" accepted)" if accept_new else ")")
    )
    assert main(["compare", "--root", str(tmp_path), "--format", "md"]) == EXIT_NO_BASELINE
    assert "### ptq regression gate: FAIL: no baseline (3 new)" in capsys.readouterr().out


def test_a_baseline_without_cases_is_no_baseline():
    c = compare(parse_run(run(), "A: HEAD~1"), parse_run(BASE, "B: HEAD"), accept_new=True)
    assert c.exit_code == EXIT_NO_BASELINE and c.no_baseline == "A: HEAD~1 holds no case"


@pytest.mark.parametrize("fmt", ["text", "md"])
def test_every_format_renders_an_empty_comparison(fmt):
    assert "PASS" in render(compare(parse_run(run(), "b"), parse_run(run(), "c")), fmt)


def test_interleaved_ab_compares_timings_across_fingerprints_and_says_so():
    cur = run(bench("m-fp16", samples(1e-2, seed=5)), fingerprint="bbbb", torch="2.15")
    c = compare(parse_run(BASE, "A"), parse_run(cur, "B"), same_machine=True)
    assert _verdicts(c)[("m-fp16", "latency")] is Verdict.REGRESSION
    assert any("both sides ran interleaved on this machine" in n and "torch" in n for n in c.notes)


def test_a_stored_baseline_of_another_runner_applies_where_its_numerics_keys_match(tmp_path):
    from ptq.gate.comparison import compare_stored

    stored = tmp_path / "results" / "baselines"
    stored.mkdir(parents=True)
    size = lambda n: {"size": {"serialized_bytes": n}}  # noqa: E731
    other_cpu = _elsewhere(run(bench("m-int8", samples(1e-3), metrics=size(100))), cpu_model="runner cpu")
    (stored / "bbbb.json").write_text(json.dumps(other_cpu))
    cur = run(bench("m-int8", samples(1e-3, seed=3), metrics=size(900)))
    c = compare_stored(tmp_path, parse_run(cur, "cur.json"))
    assert c.baseline.endswith("bbbb.json") and c.no_baseline is None
    assert _verdicts(c) == {("m-int8", "size"): Verdict.REGRESSION}  # latency: not judged across runs
    (stored / "cccc.json").write_text("{")  # a corrupt one beside the one that applies: said, not skipped silently
    c = compare_stored(tmp_path, parse_run(cur, "cur.json"))
    assert c.baseline.endswith("bbbb.json") and any(n.startswith("skipped cccc.json (unreadable: ") for n in c.notes)
    (stored / "cccc.json").unlink()
    (stored / "bbbb.json").write_text(json.dumps(_elsewhere(other_cpu, threads=3)))  # other kernels: none applies
    c = compare_stored(tmp_path, parse_run(cur, "cur.json"))
    assert (
        c.exit_code == EXIT_NO_BASELINE and "bbbb.json (fingerprint aaaa: cpu_model, threads differ)" in c.no_baseline
    )


def test_a_latency_whose_interval_cannot_be_estimated_is_not_measured_never_ok():
    """Both sides split by placement, but a single placement (no interval over placements) or
    placements that cannot be paired: not measured, and not pooled back into one draw."""

    def one(sizes: list[int]) -> dict:
        return run(bench("m-int8", samples(1e-3, n=20), ab_placement_sizes=sizes))

    for a, b, why in (([20], [20], ">= 2 placements"), ([10, 10], [20], "differ in number: 1 vs 2")):
        c = compare(parse_run(one(a), "a"), parse_run(one(b), "b"), judges=["latency"])
        [row] = c.rows
        assert row.verdict is Verdict.NOT_MEASURED and c.exit_code == EXIT_REGRESSION
        assert row.judgement.detail.startswith("no interval could be estimated") and why in row.judgement.detail


def test_runs_under_different_memory_bandwidth_get_a_note_and_keep_their_verdicts():
    def measured(gbps: float | None) -> dict:
        data = run(bench("m-int8", samples(5e-4, seed=2), metrics=_speedup(2.0)))
        if gbps is not None:
            data["ptq"]["memory_bandwidth"] = {"median_gbps": gbps, "low_gbps": gbps, "high_gbps": gbps, "reads": 3}
        return data

    def notes(base: float | None, cur: float | None, **kw) -> list[str]:
        c = compare(parse_run(measured(base), "base.json"), parse_run(measured(cur), "cur.json"), **kw)
        assert _verdicts(c)[("m-int8", "speedup")] is Verdict.OK  # a note, never a verdict of its own
        return [n for n in c.notes if n.startswith("memory bandwidth")]

    [note] = notes(20.0, 16.0)
    assert "baseline 20.0 GB/s, current 16.0 GB/s (-20%)" in note and "ptq ab" in note
    assert notes(20.0, 19.5) == [] and notes(None, 16.0) == [] and notes(20.0, None) == []
    assert notes(20.0, 16.0, same_machine=True) == []  # interleaved sides shared the machine's state


def test_a_latency_no_side_measured_is_a_failing_row_with_the_duet_s_reason():
    """ptq ab's duet could not prepare the case on either side: never a note beside PASS."""
    why = "a duet worker could not prepare it: side A: unknown model 'user_mlp'"
    unmeasured = bench("m-fp32", [], ab_latency="not measured", ab_latency_why=why)
    c = compare(parse_run(run(unmeasured), "A"), parse_run(run(unmeasured), "B"), judges=["latency"], same_machine=True)
    [row] = c.rows
    assert row.verdict is Verdict.NOT_MEASURED and c.exit_code == EXIT_REGRESSION
    assert row.judgement.detail == f"not measured on either side ({why})"
    assert render(c).endswith("FAIL: 1 not measured")


def test_a_figure_a_probe_said_it_could_not_measure_on_both_sides_fails():
    said = {"memory": {"inference": {"not_measured": "memray is not installed"}}}
    c = compare(
        parse_run(run(bench("m-fp32", samples(1e-3), metrics=said)), "A"),
        parse_run(run(bench("m-fp32", samples(1e-3, seed=1), metrics=said)), "B"),
        judges=["memory", "size"],
    )
    assert _verdicts(c) == {("m-fp32", "memory"): Verdict.NOT_MEASURED}
    assert "memray is not installed" in c.rows[0].judgement.detail and c.exit_code == EXIT_REGRESSION
    assert "size: recorded by neither run, and no probe said it should be (1 case(s))" in c.notes


def test_in_an_a_b_a_case_side_b_lacks_is_a_failing_row_not_a_note():
    base = run(bench("m-fp32", samples(1e-3)), bench("m-int8", samples(5e-4)))
    cur = run(bench("m-fp32", samples(1e-3, seed=4)))
    ab = compare(parse_run(base, "A"), parse_run(cur, "B"), judges=["latency"], same_machine=True)
    assert _verdicts(ab)[("m-int8", "*")] is Verdict.NOT_MEASURED and ab.exit_code == EXIT_REGRESSION
    across = compare(parse_run(base, "base"), parse_run(cur, "cur"), judges=["latency"])  # a narrower selection
    assert ("m-int8", "*") not in _verdicts(across) and any("not in this run" in n for n in across.notes)


def test_a_drift_row_names_its_measure_and_samples():
    def one(value: float) -> dict:
        return run(
            bench(
                "m-int8",
                samples(1e-3),
                weights="w",
                metrics={
                    "drift": {
                        "headline": "top1_agreement",
                        "value": value,
                        "higher_is_better": True,
                        "tolerance": 0.01,
                        "samples": 16,
                    }
                },
            )
        )

    c = compare(parse_run(one(1.0), "b"), parse_run(one(0.875), "c"), judges=["drift"])
    [row] = c.rows
    assert row.verdict is Verdict.REGRESSION and row.cells()[2:5] == ["top1_agreement 1", "0.875", "-0.125"]
    assert row.explanation == "top1_agreement over 16 samples (higher is better); allowed: 0.01 absolute"
