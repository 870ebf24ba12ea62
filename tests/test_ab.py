"""Interleaved A/B: side export, ABBA schedule, merging rounds, verdict; with a fake pytest runner."""

from __future__ import annotations

import json
import subprocess

import pytest
from gate_fixtures import bench, run, samples

from ptq.errors import UserError
from ptq.gate.comparison import EXIT_REGRESSION, compare
from ptq.run.ab import INSTALLED, Side, materialize, merge_rounds, run_rounds, schedule
from ptq.stats.decide import Verdict
from ptq.storage.runs import parse_run


def test_schedule_alternates_which_side_goes_first():
    assert schedule(3) == [(0, "A"), (0, "B"), (1, "B"), (1, "A"), (2, "A"), (2, "B")]
    with pytest.raises(UserError, match="--rounds must be >= 1"):
        schedule(0)


def test_merge_concatenates_samples_and_pools_speedups():
    speed = lambda r: {"speedup": {"ratio": r, "low": r - 0.1, "high": r + 0.1, "n": 10}}  # noqa: E731
    r1 = run(bench("m-int8", [1.0, 2.0], metrics=speed(1.5)))
    r2 = run(bench("m-int8", [3.0], metrics=speed(1.7)))
    r3 = run(bench("m-int8", [4.0], metrics=speed(1.9)))
    merged = merge_rounds([r1, r2, r3])
    [b] = merged["benchmarks"]
    assert b["stats"]["data"] == [1.0, 2.0, 3.0, 4.0] and b["extra_info"]["ab_round_sizes"] == [2, 1, 1]
    assert parse_run(merged, "merged").cases["m-int8"].rounds == ((1.0, 2.0), (3.0,), (4.0,))
    assert b["extra_info"]["metrics"]["speedup"]["ratio"] == pytest.approx(1.7)
    assert b["extra_info"]["metrics"]["speedup"]["n"] == 30 and merged["ptq"]["ab_rounds"] == 3
    lost = run(bench("m-int8", [5.0], metrics={"speedup": {"not_measured": "m-int8: visit 2 raised RuntimeError: x"}}))
    [b] = merge_rounds([r1, lost, r3])["benchmarks"]  # one round without a figure: no partial median
    assert b["extra_info"]["metrics"]["speedup"] == {"not_measured": "m-int8: visit 2 raised RuntimeError: x"}


def test_merge_takes_memory_as_the_median_of_the_rounds_with_their_spread():
    mem = lambda n: {"memory": {"quantize": {"increment_bytes": n}, "inference": {"increment_bytes": 100}}}  # noqa: E731
    merged = merge_rounds([run(bench("m-int8", [1.0], metrics=mem(n))) for n in (4 << 20, 3 << 20, 4 << 20)])
    quantize = merged["benchmarks"][0]["extra_info"]["metrics"]["memory"]["quantize"]
    assert quantize == {"increment_bytes": 4 << 20, "samples": [4 << 20, 3 << 20, 4 << 20]}
    # The A/A of ptq ab that flagged 4 MiB -> 3 MiB as "improved": a 1 MiB spread between rounds allows 3 MiB.
    other = merge_rounds([run(bench("m-int8", [1.0], metrics=mem(n))) for n in (3 << 20, 3 << 20, 4 << 20)])
    result = compare(parse_run(merged, "A"), parse_run(other, "B"), judges=["quantize_memory"])
    assert [r.verdict for r in result.rows] == [Verdict.OK]


@pytest.mark.slow
def test_rounds_run_abba_and_a_slower_candidate_is_a_regression(tmp_path):
    calls = []

    def fake_runner(side: Side, out, pytest_args):
        calls.append((side.label, list(pytest_args)))
        median = 1e-3 if side.label == "A" else 1.2e-3
        out.write_text(json.dumps(run(bench("m-int8", samples(median, n=50, seed=len(calls))))))
        return out

    a, b = Side("A", "HEAD~1", tmp_path), Side("B", "HEAD", tmp_path)
    run_a, run_b = run_rounds(a, b, rounds=2, workdir=tmp_path, pytest_args=["-k", "int8"], runner=fake_runner)
    assert [c[0] for c in calls] == ["A", "B", "B", "A"] and calls[0][1] == ["-k", "int8"]
    assert len(run_b["benchmarks"][0]["stats"]["data"]) == 100
    result = compare(parse_run(run_a, "A"), parse_run(run_b, "B"))
    assert result.exit_code == EXIT_REGRESSION and result.rows[0].verdict is Verdict.REGRESSION
    assert "over 2+2 rounds" in result.rows[0].judgement.detail  # a session is the unit


def test_a_side_writing_bad_json_is_one_error_naming_it(tmp_path):
    def broken(side, out, pytest_args):
        out.write_text("{")
        return out

    with pytest.raises(UserError, match="side A wrote invalid JSON"):
        run_rounds(
            Side("A", "x", tmp_path),
            Side("B", "y", tmp_path),
            rounds=1,
            workdir=tmp_path,
            pytest_args=[],
            runner=broken,
        )


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_materialize_exports_revisions_and_takes_directories_as_they_are(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "f.txt").write_text("one")
    _git(repo, "add", "f.txt")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    (repo / "f.txt").write_text("two (uncommitted)")
    side = materialize("HEAD", repo=repo, into=tmp_path / "work", label="A")
    assert (side.tree / "f.txt").read_text() == "one" and side.pythonpath == side.tree
    assert materialize(str(repo), repo=repo, into=tmp_path / "work", label="B").tree == repo.resolve()
    assert materialize(INSTALLED, repo=repo, into=tmp_path / "work", label="B").pythonpath is None
    with pytest.raises(UserError, match="'nope' is neither a directory nor a git revision"):
        materialize("nope", repo=repo, into=tmp_path / "work", label="A")


def test_sides_in_different_environments_are_refused_naming_the_keys_unless_installs_are_compared():
    from ptq.run.ab import refuse_unlike, unlike_keys

    a, b = run(bench("m-fp32", [1.0] * 5)), run(bench("m-fp32", [1.0] * 5))
    assert unlike_keys(a, b) == {} and refuse_unlike(a, b, installs=False) is None
    b["ptq"]["environment"]["threads"] = 1  # ran with 1 thread; A with 2 (the old default)
    assert unlike_keys(a, b) == {"threads": (2, 1)}
    with pytest.raises(UserError, match=r"threads: A 2, B 1.*--compare-installs"):
        refuse_unlike(a, b, installs=False)
    refuse_unlike(a, b, installs=True)  # asked for: compared


def test_set_samples_rewrites_every_statistic_pytest_benchmark_derives():
    from pytest_benchmark.stats import Stats

    from ptq.run.ab import set_samples

    b = bench("m-int8", [9.0] * 5)
    b["stats"].update(min=9.0, max=9.0, mean=9.0, ops=0.1, rounds=5)  # the last session's figures
    kept = samples(1e-3, n=101, seed=3)
    set_samples(b, kept)
    expected = Stats()
    expected.data = kept
    assert {k: b["stats"][k] for k in Stats.fields} == expected.as_dict()
    assert b["stats"]["data"] == kept and b["stats"]["iterations"] == 1 and b["stats"]["rounds"] == 101
    set_samples(b, [])  # not measured: no stale figure survives
    assert b["stats"]["rounds"] == 0 and all(b["stats"][k] != b["stats"][k] for k in ("min", "median", "mean"))


@pytest.mark.slow
def test_a_file_ptq_ab_saves_reads_in_pytest_benchmark_compare_with_the_duet_figures(monkeypatch, tmp_path, capsys):
    import shutil
    import sys
    from pathlib import Path

    from pytest_benchmark.stats import Stats

    from ptq.cli import main
    from ptq.run.ab import apply_duet

    def entry(case, data):
        b = bench(case, data, threads=1)
        b.update(fullname=f"benchmarks/test_ptq.py::test_case[{case}]", group=None, params=None, param=case, options={})
        b["stats"].update(min=data[0], max=data[-1], mean=data[0], ops=1 / data[0], rounds=len(data), iterations=1)
        return b

    sessions = [run(entry("m-int8", samples(5e-3, n=20, seed=s))) for s in (1, 2)]  # 5 ms: the stale figure
    duet = {"m-int8": [samples(1e-3, n=50, seed=k) for k in range(4)]}  # 1 ms: what the duet kept
    monkeypatch.setattr("ptq.cli.ab.materialize", lambda spec, **kw: Side(kw["label"], spec, tmp_path))
    monkeypatch.setattr("ptq.cli.ab.run_rounds", lambda a, b, **kw: sessions)
    monkeypatch.setattr(
        "ptq.cli.ab.run_duet",
        lambda a, b, ra, rb, **kw: (
            [apply_duet(r, duet, kw["plan"], placed={"m-int8": ["model+inputs"] * 4}) for r in (ra, rb)] and []
        ),
    )
    main(["ab", "x", "y", "--root", str(tmp_path), "--save", "--sweeps", "4", "--placements", "4"])
    saved = [Path(line.split("saved: ")[1]) for line in capsys.readouterr().out.splitlines() if "saved: " in line]
    assert len(saved) == 2
    kept = Stats()
    kept.data = [x for block in duet["m-int8"] for x in block]
    tool = shutil.which("pytest-benchmark", path=str(Path(sys.executable).parent))
    assert tool, "pytest-benchmark's console script is installed with the [dev] extra"
    done = subprocess.run(
        [tool, "compare", str(saved[1]), "--columns=min,median,max,mean,rounds", "--time-unit=us"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    [row] = [line for line in done.stdout.splitlines() if "test_case[m-int8]" in line]
    # "test_case[m-int8] (<file>)  1,001.1303 (1.0)  ...": each figure then its ratio to the best
    cells = [c.replace(",", "") for c in row.split(")", 1)[1].split() if not c.startswith("(")]
    for cell, name in zip(cells, ("min", "median", "max", "mean"), strict=False):
        assert float(cell) == pytest.approx(getattr(kept, name) * 1e6, rel=1e-4), (name, row)
    assert int(cells[-1]) == 200  # rounds: the duet's samples, not a session's 20
