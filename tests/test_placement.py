"""Placements: fresh copies of a model and its inputs, refused where a copy is not the same model."""

from __future__ import annotations

import pytest
import torch

from ptq.probes.speedup import placement_speedup
from ptq.run.placement import INPUTS_ONLY, MODEL_AND_INPUTS, place


class Uncopyable(torch.nn.Module):
    def forward(self, x):
        return x * 2

    def __deepcopy__(self, memo):
        raise TypeError("cannot pickle 'InferenceSession' object")


class CopiesWrong(torch.nn.Linear):
    def __deepcopy__(self, memo):
        other = torch.nn.Linear(self.in_features, self.out_features)
        torch.nn.init.zeros_(other.weight)
        return other


def test_a_placement_is_a_copy_of_the_model_and_inputs_that_computes_the_same():
    torch.manual_seed(0)
    model, x = torch.nn.Linear(8, 4).eval(), torch.randn(2, 8)
    p = place(model, (x,), seed=3, reference_output=model(x))
    assert p.kind == MODEL_AND_INPUTS and p.model is not model and p.inputs[0].data_ptr() != x.data_ptr()
    assert p.model.weight.data_ptr() != model.weight.data_ptr() and torch.equal(p.call(), model(x).detach())
    assert p.pad is not None and p.pad.numel() == place(model, (x,), seed=3).pad.numel()  # seeded


@pytest.mark.parametrize(
    ("model", "why"),
    [(Uncopyable(), "deepcopy failed: TypeError"), (CopiesWrong(8, 4), "the copy computed other outputs")],
)
def test_a_model_that_cannot_be_copied_faithfully_keeps_its_original_and_gets_fresh_inputs(model, why):
    x = torch.randn(2, 8)
    p = place(model, (x,), seed=0, reference_output=model(x))
    assert p.kind == INPUTS_ONLY and p.model is model and p.why == why and p.inputs[0].data_ptr() != x.data_ptr()


def test_the_speedup_of_a_model_over_itself_is_one_with_an_interval_over_placements():
    model, x = torch.nn.Linear(64, 64).eval(), torch.randn(4, 64)
    est, latency = placement_speedup(model, model, (x,), budget_s=0.05, placements=3)
    assert est.n == 3 and len(est.per_placement) == 3 and est.low <= est.ratio <= est.high
    assert len(latency["per_placement_ms"]) == 3 and latency["placed"] == ["model+inputs"]
    assert latency["low_ms"] <= latency["ms"] <= latency["high_ms"]


def test_visits_are_made_in_rounds_over_every_case_each_on_a_fresh_placement(monkeypatch):
    import ptq.probes.speedup

    seen: list = []  # (case, the reference placement's model is a fresh copy, window) per visit
    placed = []

    def fake_pairs(ref, cand, *, budget_s, **kw):
        seen.append((ref.__self__.model.tag, ref.__self__.model is not originals[ref.__self__.model.tag], budget_s))
        return [(2e-3, 1e-3)] * 3

    def counting_place(*args, **kw):
        placed.append((kw["seed"], kw["reference_output"] is not None))
        return place(*args, **kw)

    monkeypatch.setattr(ptq.probes.speedup, "time_pairs", fake_pairs)
    monkeypatch.setattr(ptq.probes.speedup, "place", counting_place)
    originals: dict = {}
    done: dict = {}
    visits = ptq.probes.speedup.SpeedupVisits(budget_s=0.9, visits=3)
    for tag in "ab":
        model = torch.nn.Linear(8, 8).eval()
        model.tag = tag
        originals[tag] = model
        visits.add(model, model, (torch.randn(2, 8),), on_done=lambda est, lat, tag=tag: done.setdefault(tag, est))
    assert [c for c, _, _ in seen] == ["a", "b"] and not done  # the first visit at once, figures at the end
    visits.finish()
    assert [c for c, _, _ in seen] == ["a", "b", "b", "a", "a", "b"]  # rounds, every other one reversed
    assert all(fresh for _, fresh, _ in seen) and [w for _, _, w in seen] == pytest.approx([0.3] * 6)
    assert len(placed) == 12 and len({seed for seed, _ in placed}) == 6  # both models per visit, seeded per visit
    # a copy is checked against the original's outputs on a case's first visit only (then it is known to copy)
    assert [checked for _, checked in placed] == [True] * 4 + [False] * 8
    assert done["a"].ratio == pytest.approx(2.0) and done["a"].n == 3 and done["a"].unit == "visit"
    assert len(visits) == 0


def test_visits_refuse_a_count_no_interval_can_be_built_from():
    import ptq.probes.speedup

    with pytest.raises(ValueError, match=">= 2 visits"):
        ptq.probes.speedup.SpeedupVisits(budget_s=1.0, visits=1)


def test_the_later_visits_run_at_the_thread_count_the_cases_were_added_at(monkeypatch):
    """A pytest session's fixtures restore torch's default threads before its last hook runs."""
    import ptq.probes.speedup

    seen: list[int] = []

    def fake_pairs(ref, cand, **kw):
        seen.append(torch.get_num_threads())
        return [(2e-3, 1e-3)] * 3

    monkeypatch.setattr(ptq.probes.speedup, "time_pairs", fake_pairs)
    before = torch.get_num_threads()
    visits = ptq.probes.speedup.SpeedupVisits(budget_s=0.3, visits=3)
    model = torch.nn.Linear(8, 8).eval()
    try:
        torch.set_num_threads(1)
        visits.add(model, model, (torch.randn(2, 8),), on_done=lambda est, lat: None)
        torch.set_num_threads(2)  # what the session's fixture teardown does
        with pytest.raises(ValueError, match="added at 1 torch thread"):
            visits.add(model, model, (torch.randn(2, 8),), on_done=lambda est, lat: None)
        visits.finish()
        assert seen == [1, 1, 1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_case_whose_later_visit_raises_is_reported_and_the_others_finish(monkeypatch):
    import ptq.probes.speedup

    calls = {"n": 0}

    def flaky_pairs(ref, cand, **kw):
        calls["n"] += 1
        if ref.__self__.model.tag == "bad" and calls["n"] > 2:
            raise RuntimeError("kernel went away")
        return [(2e-3, 1e-3)] * 3

    monkeypatch.setattr(ptq.probes.speedup, "time_pairs", flaky_pairs)
    done, errors = {}, {}
    visits = ptq.probes.speedup.SpeedupVisits(budget_s=0.3, visits=3)
    for tag in ("bad", "good"):
        model = torch.nn.Linear(8, 8).eval()
        model.tag = tag
        visits.add(
            model,
            model,
            (torch.randn(2, 8),),
            on_done=lambda est, lat, tag=tag: done.setdefault(tag, est),
            on_error=lambda why, tag=tag: errors.setdefault(tag, why),
        )
    visits.finish()
    assert set(done) == {"good"} and errors == {"bad": "visit 2 raised RuntimeError: kernel went away"}
    calls["n"] = 1  # its first visit (at add) passes, its second raises
    lone = ptq.probes.speedup.SpeedupVisits(budget_s=0.3, visits=3)
    model = torch.nn.Linear(8, 8).eval()
    model.tag = "bad"
    lone.add(model, model, (torch.randn(2, 8),), on_done=lambda est, lat: None)
    with pytest.raises(RuntimeError, match="speedup visits failed: visit 2 raised RuntimeError"):
        lone.finish()


def test_a_budget_gives_the_visits_past_the_scheduled_ones_to_the_widest_case_while_they_fit(monkeypatch):
    """Two cases short of a 4% rerun target after their 3 scheduled visits, each visit a second of
    a fake clock: the scheduled visits are all made (6 s) though the budget is 7.5 s, the extra
    visit goes to the case whose interval is widest, and then none fits; the one cut says 'budget'
    in its precision, and the progress lines give each round's expected time."""
    import ptq.probes.speedup

    now = [0.0]
    ratios = {"wide": iter([1.0, 1.6, 1.0, 1.6, 1.0, 1.6, 1.0]), "wider": iter([1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0])}

    def fake_pairs(ref, cand, *, budget_s, **kw):
        now[0] += 1.0
        return [(next(ratios[ref.__self__.model.tag]) * 1e-3, 1e-3)] * 3

    monkeypatch.setattr(ptq.probes.speedup, "time_pairs", fake_pairs)
    done: dict = {}
    visits = ptq.probes.speedup.SpeedupVisits(budget_s=0.3, visits=3, target=0.04, max_visits=6, clock=lambda: now[0])
    for tag in ("wide", "wider"):
        model = torch.nn.Linear(8, 8).eval()
        model.tag = tag
        visits.add(model, model, (torch.randn(2, 8),), on_done=lambda est, lat, tag=tag: done.setdefault(tag, lat))
    lines: list[str] = []
    visits.finish(lines.append, deadline=7.5)
    assert now[0] == 7.0  # 6 scheduled visits, then one: the next would end past 7.5
    wider, wide = done["wider"]["precision"], done["wide"]["precision"]
    assert wider["visits"] == 4 and wide["visits"] == 3
    assert wide["stopped"] == wider["stopped"] == "budget" and not wide["reached"]
    assert lines[0].startswith(
        "speedup visits, round 2/3 over 2 case(s), about 2s a round, 4s for the scheduled rounds"
    )
    assert any(
        "round 4 (at most 6) over the 1 case(s) whose rerun interval is wider than +-4%" in line for line in lines
    )
    assert lines[-1] == "speedup visits: the --ptq-budget left 2 case(s) short of +-4% (their rows say 'budget')"
