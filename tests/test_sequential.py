"""Sequential stopping (:mod:`ptq.stats.sequential`) on synthetic per-placement ratios with known
answers, and the sequential duet driver on fake workers: quiet cases stop early, a slowdown
stops as a regression, a straddling case uses its whole budget, and the error rates over many
seeded streams stay within the gate's targets."""

from __future__ import annotations

import math

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


@pytest.mark.slow
def test_a_case_straddling_the_threshold_uses_its_whole_budget():
    # centred on the threshold with a wide spread: neither beyond it nor inside the band, at any look
    assert run_stream([1.05, 1.0, 1.1, 0.98] * 5) == ("undecided", PLAN.most)
    used = [run_stream(stream(1.05, 0.04, seed=s))[1] for s in range(200)]
    assert np.mean(used) > 2 * np.mean([run_stream(stream(1.0, 0.01, seed=s))[1] for s in range(200)])


def test_no_answer_between_looks():
    ratios = stream(1.3, 0.001, seed=5)
    assert decide_look(ratios[:6], PLAN) == CONTINUE and decide_look(ratios[:5], PLAN) == "regression"


@pytest.mark.slow
@pytest.mark.parametrize("spread", [0.01, 0.03, 0.06])
def test_false_regressions_over_many_a_a_streams_stay_within_alpha(spread):
    false = sum(run_stream(stream(1.0, spread, seed=s))[0] == "regression" for s in range(2000))
    assert false / 2000 <= PLAN.alpha


@pytest.mark.slow
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
    reaches after three placements: the first look's four are made all the same (every case gets a
    verdict from a test at its first look), no fifth is begun, the open slot stops as ``budget``
    with the placements it got, and the run says so; without a deadline the same case runs on."""
    now = [0.0]

    class Clocked(FakeWorker):
        def time(self, case, budget_s, slow=0.0, kind="spin"):
            now[0] += 1.0  # every window costs a second of the fake clock
            return super().time(case, budget_s, slow, kind)

    lines: list[str] = []
    plan = DuetPlan(0.01, stopping="sequential", looks=(4, 6, 8), sweeps_per_placement=1, worker_placements=8)
    scatter = {1: 0.9, 3: 1.2, 5: 0.95, 7: 1.25}  # B's placements (seeds 2k+1): no verdict at the first look
    got = run_plan(
        plan,
        ["m-edge"],
        new_worker=lambda label, **kw: Clocked(label, placement_offsets=scatter if label == "B" else None),
        threads=1,
        slowdowns={"m-edge": (0.05,)},
        progress=lines.append,
        deadline=6.5,
        clock=lambda: now[0],
    )
    assert got.stopped[("m-edge", 0.05)] == ("budget", 4)
    assert len(got.blocks["A"][("m-edge", 0.05)]) == 4 and now[0] == 8.0  # past the deadline: the first look's
    assert any(
        "the budget ends before another placement" in line
        and "1 case(s) judged at the 4 placement(s) they got: m-edge" in line
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


@pytest.mark.slow
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


def test_the_duet_progress_gives_the_time_to_the_next_look_and_the_most_it_can_take():
    from ptq.run.duet import PairCost, _time_left

    plan = DuetPlan(0.01, stopping="sequential")  # looks at 5, 10, 15, 20; a fresh pair every 5 placements
    pair = PairCost(fixed=5.0, per_case=1.5)  # 5 s to start, 1.5 s a case: 20 s for 10 cases
    # after placement 1: 4 placements of 10 open cases at 0.5 s each to the look at 5; to the last look 19 more
    # placements and 3 fresh pairs preparing the 10 cases
    assert _time_left(plan, 1, 10, 0.5, pair) == "; about 20s to the look at 5 placements, at most 2m35s in all"
    assert _time_left(plan, 5, 0, 0.5, pair) == ""  # nothing open: nothing to say


def test_a_pair_s_preparation_is_split_into_starting_and_its_cases_by_what_the_workers_report():
    from types import SimpleNamespace

    from ptq.run.duet import PairCost

    a, b = SimpleNamespace(cases_s=6.0, handed_off=4), SimpleNamespace(cases_s=8.0, handed_off=3)
    cost = PairCost.of(20.0, 4, a, b)  # 20 s in all, the slower worker 8 s on its 4 cases
    assert cost == PairCost(12.0, 2.0) and cost.seconds(1) == 14.0  # a one-case pair still pays the start
    assert "loaded from the sessions' hand-off: A 4/4, B 3/4 (the rest quantized again" in cost.describe(4, a, b)
    assert cost.describe(4, a, a).endswith("loaded from the sessions' hand-off: A 4/4, B 4/4")  # all loaded
    old = SimpleNamespace(cases_s=math.nan, handed_off=0)  # code before it reported cases_s: all of it per case
    assert PairCost.of(20.0, 4, old, old) == PairCost(0.0, 5.0)
    assert PairCost.of(20.0, 4, old, b) == PairCost.of(20.0, 4, b, old) == PairCost(0.0, 5.0)  # one side silent
