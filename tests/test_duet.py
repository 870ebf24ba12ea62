"""Duet latency: the worker protocol, the ABBA window order, and ptq ab's use of it (no wall-clock asserts)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from gate_fixtures import bench, run, samples

from ptq.errors import UserError
from ptq.gate.comparison import EXIT_OK, EXIT_REGRESSION, compare
from ptq.lab.gate_quality import Outcome, Target, run_duet_trial
from ptq.run.ab import Side, apply_duet, duet_cases, run_duet
from ptq.run.duet import WINDOW_MIN_SAMPLES, DuetPlan, TimedCases, Worker, _replies, duet, run_plan, time_window
from ptq.stats.decide import Verdict
from ptq.storage.runs import parse_run


class FakeWorker:
    """Answers like a worker; ``median`` sets the samples it returns, ``log`` records the order;
    ``placement_offsets`` (seed -> factor) plants a placement's luck on the samples."""

    def __init__(self, label, log=None, median=1e-3, ready=None, placement_offsets=None, kind="model+inputs", **_):
        self.label, self.log, self.median, self.ready, self.closed = (
            label,
            log if log is not None else [],
            median,
            ready,
            False,
        )
        self.offsets, self.factor, self.kind, self.cases = placement_offsets or {}, 1.0, kind, []

    def place(self, seed, cases=None):
        self.log.append((self.label, "place", seed))
        self.factor = self.offsets.get(seed, 1.0)
        return {c: self.kind for c in self.cases if cases is None or c in cases}

    def prepare(self, cases, *, threads, weights="auto"):
        self.prepared = (threads, weights)
        self.cases = [c for c in cases if self.ready is None or c in self.ready]
        return {"ready": self.cases, "failed": {c: "boom" for c in cases if c not in self.cases}}

    def send(self, message):
        self.reply = self.prepare(message["cases"], threads=message["threads"], weights=message["weights"])

    def receive(self):
        return self.reply

    def time(self, case, budget_s, slow=0.0, kind="spin"):
        self.log.append((self.label, case, slow))
        return samples(self.median * self.factor * (1 + slow), n=40, seed=len(self.log), sigma=0.01)

    def close(self):
        self.closed = True


def test_the_plan_refuses_windows_that_cannot_time_anything():
    with pytest.raises(UserError, match="--window > 0 and --sweeps >= 2"):
        DuetPlan(window_s=0.0)
    with pytest.raises(UserError, match="--window > 0 and --sweeps >= 2"):
        DuetPlan(sweeps=1)
    with pytest.raises(UserError, match="--placements <= --sweeps"):
        DuetPlan(sweeps=4, placements=5)
    with pytest.raises(UserError, match="1 <= --workers <= --placements"):
        DuetPlan(placements=2, workers=3)


def test_the_plan_splits_sweeps_over_placements_and_placements_over_worker_pairs():
    assert DuetPlan(sweeps=30, placements=10, workers=2).blocks() == [[3] * 5, [3] * 5]
    assert DuetPlan(sweeps=7, placements=3, workers=2).blocks() == [[3, 2], [2]]
    assert sum(map(sum, DuetPlan(sweeps=31, placements=4, workers=3).blocks())) == 31


def test_duet_places_both_sides_afresh_per_placement_and_alternates_which_goes_first():
    log: list = []
    a, b = FakeWorker("A", log), FakeWorker("B", log)
    out = duet(a, b, ["m-fp32", "m-int8"], [1, 1], window_s=0.01, first_placement=3)
    assert [(side, case) for side, case, _ in log] == [
        ("A", "place"),
        ("B", "place"),
        ("A", "m-fp32"),
        ("B", "m-fp32"),
        ("B", "m-int8"),
        ("A", "m-int8"),  # placement 3, sweep 1
        ("A", "place"),
        ("B", "place"),
        ("A", "m-fp32"),
        ("B", "m-fp32"),
        ("B", "m-int8"),
        ("A", "m-int8"),  # placement 4, sweep 1
    ]
    assert [seed for _, case, seed in log if case == "place"] == [6, 7, 8, 9]  # distinct per side and placement
    assert {tuple(len(b) for b in blocks) for side in out.blocks.values() for blocks in side.values()} == {(40, 40)}


def test_run_plan_uses_fresh_worker_pairs_and_drops_a_case_one_of_them_could_not_prepare():
    made: list = []

    def worker(label):
        made.append(FakeWorker(label, ready={"m-fp32", "m-int8"} if len(made) < 2 else {"m-int8"}))
        return made[-1]

    got = run_plan(
        DuetPlan(0.01, sweeps=4, placements=4, workers=2, stopping="fixed"),
        ["m-fp32", "m-int8"],
        new_worker=worker,
        threads=1,
    )
    assert len(made) == 4 and all(w.closed for w in made)
    assert got.failed == {"m-fp32": "side A: boom"} and set(got.blocks["A"]) == set(got.blocks["B"]) == {
        ("m-int8", 0.0)
    }
    assert len(got.blocks["A"][("m-int8", 0.0)]) == 4  # two placements from each worker pair
    assert got.placed == {side: {"m-int8": ["model+inputs"] * 4} for side in "AB"}  # one kind per placement


@pytest.mark.slow
def test_the_worker_protocol_prepares_times_and_names_what_it_cannot_do():
    lines = [
        json.dumps(m)
        for m in (
            {
                "op": "prepare",
                "cases": ["micro_linear_256-fp32", "no_such_model-fp32"],
                "threads": 1,
                "weights": "random",
            },
            {"op": "time", "case": "micro_linear_256-fp32", "budget_s": 0.0},
            {"op": "time", "case": "micro_linear_256-int4", "budget_s": 0.0},
            {"op": "frobnicate"},
        )
    ]
    prepared, timed, unknown_case, unknown_op = list(_replies(iter(lines), TimedCases()))
    assert (
        prepared["ready"] == ["micro_linear_256-fp32"] and "no_such_model" in prepared["failed"]["no_such_model-fp32"]
    )
    assert len(timed["samples"]) == WINDOW_MIN_SAMPLES and all(
        s > 0 for s in timed["samples"]
    )  # a zero budget: the least
    assert "was not prepared" in unknown_case["error"] and "unknown op 'frobnicate'" in unknown_op["error"]


def test_an_injected_slowdown_adds_its_share_of_a_fast_call_to_every_call(monkeypatch):
    cases = TimedCases()  # sized by a fast call, as the gate compares a low quantile, not by the median
    cases.calls["m"], cases.medians["m"], cases.fastest["m"] = (lambda: None), 3e-3, 2e-3
    waited: list[float] = []
    monkeypatch.setattr("ptq.run.duet.busy_wait", waited.append)
    cases.time("m", 0.0, slow=0.1)
    assert waited and all(w == pytest.approx(2e-4) for w in waited)


@pytest.mark.slow
def test_place_gives_every_case_a_fresh_copy_that_computes_what_the_original_did():
    cases = TimedCases()
    peers = ["micro_conv_16-ort_static_int8", "micro_conv_16-ov_int8"]
    cases.prepare(["micro_linear_256-dynamic_int8", *peers], threads=1, weights="random")
    before = {c: cases.calls[c]() for c in cases.calls}
    kinds = cases.place(seed=1)["placed"]
    assert kinds["micro_linear_256-dynamic_int8"] == "model+inputs"
    assert all(
        kinds[peer] == "model+inputs" for peer in peers
    )  # a fresh ONNX Runtime session, a recompiled OpenVINO model
    for case, call in cases.calls.items():
        assert call() is not before[case] and torch.allclose(call(), before[case], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_real_worker_process_answers_and_closes():
    with Worker("A") as w:
        got = w.prepare(["micro_linear_256-dynamic_int8"], threads=1, weights="random")
        assert got.pop("cases_s") > 0  # the cases' own seconds, apart from starting and imports
        assert got == {"ready": ["micro_linear_256-dynamic_int8"], "failed": {}, "handed_off": 0}
        assert w.place(0) == {"micro_linear_256-dynamic_int8": "model+inputs"}
        assert len(w.time("micro_linear_256-dynamic_int8", 0.01)) >= 10
        with pytest.raises(UserError, match="side A's duet worker: case 'x-fp32' was not prepared"):
            w.time("x-fp32", 0.01)


def test_code_without_a_duet_worker_is_one_error_naming_the_fallback(tmp_path):
    (tmp_path / "ptq").mkdir()
    (tmp_path / "ptq" / "__init__.py").write_text("")  # an old ptq: no ptq.duet
    python = tmp_path / "python"  # without site: this checkout's editable install would supply ptq.duet
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    w = Worker("A", python=str(python), pythonpath=tmp_path, cwd=tmp_path)
    with pytest.raises(UserError, match=r"side A's duet worker exited \(code 1\) .*--latency=rounds"):
        w.prepare(["m-fp32"], threads=1)
    w.close()


def test_a_worker_that_dies_is_one_error_with_its_last_words(tmp_path):
    (tmp_path / "ptq").mkdir()
    (tmp_path / "ptq" / "__init__.py").write_text("")
    (tmp_path / "ptq" / "duet.py").write_text("raise SystemExit('out of memory, say')\n")
    w = Worker("B", pythonpath=tmp_path, cwd=tmp_path)
    with pytest.raises(UserError, match=r"(?s)side B's duet worker exited \(code 1\):.*out of memory, say"):
        w.time("m-fp32", 0.01)
    w.close()


def test_the_worker_keeps_library_prints_off_the_protocol():
    code = (
        "import os, ptq.run.duet as d\n"
        "def noisy(self, case, budget_s, slow=0.0):\n"
        "    print('py-noise', flush=True); os.write(1, b'c-noise\\n'); return {'samples': [1.0]}\n"
        "d.TimedCases.time = noisy\n"
        "d.serve()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=json.dumps({"op": "time", "case": "m", "budget_s": 0}) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == '{"samples": [1.0]}\n'  # the protocol stream holds the reply alone
    assert "py-noise" in done.stderr and "c-noise" in done.stderr


def _runs(median_b: float) -> tuple[dict, dict]:
    a = run(bench("m-fp32", samples(1e-3, n=20)), bench("m-int8", samples(1e-3, n=20)), bench("m-skip", None))
    b = run(bench("m-fp32", samples(1e-3, n=20)), bench("m-int8", samples(median_b, n=20)), bench("m-skip", None))
    for r in (a, b):
        for x in r["benchmarks"]:
            x["extra_info"]["threads"] = 1
        r["benchmarks"][1]["extra_info"]["ab_round_sizes"] = [10, 10]
    return a, b


def test_duet_cases_are_those_both_sessions_timed_with_the_same_threads():
    a, b = _runs(1e-3)
    assert duet_cases(a, b) == [("m-fp32", 1), ("m-int8", 1)]
    b["benchmarks"][0]["extra_info"]["threads"] = 2
    assert duet_cases(a, b) == [("m-int8", 1)]


def test_apply_duet_replaces_the_sessions_timings_with_the_placements_and_unmeasures_what_it_could_not_time():
    a, _ = _runs(1e-3)
    apply_duet(
        a,
        {"m-int8": [[1.0, 2.0], [3.0]]},
        DuetPlan(0.02, 5, placements=2, workers=1, stopping="fixed"),
        {"m-fp32": "boom"},
    )
    fp32, int8 = a["benchmarks"][:2]
    assert int8["stats"]["data"] == [1.0, 2.0, 3.0] and "ab_round_sizes" not in int8["extra_info"]
    assert int8["extra_info"]["ab_placement_sizes"] == [2, 1] and int8["extra_info"]["ab_latency"] == "duet"
    assert fp32["stats"]["data"] == [] and fp32["extra_info"]["ab_latency_why"] == "boom"  # no session fallback
    assert a["ptq"]["ab_latency"] == {
        "method": "duet",
        "window_s": 0.02,
        "sweeps": 5,
        "placements": 2,
        "workers": 1,
        "cases": ["m-int8"],
        "not_measured": {"m-fp32": "boom"},
    }
    assert parse_run(a, "a").cases["m-int8"].placements == ((1.0, 2.0), (3.0,))


# side B's placements land badly or well by up to +-12%: a placement's luck, no code change
LUCK = {2 * k + 1: f for k, f in enumerate([1.12, 0.9, 1.08, 0.95, 1.1, 0.92, 1.0, 1.11, 0.9, 1.05])}


@pytest.mark.parametrize(
    ("median_b", "offsets", "exit_code"),
    [(1e-3, None, EXIT_OK), (1.1e-3, None, EXIT_REGRESSION), (1e-3, LUCK, EXIT_OK), (1.2e-3, LUCK, EXIT_REGRESSION)],
)
def test_run_duet_judges_the_duet_placements_not_the_sessions(tmp_path, median_b, offsets, exit_code):
    a_run, b_run = _runs(1.5e-3)  # the sessions say +50%: the duet's figures must win
    log: list = []

    def worker(label, **kw):
        return FakeWorker(
            label,
            log,
            median=median_b if label == "B" else 1e-3,
            ready={"m-fp32", "m-int8"} - ({"m-fp32"} if label == "B" else set()),
            placement_offsets=offsets if label == "B" else None,
            kind="model+inputs" if label == "A" else "inputs (deepcopy failed: TypeError)",
        )

    side = lambda label: Side(label, label, tmp_path)  # noqa: E731
    notes = run_duet(side("A"), side("B"), a_run, b_run, plan=DuetPlan(0.01, 10, stopping="fixed"), worker=worker)
    assert notes == ["m-fp32: latency not measured (a duet worker could not prepare it: side B: boom)"]
    assert {c for _, c, _ in log} == {"m-int8", "place"}  # m-fp32 failed in B: not timed
    result = compare(parse_run(a_run, "A"), parse_run(b_run, "B"), judges=["latency"])
    assert result.exit_code == EXIT_REGRESSION  # m-fp32 was timed on neither side: a failing row, never a note
    [fp32] = [r for r in result.rows if r.case == "m-fp32"]
    assert fp32.verdict is Verdict.NOT_MEASURED and "side B: boom" in fp32.judgement.detail
    [int8] = [r for r in result.rows if r.case == "m-int8"]
    assert int8.verdict is (Verdict.REGRESSION if exit_code == EXIT_REGRESSION else Verdict.OK)
    assert "t over 10 paired placements" in int8.judgement.detail and "n=400/400" in int8.judgement.detail
    kinds = [r["benchmarks"][1]["extra_info"]["ab_placement_kinds"] for r in (a_run, b_run)]
    assert kinds == [["model+inputs"], ["inputs (deepcopy failed: TypeError)"]]  # what each side's duet re-placed


def test_the_gate_quality_duet_trial_slows_only_side_b_and_pairs_every_fraction():
    log: list = []
    workers: list = []

    def worker(label):
        workers.append(FakeWorker(label, log))
        return workers[-1]

    targets = [Target("m-fp32", lambda: None, 1e-3, inject=False), Target("m-int8", lambda: None, 1e-3, inject=True)]
    base, cur = run_duet_trial(
        targets, [0.1, 0.2], threads=1, plan=DuetPlan(0.01, 4, placements=4, workers=2, stopping="fixed"), worker=worker
    )
    slots = {(c, f) for c in ("m-fp32", "m-int8") for f in (0.0, 0.1, 0.2)}
    assert set(base) == set(cur) == slots and all(len(blocks) == 4 for blocks in cur.values())
    assert {slow for side, case, slow in log if side == "A" and case != "place"} == {0.0}
    assert {slow for side, case, slow in log if side == "B" and case == "m-int8"} == {0.0, 0.1, 0.2}
    assert len(workers) == 4 and all(w.closed for w in workers)
    outcome = Outcome("duet")
    outcome.record_placements(base, cur, threshold=0.05, alpha=0.01)
    assert outcome.aa == [2, 0] and outcome.detected == {0.1: [2, 2], 0.2: [2, 2]}
    assert outcome.per_case["m-int8"] == {0.0: [1, 0], 0.1: [1, 1], 0.2: [1, 1]}
    assert [row[:2] for row in outcome.case_rows()] == [["m-fp32", "0/1"], ["m-int8", "0/1"]]


@pytest.mark.parametrize(("latency", "judged"), [("duet", False), ("rounds", True)])
def test_ptq_ab_leaves_the_speedup_judge_to_the_sessions_only_without_the_duet(
    monkeypatch, tmp_path, capsys, latency, judged
):
    from ptq.cli import main

    speed = lambda r: {"speedup": {"ratio": r, "low": r - 0.01, "high": r + 0.01, "n": 10}}  # noqa: E731
    runs = [run(bench("m-int8", samples(1e-3, n=20, seed=s), metrics=speed(r))) for s, r in ((1, 2.9), (2, 2.7))]
    calls = []
    monkeypatch.setattr("ptq.cli.ab.materialize", lambda spec, **kw: Side(kw["label"], spec, tmp_path))
    monkeypatch.setattr("ptq.cli.ab.run_rounds", lambda a, b, **kw: calls.append(("rounds", kw["rounds"])) or runs)
    monkeypatch.setattr("ptq.cli.ab.run_duet", lambda *a, **kw: calls.append(("duet", kw["plan"])) or [])
    code = main(["ab", "x", "y", "--root", str(tmp_path), "--latency", latency])
    out = capsys.readouterr().out
    assert calls[0] == ("rounds", 2 if latency == "duet" else 6) and (len(calls) == 2) == (latency == "duet")
    assert (" speedup " in out) == judged and code == (1 if judged else 0)  # 2.9x -> 2.7x, CIs apart


@pytest.mark.slow
def test_a_real_compute_slowdown_runs_the_case_s_own_first_layer_again():
    cases = TimedCases()
    assert cases.prepare(["micro_linear_256-fp32"], threads=1, weights="random")["ready"] == ["micro_linear_256-fp32"]
    model = cases._originals["micro_linear_256-fp32"][0]
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    calls: list[int] = []
    first.register_forward_hook(lambda *_: calls.append(1))
    median = cases.medians["micro_linear_256-fp32"]
    work = cases._more_work("micro_linear_256-fp32", 10 * median)  # many runs of the layer fit
    calls.clear()
    work()
    assert len(calls) >= 2  # the layer itself, not a busy-wait
    small = cases._more_work("micro_linear_256-fp32", 0.05 * median)  # one run of the layer would overshoot
    calls.clear()
    small()
    assert calls == []  # a finer unit (a small matmul) instead
    assert len(cases.time("micro_linear_256-fp32", 0.01, slow=0.1, kind="compute")["samples"]) >= 10
    assert "unknown slowdown kind 'sleep'" in cases.time("micro_linear_256-fp32", 0.01, slow=0.1, kind="sleep")["error"]


def test_a_duet_window_warms_up_once_on_a_slow_call_and_takes_the_least_samples():
    """A call of 60 ms in a 50 ms window: one warm-up call (it took over half the window), then the
    least samples; a call of 1 ms: three warm-up calls, then samples until the window is spent."""
    for cost, warmups, least in ((0.06, 1, WINDOW_MIN_SAMPLES), (0.001, 3, 50)):
        now: list[float] = [0.0]
        calls: list[int] = []

        def call(cost=cost, now=now, calls=calls):
            calls.append(1)
            now[0] += cost

        got = time_window(call, 0.05, timer=lambda now=now: now[0])
        assert len(calls) - len(got) == warmups
        assert len(got) >= least and (cost > 0.05 or len(got) == 50)


def test_a_case_the_budget_cut_short_is_judged_on_its_placements_with_the_alpha_its_lost_looks_leave(tmp_path):
    """The duet's deadline falls after 3 placements (each window a second of a fake clock): the
    first look's 5 are made all the same; the case straddles there (B's placements scatter), so it
    stops as 'budget' at 5, its last test spends the alpha the second look would have (the gate's
    less the first look's share), and its row says the budget ended it."""
    a_run, b_run = _runs(1e-3)
    now = [0.0]

    class Clocked(FakeWorker):
        def time(self, case, budget_s, slow=0.0, kind="spin"):
            now[0] += 1.0
            return super().time(case, budget_s, slow, kind)

    scatter = {1: 0.8, 3: 1.3, 5: 0.9, 7: 1.4, 9: 0.85}  # B's placements (seeds 2k+1) lucky and not
    side = lambda label: Side(label, label, tmp_path)  # noqa: E731
    plan = DuetPlan(0.01, stopping="sequential", looks=(5, 10), sweeps_per_placement=1)
    run_duet(
        side("A"),
        side("B"),
        a_run,
        b_run,
        plan=plan,
        deadline=6.5,
        clock=lambda: now[0],
        worker=lambda label, **kw: Clocked(
            label,
            ready={"m-int8"},
            median=1.2e-3 if label == "B" else 1e-3,
            placement_offsets=scatter if label == "B" else None,
        ),
    )
    looked = b_run["benchmarks"][1]["extra_info"]["ab_sequential"]
    assert looked["stopped"] == "budget" and looked["placements"] == 5
    assert looked["alpha_look"] == pytest.approx(looked["alpha"] / 2)  # one of two looks made
    result = compare(parse_run(a_run, "A"), parse_run(b_run, "B"), judges=["latency"])
    [int8] = [r for r in result.rows if r.case == "m-int8"]
    assert "the --budget ended it after 5 placements, before its answer was clear" in int8.judgement.detail
    assert int8.verdict is Verdict.OK  # +20% on average, but 5 scattered placements cannot say so at that alpha
