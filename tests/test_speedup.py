import pytest

from ptq.probes.speedup import interleaved_speedup


class FakeClock:
    """A timer that advances only when the fake workloads run: exact, no wall-clock involved."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[str] = []

    def __call__(self) -> float:
        return self.now

    def work(self, name: str, seconds: float):
        def fn() -> None:
            self.calls.append(name)
            self.now += seconds

        return fn


def test_interleaved_speedup_alternates_abba_and_measures_the_ratio():
    clock = FakeClock()
    est = interleaved_speedup(
        clock.work("ref", 0.004), clock.work("cand", 0.001), budget_s=0.1, warmup=1, min_pairs=20, timer=clock
    )
    assert (est.ratio, est.low, est.high) == pytest.approx((4.0, 4.0, 4.0))
    # warm-up pair, then A B, B A, A B ...
    assert clock.calls[:6] == ["ref", "cand", "ref", "cand", "cand", "ref"]
    assert est.n == 20  # 20 pairs = 0.1 s at 5 ms a pair


def test_interleaved_speedup_hands_back_the_raw_pairs():
    clock = FakeClock()
    pairs: list[tuple[float, float]] = []
    est = interleaved_speedup(
        clock.work("ref", 0.003),
        clock.work("cand", 0.001),
        budget_s=0.04,
        warmup=0,
        min_pairs=2,
        timer=clock,
        pairs=pairs,
    )
    assert len(pairs) == est.n == 10 and pairs[0] == pytest.approx((0.003, 0.001))


def test_interleaved_speedup_respects_min_and_max_pairs():
    clock = FakeClock()
    est = interleaved_speedup(
        clock.work("a", 1.0), clock.work("b", 1.0), budget_s=0.5, warmup=0, min_pairs=7, timer=clock
    )
    assert est.n == 7
    clock = FakeClock()
    est = interleaved_speedup(
        clock.work("a", 1e-6), clock.work("b", 1e-6), budget_s=10, warmup=0, max_pairs=50, timer=clock
    )
    assert est.n == 50


def test_warm_up_stops_at_its_call_count_or_time_cap_but_runs_twice():
    from ptq.run.workbench import warm_up

    clock = FakeClock()
    assert warm_up(clock.work("m", 0.01), calls=10, max_seconds=1.0, timer=clock) == 10
    clock = FakeClock()
    assert warm_up(clock.work("m", 0.4), calls=10, max_seconds=1.0, timer=clock) == 3
    clock = FakeClock()
    assert warm_up(clock.work("m", 5.0), calls=10, max_seconds=1.0, timer=clock) == 2
    assert warm_up(clock.work("m", 5.0), calls=0, max_seconds=1.0, timer=clock) == 0
