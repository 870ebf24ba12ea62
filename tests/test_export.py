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
    "patternProperties": {
        ".+": {
            "type": "object",
            "patternProperties": {
                ".+": {
                    "type": "object",
                    "required": ["value"],
                    "properties": {k: {"type": "number"} for k in ("value", "lower_value", "upper_value")},
                }
            },
        }
    },
}

# github-action-benchmark's custom tools (README, "Examples"; src/extract.ts BenchmarkResult): a list of
# {name: string, unit: string, value: number, range?: string, extra?: string}.
GAB_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema",
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "unit", "value"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "unit": {"type": "string"},
            "value": {"type": "number"},
            "range": {"type": "string", "pattern": "^(±|\\+-) ?[0-9]"},
            "extra": {"type": "string"},
        },
    },
}

BLOCKS = [samples(1e-3 * (1 + 0.01 * k), n=30, seed=k) for k in range(4)]


def _run() -> dict:
    speed = {"ratio": 2.5, "low": 2.4, "high": 2.6, "n": 40}
    metrics = {
        "speedup": speed,
        "memory": {"inference": {"increment_bytes": 3 << 20}},
        "size": {"serialized_bytes": 123456},
        "drift": {"value": 0.991, "headline": "cosine_mean", "higher_is_better": True, "tolerance": 0.01},
    }
    int8 = bench(
        "m-int8",
        [x for b in BLOCKS for x in b],
        metrics=metrics,
        ab_placement_sizes=[len(b) for b in BLOCKS],
        speedup_vs_best_fp32={"best_form": "fp32_jit", "ratio": 1.8, "low": 1.7, "high": 1.9},
    )
    fp32 = bench("m-fp32", samples(2e-3, n=50), metrics={"size": {"serialized_bytes": 400000}})
    return run(fp32, int8)


def test_figures_are_the_gated_ones_with_their_intervals():
    found = {(f.case, f.measure): f for f in figures(parse_run(_run(), "run"))}
    assert set(found) == {
        ("m-fp32", "latency"),
        ("m-fp32", "size"),
        ("m-int8", "latency"),
        ("m-int8", "speedup-vs-fp32"),
        ("m-int8", "speedup-vs-best-fp32"),
        ("m-int8", "memory"),
        ("m-int8", "size"),
        ("m-int8", "drift"),
    }
    lat = found[("m-int8", "latency")]
    per_placement = [float(np.quantile(b, 0.01)) * 1e3 for b in BLOCKS]  # p1 per placement, in ms
    assert lat.value == pytest.approx(math.exp(np.mean(np.log(per_placement))))
    assert lat.low < lat.value < lat.high and "4 placements" in lat.how
    assert found[("m-fp32", "latency")].low is None  # one allocation: no interval claimed
    assert (found[("m-int8", "speedup-vs-best-fp32")].value, found[("m-int8", "speedup-vs-best-fp32")].low) == (
        1.8,
        1.7,
    )
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
    with pytest.raises(
        UserError, match="unknown export format 'csv'; valid export formats: github-action-benchmark, bencher"
    ):
        export(parse_run(_run(), "run"), "csv")
    with pytest.raises(UserError, match=r"empty\.json: no case recorded a figure.*--benchmark-json"):
        export(parse_run(run(bench("m-fp32", None)), "empty.json"), "bencher")


# Issue 29 (bad inputs, round three): `ptq export` as a user runs it; exit code, stderr, the files afterwards.


def _ptq(capsys, *args) -> tuple[int, str, list[str]]:
    from ptq.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def _drift(value: float, higher_is_better: bool, headline: str) -> dict:
    return {"drift": {"headline": headline, "value": value, "higher_is_better": higher_is_better, "tolerance": 1.0}}


def test_a_negative_drift_headline_keeps_its_sign_and_its_direction(tmp_path, capsys):
    src = tmp_path / "run.json"  # -3 dB SQNR: broken quantization; a lower-is-better measure at -0.002
    src.write_text(
        json.dumps(
            run(
                bench("a-int8", samples(1e-3), metrics=_drift(-3.0, True, "sqnr_db")),
                bench("b-int8", samples(1e-3), metrics=_drift(-0.002, False, "kl_div")),
            )
        )
    )
    code, _, err = _ptq(capsys, "export", src, "--format", "github-action-benchmark", "-o", tmp_path / "gab")
    assert (code, err) == (0, [])
    bigger = {e["name"]: e for e in json.loads((tmp_path / "gab" / "customBiggerIsBetter.json").read_text())}
    smaller = {e["name"]: e for e in json.loads((tmp_path / "gab" / "customSmallerIsBetter.json").read_text())}
    assert (bigger["a-int8 [drift]"]["value"], bigger["a-int8 [drift]"]["unit"]) == (-3.0, "sqnr_db")
    assert (smaller["b-int8 [drift]"]["value"], smaller["b-int8 [drift]"]["unit"]) == (-0.002, "kl_div")
    assert "a-int8 [drift]" not in smaller and "b-int8 [drift]" not in bigger
    code, _, _ = _ptq(capsys, "export", src, "--format", "bencher", "-o", tmp_path / "bmf")
    doc = json.loads((tmp_path / "bmf" / "bencher.json").read_text())
    assert code == 0 and doc["a-int8"]["drift"] == {"value": -3.0} and doc["b-int8"]["drift"] == {"value": -0.002}


def test_a_run_without_a_higher_is_better_figure_writes_no_empty_file(tmp_path, capsys):
    plain = {
        "machine_info": {"node": "n", "processor": "x86_64", "python_version": "3.11", "cpu": {"brand_raw": "cpu"}},
        "commit_info": {},
        "benchmarks": [
            {
                "name": "test_a",
                "fullname": "t.py::test_a",
                "group": None,
                "param": None,
                "extra_info": {},
                "stats": {"data": samples(1e-3, n=20)},
            }
        ],
    }
    (tmp_path / "plain.json").write_text(json.dumps(plain))  # a plain pytest-benchmark run: latency only
    out = tmp_path / "out"
    out.mkdir()
    (out / "customBiggerIsBetter.json").write_text('[{"name": "an earlier run", "unit": "x", "value": 2}]')
    code, stdout, err = _ptq(
        capsys, "export", tmp_path / "plain.json", "--format", "github-action-benchmark", "-o", out
    )
    assert code == 0 and stdout.strip() == f"wrote: {out / 'customSmallerIsBetter.json'}"
    assert err == [
        f"note: customBiggerIsBetter.json not written: no case of {tmp_path / 'plain.json'} recorded a higher-is-better "
        "figure (a speedup: the speedup probe; drift where higher is better); github-action-benchmark refuses an empty "
        "file, so leave out the step that uploads it (or record such a figure)",
        f"note: removed {out / 'customBiggerIsBetter.json'}: an earlier export's, not this run's",
    ]
    assert sorted(p.name for p in out.iterdir()) == ["customSmallerIsBetter.json"]  # no empty list, no stale file
    [entry] = json.loads((out / "customSmallerIsBetter.json").read_text())
    jsonschema.validate([entry], GAB_SCHEMA)
    assert entry["name"] == "test_a [latency]"
    # a run with no figure at all is refused, and writes nothing
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps(run(bench("m-fp32", None))))
    code, _, err = _ptq(capsys, "export", empty, "--format", "github-action-benchmark", "-o", tmp_path / "none")
    assert code == 2 and err == [
        f"ptq: error: {empty}: no case recorded a figure to export (latency needs raw samples: "
        "save with --benchmark-json or --ptq-save-run)"
    ]
    assert not (tmp_path / "none").exists()
