"""``--ptq-shard`` slices the matrix by whole models; ``ptq merge`` joins the slices."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ptq.cli import main
from ptq.cli.merge import merge_runs
from ptq.errors import UserError
from ptq.plugins.shard import Shard, parse_shard, shard_of_models

RUN = Path(__file__).parent / "fixtures" / "history" / "runs" / "run-0004.json"


def test_parse_shard():
    assert parse_shard("2/3") == Shard(2, 3)
    for bad in ("0/3", "4/3", "a/b", "3"):
        with pytest.raises(UserError, match="--ptq-shard"):
            parse_shard(bad)


def test_models_round_robin_and_every_model_in_exactly_one_shard():
    models = ["a", "a", "b", "c", "c", "d", "e"]
    got = shard_of_models(models, 2)
    assert got == {"a": 1, "b": 2, "c": 1, "d": 2, "e": 1}


@pytest.mark.slow
def test_shards_partition_the_collected_cases(pytester):
    pytester.makepyfile("def test_case(ptq_bench):\n    ptq_bench()\n")
    sel = [
        "--collect-only",
        "-q",
        "--ptq-models=micro_linear_256,micro_conv_16,micro_lstm_128",
        "--ptq-recipes=fp32,dynamic_int8",
    ]

    def ids(*extra):
        out = pytester.runpytest_subprocess(*sel, *extra).stdout.lines
        return {line.split("[")[1].rstrip("]") for line in out if "::test_case[" in line}

    every, one, two = ids(), ids("--ptq-shard=1/2"), ids("--ptq-shard=2/2")
    assert len(every) == 6 and one | two == every and not one & two
    assert {c.split("-")[0] for c in one}.isdisjoint({c.split("-")[0] for c in two})  # whole models
    result = pytester.runpytest_subprocess(*sel, "--ptq-shard=3/2")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--ptq-shard='3/2' is not I/N*"])


def _split(doc):
    a, b = copy.deepcopy(doc), copy.deepcopy(doc)
    a["benchmarks"] = [x for x in doc["benchmarks"] if x["group"] == "digits_cnn"]
    b["benchmarks"] = [x for x in doc["benchmarks"] if x["group"] != "digits_cnn"]
    return a, b


@pytest.mark.slow
def test_merge_joins_shards_back_into_the_run(tmp_path, capsys):
    doc = json.loads(RUN.read_text())
    a, b = _split(doc)
    a["ptq"]["memory_bandwidth"] = {"median_gbps": 20.0, "low_gbps": 19.0, "high_gbps": 21.0, "reads": 9}
    (tmp_path / "s1.json").write_text(json.dumps(a))
    (tmp_path / "s2.json").write_text(json.dumps(b))
    out = tmp_path / "run.json"
    assert main(["merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.json"), "-o", str(out)]) == 0
    merged = json.loads(out.read_text())
    assert sorted(x["name"] for x in merged["benchmarks"]) == sorted(x["name"] for x in doc["benchmarks"])
    assert merged["ptq"]["fingerprint"] == doc["ptq"]["fingerprint"]
    assert [s["cases"] for s in merged["ptq"]["shards"]] == [len(a["benchmarks"]), len(b["benchmarks"])]
    # a shard's memory bandwidth stays with its shard (another time, maybe another machine), not the merged run's
    assert "memory_bandwidth" not in merged["ptq"] and merged["ptq"]["shards"][0]["memory_bandwidth"]["reads"] == 9
    assert "memory_bandwidth" not in merged["ptq"]["shards"][1]


@pytest.mark.slow
def test_merge_refuses_overlap_and_other_commits_and_flags_mixed_machines():
    doc = json.loads(RUN.read_text())
    a, b = _split(doc)
    with pytest.raises(UserError, match="is in both"):
        merge_runs([a, copy.deepcopy(a)], ["s1.json", "s2.json"])
    other = copy.deepcopy(b)
    other["commit_info"]["id"] = "0" * 40
    with pytest.raises(UserError, match="different commits"):
        merge_runs([a, other], ["s1.json", "s2.json"])
    b["ptq"]["fingerprint"] = "ffffffffffff"
    merged = merge_runs([a, b], ["s1.json", "s2.json"])
    assert merged["ptq"]["fingerprint"] is None and merged["ptq"]["fingerprints"] == sorted(
        [doc["ptq"]["fingerprint"], "ffffffffffff"]
    )
    assert {x["extra_info"]["fingerprint"] for x in merged["benchmarks"]} == set(merged["ptq"]["fingerprints"])


@pytest.mark.slow
def test_a_shard_from_another_cpu_has_its_latency_not_compared_never_judged(tmp_path, capsys, monkeypatch):
    """Issue 29: two shards, the second from another CPU (same numerics key, 2x slower), merged, then
    `ptq compare merged.json`: the second shard's latency is "not compared", as merge's own warning says."""
    doc = json.loads(RUN.read_text())
    baseline = tmp_path / "results" / "baselines" / f"{doc['ptq']['fingerprint']}.json"
    baseline.parent.mkdir(parents=True)
    baseline.write_text(RUN.read_text())
    a, b = _split(doc)
    b["ptq"]["environment"]["cpu_model"] = "Another CPU"
    b["ptq"]["fingerprint"] = "0ther0ther00"
    for x in b["benchmarks"]:
        x["stats"]["data"] = [2 * v for v in x["stats"]["data"]]
    (tmp_path / "s1.json").write_text(json.dumps(a))
    (tmp_path / "s2.json").write_text(json.dumps(b))
    monkeypatch.chdir(tmp_path)
    assert main(["merge", "s1.json", "s2.json", "-o", "merged.json"]) == 0
    assert "latency is not comparable across them" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.json", "results", "s1.json", "s2.json"]
    code = main(["compare", "merged.json", "--judges", "latency", "--format", "json"])
    rows = json.loads(capsys.readouterr().out)["rows"]
    second = {x["extra_info"]["case"] for x in b["benchmarks"]}
    assert code == 1  # fail closed: a row not compared fails the gate
    for row in rows:
        if row["case"] in second:
            assert row["verdict"] == "not-compared", row
            assert row["detail"] == "not comparable: timing keys differ (cpu_model)"
        else:  # the first shard ran on the baseline's machine: judged, and unchanged
            assert row["verdict"] == "ok", row
    # memory, size and drift still compare: the numerics keys are the same
    assert main(["compare", "merged.json"]) == 0
    assert baseline.read_text() == RUN.read_text()
