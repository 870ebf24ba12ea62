import numpy as np
import pytest

from ptq.stats.estimate import bootstrap_median_ci, paired_quantile_ratio, paired_ratio


def test_paired_ratio_recovers_a_known_speedup_under_common_drift():
    rng = np.random.default_rng(1)
    drift = 1 + 0.3 * np.sin(np.linspace(0, 6, 200))  # machine state shared by each pair
    ref = 10e-3 * drift * rng.lognormal(0, 0.02, 200)
    cand = 5e-3 * drift * rng.lognormal(0, 0.02, 200)
    est = paired_ratio(ref, cand)
    assert est.low <= 2.0 <= est.high
    assert abs(est.ratio - 2.0) < 0.02
    assert est.n == 200


def test_paired_ratio_of_identical_workloads_brackets_one():
    rng = np.random.default_rng(2)
    a = rng.lognormal(np.log(1e-3), 0.05, 100)
    b = rng.lognormal(np.log(1e-3), 0.05, 100)
    est = paired_ratio(a, b)
    assert est.low <= 1.0 <= est.high


def test_paired_quantile_ratio_ignores_stalls_the_median_of_pairs_feels():
    rng = np.random.default_rng(3)
    ref = 10e-3 * (1 + rng.exponential(0.01, 400))
    cand = 5e-3 * (1 + rng.exponential(0.01, 400))
    cand[rng.random(400) < 0.6] += 2e-3  # 60% of the candidate's calls stalled by a neighbour
    est = paired_quantile_ratio(ref, cand)
    assert est.low <= est.ratio <= est.high and est.ratio == pytest.approx(2.0, abs=0.02) and est.n == 400
    assert paired_ratio(ref, cand).ratio < 1.8  # the median of per-pair ratios takes the stalls for slowness
    assert paired_quantile_ratio(ref, cand, seed=1) != paired_quantile_ratio(ref, cand, seed=2)  # seeded CI
    assert paired_quantile_ratio(ref, cand, seed=1) == paired_quantile_ratio(ref, cand, seed=1)
    with pytest.raises(ValueError, match="differ in length"):
        paired_quantile_ratio([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="q must be in"):
        paired_quantile_ratio([1.0], [1.0], q=2)


def test_bootstrap_is_deterministic_and_brackets_the_median():
    values = [1, 2, 3, 4, 5, 6, 7, 8, 9]
    first = bootstrap_median_ci(values, seed=3)
    assert first == bootstrap_median_ci(values, seed=3)
    mid, low, high = first
    assert mid == 5 and low <= 5 <= high


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        paired_ratio([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no samples"):
        bootstrap_median_ci([])
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap_median_ci([1.0], level=1.5)


def test_placement_ratio_is_the_geometric_mean_of_per_placement_ratios_with_a_t_interval():
    from ptq.stats.estimate import placement_ratio

    ref = [[2.0, 3.0], [4.0, 5.0], [2.0, 9.0]]
    cand = [[1.0, 2.0], [1.0, 7.0], [2.0, 2.0]]  # per placement (min): 2, 4, 1
    est = placement_ratio(ref, cand, q=0.0)
    assert est.per_placement == (2.0, 4.0, 1.0) and est.ratio == pytest.approx(2.0) and est.spread == pytest.approx(3.0)
    # logs ln2 * (1, 2, 0): mean ln2, sd ln2, t(0.975, 2) = 4.303
    assert est.low == pytest.approx(2 ** (1 - 4.3027 / 3**0.5), rel=1e-3)
    assert est.high == pytest.approx(2 ** (1 + 4.3027 / 3**0.5), rel=1e-3)
    assert est.to_dict()["unit"] == "placement"
    with pytest.raises(ValueError, match=">= 2 placements"):
        placement_ratio([[1.0]], [[1.0]])


def test_median_interval_has_the_binomial_coverage_of_its_order_statistics():
    from ptq.stats.estimate import median_interval

    assert median_interval([3.0, 1.0, 2.0, 5.0, 4.0]) == (3.0, 1.0, 5.0, 0.9375)  # [min, max] of 5: 1 - 2/32
    mid, low, high, cover = median_interval([float(x) for x in range(1, 13)])
    assert (mid, low, high) == (6.5, 3.0, 10.0) and cover == pytest.approx(
        1 - 2 * 79 / 4096
    )  # P(Bin(12,.5) <= 2) = (1+12+66)/4096
    with pytest.raises(ValueError, match=">= 2 finite"):
        median_interval([1.0, float("nan")])


def test_visit_ratio_is_the_median_of_per_visit_ratios_and_shrugs_off_one_wild_visit():
    from ptq.stats.estimate import visit_ratio

    rng = np.random.default_rng(0)
    ref = [list(2e-3 * (1 + rng.exponential(0.05, 50))) for _ in range(6)]
    cand = [list(1e-3 * (1 + rng.exponential(0.05, 50))) for _ in range(6)]
    calm = visit_ratio(ref, cand)
    cand[2] = [2 * x for x in cand[2]]  # one visit where the candidate ran at half speed throughout
    wild = visit_ratio(ref, cand)
    assert calm.unit == "visit" and calm.n == 6 and calm.level == pytest.approx(0.96875)
    assert calm.low <= calm.ratio <= calm.high and calm.ratio == pytest.approx(2.0, rel=0.02)
    assert wild.ratio == pytest.approx(calm.ratio, rel=0.02) and wild.low == pytest.approx(min(wild.per_placement))


@pytest.mark.slow
def test_repeat_interval_holds_another_runs_median_where_the_medians_interval_does_not():
    """Two runs of 6 exchangeable visits each: the repeat interval of one holds the other's median
    at about its level; the median's own [min, max] interval (its 96.9% is for the true median)
    holds it far less often, which is why five runs' intervals failed to cover each other."""
    from ptq.stats.estimate import median_interval, repeat_interval

    rng = np.random.default_rng(7)
    trials = 4000
    runs = np.exp(rng.normal(0.0, 0.02, size=(trials, 2, 6)))
    again = ci = 0
    for first, second in runs:
        other = float(np.median(second))
        low, high, level = repeat_interval(first)
        _, ci_low, ci_high, _ = median_interval(first)
        again += low <= other <= high
        ci += ci_low <= other <= ci_high
    assert level == 0.99
    assert 0.97 <= again / trials <= 1.0
    assert ci / trials < 0.92 < again / trials


def test_repeat_interval_widens_with_the_spread_and_refuses_what_it_cannot_use():
    from ptq.stats.estimate import repeat_interval, visit_ratio

    calm = repeat_interval([1.00, 1.01, 0.99, 1.00, 1.02, 0.98])
    noisy = repeat_interval([1.00, 1.05, 0.95, 1.00, 1.10, 0.90])
    assert calm[0] < 1.0 < calm[1] and noisy[0] < calm[0] and noisy[1] > calm[1]
    for bad in ([1.0], [1.0, float("nan")], [1.0, -1.0]):
        with pytest.raises(ValueError, match="repeat interval"):
            repeat_interval(bad)
    est = visit_ratio([[2e-3, 2.1e-3]] * 3 + [[2.2e-3, 2.3e-3]] * 3, [[1e-3, 1.1e-3]] * 6)
    assert est.repeat is not None and est.repeat[0] <= est.ratio <= est.repeat[1]
    assert est.to_dict()["repeat"] == {"low": est.repeat[0], "high": est.repeat[1], "level": 0.99}
