"""Placements: fresh copies of a model and its inputs, refused where a copy is not the same model."""

from __future__ import annotations

import pytest
import torch

from ptq.placement import INPUTS_ONLY, MODEL_AND_INPUTS, place
from ptq.speedup import placement_speedup


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


@pytest.mark.parametrize(("model", "why"), [(Uncopyable(), "deepcopy failed: TypeError"),
                                            (CopiesWrong(8, 4), "the copy computed other outputs")])
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


def test_placements_take_turns_so_each_ones_pairs_span_the_whole_budget(monkeypatch):
    import ptq.speedup

    seen: list = []

    def fake_pairs(ref, cand, **kw):
        seen.append(ref)
        return [(2e-3, 1e-3)] * 3

    monkeypatch.setattr(ptq.speedup, "time_pairs", fake_pairs)
    model, x = torch.nn.Linear(8, 8).eval(), torch.randn(2, 8)
    est, _ = placement_speedup(model, model, (x,), budget_s=0.9, placements=3)
    order = [next(i for i, f in enumerate(dict.fromkeys(seen)) if f == call) for call in seen]
    assert order == [0, 1, 2, 2, 1, 0, 0, 1, 2]  # ptq.speedup.TURNS turns, alternating direction
    assert est.ratio == pytest.approx(2.0) and est.n == 3
