"""The gate's statistics on seeded synthetic samples with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ptq.errors import UserError
from ptq.stats.decide import (
    Verdict,
    decide_interval,
    decide_latency,
    decide_latency_placements,
    decide_latency_rounds,
    decide_threshold,
    mann_whitney,
    ratio_ci,
)


def _lognormal(seed: int, n: int, median: float, sigma: float = 0.05) -> np.ndarray:
    return np.random.default_rng(seed).lognormal(np.log(median), sigma, n)


def test_mann_whitney_known_small_example():
    # Every value of a is below every value of b: U = 0; a complete ordering of 5 vs 5.
    result = mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert result.u == 0
    # Normal approximation with continuity correction: z = (12.5 - 0.5) / sqrt(229.1666/10)
    assert result.p == pytest.approx(0.01219, abs=1e-4)


def test_mann_whitney_orients_u_on_its_first_argument():
    assert mann_whitney([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]).u == 25
    assert mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]).p == mann_whitney([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]).p


def test_mann_whitney_identical_constant_samples_give_p_one():
    assert mann_whitney([3.0] * 10, [3.0] * 7).p == 1.0


def test_ratio_ci_of_medians_brackets_the_true_ratio_and_is_seeded():
    base, cur = _lognormal(3, 400, 10.0), _lognormal(4, 400, 11.0)
    ratio, low, high = ratio_ci(base, cur, statistic="median", seed=7)
    assert low < 1.10 < high and low < ratio < high
    assert ratio_ci(base, cur, statistic="median", seed=7) == (ratio, low, high)


def _interfered(seed: int, n: int, base: float, *, hit: float = 0.0, extra: float = 0.4) -> np.ndarray:
    """A fixed cost plus what a shared machine adds: small positive jitter on every call, and on
    a fraction ``hit`` of calls a large stall (another process, an interrupt)."""
    rng = np.random.default_rng(seed)
    samples = base * (1 + rng.exponential(0.01, n))
    return samples + base * extra * (rng.random(n) < hit)


def test_ratio_ci_of_a_low_quantile_sees_a_fixed_cost_shift():
    base, cur = _interfered(1, 1000, 1.0), _interfered(2, 1000, 1.1)
    for statistic in ("min", "p1", "p5"):
        ratio, low, high = ratio_ci(base, cur, statistic=statistic)
        assert low <= ratio <= high and ratio == pytest.approx(1.10, abs=0.005)


def test_interference_moves_the_median_but_is_not_a_regression():
    # The same code; the current window shared its cores: 60% of calls stalled by +40%.
    base, cur = _interfered(3, 1000, 1.0), _interfered(4, 1000, 1.0, hit=0.6)
    by_median = decide_latency(base, cur, statistic="median")
    assert by_median.verdict is Verdict.REGRESSION and by_median.ratio > 1.05  # the median rule cries wolf
    d = decide_latency(base, cur)  # default: the 1st percentile
    assert d.statistic == "p1" and d.verdict is Verdict.OK and d.ratio == pytest.approx(1.0, abs=0.01)
    assert d.median_ratio == pytest.approx(by_median.ratio)


def test_a_fixed_cost_regression_under_interference_is_caught():
    d = decide_latency(_interfered(5, 1000, 1.0, hit=0.2), _interfered(6, 1000, 1.1, hit=0.05))
    assert d.verdict is Verdict.REGRESSION and d.ratio == pytest.approx(1.10, abs=0.01)


def test_unknown_statistic_names_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown latency statistic 'p2'; valid latency statistics: min, p1, p5"):
        decide_latency([1.0] * 5, [1.0] * 5, statistic="p2")


@pytest.mark.slow
def test_latency_same_distribution_is_ok_across_seeds():
    verdicts = [decide_latency(_lognormal(s, 300, 5.0), _lognormal(s + 1000, 300, 5.0)).verdict for s in range(50)]
    assert verdicts.count(Verdict.REGRESSION) == 0 and verdicts.count(Verdict.IMPROVED) == 0


def test_latency_ten_percent_slower_is_a_regression():
    d = decide_latency(_lognormal(5, 300, 5.0), _lognormal(6, 300, 5.5))
    assert d.verdict is Verdict.REGRESSION and d.ratio == pytest.approx(1.10, abs=0.02) and d.p < 1e-6


def test_latency_significant_but_tiny_change_is_not_a_regression():
    # 2% slower with 20,000 samples: the test is certain, the effect is below the 5% factor.
    d = decide_latency(_lognormal(7, 20000, 5.0, 0.02), _lognormal(8, 20000, 5.1, 0.02))
    assert d.p < 1e-6 and d.verdict is Verdict.OK


def test_latency_large_but_insignificant_change_is_not_a_regression():
    # Medians 10% apart on three very noisy samples each: big, but not significant.
    d = decide_latency([1.0, 5.0, 9.0], [1.2, 5.5, 8.0])
    assert d.ratio > 1.05 and d.verdict is Verdict.OK


def test_latency_faster_is_an_improvement():
    assert decide_latency(_lognormal(9, 300, 5.0), _lognormal(10, 300, 4.0)).verdict is Verdict.IMPROVED


def test_interval_verdicts():
    base = (2.0, 1.95, 2.05)
    assert decide_interval(base, (1.7, 1.65, 1.75)) is Verdict.REGRESSION
    assert decide_interval(base, (1.7, 1.5, 2.0)) is Verdict.OK  # overlapping intervals
    assert decide_interval(base, (1.97, 1.96, 1.98)) is Verdict.OK  # below the threshold
    assert decide_interval(base, (2.4, 2.35, 2.45)) is Verdict.IMPROVED


def test_threshold_verdicts_use_the_largest_allowance():
    assert decide_threshold(1000, 1040, relative=0.05) is Verdict.OK
    assert decide_threshold(1000, 1060, relative=0.05) is Verdict.REGRESSION
    assert decide_threshold(1000, 1060, relative=0.05, spread=100) is Verdict.OK
    assert decide_threshold(1000, 900, relative=0.05) is Verdict.IMPROVED
    assert decide_threshold(0.01, 0.012, relative=0.0, absolute=0.005) is Verdict.OK


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        decide_latency([1.0], [1.0], alpha=0)
    with pytest.raises(ValueError):
        mann_whitney([], [1.0])


def _sessions(seed: int, rounds: int, median: float, *, between: float, n: int = 400) -> list[np.ndarray]:
    """``rounds`` sessions of ``n`` calls; each session (a process) has its own speed, drawn
    with sd ``between`` around ``median``, as fresh processes did on the reference machine."""
    rng = np.random.default_rng(seed)
    return [
        _interfered(int(rng.integers(1 << 30)), n, median * float(np.exp(rng.normal(0, between))), hit=0.05)
        for _ in range(rounds)
    ]


@pytest.mark.slow
def test_pooled_calls_cry_wolf_on_session_noise_where_the_rounds_do_not():
    """A/A: equal code, 4 sessions a side, sessions differing by 4% (sd). Pooling the calls
    treats 1,600 calls as independent and flags many of them; rounds as units stay at alpha."""
    pooled, by_round = [], []
    for s in range(200):
        a, b = _sessions(s, 4, 1.0, between=0.04), _sessions(s + 1000, 4, 1.0, between=0.04)
        pooled.append(decide_latency(np.concatenate(a), np.concatenate(b)).verdict is not Verdict.OK)
        by_round.append(decide_latency_rounds(a, b).verdict is not Verdict.OK)
    assert sum(pooled) >= 40  # about a third of the trials: the failure an A/A of ptq ab showed
    assert sum(by_round) <= 4  # <= 2%: alpha is 1%, both directions


def test_rounds_catch_a_10_percent_slowdown_when_sessions_agree():
    a, b = _sessions(1, 4, 1.0, between=0.01), _sessions(2, 4, 1.1, between=0.01)
    d = decide_latency_rounds(a, b)
    assert (
        d.verdict is Verdict.REGRESSION
        and d.low < 1.1 < d.high
        and d.test == "Welch t over the fastest 3+3 of 4+4 rounds"
    )
    assert decide_latency_rounds(b, a).verdict is Verdict.IMPROVED
    # The same 10% among sessions that differ by 10% (sd) is not told from noise in 4 rounds.
    assert (
        decide_latency_rounds(_sessions(1, 4, 1.0, between=0.1), _sessions(2, 4, 1.1, between=0.1)).verdict
        is Verdict.OK
    )


def _rounds(seed: int, speeds: list[float]) -> list[np.ndarray]:
    return [_interfered(seed + i, 300, m) for i, m in enumerate(speeds)]


def test_slow_processes_neither_hide_nor_fake_a_change_with_six_rounds():
    """As measured on micro_conv_64-static_int8 and micro_linear_1024-dynamic_int8: now and then
    a whole process runs the case 20-30% slower; up to two of six per side are cut."""
    base = _rounds(10, [1.0, 1.25, 0.998, 1.002, 1.3, 0.997])  # two slow processes
    slower = _rounds(20, [1.1 * x for x in (1.0, 0.999, 1.28, 1.001, 0.998, 1.002)])  # 10% slower, one slow
    d = decide_latency_rounds(base, slower)
    assert d.verdict is Verdict.REGRESSION and d.ratio == pytest.approx(1.1, abs=0.01)
    assert d.test == "Welch t over the fastest 4+4 of 6+6 rounds"
    assert decide_latency_rounds(base, slower, keep=1).verdict is Verdict.OK  # the plain mean is dragged by them
    same = _rounds(30, [1.0, 1.002, 0.999, 1.001, 0.998, 1.003])  # A/A: the slow processes fake nothing
    assert decide_latency_rounds(same, base).verdict is Verdict.OK
    assert decide_latency_rounds(base, same).verdict is Verdict.OK
    with pytest.raises(ValueError, match="keep in"):
        decide_latency_rounds(base, same, keep=0)


def test_rounds_without_spread_and_too_few_rounds():
    same = [[1.0] * 10, [1.0] * 10]
    assert decide_latency_rounds(same, same).verdict is Verdict.OK
    assert decide_latency_rounds(same, [[1.2] * 10, [1.2] * 10]).verdict is Verdict.REGRESSION
    with pytest.raises(ValueError, match=">= 2 rounds per side"):
        decide_latency_rounds([[1.0] * 10], same)


def _placements(seed: int, luck: list[float], median: float = 1e-3) -> list[np.ndarray]:
    """One block of calls per placement, each placement's calls scaled by its luck."""
    return [_interfered(seed + i, 150, median * f) for i, f in enumerate(luck)]


@pytest.mark.slow
def test_a_placements_luck_is_not_a_verdict_where_one_allocation_made_it_certain():
    """A/A, 10 placements a side, each landing up to 2x slow as a small conv did on a Xeon: the
    placement as unit says ok; the same first placements judged alone (the duet before placements
    were sampled) call a "certain" regression."""
    rng = np.random.default_rng(7)
    false_alarms, single = 0, 0
    for trial in range(200):
        luck_a, luck_b = (np.where(rng.random(10) < 0.5, 1.0, rng.uniform(1.0, 2.0, 10)) for _ in range(2))
        a, b = _placements(trial * 100, list(luck_a)), _placements(trial * 100 + 50, list(luck_b))
        false_alarms += decide_latency_placements(a, b).verdict is Verdict.REGRESSION
        single += decide_latency(a[0], b[0]).verdict is Verdict.REGRESSION
    assert false_alarms <= 2  # <= 1%: alpha, one direction
    assert single >= 40  # about a quarter: B's one placement landed badly, A's well


def test_a_planted_slowdown_across_placements_is_caught_with_an_interval_over_placements():
    luck = [1.0, 1.03, 0.99, 1.05, 1.0, 1.02, 0.98, 1.04, 1.01, 1.0]
    base, slower = _placements(1, luck), _placements(2, [1.1 * f for f in luck[::-1]])
    d = decide_latency_placements(base, slower)
    assert d.verdict is Verdict.REGRESSION and d.low < 1.1 < d.high and d.test == "t over 10 paired placements"
    assert 0.05 < d.spread < 0.2  # the per-placement ratios' max/min - 1
    assert decide_latency_placements(slower, base).verdict is Verdict.IMPROVED
    assert decide_latency_placements(base, _placements(3, luck[::-1])).verdict is Verdict.OK


def test_placements_need_two_on_each_side_and_the_same_number():
    one = _placements(1, [1.0])
    with pytest.raises(ValueError, match=">= 2 placements"):
        decide_latency_placements(one, one)
    with pytest.raises(ValueError, match="differ in number"):
        decide_latency_placements(_placements(1, [1.0, 1.0]), _placements(1, [1.0, 1.0, 1.0]))
