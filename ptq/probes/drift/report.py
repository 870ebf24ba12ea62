"""The drift table, from case records (``CaseResult.to_extra_info()`` or benchmark JSON)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ptq.text import format_table

__all__ = ["drift_headline", "drift_summary", "drift_table", "samples"]


def _num(d: Mapping[str, Any], key: str, fmt: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    return v if isinstance(v, str) else format(v, fmt)


def samples(n: int) -> str:
    return f"{n} sample{'' if n == 1 else 's'}"


def drift_headline(d: Mapping[str, Any]) -> str | None:
    """The measure the gate follows, named, with its sample count and limit: ``top1_agreement
    0.875 (16 samples, min 0.9)``. A bare ``1 -> 0.875`` hides that it is top-1 agreement over 16
    inputs, where two flips fail."""
    metric, value = d.get("headline"), d.get("value")
    if not metric or value is None:
        return None
    notes = [samples(d["samples"])] if isinstance(d.get("samples"), int) else []
    limit = next(
        (
            (k[:3], v)
            for k, v in (d.get("tolerances") or {}).items()
            if k[:4] in ("min_", "max_") and k.endswith(metric)
        ),
        None,
    )
    not_gated = next((str(n) for n in d.get("not_gated") or () if str(n).startswith(f"{metric}:")), None)
    if limit is not None:
        notes.append(f"{limit[0]} {limit[1]:g}")
    elif not_gated is not None:
        notes.append(f"not gated:{not_gated.split(':', 1)[1]}")
    shown = value if isinstance(value, str) else format(value, ".4g")
    return f"{metric} {shown}" + (f" ({', '.join(notes)})" if notes else "")


def drift_summary(d: Mapping[str, Any]) -> str:
    """The figures that matter for the case's profile, in one cell."""
    parts = []
    if "accuracy" in d:
        parts.append(f"acc {d['accuracy_fp32']:.4f}->{d['accuracy']:.4f} (drop {d['absolute_accuracy_drop']:+.4f})")
    if "top5_accuracy" in d:
        parts.append(f"acc5 {d['top5_accuracy_fp32']:.4f}->{d['top5_accuracy']:.4f}")
    if "retrieval_accuracy" in d:
        parts.append(f"retrieval {d['retrieval_accuracy_fp32']:.3f}->{d['retrieval_accuracy']:.3f}")
    for key, label, fmt in (
        ("top1_agreement", "top1", ".3f"),
        ("top5_agreement", "top5", ".3f"),
        ("neighbour_agreement", "nn", ".3f"),
        ("similarity_rank_correlation", "rank-corr", ".4f"),
        ("cosine_mean", "cos", ".5f"),
        ("cosine_min", "cos-min", ".5f"),
        ("sqnr_db", "sqnr dB", ".1f"),
    ):
        s = _num(d, key, fmt)
        if s is not None:
            parts.append(f"{label} {s}")
    return "  ".join(parts)


def _worst(d: Mapping[str, Any]) -> str:
    worst = d.get("worst_layers") or []
    if not worst:
        return "-"
    w = worst[0]
    return f"{w['name']} ({w['sqnr_db'] if isinstance(w['sqnr_db'], str) else format(w['sqnr_db'], '.1f')} dB)"


def drift_table(records: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for r in records:
        d = r.get("metrics", {}).get("drift")
        if d is None:
            continue
        verdict = "ok" if d.get("passed") else ("NaN/Inf" if d.get("nonfinite") else "FAIL")
        rows.append(
            [
                r["model"],
                r["recipe"],
                drift_headline(d) or (samples(d["samples"]) if "samples" in d else "-"),
                drift_summary(d),
                _worst(d),
                f"{r['quantized_layers']}/{r['quantized_layers'] + r['float_layers']}",
                verdict,
            ]
        )
    return format_table(
        ["model", "recipe", "headline (samples, limit)", "all measures", "lowest-SQNR layer", "quantized", "verdict"],
        rows,
    )
