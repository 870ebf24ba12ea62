"""A chain link judged: a commit's latency over its parent's from one duet, and the summary of
``ptq ab PARENT COMMIT``'s two saved sides (:mod:`ptq.storage.chain` stores and reads summaries;
the verdicts and the judges' choice of what to keep are made here)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ptq.errors import UserError
from ptq.gate.judges import get_judge, list_judges
from ptq.host.env import NUMERICS_KEYS, TIMING_KEYS, key_hash
from ptq.stats.decide import DEFAULT_LOCATION, decide_latency_placements, location
from ptq.storage.chain import MACHINE_KEYS, CommitSummary, Link, keep_numerics
from ptq.storage.runs import CaseRecord

__all__ = ["link", "numerics_judges", "summarize"]


def numerics_judges() -> list[str]:
    """The gate's judges keyed by the numerics key (read from the judge registry, not listed here)."""
    return [n for n in list_judges() if get_judge(n).key == "numerics"]


def link(
    parent: Sequence[Sequence[float]],
    commit: Sequence[Sequence[float]],
    *,
    statistic: str = DEFAULT_LOCATION,
    threshold: float = 0.05,
    alpha: float = 0.01,
) -> Link:
    """The link of one case from its paired placements (seconds), judged as ``ptq ab`` judges."""
    import numpy as np

    d = decide_latency_placements(parent, commit, threshold=threshold, alpha=alpha, statistic=statistic)
    per = [float(np.quantile(np.asarray(b, dtype=float), location(statistic))) for b in commit if len(b)]
    n = sum(1 for a, b in zip(parent, commit, strict=True) if len(a) and len(b))
    return Link(d.ratio, d.low, d.high, n, d.p, d.verdict.name, math.exp(float(np.mean(np.log(per)))) * 1e3)


def summarize(
    run_a: Any, run_b: Any, *, commit: str, parent: str, time: str, statistic: str = DEFAULT_LOCATION
) -> CommitSummary:
    """The summary of ``ptq ab PARENT COMMIT``'s two saved sides (:class:`ptq.storage.runs.Run`): a link
    per case both timed over paired placements (other cases are named in ``notes``), and B's
    numerics figures of every case that recorded one, under B's numerics key."""
    links: dict[str, Link] = {}
    notes: list[str] = []
    for case in sorted(run_b.cases):
        base = run_a.cases.get(case)
        a, b = (base.placements if base else None), run_b.cases[case].placements
        if a is None or b is None or len(a) != len(b) or len(a) < 2:
            notes.append(f"{case}: no paired placements on both sides (timed by ptq ab's duet?): not chained")
            continue
        links[case] = link(a, b, statistic=statistic)
    if not links:
        raise UserError(
            f"{run_b.path}: no case was timed over paired placements on both sides; pass the two files "
            "`ptq ab PARENT COMMIT --save` wrote (results/ab/<time>-a.json and -b.json)"
        )
    machine = [k for k in MACHINE_KEYS if run_a.environment.get(k) != run_b.environment.get(k)]
    if machine:
        listed = "; ".join(f"{k}: A {run_a.environment.get(k)!r}, B {run_b.environment.get(k)!r}" for k in machine)
        raise UserError(
            f"{run_a.path} and {run_b.path} ran on different machines ({listed}): a link is the ratio of "
            "one duet, both sides timed interleaved on one machine; pass the two files one `ptq ab PARENT "
            "COMMIT --save` wrote (results/ab/<time>-a.json and -b.json)"
        )
    installs = [k for k in TIMING_KEYS if run_a.environment.get(k) != run_b.environment.get(k)]
    if installs:
        notes.append(
            f"the sides' installs differ ({', '.join(installs)}; ptq ab --compare-installs): the links "
            "include that change"
        )
    env = {k: run_b.environment.get(k) for k in NUMERICS_KEYS}
    judges = [get_judge(n) for n in numerics_judges()]
    records = {}
    for case, rec in sorted(run_b.cases.items()):
        kept = keep_numerics(rec.extra_info)
        if any(j.extract(CaseRecord(case, kept, ())) is not None for j in judges):
            records[case] = kept
    return CommitSummary(
        commit,
        parent,
        time,
        links,
        statistic,
        str(run_b.fingerprint),
        tuple(notes),
        key_hash(env, "numerics"),
        env,
        records,
    )
