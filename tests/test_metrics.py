"""Drift metrics on hand-made tensors whose answers are worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ptq.probes.drift.measures import (
    accuracy,
    accuracy_drop,
    cosine_similarity,
    max_abs_error,
    neighbour_agreement,
    nonfinite,
    pair_retrieval_accuracy,
    rank_correlation,
    sqnr_db,
    topk_agreement,
)

LOGITS = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 5.0], [2.0, 3.0, 1.0]])


def test_accuracy_counts_argmax_hits():
    # argmax per row: 0, 1, 2, 1; labels 0, 1, 0, 1 -> 3 of 4
    assert accuracy(LOGITS, torch.tensor([0, 1, 0, 1])) == 0.75


def test_accuracy_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="as many labels as rows"):
        accuracy(LOGITS, torch.tensor([0, 1]))


def test_accuracy_drop_absolute_relative_and_ratio():
    d = accuracy_drop(0.80, 0.78)
    assert d.absolute == pytest.approx(0.02)
    assert d.relative == pytest.approx(0.025)  # 0.02 / 0.80
    assert d.ratio == pytest.approx(0.975)  # below MLPerf's 99%
    gain = accuracy_drop(0.5, 0.6)
    assert gain.absolute == pytest.approx(-0.1) and gain.relative == pytest.approx(-0.2)
    assert accuracy_drop(0.0, 0.0).relative == 0.0


def test_topk_agreement():
    ref = torch.tensor([[5.0, 1.0, 0.0, 0.0], [0.0, 5.0, 1.0, 0.0]])
    # row 0: candidate top-1 is class 1, class 0 second; row 1 agrees.
    cand = torch.tensor([[4.0, 5.0, 0.0, 0.0], [0.0, 5.0, 1.0, 0.0]])
    assert topk_agreement(ref, cand, 1) == 0.5
    assert topk_agreement(ref, cand, 2) == 1.0
    assert topk_agreement(ref, cand, 10) == 1.0  # k larger than the classes: everything agrees
    with pytest.raises(ValueError, match="shapes differ"):
        topk_agreement(ref, cand[:1], 1)


def test_cosine_mean_and_min():
    ref = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    cand = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    c = cosine_similarity(ref, cand)
    # rows: 1.0 (same direction), 1/sqrt(2), 1.0 (both zero)
    assert c.min == pytest.approx(1 / math.sqrt(2))
    assert c.mean == pytest.approx((2 + 1 / math.sqrt(2)) / 3)
    assert cosine_similarity(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])).mean == 0.0


def test_sqnr_db():
    ref = torch.tensor([[3.0, 4.0]])  # signal power 25
    assert sqnr_db(ref, torch.tensor([[3.0, 4.5]])) == pytest.approx(10 * math.log10(25 / 0.25))  # 20 dB
    assert sqnr_db(ref, ref.clone()) == math.inf
    assert sqnr_db(torch.zeros(1, 2), torch.ones(1, 2)) == -math.inf
    assert sqnr_db(ref, torch.zeros(1, 2)) == pytest.approx(0.0)  # all signal lost


def test_max_abs_error():
    assert max_abs_error(torch.tensor([[1.0, -2.0]]), torch.tensor([[1.5, 1.0]])) == 3.0


def test_nonfinite_detection():
    assert nonfinite(torch.tensor([1.0, 2.0])) is None
    assert nonfinite(torch.tensor([1.0, math.inf])) == "Inf"
    assert nonfinite(torch.tensor([math.nan, math.inf])) == "NaN"
    assert nonfinite(torch.tensor([1, 2])) is None


def test_neighbour_agreement():
    ref = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    assert neighbour_agreement(ref, ref) == 1.0
    # candidate swaps which rows are close: 0<->2 and 1<->3 now neighbours
    cand = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert neighbour_agreement(ref, cand) == 0.0


def test_pair_retrieval_accuracy():
    emb = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.6, 0.4], [0.5, 0.5]])
    groups = torch.tensor([0, 0, 1, 1, 7])
    # row0 -> row1 (hit), row1 -> row0 (hit), row2 -> row4 (miss), row3 -> row4 (miss); row 4 has no partner
    assert pair_retrieval_accuracy(emb, groups) == 0.5
    with pytest.raises(ValueError, match="at least one group"):
        pair_retrieval_accuracy(emb, torch.arange(5))


def test_rank_correlation():
    ref = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    assert rank_correlation(ref, ref * 3) == pytest.approx(1.0)
    # pair similarities of ref: (0,1)=.8 (0,2)=0 (1,2)=.6 ; of cand: (0,1)=0 (0,2)=.8 (1,2)=.6
    cand = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]])
    # ranks ref: [2, 0, 1], cand: [0, 2, 1] -> centred [1,-1,0] vs [-1,1,0] -> -1
    assert rank_correlation(ref, cand) == pytest.approx(-1.0)
