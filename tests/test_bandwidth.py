"""The memory-bandwidth meter and the speedup visits it chooses among."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import ptq.probes.speedup
import ptq.run.placement
from ptq.probes.bandwidth import BandwidthMeter
from ptq.probes.speedup import SpeedupVisits, metered, quietest


def test_quietest_keeps_the_lowest_readings_in_visit_order_and_the_earlier_of_equals():
    assert quietest([5.0, 1.0, 3.0, 1.0, 2.0], 3) == [1, 3, 4]
    assert quietest([2.0, 2.0, 2.0], 2) == [0, 1]
    with pytest.raises(ValueError, match="cannot keep 4 of 3"):
        quietest([1.0, 2.0, 3.0], 4)


def test_the_meter_reads_the_fastest_copy_and_holds_its_buffers():
    clock = iter([0.0, 3.0, 0.0, 2.0, 0.0, 5.0, 0.0, 4.0])  # (start, end) per copy: 3 s, 2 s, 5 s, 4 s
    meter = BandwidthMeter(1 << 10, copies=2, timer=clock.__next__)
    assert meter.read() == 2.0 and meter.read() == 4.0
    first = meter._buffers
    assert first is not None and first[0].numel() == 256 and torch.equal(first[0], first[1])
    assert meter.gigabytes_per_second(1e-6) == pytest.approx(2 * 1024 / 1e-6 / 1e9)
    with pytest.raises(ValueError, match="needs >= 4 bytes"):
        BandwidthMeter(2)
    with pytest.raises(ValueError, match=">= 1 copy"):
        BandwidthMeter(1 << 10, copies=0)


def test_extra_visits_need_a_meter_to_choose_by():
    with pytest.raises(ValueError, match="need a meter"):
        SpeedupVisits(budget_s=1.0, visits=3, extra=3)
    with pytest.raises(ValueError, match="cannot be negative"):
        SpeedupVisits(budget_s=1.0, visits=3, extra=-1, meter=lambda: 1.0)


@pytest.mark.slow
def test_the_figures_come_from_the_visits_the_meter_found_quietest(monkeypatch):
    """Visits under contention (meter 2.0) give ratio 3; quiet ones (meter 1.0) give ratio 2:
    the figure is the quiet ratio, and the record names every visit and which were kept."""
    # meter readings per visit (before, after): contended on visits 1, 2 and 5 (0-based)
    contended = {1, 2, 5}
    readings = iter(r for k in range(6) for r in ((2.0, 2.0) if k in contended else (1.0, 1.2)))
    windows: list[float] = []
    visit = {"k": 0}

    def fake_pairs(ref, cand, *, budget_s, **kw):
        windows.append(budget_s)
        k, visit["k"] = visit["k"], visit["k"] + 1
        return [(3e-3 if k in contended else 2e-3, 1e-3)] * 3

    monkeypatch.setattr(ptq.probes.speedup, "time_pairs", fake_pairs)
    got = {}
    visits = SpeedupVisits(budget_s=1.2, visits=3, extra=3, meter=lambda: next(readings))
    model = torch.nn.Linear(4, 4).eval()
    visits.add(model, model, (torch.randn(2, 4),), on_done=lambda est, lat: got.update(est=est, lat=lat))
    visits.finish()
    est, band = got["est"], got["lat"]["bandwidth"]
    assert windows == pytest.approx([0.2] * 6)  # the same budget over twice the visits
    assert est.n == 3 and est.ratio == pytest.approx(2.0) and est.high == pytest.approx(2.0)
    assert band["kept"] == [0, 3, 4] and band["meter_ms"] == pytest.approx([1100, 2000, 2000, 1100, 1100, 2000])
    assert band["session_best_ms"] == pytest.approx(1100) and band["kept_excess"] == pytest.approx(0.0)
    assert band["ratio_per_visit"] == pytest.approx([2, 3, 3, 2, 2, 3])


@pytest.mark.slow
def test_without_a_meter_every_visit_counts_and_no_record_is_written(monkeypatch):
    monkeypatch.setattr(ptq.probes.speedup, "time_pairs", lambda ref, cand, **kw: [(2e-3, 1e-3)] * 2)
    got = {}
    visits = SpeedupVisits(budget_s=0.3, visits=3)
    model = torch.nn.Linear(4, 4).eval()
    visits.add(model, model, (torch.randn(2, 4),), on_done=lambda est, lat: got.update(est=est, lat=lat))
    visits.finish()
    assert got["est"].n == 3 and "bandwidth" not in got["lat"]


def test_a_cpu_session_is_metered_each_round_and_chooses_visits_only_with_extra_ones():
    cpu, cuda = SimpleNamespace(is_cuda=False), SimpleNamespace(is_cuda=True)
    on_cpu = metered(cpu, 6)
    assert on_cpu["extra"] == 6 and on_cpu["meter"].__self__ is on_cpu["session_meter"]  # one meter serves both
    assert isinstance(on_cpu["session_meter"], BandwidthMeter)
    plain = metered(cpu, 0)
    assert set(plain) == {"session_meter"} and metered(cuda, 6) == {}
    # a probe's own visits (no session run to store the reading in) get no round meter
    assert metered(cpu, 0, session=False) == {} and set(metered(cpu, 6, session=False)) == {"meter", "extra"}


def test_the_session_meter_is_read_before_each_first_visit_and_each_round(monkeypatch):
    monkeypatch.setattr(ptq.probes.speedup, "time_pairs", lambda *a, **k: [(2e-3, 1e-3)] * 3)
    meter = BandwidthMeter(1 << 20)
    seconds = iter([1e-3, 2e-3, 4e-3, 1e-3, 1e-3, 1e-3])
    monkeypatch.setattr(meter, "read", lambda: next(seconds))
    visits = SpeedupVisits(budget_s=0.3, visits=3, session_meter=meter)
    assert visits.bandwidth() is None  # nothing read yet: no figure, not a zero
    model, x = torch.nn.Linear(4, 4).eval(), torch.randn(1, 4)
    for seed in (0, 1):
        visits.add(model, model, (x,), seed=seed, on_done=lambda est, lat: None)
    visits.finish()
    got = visits.bandwidth()
    assert got["reads"] == 4  # two first visits, two more rounds
    one_ms = meter.gigabytes_per_second(1e-3)
    assert got["high_gbps"] == pytest.approx(one_ms) and got["low_gbps"] == pytest.approx(one_ms / 4)
    assert got["median_gbps"] == pytest.approx((one_ms + one_ms / 2) / 2) and "64 MiB" not in got["method"]


def test_the_terminal_table_says_how_many_visits_the_figures_came_from_and_when_they_ran_out():
    from ptq.render.tables import speedup_table
    from ptq.storage.results import CaseResult, LatencyStats

    def row(bandwidth, reached=True):
        speedup = {
            "ratio": 2.0,
            "low": 1.9,
            "high": 2.1,
            "n": 2,
            "unit": "visit",
            "per_placement": [1.9, 2.1],
            "latency_placements": {"ms": 1.0, "per_placement_ms": [1.0, 1.1], "spread": 0.1},
            "precision": {
                "target": 0.04,
                "half_width": 0.03 if reached else 0.06,
                "reached": reached,
                "visits": 2,
                "max_visits": 2,
            },
        }
        if bandwidth:
            speedup["bandwidth"] = {
                "meter_ms": [5.0, 6.0, 5.1, 7.0],
                "session_best_ms": 5.0,
                "kept": [0, 2],
                "kept_excess": 0.02,
                "ratio_per_visit": [1.9, 2.4, 2.1, 2.6],
            }
        return CaseResult(
            case="m-int8",
            model="m",
            model_version=1,
            family="f",
            recipe="int8",
            recipe_version=1,
            recipe_config={},
            stack="s",
            engine=None,
            weights="w",
            data="d",
            input_shapes=[],
            batch_size=1,
            threads=1,
            warmup_rounds=0,
            quantized_layers=1,
            float_layers=0,
            quantize_seconds=0.0,
            latency=LatencyStats.from_samples([1e-3]),
            speedup_vs_fp32=2.0,
            metrics={"speedup": speedup},
        )

    metered_row, plain_row = speedup_table([row(True)]).splitlines()[2], speedup_table([row(False)]).splitlines()[2]
    assert " 2/4: 10.0% " in metered_row and " 2: 10.0% " in plain_row
    assert " 2 (cap): 10.0% " in speedup_table([row(False, reached=False)]).splitlines()[2]  # short of the target: said


def test_a_case_whose_rerun_interval_is_too_wide_gets_more_visits_up_to_the_cap(monkeypatch):
    """A steady case (ratio 2.0 every visit) is done after the scheduled visits; a noisy one (1.5 or
    2.5 by turns) is visited until the cap, and its record says the target was not reached."""

    def fake_pairs(ref, cand, **kw):
        model = ref.__self__.model
        model.calls = getattr(model, "calls", 0) + 1
        ratio = 2.0 if model.tag == "steady" else (1.5 if model.calls % 2 else 2.5)
        return [(ratio * 1e-3, 1e-3)] * 2

    monkeypatch.setattr(ptq.probes.speedup, "time_pairs", fake_pairs)
    monkeypatch.setattr(
        ptq.probes.speedup, "place", lambda m, x, **kw: ptq.run.placement.Placement(m, tuple(x), "model+inputs")
    )
    got = {}
    visits = SpeedupVisits(budget_s=0.3, visits=3, target=0.04, max_visits=7)
    for tag in ("steady", "noisy"):
        model = torch.nn.Linear(4, 4).eval()
        model.tag = tag
        visits.add(
            model, model, (torch.randn(2, 4),), on_done=lambda est, lat, tag=tag: got.setdefault(tag, (est, lat))
        )
    visits.finish()
    (steady, steady_lat), (noisy, noisy_lat) = got["steady"], got["noisy"]
    assert steady.n == 3 and steady_lat["precision"]["reached"] and steady_lat["precision"]["half_width"] == 0.0
    assert noisy.n == 7 and not noisy_lat["precision"]["reached"] and noisy_lat["precision"]["max_visits"] == 7
    with pytest.raises(ValueError, match="max visits >= the visits made"):
        SpeedupVisits(budget_s=0.3, visits=3, target=0.04, max_visits=2)
