"""The gate-quality benchmark's bookkeeping, on fake timers and synthetic samples (no wall-clock asserts)."""

from __future__ import annotations

import itertools
import json

import pytest
from gate_fixtures import samples

from ptq.cli import main
from ptq.lab.gate_quality import Outcome, Target, busy_wait, run_process_trial, run_trial, summarize, time_calls


def _clock(step: float):
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_busy_wait_spins_until_the_deadline_on_its_timer():
    reads = []
    timer = _clock(1.0)
    busy_wait(5.0, timer=lambda: reads.append(timer()) or reads[-1])
    assert reads[-1] >= reads[0] + 5.0 and reads == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_time_calls_warms_up_then_samples_until_the_budget():
    calls = []
    out = time_calls(lambda: calls.append(1), 10.0, min_rounds=2, warmup=3, timer=_clock(1.0))
    # Fake clock: each sample spans one tick and each budget check reads one; 3 warm-up calls are untimed.
    assert out == [1.0] * len(out) and len(calls) == 3 + len(out) and len(out) >= 2


def test_trials_give_both_sides_samples_for_every_case_in_each_mode():
    targets = [Target("m-fp32", lambda: None, 1e-6, inject=False), Target("m-int8", lambda: None, 1e-6, inject=True)]
    for mode in ("plain", "interleaved"):
        base, cur = run_trial(targets, 0.1, mode=mode, budget_s=0.0, rounds=2)
        assert set(base) == set(cur) == {"m-fp32", "m-int8"}
        assert all(len(v) >= 10 for v in (*base.values(), *cur.values()))
    with pytest.raises(ValueError, match="unknown mode"):
        run_trial(targets, 0.1, mode="other", budget_s=0.0)


def test_outcome_counts_controls_as_aa_and_injected_cases_as_detections():
    targets = [Target("m-fp32", lambda: None, 1.0, inject=False), Target("m-int8", lambda: None, 1.0, inject=True)]
    o = Outcome("plain")
    for seed in range(10):
        base = {"m-fp32": samples(1.0, seed=seed), "m-int8": samples(1.0, seed=seed + 100)}
        cur = {"m-fp32": samples(1.0, seed=seed + 200), "m-int8": samples(1.2 if seed < 9 else 1.0, seed=seed + 300)}
        o.record(0.2, targets, base, cur, threshold=0.05, alpha=0.01)
    assert o.aa == [10, 0] and o.detected == {0.2: [10, 9]}
    assert o.rate(0.2) == 0.9 and o.smallest_caught(0.9) == 0.2 and o.smallest_caught(0.95) is None
    quantiles = o.ratio_quantiles()
    assert set(quantiles) == {"0", "0.2"} and quantiles["0.2"] == sorted(quantiles["0.2"])
    assert 1.1 < quantiles["0.2"][2] < 1.3 and 0.95 < quantiles["0"][2] < 1.05  # medians of the measured ratios
    rows = summarize([o])
    assert rows[0][:5] == ["plain", "0% (A/A)", "10", "0", "0.0%"] and rows[1][:5] == [
        "plain",
        "20%",
        "10",
        "9",
        "90.0%",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--modes", "fast"], "valid: plain, interleaved, processes, duet, duet-compute, speedup"),
        (["--slowdowns", "a,b"], "give comma-separated fractions"),
        (["--slowdowns", "0,-1"], "fractions must be > 0"),
    ],
)
def test_bad_options_exit_2_with_one_line(capsys, args, message):
    assert main(["gate-quality", *args]) == 2
    assert message in capsys.readouterr().err


def test_speedup_outcomes_count_a_fallen_speedup_as_detected():
    o = Outcome("speedup")
    o.record_speedups(0.0, {"m-int8": (2.0, 1.95, 2.05)}, {"m-int8": (2.01, 1.96, 2.06)}, threshold=0.05)
    o.record_speedups(0.1, {"m-int8": (2.0, 1.95, 2.05)}, {"m-int8": (1.8, 1.76, 1.84)}, threshold=0.05)
    o.record_speedups(0.05, {"m-int8": (2.0, 1.95, 2.05)}, {"m-int8": (1.9, 1.80, 2.0)}, threshold=0.05)
    assert o.aa == [1, 0] and o.detected == {0.1: [1, 1], 0.05: [1, 0]}
    assert o.ratios[0.1] == [pytest.approx(2.0 / 1.8)]


def test_process_trials_alternate_fresh_sides_and_judge_every_fraction_against_the_same_a_rounds():
    targets = [Target("m-fp32", lambda: None, 1.0, inject=False), Target("m-int8", lambda: None, 1.0, inject=True)]
    specs = []

    def spawn(spec):  # a fake round process: side B's slowed windows are exactly that much slower
        specs.append(spec)
        seed = len(specs)
        return {
            "m-fp32": {"0": samples(1.0, seed=seed)},
            "m-int8": {f"{f:g}": samples(1.0 + f, seed=seed + 50) for f in spec["fractions"]},
        }

    base, cur = run_process_trial(
        targets, [0.1, 0.2], cases="m-fp32,m-int8", threads=1, budget_s=1.0, rounds=4, spawn=spawn
    )
    assert [s["fractions"] for s in specs[:4]] == [[0.0], [0.0, 0.1, 0.2], [0.0, 0.1, 0.2], [0.0]]  # A B B A
    assert specs[0]["budget_s"] == 0.25 and specs[0]["cases"] == "m-fp32,m-int8"
    assert {k: len(v) for k, v in base.items()} == {"m-fp32": 4, "m-int8": 4}
    assert set(cur) == {("m-fp32", 0.0), ("m-int8", 0.0), ("m-int8", 0.1), ("m-int8", 0.2)}
    o = Outcome("processes")
    o.record_rounds(base, cur, threshold=0.05, alpha=0.01)
    assert o.aa == [2, 0] and o.detected == {0.1: [1, 1], 0.2: [1, 1]}


@pytest.mark.slow
def test_a_round_process_times_each_case_at_its_fractions(tmp_path):
    """The child protocol across a real process boundary, on the smallest micro model."""
    import subprocess
    import sys

    spec = {
        "cases": "micro_linear_1024-fp32,micro_linear_1024-dynamic_int8",
        "threads": 1,
        "budget_s": 0.0,
        "fractions": [0.0, 0.5],
    }
    done = subprocess.run(
        [sys.executable, "-m", "ptq.lab.gate_quality", json.dumps(spec)], capture_output=True, text=True, check=True
    )
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(got) == set(spec["cases"].split(",")) and set(got["micro_linear_1024-dynamic_int8"]) == {"0", "0.5"}
    assert set(got["micro_linear_1024-fp32"]) == {"0"}
    assert all(len(v) >= 10 for by_f in got.values() for v in by_f.values())
