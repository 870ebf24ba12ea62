"""Stored runs and baselines: schema, bad input, atomic and concurrent saves."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess

import pytest
from gate_fixtures import bench, run, samples

import ptq.storage.runs
from ptq.errors import UserError
from ptq.storage.runs import baseline_path, find_newest_run, load_run, parse_run, save_baseline, save_run


def _write(path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_round_trip_keeps_samples_and_extra_info(tmp_path):
    data = run(bench("m-fp32", samples(1e-3), metrics={"size": {"serialized_bytes": 10}}))
    path = save_run(tmp_path, data)
    loaded = load_run(path)
    assert path.parent == tmp_path / "results" / "runs" and path.name.endswith("-aaaa.json")
    assert loaded.fingerprint == "aaaa" and loaded.cases["m-fp32"].samples == tuple(samples(1e-3))
    assert loaded.cases["m-fp32"].extra_info["metrics"] == {"size": {"serialized_bytes": 10}}


@pytest.mark.parametrize(
    ("sizes", "rounds"),
    [
        ([2, 1], ((1.0, 2.0), (3.0,))),
        (None, ((1.0, 2.0, 3.0),)),  # a plain run: one session
        ([2, 2], ((1.0, 2.0, 3.0),)),  # counts that do not add up: not trusted
        ([3, 0], ((1.0, 2.0, 3.0),)),
    ],
)
def test_samples_split_into_the_sessions_that_took_them(sizes, rounds):
    extra = {} if sizes is None else {"ab_round_sizes": sizes}
    assert parse_run(run(bench("m-int8", [1.0, 2.0, 3.0], **extra)), "r").cases["m-int8"].rounds == rounds


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"benchmarks": [', "corrupt or truncated JSON"),
        ("[1, 2]", "not a pytest-benchmark JSON file"),
        ('{"benchmarks": []}', "no 'ptq' provenance"),
        (
            '{"benchmarks": [], "ptq": {"schema_version": 99, "environment": {}, "fingerprint": "x"}}',
            "newer than this ptq",
        ),
        ('{"benchmarks": [], "ptq": {"schema_version": "1"}}', "no integer ptq.schema_version"),
        ('{"benchmarks": [], "ptq": {"schema_version": 1}}', "ptq.environment or ptq.fingerprint missing"),
        (
            '{"benchmarks": [{"extra_info": {"case": "a-b"}, "stats": {"data": ["x"]}}], '
            '"ptq": {"schema_version": 1, "environment": {}, "fingerprint": "x"}}',
            "stats.data is not a list of numbers",
        ),
    ],
)
def test_bad_files_give_one_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "b.json"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        load_run(path)
    assert str(path) in str(info.value)


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(UserError, match=r"no such file.*--ptq-save-run"):
        load_run(tmp_path / "nope.json")


def test_older_schema_without_migration_is_refused_with_the_command(monkeypatch):
    monkeypatch.setattr(ptq.storage.runs, "SCHEMA_VERSION", 2)
    with pytest.raises(UserError, match=r"schema version 1 is older than 2 .*--ptq-save-baseline"):
        parse_run(run(schema=1), "old.json")


def test_older_schema_is_migrated_when_a_migration_exists(monkeypatch):
    def rename_median(data):
        for b in data["benchmarks"]:
            b["extra_info"]["migrated"] = True
        return data

    monkeypatch.setattr(ptq.storage.runs, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(ptq.storage.runs.MIGRATIONS, 1, rename_median)
    loaded = parse_run(run(bench("m-fp32", samples(1.0)), schema=1), "old.json")
    assert loaded.data["ptq"]["schema_version"] == 2 and loaded.cases["m-fp32"].extra_info["migrated"] is True


def test_baseline_save_merges_cases_and_replaces_its_own(tmp_path):
    save_baseline(tmp_path, run(bench("m-fp32", samples(1.0)), bench("m-int8", samples(2.0))))
    save_baseline(tmp_path, run(bench("m-int8", samples(3.0))))
    base = load_run(baseline_path(tmp_path, "aaaa"))
    assert sorted(base.cases) == ["m-fp32", "m-int8"]
    assert base.cases["m-int8"].samples == tuple(samples(3.0))


def test_saving_over_a_corrupt_baseline_fails_and_overwrites_nothing(tmp_path):
    target = baseline_path(tmp_path, "aaaa")
    target.parent.mkdir(parents=True)
    target.write_text('{"benchmarks": [{"na')
    with pytest.raises(UserError, match=f"{target}: corrupt or truncated JSON"):
        save_baseline(tmp_path, run(bench("m-fp32", samples(1.0))))
    assert target.read_text() == '{"benchmarks": [{"na'


def test_baseline_needs_raw_samples_and_its_own_fingerprint(tmp_path):
    with pytest.raises(UserError, match="without raw samples for m-fp32"):
        save_baseline(tmp_path, run(bench("m-fp32", None)))
    other = tmp_path / "other.json"
    save_baseline(tmp_path, run(bench("m-fp32", samples(1.0)), fingerprint="bbbb"), path=other)
    with pytest.raises(UserError, match="holds fingerprint bbbb, this run is aaaa"):
        save_baseline(tmp_path, run(bench("m-fp32", samples(1.0))), path=other)


def test_an_interrupted_baseline_write_leaves_the_old_file(tmp_path, monkeypatch):
    save_baseline(tmp_path, run(bench("m-fp32", samples(1.0))))
    target = baseline_path(tmp_path, "aaaa")
    before = target.read_bytes()

    def half_then_crash(data):
        def write(fh):
            fh.write(json.dumps(data).encode()[:50])
            raise KeyboardInterrupt

        return write

    monkeypatch.setattr(ptq.storage.runs, "_dump", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save_baseline(tmp_path, run(bench("m-int8", samples(2.0))))
    assert target.read_bytes() == before
    assert sorted(os.listdir(target.parent)) == ["aaaa.json", "aaaa.json.lock"]


def _save_one(root: str, case: str) -> None:
    save_baseline(root, run(bench(case, samples(1.0, n=2000))))


def test_concurrent_saves_lose_nothing(tmp_path):
    cases = [f"m{i}-fp32" for i in range(6)]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_save_one, args=(str(tmp_path), c)) for c in cases]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * len(cases)
    assert sorted(load_run(baseline_path(tmp_path, "aaaa")).cases) == cases


def test_newest_run_is_found_or_the_error_says_how_to_record_one(tmp_path):
    with pytest.raises(UserError, match=r"no run under .*--ptq-save-run"):
        find_newest_run(tmp_path)
    old, new = tmp_path / "results" / "runs" / "a.json", tmp_path / ".benchmarks" / "Linux" / "0001_x.json"
    _write(old, {})
    _write(new, {})
    os.utime(old, ns=(1, 1))
    assert find_newest_run(tmp_path) == new


def test_merge_keeps_one_entry_per_case_and_no_caseless_benchmark():
    old = run(
        bench("m-fp32", samples(1.0)), bench("m-int8", samples(2.0)), {"name": "cut short", "stats": {"data": [1.0]}}
    )
    new = run(bench("m-int8", samples(3.0)), bench("m-int8", samples(4.0)), {"name": "user's own", "extra_info": {}})
    merged = ptq.storage.runs.merge_runs(old, new)
    assert [(b["extra_info"]["case"], b["stats"]["data"]) for b in merged["benchmarks"]] == [
        ("m-fp32", samples(1.0)),
        ("m-int8", samples(4.0)),
    ]  # new replaces old; of two new entries the last


def test_a_file_holding_a_case_twice_is_refused_naming_the_file_and_the_fix(tmp_path):
    target = baseline_path(tmp_path, "aaaa")
    _write(target, run(bench("m-fp32", samples(1.0)), bench("m-fp32", samples(2.0))))
    message = (
        f"{target}: case 'm-fp32' appears twice; a run holds each case once: restore the file "
        f"(`git checkout -- {target}`) or delete one of its two entries"
    )
    with pytest.raises(UserError) as info:
        load_run(target)
    assert str(info.value) == message
    with pytest.raises(UserError, match="appears twice"):  # and a save does not build on it
        save_baseline(tmp_path, run(bench("m-int8", samples(1.0))))


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_follow_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        paths = [
            save_run(tmp_path, run(bench("m-fp32", samples(1.0)))),
            save_baseline(tmp_path, run(bench("m-fp32", samples(1.0)))),
        ]
    finally:
        os.umask(previous)
    assert [p.stat().st_mode & 0o777 for p in paths] == [mode, mode]


def test_git_ignores_a_temporary_file_a_kill_left_under_results():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    leftover = "results/baselines/.6be583aa9aa7.json.k3j9x_2a.tmp"
    check = subprocess.run(["git", "check-ignore", "--no-index", "-q", leftover], cwd=root)
    assert check.returncode == 0, f"{leftover} is not ignored by .gitignore"
    assert (
        subprocess.run(
            ["git", "check-ignore", "--no-index", "-q", "results/baselines/6be583aa9aa7.json"], cwd=root
        ).returncode
        == 1
    )


# Issue 29 (bad inputs, round three): each input fed to `ptq compare` as a user would.


def _ptq(capsys, *args) -> tuple[int, str, list[str]]:
    from ptq.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err.strip().splitlines()


def test_a_baseline_from_a_newer_ptq_says_how_to_install_this_one(tmp_path, capsys):
    _write(tmp_path / "b.json", run(bench("m-fp32", samples(1e-3)), schema=99))
    _write(tmp_path / "run.json", run(bench("m-fp32", samples(1e-3))))
    before = (tmp_path / "b.json").read_bytes()
    code, out, err = _ptq(capsys, "compare", tmp_path / "run.json", "--baseline", tmp_path / "b.json")
    assert (code, out) == (2, "")  # the distribution is pytest-ptq; `ptq` on PyPI is another project
    assert err == [
        f"ptq: error: {tmp_path / 'b.json'}: schema version 99 is newer than this ptq reads (1); upgrade ptq "
        "(`pip install -U pytest-ptq`) or compare with the ptq that wrote it"
    ]
    assert (tmp_path / "b.json").read_bytes() == before


@pytest.mark.parametrize("bad", [-1e-3, float("inf"), float("nan")])
def test_a_baseline_with_a_negative_or_infinite_latency_is_refused_as_damaged(tmp_path, capsys, bad):
    data = samples(1e-3)
    data[3] = bad
    base = tmp_path / "base.json"
    base.write_text(json.dumps(run(bench("m-fp32", data))))  # json writes inf / nan as Infinity / NaN
    _write(tmp_path / "run.json", run(bench("m-fp32", samples(1e-3))))
    code, out, err = _ptq(capsys, "compare", tmp_path / "run.json", "--baseline", base, "--judges", "latency")
    assert (code, out) == (2, "")
    assert err == [
        f"ptq: error: {base}: damaged: case 'm-fp32' has latency sample {bad!r} (benchmarks[0].stats.data), "
        "and a latency is a finite, non-negative time; restore it (`git checkout -- "
        f"{base}`), or move it aside (`mv {base} {base}.damaged`) and re-record it: `pytest "
        "--benchmark-only --ptq-save-baseline` (or `--ptq-save-run` for a run)"
    ]


def test_every_sample_negative_is_refused_too_not_judged_improved(tmp_path, capsys):
    _write(tmp_path / "base.json", run(bench("m-fp32", [-x for x in samples(1e-3)])))
    _write(tmp_path / "run.json", run(bench("m-fp32", samples(1e-3))))
    code, _, err = _ptq(
        capsys, "compare", tmp_path / "run.json", "--baseline", tmp_path / "base.json", "--judges", "latency"
    )
    assert code == 2 and len(err) == 1 and "damaged: case 'm-fp32' has latency sample -" in err[0]


def test_a_partial_save_keeps_the_untouched_cases_provenance(tmp_path, capsys):
    old = run(
        bench("m-fp32", samples(1e-3)), bench("m-int8", samples(1e-3), metrics={"size": {"serialized_bytes": 100}})
    )
    old["ptq"]["environment"]["transformers"] = "4.40.0"  # a numerics key, not a timing key: the same baseline file
    old["commit_info"] = {"id": "1" * 40}
    path = save_baseline(tmp_path, old)
    new = run(bench("m-fp32", samples(1e-3)))
    new["ptq"]["environment"]["transformers"] = "4.41.0"
    new["commit_info"] = {"id": "2" * 40}
    assert save_baseline(tmp_path, new) == path
    base = load_run(path)
    assert base.environment["transformers"] == "4.41.0" and base.commit == "2" * 40
    assert base.environment_of("m-int8")["transformers"] == "4.40.0"  # not relabelled
    assert base.provenance_of("m-int8")["commit_info"] == {"id": "1" * 40} and base.provenance_of("m-fp32") is None
    # a run under 4.40.0 is judged against m-int8 by m-int8's own keys: its size compares, m-fp32's does not
    cur = run(
        bench("m-fp32", samples(1e-3), metrics={"size": {"serialized_bytes": 100}}),
        bench("m-int8", samples(1e-3), metrics={"size": {"serialized_bytes": 100}}),
    )
    cur["ptq"]["environment"]["transformers"] = "4.40.0"
    _write(tmp_path / "run.json", cur)
    code, out, _ = _ptq(
        capsys, "compare", tmp_path / "run.json", "--baseline", path, "--judges", "size", "--format", "json"
    )
    assert code == 1  # m-fp32's size: measured now, not in the baseline
    rows = {r["case"]: r for r in json.loads(out)["rows"]}
    assert rows["m-int8"]["verdict"] == "ok"
    assert rows["m-fp32"]["verdict"] == "not-measured"  # the baseline's m-fp32 has no size figure
    # and a later save of the same environment keeps the stamp it has (never overwritten by the newer file's)
    save_baseline(tmp_path, new)
    assert load_run(path).environment_of("m-int8")["transformers"] == "4.40.0"


def test_a_damaged_provenance_is_refused(tmp_path):
    data = run(bench("m-fp32", samples(1e-3), provenance={"fingerprint": 3}))
    _write(tmp_path / "b.json", data)
    with pytest.raises(UserError, match=r"b\.json: damaged: benchmarks\[0\]\.extra_info\.provenance is not"):
        load_run(tmp_path / "b.json")


@pytest.mark.parametrize(
    ("benchmarks", "message"),
    [
        ([5], r"benchmarks\[0\] is int, not an object"),
        ([{"extra_info": [1]}], r"benchmarks\[0\]\.extra_info is not an object"),
        ([{"extra_info": {"case": ["x"]}}], r"benchmarks\[0\] names case \['x'\], not a string"),
        (
            [{"extra_info": {"case": "m-fp32", "metrics": [1]}}],
            r"case 'm-fp32' has extra_info\.metrics that is not an object",
        ),
    ],
)
def test_damaged_entries_are_one_error_naming_the_file(tmp_path, capsys, benchmarks, message):
    _write(tmp_path / "b.json", {**run(), "benchmarks": benchmarks})
    with pytest.raises(UserError, match=message):
        load_run(tmp_path / "b.json")
    code, _, err = _ptq(capsys, "export", tmp_path / "b.json", "--format", "bencher", "-o", tmp_path / "out")
    assert code == 2 and len(err) == 1 and err[0].startswith(f"ptq: error: {tmp_path / 'b.json'}: damaged")
    assert not (tmp_path / "out").exists()
