"""ptq export: each format's files checked against that tool's documented shape (see ptq/render/export.py)."""

from __future__ import annotations

import json
import math

import jsonschema
import numpy as np
import pytest
from gate_fixtures import bench, run, samples

from ptq.errors import UserError
from ptq.render.export import export, figures, write_export
from ptq.storage.runs import parse_run

# Bencher Metric Format as https://bencher.dev/docs/reference/bencher-metric-format documents it:
# benchmark name -> measure name -> {value (required), lower_value, upper_value}, all numbers.
BMF_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "object",
    "patternProperties": {".+": {"type": "object", "patternProperties": {".+": {
        "type": "object", "required": ["value"],
        "properties": {k: {"type": "number"} for k in ("value", "lower_value", "upper_value")}}}}},
}

# github-action-benchmark's custom tools (README, "Examples"; src/extract.ts BenchmarkResult): a list of
# {name: string, unit: string, value: number, range?: string, extra?: string}.
GAB_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "array",
    "items": {"type": "object", "required": ["name", "unit", "value"], "additionalProperties": False,
              "properties": {"name": {"type": "string", "minLength": 1}, "unit": {"type": "string"},
                             "value": {"type": "number"}, "range": {"type": "string", "pattern": "^(±|\\+-) ?[0-9]"},
                             "extra": {"type": "string"}}},
}

BLOCKS = [samples(1e-3 * (1 + 0.01 * k), n=30, seed=k) for k in range(4)]


def _run() -> dict:
    speed = {"ratio": 2.5, "low": 2.4, "high": 2.6, "n": 40}
    metrics = {"speedup": speed, "memory": {"inference": {"increment_bytes": 3 << 20}},
               "size": {"serialized_bytes": 123456},
               "drift": {"value": 0.991, "headline": "cosine_mean", "higher_is_better": True, "tolerance": 0.01}}
    int8 = bench("m-int8", [x for b in BLOCKS for x in b], metrics=metrics, ab_placement_sizes=[len(b) for b in BLOCKS],
                 speedup_vs_best_fp32={"best_form": "fp32_jit", "ratio": 1.8, "low": 1.7, "high": 1.9})
    fp32 = bench("m-fp32", samples(2e-3, n=50), metrics={"size": {"serialized_bytes": 400000}})
    return run(fp32, int8)


def test_figures_are_the_gated_ones_with_their_intervals():
    found = {(f.case, f.measure): f for f in figures(parse_run(_run(), "run"))}
    assert set(found) == {("m-fp32", "latency"), ("m-fp32", "size"), ("m-int8", "latency"), ("m-int8", "speedup-vs-fp32"),
                          ("m-int8", "speedup-vs-best-fp32"), ("m-int8", "memory"), ("m-int8", "size"), ("m-int8", "drift")}
    lat = found[("m-int8", "latency")]
    per_placement = [float(np.quantile(b, 0.01)) * 1e3 for b in BLOCKS]  # p1 per placement, in ms
    assert lat.value == pytest.approx(math.exp(np.mean(np.log(per_placement))))
    assert lat.low < lat.value < lat.high and "4 placements" in lat.how
    assert found[("m-fp32", "latency")].low is None  # one allocation: no interval claimed
    assert (found[("m-int8", "speedup-vs-best-fp32")].value, found[("m-int8", "speedup-vs-best-fp32")].low) == (1.8, 1.7)
    drift = found[("m-int8", "drift")]
    assert drift.value == pytest.approx(0.991) and drift.higher_is_better and drift.unit == "cosine_mean"


def test_bencher_export_is_bencher_metric_format():
    [(name, doc)] = export(parse_run(_run(), "run"), "bencher").items()
    assert name == "bencher.json"
    jsonschema.validate(doc, BMF_SCHEMA)
    latency = doc["m-int8"]["latency"]  # Bencher's built-in latency measure is in nanoseconds
    assert latency["lower_value"] < latency["value"] < latency["upper_value"] and 9e5 < latency["value"] < 1.2e6
    assert doc["m-int8"]["speedup-vs-fp32"] == {"value": 2.5, "lower_value": 2.4, "upper_value": 2.6}
    assert doc["m-int8"]["memory"] == {"value": 3 << 20} and doc["m-fp32"]["size"] == {"value": 400000}


def test_github_action_benchmark_export_splits_by_direction_in_the_custom_tools_format():
    files = export(parse_run(_run(), "run"), "github-action-benchmark")
    assert set(files) == {"customSmallerIsBetter.json", "customBiggerIsBetter.json"}
    for doc in files.values():
        jsonschema.validate(doc, GAB_SCHEMA)
    smaller = {e["name"]: e for e in files["customSmallerIsBetter.json"]}
    bigger = {e["name"]: e for e in files["customBiggerIsBetter.json"]}
    assert set(bigger) == {"m-int8 [speedup-vs-fp32]", "m-int8 [speedup-vs-best-fp32]", "m-int8 [drift]"}
    assert {"m-int8 [latency]", "m-int8 [memory]", "m-int8 [size]", "m-fp32 [latency]"} <= set(smaller)
    speed = bigger["m-int8 [speedup-vs-fp32]"]
    assert speed["range"] == "± 0.1" and "interval [2.4, 2.6]" in speed["extra"]
    assert "range" not in smaller["m-fp32 [latency]"] and smaller["m-int8 [latency]"]["unit"] == "ms"


def test_written_files_are_strict_json_and_the_command_names_them(tmp_path, capsys):
    from ptq.cli import main

    src = tmp_path / "run.json"
    src.write_text(json.dumps(_run()))
    assert main(["export", str(src), "--format", "bencher", "-o", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote: {tmp_path / 'out' / 'bencher.json'}"
    json.loads((tmp_path / "out" / "bencher.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    paths = write_export(parse_run(_run(), "run"), "github-action-benchmark", tmp_path)
    assert sorted(p.name for p in paths) == ["customBiggerIsBetter.json", "customSmallerIsBetter.json"]


def test_an_unknown_format_or_a_run_without_figures_is_one_error_naming_the_fix():
    with pytest.raises(UserError, match="unknown export format 'csv'; valid export formats: github-action-benchmark, bencher"):
        export(parse_run(_run(), "run"), "csv")
    with pytest.raises(UserError, match=r"empty\.json: no case recorded a figure.*--benchmark-json"):
        export(parse_run(run(bench("m-fp32", None)), "empty.json"), "bencher")
