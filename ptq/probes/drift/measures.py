"""Drift metrics: pure functions of a float reference and a quantized candidate.

Every function takes tensors and returns plain floats, so each has a known answer on a
hand-made input (tests/test_metrics.py) and no function knows about models or recipes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "AccuracyDrop",
    "CosineStats",
    "accuracy",
    "accuracy_drop",
    "cosine_similarity",
    "kl_divergence",
    "max_abs_error",
    "neighbour_agreement",
    "nonfinite",
    "pair_retrieval_accuracy",
    "perplexity",
    "rank_correlation",
    "sqnr_db",
    "token_agreement",
    "topk_agreement",
]


def _flat(t: torch.Tensor) -> torch.Tensor:
    """One row per sample, float64 so the metrics do not add rounding of their own."""
    return (
        t.detach().to(torch.float64).reshape(t.shape[0], -1) if t.dim() else t.detach().to(torch.float64).reshape(1, 1)
    )


def nonfinite(t: torch.Tensor) -> str | None:
    """``"NaN"`` if any element is NaN, else ``"Inf"`` if any is infinite, else None."""
    if not t.is_floating_point():
        return None
    if torch.isnan(t).any():
        return "NaN"
    if torch.isinf(t).any():
        return "Inf"
    return None


def accuracy(logits: torch.Tensor, target: torch.Tensor, k: int = 1) -> float:
    """Fraction of rows whose target label is among the ``k`` highest logits (k=1: the arg-max)."""
    if logits.shape[0] != target.shape[0] or target.shape[0] == 0:
        raise ValueError(f"accuracy needs as many labels as rows, got {tuple(logits.shape)} and {tuple(target.shape)}")
    if k == 1:
        return float((logits.argmax(dim=-1) == target).double().mean())
    top = logits.topk(min(k, logits.shape[-1]), dim=-1).indices
    return float((top == target.unsqueeze(-1)).any(dim=-1).double().mean())


@dataclass(frozen=True)
class AccuracyDrop:
    """How much accuracy a candidate lost against its reference.

    ``absolute = ref - cand`` (NNCF's measure), ``relative = absolute / ref`` (Intel Neural
    Compressor's), ``ratio = cand / ref`` (MLPerf's "99% of fp32"); a gain is a negative drop.
    """

    reference: float
    candidate: float
    absolute: float
    relative: float
    ratio: float


def accuracy_drop(reference: float, candidate: float) -> AccuracyDrop:
    absolute = reference - candidate
    if reference > 0:
        relative, ratio = absolute / reference, candidate / reference
    else:  # a reference that gets nothing right: no relative loss is defined, none is possible
        relative, ratio = 0.0, 1.0
    return AccuracyDrop(reference, candidate, absolute, relative, ratio)


def topk_agreement(reference: torch.Tensor, candidate: torch.Tensor, k: int = 1) -> float:
    """Fraction of rows where the reference's top-1 class is among the candidate's top-k.

    That is top-k accuracy with the float model's predictions as labels; k=1 is plain agreement.
    """
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {tuple(reference.shape)} vs {tuple(candidate.shape)}")
    k = min(k, candidate.shape[-1])
    ref_top1 = reference.argmax(dim=-1, keepdim=True)
    cand_topk = candidate.topk(k, dim=-1).indices
    return float((cand_topk == ref_top1).any(dim=-1).double().mean())


@dataclass(frozen=True)
class CosineStats:
    mean: float
    min: float


def cosine_similarity(reference: torch.Tensor, candidate: torch.Tensor) -> CosineStats:
    """Per-sample cosine similarity of the flattened outputs: its mean and its worst sample.

    Two all-zero rows count as identical (1.0); one zero row against a non-zero one as 0.0.
    """
    a, b = _flat(reference), _flat(candidate)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    cos = (a * b).sum(dim=1) / (na * nb).clamp_min(1e-300)
    cos = torch.where((na == 0) & (nb == 0), torch.ones_like(cos), cos)
    return CosineStats(mean=float(cos.mean()), min=float(cos.min()))


def sqnr_db(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio, ``10 log10(sum ref^2 / sum (ref - cand)^2)`` in dB.

    ``inf`` when the two are identical; ``-inf`` when the reference is all zeros and they differ.
    """
    a, b = _flat(reference), _flat(candidate)
    noise = float(((a - b) ** 2).sum())
    signal = float((a**2).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def max_abs_error(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    return float((_flat(reference) - _flat(candidate)).abs().max())


def _similarities(embeddings: torch.Tensor) -> torch.Tensor:
    e = _flat(embeddings)
    e = e / e.norm(dim=1, keepdim=True).clamp_min(1e-300)
    sim = e @ e.T
    sim.fill_diagonal_(-math.inf)  # a sentence is never its own neighbour
    return sim


def neighbour_agreement(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Fraction of rows whose most cosine-similar other row is the same under both embeddings."""
    if reference.shape[0] < 2:
        raise ValueError("neighbour agreement needs at least two rows")
    return float((_similarities(reference).argmax(1) == _similarities(candidate).argmax(1)).double().mean())


def pair_retrieval_accuracy(embeddings: torch.Tensor, groups: torch.Tensor) -> float:
    """Fraction of rows, among those with a partner, whose nearest other row is in their group.

    ``groups[i]`` labels row i (e.g. a paraphrase pair id): a labeled accuracy for encoders.
    """
    same = groups.view(-1, 1) == groups.view(1, -1)
    same.fill_diagonal_(False)
    has_partner = same.any(1)
    if not has_partner.any():
        raise ValueError("pair retrieval needs at least one group with two rows")
    nearest = _similarities(embeddings).argmax(1)
    hit = same[torch.arange(len(groups)), nearest]
    return float(hit[has_partner].double().mean())


def _ranks(x: torch.Tensor) -> torch.Tensor:
    order = x.argsort()
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(len(x), dtype=x.dtype)
    return ranks


def rank_correlation(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Spearman correlation of the pairwise similarities (upper triangle) of two embeddings:
    1.0 when quantization keeps the whole similarity ranking."""
    n = reference.shape[0]
    iu = torch.triu_indices(n, n, offset=1)
    a = _similarities(reference)[iu[0], iu[1]]
    b = _similarities(candidate)[iu[0], iu[1]]
    if len(a) < 2:
        raise ValueError("rank correlation needs at least three rows")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(ra.norm() * rb.norm())
    return float((ra * rb).sum()) / denom if denom else 1.0


def _positions(logits: torch.Tensor) -> torch.Tensor:
    """Next-token logits as one row per position (batch and sequence flattened), float64."""
    return logits.detach().to(torch.float64).reshape(-1, logits.shape[-1])


def perplexity(logits: torch.Tensor, target: torch.Tensor) -> float:
    """``exp`` of the mean negative log-likelihood of ``target`` (token ids, one per position)."""
    rows, labels = _positions(logits), target.reshape(-1)
    if rows.shape[0] != labels.shape[0] or labels.shape[0] == 0:
        raise ValueError(
            f"perplexity needs one target per position, got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    return math.exp(float(torch.nn.functional.cross_entropy(rows, labels)))


def kl_divergence(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Mean over positions of KL(reference || candidate) of the next-token distributions, in nats:
    how much likelihood the candidate loses on what the reference would sample."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {tuple(reference.shape)} vs {tuple(candidate.shape)}")
    log_p, log_q = _positions(reference).log_softmax(-1), _positions(candidate).log_softmax(-1)
    return float((log_p.exp() * (log_p - log_q)).sum(-1).mean())


def token_agreement(reference: torch.Tensor, candidate: torch.Tensor) -> float:
    """Share of positions where two generated token sequences hold the same token."""
    if reference.shape != candidate.shape or reference.numel() == 0:
        raise ValueError(
            f"token agreement needs two non-empty sequences of one shape, got "
            f"{tuple(reference.shape)} and {tuple(candidate.shape)}"
        )
    return float((reference == candidate).double().mean())
