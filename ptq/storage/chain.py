"""A chained, relative latency history: per commit, each case's duet ratio to its parent.

Absolute timings from hosted runners chart the runners: two runs minutes apart on one machine
moved a case by 5-25%, and the next push may land on another CPU. A ratio measured as a duet
(``ptq ab PARENT COMMIT``: both sides in alternating windows on one machine, over paired
placements) cancels the machine, so each commit stores its ratio to its parent with the
interval :func:`ptq.stats.decide.decide_latency_placements` gives it (a Student t interval over
placements on the log scale), and the trend is their running product: a step one commit
introduces shows at that commit whichever runner measured the others.

The trend's interval, propagated: each link's interval is a symmetric one on the log scale, so
its half-width ``h = (ln high - ln low) / 2`` gives a normal-equivalent standard error ``se =
h / z`` (``z`` the normal quantile of ``level``; the t quantile's extra width for few placements
is kept, not divided out). Links are measured in separate duets, so they are independent and
the variance of the summed logs is the sum of their variances: the trend's interval is
``exp(sum ln r +- z sqrt(sum se^2))``, that is ``exp(sum ln r +- sqrt(sum h^2))``; after one
link it is that link's own. It widens with every link, as it should: N links of equal width
know the level N commits back to sqrt(N) times one link's width.

Memory, size and drift are stable across runners where the gate's numerics key
(:data:`ptq.run.env.NUMERICS_KEYS`) matches, so a summary also keeps, per case, the B side's own
figures (the ``extra_info`` fields the gate's numerics judges read, :data:`KEPT`) with the
run's numerics key: the report draws one series per key, a runner with another key starting a
new series rather than a step, each point judged by the gate against the previous of its series.

Storage is bounded: one small JSON summary per commit (:func:`save_summary`, schema
``ptq.chain`` version 2, no samples), the raw runs left to CI artifacts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ptq.errors import UserError
from ptq.gate.judges import get_judge, list_judges, path
from ptq.render.trends import DRIFT_FIGURES
from ptq.run.env import NUMERICS_KEYS, key_hash
from ptq.stats.decide import DEFAULT_LOCATION, decide_latency_placements, location
from ptq.storage.cache import atomic_write
from ptq.storage.runs import CaseRecord

__all__ = ["KEPT", "MIGRATIONS", "SCHEMA", "SCHEMA_VERSION", "CommitSummary", "Link", "TrendPoint", "keep_numerics",
           "link", "load_chain", "numerics_judges", "save_summary", "summarize", "trend"]

SCHEMA, SCHEMA_VERSION = "ptq.chain", 2

#: What a summary keeps of a case's ``extra_info``: the fields the gate's numerics judges
#: (memory, quantize_memory, size, drift: :func:`numerics_judges`) and the report's readers
#: (:data:`ptq.render.trends.METRICS`) read, so the history judges them as ``ptq compare`` would.
KEPT = ("model", "recipe", "stack", "weights", "data",
        "metrics.memory.inference.increment_bytes", "metrics.memory.inference.samples",
        "metrics.memory.quantize.increment_bytes", "metrics.memory.quantize.samples",
        "metrics.size.serialized_bytes",
        *(f"metrics.drift.{k}" for k in ("headline", "value", "higher_is_better", "tolerance", *DRIFT_FIGURES)))


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept latency links only: no numerics figures, no numerics key."""
    return {**data, "numerics": {"key": "", "environment": {}, "cases": {}}}


#: version -> the function upgrading a summary dict from it to the next version.
MIGRATIONS = {1: _from_v1}


def numerics_judges() -> list[str]:
    """The gate's judges keyed by the numerics key (read from the judge registry, not listed here)."""
    return [n for n in list_judges() if get_judge(n).key == "numerics"]


def keep_numerics(extra_info: Mapping[str, Any]) -> dict[str, Any]:
    """The :data:`KEPT` part of ``extra_info``, nested as it was (a :class:`~ptq.storage.runs.CaseRecord`
    built on it reads the same numerics figures as the full one)."""
    kept: dict[str, Any] = {}
    for dotted in KEPT:
        *parents, leaf = dotted.split(".")
        node = path(extra_info, ".".join(parents)) if parents else extra_info
        if isinstance(node, Mapping) and leaf in node:
            target = kept
            for p in parents:
                target = target.setdefault(p, {})
            target[leaf] = node[leaf]
    return kept


#: Smallest change a link must show, beyond its interval excluding 1, to count as a step of the
#: trend: placements spread by about 1% on quiet cases, so a significant 0.5% is a placement, not code.
MIN_STEP = 0.02


@dataclass(frozen=True)
class Link:
    """One case's latency at a commit over its parent's: ``ratio`` (> 1: slower) of ``statistic``
    with its ``level`` interval over ``n`` paired placements, the gate's verdict, and the
    commit's own absolute figure (ms, the secondary series, valid per runner only)."""

    ratio: float
    low: float
    high: float
    n: int
    p: float
    verdict: str
    ms: float
    level: float = 0.95

    @property
    def log_se(self) -> float:
        """Normal-equivalent standard error of ``ln ratio``: its interval's half-width over the normal
        quantile of ``level``. Not over the t quantile it was built with: with few placements that
        would shrink the interval the t distribution's heavy tails widened (2 placements: by 6.5x)."""
        from scipy.stats import norm

        if self.high <= self.low:
            return 0.0
        return (math.log(self.high) - math.log(self.low)) / (2 * float(norm.ppf(0.5 + self.level / 2)))

    def is_step(self, min_step: float = MIN_STEP) -> bool:
        """A change this commit made: the interval excludes 1 and the ratio is ``min_step`` off it."""
        return (self.low > 1 or self.high < 1) and abs(math.log(self.ratio)) > math.log1p(min_step)


def link(parent: Sequence[Sequence[float]], commit: Sequence[Sequence[float]], *, statistic: str = DEFAULT_LOCATION,
         threshold: float = 0.05, alpha: float = 0.01) -> Link:
    """The link of one case from its paired placements (seconds), judged as ``ptq ab`` judges."""
    import numpy as np

    d = decide_latency_placements(parent, commit, threshold=threshold, alpha=alpha, statistic=statistic)
    per = [float(np.quantile(np.asarray(b, dtype=float), location(statistic))) for b in commit if len(b)]
    n = sum(1 for a, b in zip(parent, commit, strict=True) if len(a) and len(b))
    return Link(d.ratio, d.low, d.high, n, d.p, d.verdict.name, math.exp(float(np.mean(np.log(per)))) * 1e3)


@dataclass(frozen=True)
class CommitSummary:
    """What the history keeps of one commit: its links to ``parent``, per case, and the commit's
    own numerics figures per case (``records``: :func:`keep_numerics` of each case's
    ``extra_info``) under the numerics key of the run that measured them."""

    commit: str
    parent: str
    time: str
    links: Mapping[str, Link]
    statistic: str = DEFAULT_LOCATION
    runner: str = ""  # the fingerprint (timing key) of the machine that ran the duet (the absolute ms are its)
    notes: tuple[str, ...] = field(default_factory=tuple)
    numerics_key: str = ""  # :func:`ptq.run.env.key_hash` of ``environment``, "numerics"
    environment: Mapping[str, Any] = field(default_factory=dict)  # the run's values of the numerics keys
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def record(self, case: str) -> CaseRecord | None:
        """The case's numerics figures as a record the gate's judges and the report's readers read."""
        kept = self.records.get(case)
        return None if kept is None else CaseRecord(case, kept, ())

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "version": SCHEMA_VERSION, "commit": self.commit, "parent": self.parent,
                "time": self.time, "statistic": self.statistic, "runner": self.runner, "notes": list(self.notes),
                "cases": {c: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(lk).items()}
                          for c, lk in sorted(self.links.items())},
                "numerics": {"key": self.numerics_key, "environment": dict(self.environment),
                             "cases": {c: self.records[c] for c in sorted(self.records)}}}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> CommitSummary:
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise UserError(f"{where}: not a ptq chain summary (no schema {SCHEMA!r}); write one with `ptq chain append`")
        version = data.get("version")
        while version in MIGRATIONS:
            data, version = MIGRATIONS[version](data), version + 1
        if version != SCHEMA_VERSION:
            raise UserError(f"{where}: chain summary version {data.get('version')!r}, this ptq reads {SCHEMA_VERSION}; "
                            "re-create it with `ptq chain append` from the run's artifacts")
        try:
            links = {c: Link(**v) for c, v in data["cases"].items()}
            numerics = data["numerics"]
            return cls(str(data["commit"]), str(data["parent"]), str(data["time"]), links, str(data["statistic"]),
                       str(data.get("runner", "")), tuple(data.get("notes", ())), str(numerics["key"]),
                       dict(numerics["environment"]), {str(c): dict(v) for c, v in numerics["cases"].items()})
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UserError(f"{where}: damaged chain summary ({type(exc).__name__}: {exc}); re-create it with "
                            "`ptq chain append`") from None


def summarize(run_a: Any, run_b: Any, *, commit: str, parent: str, time: str,
              statistic: str = DEFAULT_LOCATION) -> CommitSummary:
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
        raise UserError(f"{run_b.path}: no case was timed over paired placements on both sides; pass the two files "
                        "`ptq ab PARENT COMMIT --save` wrote (results/ab/<time>-a.json and -b.json)")
    env = {k: run_b.environment.get(k) for k in NUMERICS_KEYS}
    judges = [get_judge(n) for n in numerics_judges()]
    records = {}
    for case, rec in sorted(run_b.cases.items()):
        kept = keep_numerics(rec.extra_info)
        if any(j.extract(CaseRecord(case, kept, ())) is not None for j in judges):
            records[case] = kept
    return CommitSummary(commit, parent, time, links, statistic, str(run_b.fingerprint), tuple(notes),
                         key_hash(env, "numerics"), env, records)


def save_summary(summary: CommitSummary, directory: str | Path) -> Path:
    """One file per commit, ``<directory>/<commit>.json``, written atomically (a rerun replaces it)."""
    text = (json.dumps(summary.to_dict(), separators=(",", ":"), allow_nan=False) + "\n").encode()  # jq . reads it
    return atomic_write(Path(directory) / f"{summary.commit}.json", lambda fh: fh.write(text))


def load_chain(directory: str | Path) -> list[CommitSummary]:
    """Every summary under ``directory``, oldest first (by time, then commit)."""
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        raise UserError(f"{directory}: holds no chain summary; add one with `ptq chain append`")
    found = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{f}: unreadable chain summary ({exc}); re-create it with `ptq chain append`") from None
        found.append(CommitSummary.from_dict(data, str(f)))
    return sorted(found, key=lambda s: (s.time, s.commit))


@dataclass(frozen=True)
class TrendPoint:
    """The trend of one case at one commit: ``level`` (running product of links, 1.0 before the
    first) with its propagated interval; ``link`` None where the commit did not time the case;
    ``gap``: the commit's parent is not the previous summary's commit (unmeasured commits between)."""

    commit: str
    link: Link | None
    level: float
    low: float
    high: float
    step: bool
    gap: bool


def trend(chain: Sequence[CommitSummary], case: str, *, level: float = 0.95, min_step: float = MIN_STEP) -> list[TrendPoint]:
    """The running product of ``case``'s links over ``chain`` (oldest first), its interval from
    the summed log-variances (see the module's docstring)."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    logs = var = 0.0
    out = []
    for i, s in enumerate(chain):
        lk = s.links.get(case)
        if lk is not None:
            logs += math.log(lk.ratio)
            var += lk.log_se ** 2
        half = z * math.sqrt(var)
        gap = i > 0 and s.parent != chain[i - 1].commit
        out.append(TrendPoint(s.commit, lk, math.exp(logs), math.exp(logs - half), math.exp(logs + half),
                              lk is not None and lk.is_step(min_step), gap))
    return out
