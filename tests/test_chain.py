"""The chained history: summaries, their storage, and the trend's math, on synthetic ratios (no timing)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from gate_fixtures import bench, run, samples

from ptq.errors import UserError
from ptq.gate.chain import link, numerics_judges, summarize
from ptq.gate.judges import get_judge
from ptq.host.env import key_hash
from ptq.render.trends import METRICS
from ptq.storage.chain import (
    SCHEMA_VERSION,
    CommitSummary,
    Link,
    keep_numerics,
    load_chain,
    save_summary,
    trend,
)
from ptq.storage.runs import CaseRecord, parse_run


def _link(ratio: float, half: float = 0.01, n: int = 6) -> Link:
    """A link whose interval is ``ratio`` x exp(+-half) (symmetric on the log scale, as a t interval is)."""
    return Link(ratio, ratio * math.exp(-half), ratio * math.exp(half), n, 0.5, "OK", 1.0)


def _chain(ratios: list[float], half: float = 0.01) -> list[CommitSummary]:
    return [
        CommitSummary(f"c{k}", f"c{k - 1}", f"2000-01-01T00:{k:02d}:00Z", {"m-fp32": _link(r, half)})
        for k, r in enumerate(ratios, start=1)
    ]


def test_the_trend_is_the_running_product_with_summed_log_variances():
    ratios = [1.0, 1.01, 0.99, 1.05, 1.0]
    points = trend(_chain(ratios, half=0.02), "m-fp32")
    assert [p.level for p in points] == pytest.approx(list(math.prod(ratios[: k + 1]) for k in range(len(ratios))))
    for k, p in enumerate(points, start=1):  # half-widths add in quadrature: sqrt(k) x one link's
        assert math.log(p.high / p.level) == pytest.approx(0.02 * math.sqrt(k))
        assert math.log(p.level / p.low) == pytest.approx(0.02 * math.sqrt(k))
    assert points[0].low == pytest.approx(points[0].link.low) and points[0].high == pytest.approx(points[0].link.high)


def test_a_step_is_a_link_whose_interval_excludes_one_by_more_than_the_minimum():
    ratios = [1.0, 0.998, 1.003, 1.0, 1.05, 1.0, 1.004, 0.997]
    points = trend(_chain(ratios, half=0.01), "m-fp32")
    assert [p.commit for p in points if p.step] == ["c5"]
    assert trend(_chain([1.05], half=0.08), "m-fp32")[0].step is False  # interval straddles 1: not shown as a step
    assert trend(_chain([1.012], half=0.005), "m-fp32")[0].step is False  # significant, but under 2%: a placement's
    assert trend(_chain([0.95], half=0.01), "m-fp32")[0].step is True  # an improvement is a step too


def test_a_commit_without_the_case_keeps_the_level_and_a_missing_parent_is_a_gap():
    chain = _chain([1.1, 1.0, 1.0])
    chain[1] = CommitSummary("c2", "c1", chain[1].time, {})
    chain[2] = CommitSummary("c3", "c1b", chain[2].time, chain[2].links)  # parent c1b never measured
    points = trend(chain, "m-fp32")
    assert [p.link is None for p in points] == [False, True, False] and points[1].level == pytest.approx(1.1)
    assert [p.gap for p in points] == [False, False, True]


def test_link_judges_paired_placements_as_ptq_ab_does():
    parent = [samples(1e-3 * f, n=40, seed=k, sigma=0.005) for k, f in enumerate([1.0, 1.01, 0.99, 1.0])]
    commit = [samples(1.1e-3 * f, n=40, seed=10 + k, sigma=0.005) for k, f in enumerate([1.0, 1.01, 0.99, 1.0])]
    lk = link(parent, commit)
    assert lk.n == 4 and lk.low < lk.ratio < lk.high and lk.ratio == pytest.approx(1.1, rel=0.02)
    assert lk.verdict == "REGRESSION" and lk.is_step() and lk.ms == pytest.approx(1.1, rel=0.05)


#: A case's extra_info as the plugin records it, with what a summary leaves out (sites, layers).
FULL = {
    "model": "m",
    "recipe": "int8",
    "stack": "eager",
    "weights": "random",
    "data": "synthetic",
    "batch_size": 1,
    "metrics": {
        "memory": {
            "inference": {
                "increment_bytes": 5_000_000,
                "samples": [4_990_000, 5_000_000],
                "baseline_bytes": 1,
                "top_sites": [{"site": "conv", "bytes": 9}],
            },
            "quantize": {"increment_bytes": 7_000_000, "samples": [7_000_000]},
        },
        "size": {"serialized_bytes": 1_234_567, "method": "state_dict", "ratio_vs_fp32": 0.26},
        "drift": {
            "headline": "sqnr_db",
            "value": 31.5,
            "higher_is_better": True,
            "tolerance": 1.0,
            "sqnr_db": 31.5,
            "cosine_mean": 0.999,
            "tolerances": {"sqnr_db": 20},
            "worst_layers": [{"name": "fc", "sqnr_db": 28.0}],
        },
    },
}


def test_a_summary_keeps_what_the_numerics_judges_read_and_nothing_else():
    kept = keep_numerics(FULL)
    assert set(numerics_judges()) == {"memory", "quantize_memory", "size", "drift"}  # the gate's numerics-keyed judges
    full, pruned = CaseRecord("m-int8", FULL, ()), CaseRecord("m-int8", kept, ())
    for name in numerics_judges():
        assert get_judge(name).extract(pruned) == get_judge(name).extract(full) is not None
    for name in ("memory", "size", "drift"):  # and the report reads the same figures
        assert METRICS[name].read(pruned) == METRICS[name].read(full) is not None
    text = json.dumps(kept)
    for dropped in ("top_sites", "worst_layers", "tolerances", "baseline_bytes", "batch_size", "method"):
        assert dropped not in text
    assert keep_numerics({"case": "m-fp32"}) == {}


def _side(median: float, *, threads: int = 2) -> dict:
    blocks = [samples(median, n=30, seed=k, sigma=0.005) for k in range(3)]
    side = run(
        bench("m-int8", [x for b in blocks for x in b], ab_placement_sizes=[30] * 3),
        bench("m-fp32", samples(median, n=30)),
    )  # m-fp32: sessions only, no placements, no numerics
    side["benchmarks"][0]["extra_info"].update(FULL)
    side["ptq"]["environment"]["threads"] = threads
    return side


def test_a_summary_records_the_b_sides_numerics_under_its_numerics_key(tmp_path):
    a, b = parse_run(_side(1e-3), "a"), parse_run(_side(1e-3, threads=4), "b")
    s = summarize(a, b, commit="bbb", parent="aaa", time="2000-01-01T00:00:00Z")
    assert s.numerics_key == key_hash(b.environment, "numerics") != key_hash(a.environment, "numerics")
    assert s.environment["threads"] == 4 and set(s.records) == {"m-int8"}
    loaded = load_chain(save_summary(s, tmp_path).parent)[0]
    assert loaded.records == s.records and loaded.numerics_key == s.numerics_key
    assert (
        get_judge("drift").extract(loaded.record("m-int8")) == (-31.5, 1.0, "sqnr_db")
        and loaded.record("m-fp32") is None
    )


def test_a_version_1_summary_is_migrated_without_numerics(tmp_path):
    v1 = {
        "schema": "ptq.chain",
        "version": 1,
        "commit": "c1",
        "parent": "c0",
        "time": "2000-01-01T00:00:00Z",
        "statistic": "p1",
        "runner": "r",
        "notes": [],
        "cases": {
            "m-int8": {
                "ratio": 1.0,
                "low": 0.99,
                "high": 1.01,
                "n": 3,
                "p": 0.5,
                "verdict": "OK",
                "ms": 1.0,
                "level": 0.95,
            }
        },
    }
    (tmp_path / "c1.json").write_text(json.dumps(v1))
    [s] = load_chain(tmp_path)
    assert s.links["m-int8"].ratio == 1.0 and s.records == {} and s.numerics_key == ""


def test_summaries_round_trip_compactly_and_load_in_order(tmp_path):
    s = summarize(
        parse_run(_side(1e-3), "a"),
        parse_run(_side(1.2e-3), "b"),
        commit="bbb",
        parent="aaa",
        time="2000-01-02T00:00:00Z",
    )
    assert set(s.links) == {"m-int8"} and "m-fp32: no paired placements" in s.notes[0]
    path = save_summary(s, tmp_path)
    data = json.loads(path.read_text())
    assert path.name == "bbb.json" and data["version"] == SCHEMA_VERSION and '"data":[' not in path.read_text()
    assert path.stat().st_size < 3000  # a summary, not the samples
    older = CommitSummary("aaa", "zzz", "2000-01-01T00:00:00Z", {"m-int8": _link(1.0)})
    save_summary(older, tmp_path)
    loaded = load_chain(tmp_path)
    assert [c.commit for c in loaded] == ["aaa", "bbb"]
    assert loaded[1].links["m-int8"].ratio == pytest.approx(s.links["m-int8"].ratio, rel=1e-5)


def test_bad_chain_input_is_one_error_naming_the_file_and_the_fix(tmp_path):
    with pytest.raises(UserError, match="holds no chain summary; add one with `ptq chain append`"):
        load_chain(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({"schema": "ptq.chain", "version": 99}))
    with pytest.raises(UserError, match=r"x\.json: chain summary version 99"):
        load_chain(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps({"schema": "ptq.chain", "version": SCHEMA_VERSION, "cases": {}}))
    with pytest.raises(UserError, match=r"x\.json: damaged chain summary \(missing \'commit\'\)"):
        load_chain(tmp_path)
    with pytest.raises(UserError, match=r"no case was timed over paired placements.*-a\.json and -b\.json"):
        summarize(
            parse_run(run(bench("m-fp32", samples(1e-3))), "a"),
            parse_run(run(bench("m-fp32", samples(1e-3))), "b"),
            commit="b",
            parent="a",
            time="t",
        )


def test_the_command_appends_and_shows_the_chain(tmp_path, capsys):
    from ptq.cli import main

    for name, median in (("a", 1e-3), ("b", 1.2e-3)):
        (tmp_path / f"{name}.json").write_text(json.dumps(_side(median)))
    chain = tmp_path / "chain"
    assert (
        main(
            [
                "chain",
                "append",
                str(tmp_path / "a.json"),
                str(tmp_path / "b.json"),
                "--commit",
                "b" * 40,
                "--parent",
                "a" * 40,
                "--time",
                "2000-01-01T00:00:00Z",
                "-d",
                str(chain),
            ]
        )
        == 0
    )
    assert main(["chain", "show", str(chain), "-o", str(tmp_path / "chain.html")]) == 0
    out = capsys.readouterr().out
    [row] = [line for line in out.splitlines() if line.startswith("m-int8")]
    assert "bbbbbbbbbbbb" in row and "STEP" in row and "regression" in row
    assert "<svg" in (tmp_path / "chain.html").read_text()


# Issue 29 (bad inputs, round three): each input fed to `ptq chain` as a user would; exit code, the one
# line naming the thing and the fix, and the files on disk afterwards.


def _ptq(capsys, *args) -> tuple[int, str, list[str]]:
    from ptq.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository with a parent and a child commit, the two sides of their duet, as cwd."""
    import subprocess

    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()

    git("init", "-q")
    for message in ("parent", "child"):
        git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", message)
    (tmp_path / "a.json").write_text(json.dumps(_side(1e-3)))
    (tmp_path / "b.json").write_text(json.dumps(_side(1.105e-3)))
    monkeypatch.chdir(tmp_path)
    return tmp_path, git("rev-parse", "HEAD~1"), git("rev-parse", "HEAD")


def _rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("m-int8")]


@pytest.mark.slow
def test_one_commit_named_by_its_short_and_its_full_sha_is_one_link(repo, capsys):
    root, parent, child = repo
    for commit in (child, child[:7]):
        code, out, err = _ptq(
            capsys,
            "chain",
            "append",
            "a.json",
            "b.json",
            "--commit",
            commit,
            "--parent",
            parent,
            "--time",
            "2024-05-01T10:00:00Z",
            "-d",
            "chain",
        )
        assert code == 0 and out.strip() == f"wrote: {Path('chain') / child}.json", (out, err)
    assert sorted(p.name for p in (root / "chain").iterdir()) == [f"{child}.json"]
    code, out, _ = _ptq(capsys, "chain", "show", "chain")
    [row] = _rows(out)  # one link: the trend is 1.105, not 1.105 ** 2
    assert code == 0 and row.rstrip().endswith("1.1050 [1.1050, 1.1050]"), row
    # a summary an older ptq filed by the short SHA, beside the full one: one commit filed twice is refused
    full = root / "chain" / f"{child}.json"
    legacy = json.loads(full.read_text())
    (root / "chain" / f"{child[:7]}.json").write_text(json.dumps({**legacy, "commit": child[:7]}))
    code, _, err = _ptq(capsys, "chain", "show", "chain")
    assert code == 2 and err == [
        f"ptq: error: chain: {child[:7]}.json and {child}.json are one commit, filed twice "
        f"(by its short and its full SHA); delete {child[:7]}.json"
    ]
    # the next append of that commit replaces both with the one file its full SHA names
    full.unlink()
    code, _, _ = _ptq(
        capsys,
        "chain",
        "append",
        "a.json",
        "b.json",
        "--commit",
        child[:7],
        "--parent",
        parent,
        "--time",
        "2024-05-01T10:00:00Z",
        "-d",
        "chain",
    )
    assert code == 0 and sorted(p.name for p in (root / "chain").iterdir()) == [f"{child}.json"]


def test_a_short_sha_git_cannot_resolve_is_refused(repo, capsys, tmp_path_factory):
    root, parent, _ = repo
    elsewhere = tmp_path_factory.mktemp("not_a_repo")
    code, _, err = _ptq(
        capsys,
        "chain",
        "append",
        root / "a.json",
        root / "b.json",
        "--commit",
        "abcdef1",
        "--parent",
        parent,
        "-d",
        elsewhere / "chain",
    )
    assert code == 2 and err == [
        "ptq: error: --commit 'abcdef1': a short SHA that git cannot resolve to one commit "
        "here; pass the full SHA: `$(git rev-parse HEAD)`"
    ]
    assert not (elsewhere / "chain").exists()


@pytest.mark.slow
def test_the_chain_is_ordered_by_instant_whatever_the_utc_offsets(repo, capsys):
    root, parent, child = repo
    grandparent = "0" * 40
    for commit, of, time in (
        (parent, grandparent, "2024-05-01T10:00:00+09:00"),  # 01:00 UTC
        (child, parent, "2024-05-01T05:00:00-05:00"),
    ):  # 10:00 UTC: later, though "05" < "10"
        code, _, _ = _ptq(
            capsys,
            "chain",
            "append",
            "a.json",
            "b.json",
            "--commit",
            commit,
            "--parent",
            of,
            "--time",
            time,
            "-d",
            "chain",
        )
        assert code == 0
    code, out, _ = _ptq(capsys, "chain", "show", "chain")
    assert code == 0 and [row.split()[1] for row in _rows(out)] == [parent[:12], child[:12]]
    assert "(gap)" not in out
    assert [c.time for c in load_chain(root / "chain")] == [
        "2024-05-01T01:00:00Z",
        "2024-05-01T10:00:00Z",
    ]  # stored in UTC


@pytest.mark.parametrize("ratio", ["0", "-1", '"abc"', "null", "Infinity"])
def test_a_damaged_link_in_a_chain_summary_is_refused(tmp_path, capsys, ratio):
    summary = {
        "schema": "ptq.chain",
        "version": SCHEMA_VERSION,
        "commit": "c1",
        "parent": "c0",
        "time": "2000-01-01T00:00:00Z",
        "statistic": "p1",
        "runner": "r",
        "notes": [],
        "cases": {
            "m-int8": {
                "ratio": 1.0,
                "low": 0.99,
                "high": 1.01,
                "n": 3,
                "p": 0.5,
                "verdict": "OK",
                "ms": 1.0,
                "level": 0.95,
            }
        },
        "numerics": {"key": "", "environment": {}, "cases": {}},
    }
    path = tmp_path / "c1.json"
    path.write_text(json.dumps(summary).replace('"ratio": 1.0', f'"ratio": {ratio}'))
    before = path.read_bytes()
    code, out, err = _ptq(capsys, "chain", "show", tmp_path, "-o", tmp_path / "chain.html")
    assert code == 2 and out == "" and len(err) == 1, err
    assert err[0].startswith(f"ptq: error: {path}: damaged chain summary (")
    assert err[0].endswith("re-create it with `ptq chain append`, or delete it (the trend then shows a gap there)")
    assert "Infinity is not JSON" in err[0] if ratio == "Infinity" else "cases.m-int8.ratio = " in err[0]
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["c1.json"]


def test_a_summary_whose_time_names_no_instant_is_damaged(tmp_path):
    save_summary(CommitSummary("c1", "c0", "2000-01-01T00:00:00Z", {"m-int8": _link(1.0)}), tmp_path)
    for time in ("yesterday", "2000-01-01T00:00:00"):  # no offset: which instant?
        data = json.loads((tmp_path / "c1.json").read_text())
        (tmp_path / "c1.json").write_text(json.dumps({**data, "time": time}))
        with pytest.raises(UserError, match=rf"c1\.json: damaged chain summary \(time '{time}'"):
            load_chain(tmp_path)


@pytest.mark.slow
def test_append_refuses_sides_from_two_machines_and_commits_that_are_no_sha(repo, capsys):
    root, parent, child = repo
    other = _side(1.1e-3)
    other["ptq"]["environment"]["cpu_model"] = "another cpu"
    (root / "other.json").write_text(json.dumps(other))
    cases = [
        (
            ["a.json", "other.json", "--commit", child, "--parent", parent],
            "ptq: error: a.json and other.json ran on different machines (cpu_model: A 'test cpu', B 'another cpu'): a "
            "link is the ratio of one duet, both sides timed interleaved on one machine; pass the two files one `ptq ab "
            "PARENT COMMIT --save` wrote (results/ab/<time>-a.json and -b.json)",
        ),
        (
            ["a.json", "b.json", "--commit", "../../escaped", "--parent", parent],
            "ptq: error: --commit '../../escaped': not a commit SHA (hex digits); pass the full SHA: `$(git rev-parse HEAD)`",
        ),
        (
            ["a.json", "b.json", "--commit", "", "--parent", parent],
            "ptq: error: --commit '': not a commit SHA (hex digits); pass the full SHA: `$(git rev-parse HEAD)`",
        ),
        (
            ["a.json", "b.json", "--commit", child, "--parent", "main"],
            "ptq: error: --parent 'main': not a commit SHA (hex digits); pass the full SHA: `$(git rev-parse HEAD~1)`",
        ),
        (
            ["a.json", "b.json", "--commit", child, "--parent", child],
            f"ptq: error: --commit and --parent name one commit ({child}); a link is a commit over its parent: pass "
            "--parent $(git rev-parse COMMIT~1)",
        ),
        (
            ["a.json", "b.json", "--commit", child, "--parent", parent, "--time", "yesterday"],
            "ptq: error: --time 'yesterday' is not an ISO 8601 time (pass `git show -s --format=%cI COMMIT`)",
        ),
        (
            ["a.json", "b.json", "--commit", child, "--parent", parent, "--time", "2024-05-01T10:00:00"],
            "ptq: error: --time '2024-05-01T10:00:00' has no UTC offset, so it names no instant (pass `git show -s "
            "--format=%cI COMMIT`, e.g. 2024-05-01T10:00:00+09:00)",
        ),
    ]
    before = sorted(p.relative_to(root) for p in root.rglob("*") if ".git" not in p.parts)
    for args, message in cases:
        code, out, err = _ptq(capsys, "chain", "append", *args, "-d", "chain/sub")
        assert (code, out, err) == (2, "", [message])
    assert sorted(p.relative_to(root) for p in root.rglob("*") if ".git" not in p.parts) == before  # nothing written
    assert not (root.parent / "escaped.json").exists()


@pytest.mark.slow
def test_sides_that_differ_only_in_their_installs_are_chained_with_a_note(repo, capsys):
    root, parent, child = repo
    newer = _side(1.1e-3)
    newer["ptq"]["environment"]["torch"] = "2.15.0"  # ptq ab --compare-installs: one machine, two installs
    (root / "newer.json").write_text(json.dumps(newer))
    code, _, err = _ptq(
        capsys, "chain", "append", "a.json", "newer.json", "--commit", child, "--parent", parent, "-d", "chain"
    )
    assert code == 0 and any("the sides' installs differ (torch; ptq ab --compare-installs)" in line for line in err)
    assert [p.name for p in (root / "chain").iterdir()] == [f"{child}.json"]
