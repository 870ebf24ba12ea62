"""A history from chained summaries alone (no raw runs, no timing): memory, size and drift keyed
by the gate's numerics key, a runner change starting a new series, and the report drawn from them."""

from __future__ import annotations

import math
import re

import pytest

from ptq.cli import main
from ptq.host.env import NUMERICS_KEYS, key_hash
from ptq.render.html import render_html
from ptq.render.trends import METRICS, Marker, keyed_series, series
from ptq.storage.chain import CommitSummary, Link, keep_numerics, load_chain, save_summary
from ptq.storage.history import chain_runs

CASE = "m-static_int8"
MIB = 2**20


def _summary(k: int, *, threads: int, memory: float, ratio: float = 1.0) -> CommitSummary:
    """Commit ``k``: measured on a runner with ``threads`` (a numerics key), ``memory`` MiB per inference."""
    env = dict.fromkeys(NUMERICS_KEYS) | {
        "torch": "2.9.0",
        "threads": threads,
        "device": "cpu",
        "quantized_engine": "x86",
    }
    extra = {
        "model": "m",
        "recipe": "static_int8",
        "stack": "eager",
        "weights": "random",
        "data": "synthetic",
        "metrics": {
            "memory": {
                "inference": {
                    "increment_bytes": memory * MIB,
                    "samples": [memory * MIB] * 3,
                    "top_sites": [{"site": "x", "bytes": 1}],
                }
            },
            "size": {"serialized_bytes": 3 * MIB},
            "drift": {
                "headline": "sqnr_db",
                "value": 30.0,
                "higher_is_better": True,
                "tolerance": 1.0,
                "sqnr_db": 30.0,
                "worst_layers": [{"name": "fc", "sqnr_db": 30.0}],
            },
        },
    }
    half = 0.01
    lk = Link(ratio, ratio * math.exp(-half), ratio * math.exp(half), 6, 0.5, "OK", 1.0 + threads)
    return CommitSummary(
        f"c{k:02d}",
        f"c{k - 1:02d}",
        f"2000-01-01T00:{k:02d}:00Z",
        {CASE: lk},
        runner=f"runner-{threads}",
        numerics_key=key_hash(env, "numerics"),
        environment=env,
        records={CASE: keep_numerics(extra)},
    )


@pytest.fixture
def chain() -> list[CommitSummary]:
    """Commits 1-4 on a 1-thread runner; 5-8 on a 2-thread one (another numerics key) whose
    inference memory reads 30% higher; a real +25% at commit 7; the latency +5% at commit 3."""
    memory = [10, 10, 10, 10, 13, 13, 16.25, 16.25]
    return [
        _summary(k, threads=1 if k <= 4 else 2, memory=memory[k - 1], ratio=1.05 if k == 3 else 1.0)
        for k in range(1, 9)
    ]


def test_a_numerics_key_change_starts_a_new_series_instead_of_a_step(chain):
    runs = chain_runs(chain)
    keyed = keyed_series(METRICS["memory"], CASE, runs)
    assert list(keyed) == [chain[0].numerics_key, chain[4].numerics_key]  # two series, in order of appearance
    first, second = keyed.values()
    assert [s.reading is not None for s in first] == [True] * 4 + [False] * 4
    assert [s.reading is not None for s in second] == [False] * 4 + [True] * 4
    assert [s.verdict for s in second[4:]] == [Marker.NEW, Marker.UNCHANGED, Marker.REGRESSION, Marker.UNCHANGED]
    assert second[6].judgement is not None and second[6].judgement.change == "+25.0%"  # the gate's own memory judge
    assert all(s.verdict in (Marker.NEW, Marker.UNCHANGED) for s in first[:4])
    for name in ("size", "drift"):  # steady figures: one verdict-free start per series, no step anywhere
        verdicts = [s.verdict for steps in keyed_series(METRICS[name], CASE, runs).values() for s in steps if s.reading]
        assert verdicts.count(Marker.NEW) == 2 and set(verdicts) == {Marker.NEW, Marker.UNCHANGED}
    # Unkeyed, the runner change reads as a judged step against the other runner's figure (not compared):
    assert series(METRICS["memory"], CASE, runs)[4].verdict is Marker.INCOMPARABLE


def test_the_report_renders_from_summaries_only(chain, tmp_path):
    for s in chain:
        save_summary(s, tmp_path / "chain")
    assert [p.suffix for p in (tmp_path / "chain").iterdir()] == [".json"] * 8  # summaries, no run file
    out = tmp_path / "r.html"
    assert main(["report", "--chain", str(tmp_path / "chain"), "-o", str(out)]) == 0
    html = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html) and "<script src" not in html
    assert "8 commits" in html and "chained latency of m-static_int8" in html
    for s in (chain[0], chain[4]):  # one memory, size and drift series per numerics key, named with what differs
        assert html.count(f"numerics key {s.numerics_key} (threads {s.environment['threads']})") == 3
    # Markers: the latency step at c03 (the chained trend), the memory step at c07, nothing else.
    assert html.count('class="pt regression"') == 2 and 'class="pt improvement"' not in html
    assert "c03: trend 1.0500" in html and "gate: regression vs c07" not in html and "gate: regression vs c06" in html
    assert "runner runner-1" in html and "runner runner-2" in html  # the absolute figures, per timing key
    assert "Environment of each run" not in html  # no run was given


def test_report_from_summaries_and_runs_and_its_errors(chain, tmp_path, capsys):
    from pathlib import Path

    for s in chain:
        save_summary(s, tmp_path / "chain")
    html = render_html([], chain=load_chain(tmp_path / "chain"))
    assert "Chained history per case" in html and "Trends per case" not in html
    history = Path(__file__).parent / "fixtures" / "history"
    assert main(["report", str(history), "--chain", str(tmp_path / "chain"), "-o", str(tmp_path / "both.html")]) == 0
    both = (tmp_path / "both.html").read_text()  # the runs' latest state, the chain's trends
    assert "Speedup over fp32" in both and "Chained history per case" in both and "Trends per case" not in both
    assert main(["report", "--chain", str(tmp_path / "chain"), "--format", "md"]) == 2
    assert "--format md needs two runs or a run and --baseline FILE; got 0 run(s)" in capsys.readouterr().err
    assert main(["report"]) == 2
    assert "or --chain DIR (summaries written by `ptq chain append`)" in capsys.readouterr().err
