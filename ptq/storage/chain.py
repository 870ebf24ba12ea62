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
(:data:`ptq.host.env.NUMERICS_KEYS`) matches, so a summary also keeps, per case, the B side's own
figures (the ``extra_info`` fields the gate's numerics judges read, :data:`KEPT`) with the
run's numerics key: the report draws one series per key, a runner with another key starting a
new series rather than a step, each point judged by the gate against the previous of its series.

Storage is bounded: one small JSON summary per commit (:func:`save_summary`, schema
``ptq.chain`` version 2, no samples), the raw runs left to CI artifacts.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ptq.errors import UserError
from ptq.host.cache import atomic_write
from ptq.stats.decide import DEFAULT_LOCATION, Verdict
from ptq.storage.figures import DRIFT_FIGURES
from ptq.storage.runs import CaseRecord, path

__all__ = [
    "KEPT",
    "MACHINE_KEYS",
    "MIGRATIONS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "CommitSummary",
    "Link",
    "TrendPoint",
    "keep_numerics",
    "load_chain",
    "parse_time",
    "resolve_commit",
    "save_summary",
    "trend",
    "utc",
]

SCHEMA, SCHEMA_VERSION = "ptq.chain", 2

#: What a summary keeps of a case's ``extra_info``: the fields the gate's numerics judges
#: (memory, quantize_memory, size, drift: :func:`ptq.gate.chain.numerics_judges`) and the report's readers
#: (:data:`ptq.render.trends.METRICS`) read, so the history judges them as ``ptq compare`` would.
KEPT = (
    "model",
    "recipe",
    "stack",
    "weights",
    "data",
    "metrics.memory.inference.increment_bytes",
    "metrics.memory.inference.samples",
    "metrics.memory.quantize.increment_bytes",
    "metrics.memory.quantize.samples",
    "metrics.size.serialized_bytes",
    *(f"metrics.drift.{k}" for k in ("headline", "value", "higher_is_better", "tolerance", *DRIFT_FIGURES)),
)


def _from_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept latency links only: no numerics figures, no numerics key."""
    return {**data, "numerics": {"key": "", "environment": {}, "cases": {}}}


#: version -> the function upgrading a summary dict from it to the next version.
MIGRATIONS = {1: _from_v1}


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


#: Environment keys that name the machine: a link's two sides must agree on every one (versions may
#: differ: ``ptq ab --compare-installs`` times two installs on one machine on purpose).
MACHINE_KEYS = ("cpu_model", "cpu_flags", "logical_cpus", "device", "device_name", "compute_capability", "cuda_driver")

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
    numerics_key: str = ""  # :func:`ptq.host.env.key_hash` of ``environment``, "numerics"
    environment: Mapping[str, Any] = field(default_factory=dict)  # the run's values of the numerics keys
    records: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def record(self, case: str) -> CaseRecord | None:
        """The case's numerics figures as a record the gate's judges and the report's readers read."""
        kept = self.records.get(case)
        return None if kept is None else CaseRecord(case, kept, ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": SCHEMA_VERSION,
            "commit": self.commit,
            "parent": self.parent,
            "time": self.time,
            "statistic": self.statistic,
            "runner": self.runner,
            "notes": list(self.notes),
            "cases": {
                c: {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(lk).items()}
                for c, lk in sorted(self.links.items())
            },
            "numerics": {
                "key": self.numerics_key,
                "environment": dict(self.environment),
                "cases": {c: self.records[c] for c in sorted(self.records)},
            },
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> CommitSummary:
        """The one loader of a summary's dict: every field checked (a ratio must be a positive finite
        number, a time ISO 8601 with its UTC offset...), so nothing damaged reaches the trend."""
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise UserError(
                f"{where}: not a ptq chain summary (no schema {SCHEMA!r}); write one with `ptq chain append`"
            )
        version = data.get("version")
        while version in MIGRATIONS:
            data, version = MIGRATIONS[version](data), version + 1
        if version != SCHEMA_VERSION:
            raise UserError(
                f"{where}: chain summary version {data.get('version')!r}, this ptq reads {SCHEMA_VERSION}; "
                "re-create it with `ptq chain append` from the run's artifacts"
            )
        try:
            for key in ("commit", "parent"):
                _name(data[key], key)
            parse_time(data["time"], "time")
            if not isinstance(data["cases"], dict):
                raise ValueError(f"cases is {type(data['cases']).__name__}, not an object")
            links = {
                _text(c, "case"): _check_link(c, Link(**_object(v, f"cases.{c}"))) for c, v in data["cases"].items()
            }
            numerics = _object(data["numerics"], "numerics")
            notes = data.get("notes", [])
            if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
                raise ValueError("notes is not a list of strings")
            return cls(
                data["commit"],
                data["parent"],
                data["time"],
                links,
                _text(data["statistic"], "statistic"),
                _text(data.get("runner", ""), "runner", empty=True),
                tuple(notes),
                _text(numerics["key"], "numerics.key", empty=True),
                _object(numerics["environment"], "numerics.environment"),
                {
                    _text(c, "case"): _object(v, f"numerics.cases.{c}")
                    for c, v in _object(numerics["cases"], "numerics.cases").items()
                },
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            raise UserError(
                f"{where}: damaged chain summary ({what}); re-create it with `ptq chain append`, or "
                "delete it (the trend then shows a gap there)"
            ) from None


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is {type(value).__name__}, not an object")
    return value


def _text(value: Any, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise ValueError(f"{what} is {value!r}, not a string")
    return value


def _name(value: Any, what: str) -> str:
    """A commit as a summary names it: a file name under the chain's directory, so no path, no dot first."""
    if not isinstance(value, str) or not value or value.startswith(".") or any(c in value for c in "/\\\0"):
        raise ValueError(f"{what} is {value!r}, not a commit id")
    return value


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _check_link(case: str, lk: Link) -> Link:
    """Refuse a link whose figures no duet gives: the trend takes logs of them."""
    for key in ("ratio", "low", "high"):
        if not _positive(getattr(lk, key)):
            raise ValueError(f"cases.{case}.{key} = {getattr(lk, key)!r}: not a positive finite number")
    if not lk.low <= lk.high:
        raise ValueError(f"cases.{case}: low {lk.low!r} above high {lk.high!r}")
    if not (isinstance(lk.ms, int | float) and not isinstance(lk.ms, bool) and math.isfinite(lk.ms) and lk.ms >= 0):
        raise ValueError(f"cases.{case}.ms = {lk.ms!r}: not a finite time")
    if not isinstance(lk.n, int) or isinstance(lk.n, bool) or lk.n < 0:
        raise ValueError(f"cases.{case}.n = {lk.n!r}: not a count")
    if not (isinstance(lk.p, int | float) and not isinstance(lk.p, bool) and 0 <= lk.p <= 1):
        raise ValueError(f"cases.{case}.p = {lk.p!r}: not a probability")
    if not (_positive(lk.level) and lk.level < 1):
        raise ValueError(f"cases.{case}.level = {lk.level!r}: not a coverage in (0, 1)")
    if lk.verdict not in Verdict.__members__:
        raise ValueError(f"cases.{case}.verdict = {lk.verdict!r}: not one of {', '.join(Verdict.__members__)}")
    return lk


def parse_time(value: Any, option: str) -> _dt.datetime:
    """An ISO 8601 time with its UTC offset (``git show -s --format=%cI``), as an aware datetime:
    summaries are ordered by instant, and a time without an offset names none."""
    try:
        when = _dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None:
        raise ValueError(f"{option} {value!r} is not an ISO 8601 time (pass `git show -s --format=%cI COMMIT`)")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(
            f"{option} {value!r} has no UTC offset, so it names no instant (pass "
            "`git show -s --format=%cI COMMIT`, e.g. 2024-05-01T10:00:00+09:00)"
        )
    return when


def utc(when: _dt.datetime) -> str:
    """``when`` in UTC, ``...Z``: the form a summary stores, so it sorts as text too."""
    return when.astimezone(_dt.timezone.utc).isoformat().replace("+00:00", "Z")


FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SHORT_SHA = re.compile(r"[0-9a-fA-F]{4,63}")


def resolve_commit(value: str, option: str, *, cwd: str | Path | None = None) -> str:
    """A commit as a chain names it: its full SHA, lower case. A full SHA is taken as it is; a short
    one is resolved by ``git rev-parse`` in ``cwd`` (it must name exactly one commit there); anything
    else (a path, an empty string, a branch name) is refused: it would name a file, or another commit tomorrow."""
    text = value.strip()
    if FULL_SHA.fullmatch(text.lower()):
        return text.lower()
    fix = f"pass the full SHA: `$(git rev-parse {'HEAD' if option == '--commit' else 'HEAD~1'})`"
    if not SHORT_SHA.fullmatch(text):
        raise UserError(f"{option} {value!r}: not a commit SHA (hex digits); {fix}")
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", f"{text}^{{commit}}"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        done = None
    full = done.stdout.strip().lower() if done is not None and done.returncode == 0 else ""
    if not FULL_SHA.fullmatch(full):
        raise UserError(f"{option} {value!r}: a short SHA that git cannot resolve to one commit here; {fix}")
    return full


def _same_commit(a: str, b: str) -> bool:
    """One commit named twice: equal, or a short SHA (7+ hex digits) the other full one starts with."""
    if a == b:
        return True
    short, full = sorted((a.lower(), b.lower()), key=len)
    return (
        len(short) >= 7
        and SHORT_SHA.fullmatch(short) is not None
        and FULL_SHA.fullmatch(full) is not None
        and full.startswith(short)
    )


def save_summary(summary: CommitSummary, directory: str | Path) -> Path:
    """One file per commit, ``<directory>/<commit>.json``, written atomically (a rerun replaces it).

    A summary of the same commit an older ptq filed by its short SHA is replaced too (removed once
    the new one is written): one commit, one link."""
    _name(summary.commit, "commit")
    text = (json.dumps(summary.to_dict(), separators=(",", ":"), allow_nan=False) + "\n").encode()  # jq . reads it
    directory = Path(directory)
    written = atomic_write(directory / f"{summary.commit}.json", lambda fh: fh.write(text))
    for other in directory.glob("*.json"):
        if other.stem != summary.commit and _same_commit(other.stem, summary.commit):
            other.unlink()
    return written


def _strict(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def load_chain(directory: str | Path) -> list[CommitSummary]:
    """Every summary under ``directory``, oldest first: by the instant of its time (``...+09:00``
    and ``...-05:00`` compared as instants, not as text), then commit. Each is checked by
    :meth:`CommitSummary.from_dict`, and one commit filed twice (by its full and its short SHA) is refused."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory; add a summary with `ptq chain append -d {directory}`")
    files = sorted(directory.glob("*.json"))
    if not files:
        raise UserError(f"{directory}: holds no chain summary; add one with `ptq chain append`")
    found: list[tuple[_dt.datetime, CommitSummary]] = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"), parse_constant=_strict)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UserError(
                f"{f}: damaged chain summary (unreadable: {exc}); re-create it with `ptq chain append`, "
                "or delete it (the trend then shows a gap there)"
            ) from None
        summary = CommitSummary.from_dict(data, str(f))
        if f.stem != summary.commit:
            raise UserError(
                f"{f}: damaged chain summary (it is named for commit {f.stem}, but holds {summary.commit}); "
                f"rename it {summary.commit}.json, or re-create it with `ptq chain append`"
            )
        found.append((parse_time(summary.time, "time"), summary))
    by_start: dict[str, list[str]] = {}
    for _, summary in found:
        by_start.setdefault(summary.commit[:7].lower(), []).append(summary.commit)
    for names in by_start.values():
        for a, b in ((a, b) for i, a in enumerate(names) for b in names[i + 1 :]):
            if _same_commit(a, b):
                short, full = sorted((a, b), key=len)
                raise UserError(
                    f"{directory}: {short}.json and {full}.json are one commit, filed twice (by its short and "
                    f"its full SHA); delete {short}.json"
                )
    return [s for _, s in sorted(found, key=lambda pair: (pair[0], pair[1].commit))]


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


def trend(
    chain: Sequence[CommitSummary], case: str, *, level: float = 0.95, min_step: float = MIN_STEP
) -> list[TrendPoint]:
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
            var += lk.log_se**2
        half = z * math.sqrt(var)
        gap = i > 0 and not _same_commit(s.parent, chain[i - 1].commit)
        out.append(
            TrendPoint(
                s.commit,
                lk,
                math.exp(logs),
                math.exp(logs - half),
                math.exp(logs + half),
                lk is not None and lk.is_step(min_step),
                gap,
            )
        )
    return out
