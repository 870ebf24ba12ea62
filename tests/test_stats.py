import numpy as np
import pytest

from ptq.stats import bootstrap_median_ci, paired_ratio


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
