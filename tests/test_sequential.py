"""Sequential stopping (:mod:`ptq.stats.sequential`) on synthetic per-placement ratios with known
answers, and the sequential duet driver on fake workers: quiet cases stop early, a slowdown
stops as a regression, a straddling case uses its whole budget, and the error rates over many
seeded streams stay within the gate's targets."""

from __future__ import annotations

import numpy as np
import pytest
from test_duet import FakeWorker

from ptq.errors import UserError
from ptq.run.duet import DuetPlan, run_plan
from ptq.stats.sequential import CONTINUE, SequentialPlan, decide_look

PLAN = SequentialPlan()  # looks 5, 10, 15, 20; alpha 0.01; threshold 5%


def stream(true_ratio: float, spread: float, seed: int, n: int = PLAN.most) -> list[float]:
    """Per-placement ratios: the true change times a placement's log-normal luck."""
    return list(true_ratio * np.exp(np.random.default_rng(seed).normal(0.0, spread, n)))


def run_stream(ratios: list[float], plan: SequentialPlan = PLAN) -> tuple[str, int]:
    """Where a case with these per-placement ratios stops: (answer, placements used)."""
    for n in range(1, len(ratios) + 1):
        answer = decide_look(ratios[:n], plan)
        if answer != CONTINUE:
            return answer, n
    raise AssertionError("the last look always answers")


def test_a_quiet_a_a_stream_stops_early_as_no_change():
    answer, used = run_stream(stream(1.0, 0.01, seed=1))
    assert answer == "no change" and used <= 6


def test_a_planted_ten_percent_slowdown_stops_as_a_regression():
    answer, used = run_stream(stream(1.10, 0.02, seed=2))
    assert answer == "regression" and used < PLAN.most
    assert run_stream(stream(1 / 1.10, 0.02, seed=3))[0] == "improved"


def test_a_case_straddling_the_threshold_uses_its_whole_budget():
    # centred on the threshold with a wide spread: neither beyond it nor inside the band, at any look
    assert run_stream([1.05, 1.0, 1.1, 0.98] * 5) == ("undecided", PLAN.most)
    used = [run_stream(stream(1.05, 0.04, seed=s))[1] for s in range(200)]
    assert np.mean(used) > 2 * np.mean([run_stream(stream(1.0, 0.01, seed=s))[1] for s in range(200)])


def test_no_answer_between_looks():
    ratios = stream(1.3, 0.001, seed=5)
    assert decide_look(ratios[:6], PLAN) == CONTINUE and decide_look(ratios[:5], PLAN) == "regression"


@pytest.mark.parametrize("spread", [0.01, 0.03, 0.06])
def test_false_regressions_over_many_a_a_streams_stay_within_alpha(spread):
    false = sum(run_stream(stream(1.0, spread, seed=s))[0] == "regression" for s in range(2000))
    assert false / 2000 <= PLAN.alpha


@pytest.mark.parametrize(("true", "spread", "target"), [(1.10, 0.03, 0.95), (1.10, 0.06, 0.95), (1.06, 0.015, 0.90)])
def test_slowdowns_are_caught_at_the_gate_s_targets(true, spread, target):
    caught = sum(run_stream(stream(true, spread, seed=s))[0] == "regression" for s in range(1000))
    assert caught / 1000 >= target


def test_quiet_cases_cost_fewer_placements_than_the_fixed_plan():
    used = [run_stream(stream(1.0, 0.02, seed=s))[1] for s in range(500)]
    assert np.mean(used) < 10  # the fixed plan's placements


def test_the_plan_refuses_looks_that_cannot_work():
    with pytest.raises(UserError, match="increasing placement counts"):
        SequentialPlan((4, 4, 8))
    with pytest.raises(UserError, match="the first >= 3"):
        SequentialPlan((2, 4))
    with pytest.raises(UserError, match="increasing placement counts"):
        DuetPlan(looks=(8, 6))


def test_the_sequential_duet_stops_settled_cases_and_keeps_timing_the_slowed_one():
    """Side B of ``m-slow`` is 30% slower: it stops at the first look as a regression; the
    unchanged case stops as "no change"; the run records where each stopped and re-places only
    the open cases."""
    log: list = []

    def worker(label, **kw):
        return FakeWorker(label, log)

    plan = DuetPlan(0.01, stopping="sequential", looks=(4, 6, 8), sweeps_per_placement=2, worker_placements=3)
    got = run_plan(plan, ["m-same", "m-slow"], new_worker=worker, threads=1, slowdowns={"m-slow": (0.3,)})
    assert got.stopped[("m-slow", 0.3)] == ("regression", 4)
    assert got.stopped[("m-same", 0.0)][0] in ("no change", "undecided")
    assert len(got.blocks["A"][("m-slow", 0.3)]) == 4 == len(got.blocks["B"][("m-slow", 0.3)])
    pairs = sum(1 for entry in log if entry[1] == "place") // 2
    assert pairs == got.stopped[("m-same", 0.0)][1]  # placements stop once every case has


def test_a_budget_ends_the_duet_before_a_placement_it_cannot_afford_and_says_which_cases_it_cut():
    """A straddling case (B 5% slower, no room for a verdict early) under a deadline the fake clock
    reaches after three placements: no fourth is begun, the open slot stops as ``budget`` with the
    placements it got, and the run says so; without a deadline the same case runs on."""
    now = [0.0]

    class Clocked(FakeWorker):
        def time(self, case, budget_s, slow=0.0, kind="spin"):
            now[0] += 1.0  # every window costs a second of the fake clock
            return super().time(case, budget_s, slow, kind)

    lines: list[str] = []
    plan = DuetPlan(0.01, stopping="sequential", looks=(4, 6, 8), sweeps_per_placement=1, worker_placements=8)
    got = run_plan(
        plan,
        ["m-edge"],
        new_worker=lambda label, **kw: Clocked(label),
        threads=1,
        slowdowns={"m-edge": (0.05,)},
        progress=lines.append,
        deadline=6.5,
        clock=lambda: now[0],
    )
    assert got.stopped[("m-edge", 0.05)] == ("budget", 3)
    assert len(got.blocks["A"][("m-edge", 0.05)]) == 3
    assert any(
        "the budget ends before another placement" in line
        and "1 case(s) judged at the 3 placement(s) they got: m-edge" in line
        for line in lines
    )
    free = run_plan(
        plan, ["m-edge"], new_worker=lambda label, **kw: Clocked(label), threads=1, slowdowns={"m-edge": (0.05,)}
    )
    assert free.stopped[("m-edge", 0.05)][1] >= 4


def test_a_budget_is_refused_by_the_fixed_plan():
    with pytest.raises(UserError, match="--budget needs --stopping=sequential"):
        run_plan(
            DuetPlan(0.01, stopping="fixed", sweeps=4, placements=2, workers=1),
            ["m-x"],
            new_worker=lambda label, **kw: FakeWorker(label),
            threads=1,
            deadline=1.0,
        )


def test_the_futility_share_settles_quiet_cases_at_the_first_look_without_costing_power_past_the_threshold():
    """With beta = alpha (the first design) an A/A case with a 2% spread between placements rarely
    settled at the first look; with the default beta of 5% most do, while slowdowns of 6% and 10%
    are caught as often, and one at the threshold stops as "no change" at most beta of the time."""

    def settled_first(plan: SequentialPlan) -> float:
        return float(np.mean([run_stream(stream(1.0, 0.02, seed=s), plan)[1] == plan.looks[0] for s in range(1000)]))

    strict = SequentialPlan(beta=PLAN.alpha)
    assert settled_first(PLAN) > 0.75 > 0.5 > settled_first(strict)
    for true, spread in ((1.06, 0.02), (1.10, 0.06)):
        caught = [
            sum(run_stream(stream(true, spread, seed=s), plan)[0] == "regression" for s in range(1000)) / 1000
            for plan in (PLAN, strict)
        ]
        assert caught[0] >= caught[1] - 0.01
    at_edge = [run_stream(stream(1.05, 0.02, seed=s))[0] for s in range(1000)]
    assert at_edge.count("no change") / 1000 <= PLAN.beta
