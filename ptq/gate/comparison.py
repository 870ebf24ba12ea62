"""Compare a run with a baseline: every case through every judge, a table, an exit code.

The gate fails closed: a row passes only when it was judged ``ok`` or ``improved``.
Exit codes (``ptq compare``, ``ptq ab``; ``--ptq-compare`` maps them onto pytest's, see
:mod:`ptq.plugins.gate`):

- 0: every row passed;
- 1: a row failed: ``REGRESSION``, ``not measured`` (a figure missing on one side) or ``not
  compared`` (timings of another environment): the gate cannot vouch for what it did not judge;
- 2: usage error or bad input;
- 3: no baseline: none applies to the run (the message lists the stored ones and how they
  differ, and the command that records one), or a case has none (``new``) and new cases were
  not accepted (``--accept-new``). A missing baseline fails even with ``--accept-new``.

1 wins over 3 where both apply. The summary line names every outcome that failed the gate.

One :class:`Comparison` is rendered (:data:`FORMATS`) as text, Markdown (the pull-request
comment, ``ptq report --format md``), an HTML section (the report's) or JSON (schema
``ptq.comparison``, ``ptq/gate/schemas/comparison.schema.json``): each shows the same verdicts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ptq.config import Config
from ptq.errors import UserError
from ptq.gate.judges import DEFAULTS, Judgement, get_judge, list_judges
from ptq.stats.decide import Verdict
from ptq.storage.runs import BASELINES, CaseRecord, Run, baseline_path, load_run
from ptq.text import format_table

__all__ = [
    "BANDWIDTH_NOTE_AT",
    "EXIT_BAD_INPUT",
    "EXIT_NO_BASELINE",
    "EXIT_OK",
    "EXIT_REGRESSION",
    "FORMATS",
    "OUTCOMES",
    "RECORD_BASELINE",
    "SCHEMA_ID",
    "SCHEMA_VERSION",
    "VERDICT_IDS",
    "Comparison",
    "Outcome",
    "Row",
    "across_runs_judges",
    "as_json",
    "bandwidth_note",
    "compare",
    "compare_stored",
    "json_schema",
    "judge_case",
    "missing_baseline",
    "render",
    "resolve_baseline",
]

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT, EXIT_NO_BASELINE = 0, 1, 2, 3

#: The command a missing-baseline message gives.
RECORD_BASELINE = "pytest benchmarks --benchmark-only --ptq-save-baseline"
#: Two runs whose memory bandwidth differs by more than this get a note (:func:`bandwidth_note`).
#: On the reference VM five runs' medians spanned 20.9-25.0 GB/s within 35 minutes, and the
#: quiet and busy fifths of one study's rounds moved resnet18's static int8 speedup 4.50 -> 4.83.
BANDWIDTH_NOTE_AT = 0.10


@dataclass(frozen=True)
class Outcome:
    """What one verdict does to the gate: the exit code it sets (0: it passes) and its summary noun."""

    exit_code: int
    noun: str
    plural: str | None = None

    def count(self, n: int) -> str:
        return f"{n} {self.noun if n == 1 or self.plural is None else self.plural}"


#: Verdict -> outcome. ``new`` fails unless new cases are accepted (``--accept-new``).
OUTCOMES: Mapping[Verdict, Outcome] = MappingProxyType(
    {
        Verdict.REGRESSION: Outcome(EXIT_REGRESSION, "regression", "regressions"),
        Verdict.NOT_MEASURED: Outcome(EXIT_REGRESSION, "not measured"),
        Verdict.NOT_COMPARED: Outcome(EXIT_REGRESSION, "not compared"),
        Verdict.NEW: Outcome(EXIT_NO_BASELINE, "new"),
        Verdict.IMPROVED: Outcome(EXIT_OK, "improved"),
        Verdict.OK: Outcome(EXIT_OK, "ok"),
    }
)

#: Which failure's exit code wins where several apply.
PRECEDENCE = (EXIT_REGRESSION, EXIT_NO_BASELINE)

HEADER = ["case", "metric", "baseline", "current", "change", "verdict"]

#: Exit code -> the JSON's ``outcome``.
OUTCOME_NAMES: Mapping[int, str] = MappingProxyType(
    {EXIT_OK: "pass", EXIT_REGRESSION: "fail", EXIT_NO_BASELINE: "no-baseline"}
)

#: Verdict -> its stable id: the JSON's ``verdict`` and the HTML row's class.
VERDICT_IDS: Mapping[Verdict, str] = MappingProxyType({v: v.name.lower().replace("_", "-") for v in Verdict})


@dataclass(frozen=True)
class Row:
    case: str
    metric: str
    judgement: Judgement

    @property
    def verdict(self) -> Verdict:
        return self.judgement.verdict

    def cells(self) -> list[str]:
        j = self.judgement
        return [self.case, self.metric, j.baseline, j.current, j.change, j.verdict.value]

    @property
    def explanation(self) -> str:
        """The judge's detail (statistic, test, p, spread, allowance) where a verdict needs one: every
        row but ``ok`` and ``new`` (a new row's only explanation is that it has no baseline)."""
        return "" if self.verdict in (Verdict.OK, Verdict.NEW) else self.judgement.detail


@dataclass(frozen=True)
class Comparison:
    """Every row of one run judged against one baseline, and whether that passes the gate.

    ``no_baseline``: why no baseline applies (the gate fails with :data:`EXIT_NO_BASELINE`
    whatever ``accept_new`` says); ``accept_new``: ``new`` rows pass.
    """

    baseline: str
    current: str
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)
    accept_new: bool = False
    no_baseline: str | None = None

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict is Verdict.REGRESSION]

    def fails(self, verdict: Verdict) -> bool:
        return OUTCOMES[verdict].exit_code != EXIT_OK and not (verdict is Verdict.NEW and self.accept_new)

    @property
    def failing(self) -> list[Row]:
        """The rows that fail the gate."""
        return [r for r in self.rows if self.fails(r.verdict)]

    @property
    def exit_code(self) -> int:
        codes = {OUTCOMES[r.verdict].exit_code for r in self.failing}
        if self.no_baseline:
            codes.add(EXIT_NO_BASELINE)
        return next((code for code in PRECEDENCE if code in codes), EXIT_OK)

    def counts(self) -> dict[Verdict, int]:
        return {v: sum(r.verdict is v for r in self.rows) for v in Verdict if any(r.verdict is v for r in self.rows)}

    @property
    def outcome(self) -> str:
        """``pass``, ``fail`` or ``no-baseline``: the exit code in words (the JSON's ``outcome``)."""
        return OUTCOME_NAMES[self.exit_code]

    @property
    def shown_failing(self) -> list[Row]:
        """The failing rows a reader is shown first: all of them, less the ``new`` rows where no
        baseline applies at all (the missing baseline, said once, is why every case is new)."""
        return [r for r in self.failing if not (self.no_baseline and r.verdict is Verdict.NEW)]


def _settings(config: Config, extra_info: Mapping[str, object]) -> dict[str, Any]:
    return config.resolve(
        "gate", model=str(extra_info.get("model", "")), recipe=str(extra_info.get("recipe", "")), defaults=DEFAULTS
    )


def _identity(provenance: object) -> str:
    """A weights/data description without its parenthetical how ("(loaded)", "(trained now)")."""
    return str(provenance or "").split(" (")[0]


def judge_case(
    name: str,
    base: CaseRecord,
    cur: CaseRecord,
    *,
    same_env: bool = True,
    config: Config,
    unlike: Mapping[str, Sequence[str]] | None = None,
) -> Judgement | None:
    """Judge ``name``'s figure of one case, baseline against current: NOT_MEASURED where one side
    lacks it; NOT_COMPARED where the environment key the judge needs differs (``unlike``: per
    key kind, the keys that differ; without it ``same_env`` says whether timings compare) or,
    for drift, the case's weights or data differ; None where neither side has it or the judge
    does not apply (speedup of fp32). The one place a verdict is made, for the gate and the
    report's trend markers alike."""
    judge = get_judge(name)
    if not judge.applies(cur):
        return None
    b, c = judge.extract(base), judge.extract(cur)
    if b is None and c is None:
        return None
    if b is None or c is None:
        where = "baseline" if b is None else "current run"
        return Judgement(
            Verdict.NOT_MEASURED,
            "-" if b is None else "measured",
            "-" if c is None else "measured",
            "-",
            f"not in the {where}" + (f"; {judge.missing_hint}" if judge.missing_hint else ""),
        )
    differ = (
        list((unlike or {}).get(judge.key, ()))
        if unlike is not None
        else ([] if same_env or judge.key != "timing" else ["fingerprint"])
    )
    if differ:
        return Judgement(
            Verdict.NOT_COMPARED, "-", "-", "-", f"not comparable: {judge.key} keys differ ({', '.join(differ)})"
        )
    for what in judge.same_case:
        was, now = _identity(base.extra_info.get(what)), _identity(cur.extra_info.get(what))
        if was != now:
            return Judgement(Verdict.NOT_COMPARED, "-", "-", "-", f"not comparable: {what} differ ({was} vs {now})")
    return judge.judge(b, c, _settings(config, cur.extra_info))


def _case_unlike(
    baseline: Run, current: Run, case: str, unlike: Mapping[str, list[str]], same_machine: bool
) -> Mapping[str, list[str]]:
    """The keys that differ for one case: the runs' ``unlike``, unless a side's case carries its
    own provenance (a shard merged from another machine, a baseline case a partial save did not
    touch: :meth:`ptq.storage.runs.Run.environment_of`); then that case's own environments'."""
    from ptq.host.env import KEYS, differing_keys

    if not (baseline.has_own_provenance(case) or current.has_own_provenance(case)):
        return unlike
    keys = {kind: differing_keys(baseline.environment_of(case), current.environment_of(case), kind) for kind in KEYS}
    if same_machine:
        keys["timing"] = []
    elif not keys["timing"] and baseline.fingerprint_of(case) != current.fingerprint_of(case):
        keys["timing"] = ["fingerprint"]  # a case recorded with its fingerprint only (ptq merge before provenance)
    return keys


def compare(
    baseline: Run,
    current: Run,
    *,
    config: Config | None = None,
    judges: Sequence[str] | None = None,
    same_machine: bool = False,
    accept_new: bool = False,
    no_baseline: str | None = None,
    across_runs: bool = False,
) -> Comparison:
    """Judge each case of ``current`` against ``baseline``; regressions first in ``rows``.

    Latency and speedup compare where the timing keys match, memory, size and drift where the
    numerics keys do (:data:`ptq.host.env.KEYS`); otherwise "not compared", naming the keys.
    ``same_machine``: both runs were timed interleaved on one machine (``ptq ab``), so timings
    are compared even where the timing keys differ (two torch versions, ``--compare-installs``).
    ``no_baseline``: why no baseline applies; a ``baseline`` without a case is one too (``ptq
    ab``'s side A measured nothing). ``across_runs``: the gate of two separate runs (``ptq compare``,
    ``--ptq-compare``): without ``judges``, only :func:`across_runs_judges`; timing judges asked for
    by name are judged with a note saying what they compare.
    """
    from ptq.host.env import KEYS, differing_keys

    config = config or Config()
    notes: list[str] = []
    if judges is None and across_runs:
        names = across_runs_judges()
        notes.append(
            "latency and speedup are not judged across two runs (each run is one draw of the host's "
            "state): `ptq ab BASE HEAD` judges them, both sides interleaved; --judges asks for them here"
        )
    else:
        names = list(judges) if judges is not None else list_judges()
        timed = [n for n in names if get_judge(n).key == "timing"]
        if timed and across_runs:
            notes.append(
                f"{', '.join(timed)} judged across two runs because --judges asked: each run is one draw "
                "of the host's state, so a change here may be the machine's; `ptq ab` times both sides "
                "interleaved"
            )
    if no_baseline is None and current.cases and not baseline.cases:
        no_baseline = f"{baseline.path} holds no case"
    unlike = {kind: differing_keys(baseline.environment, current.environment, kind) for kind in KEYS}
    if unlike["timing"] and same_machine:
        notes.append(
            f"timing keys differ ({', '.join(unlike['timing'])}) but both sides ran interleaved on this "
            "machine: timings compared"
        )
        unlike["timing"] = []
    if unlike["timing"]:
        notes.append(
            f"latency and speedup not compared: the timing keys differ ({', '.join(unlike['timing'])}); "
            "timings from different machines or stacks say nothing about the code"
        )
    if unlike["numerics"]:
        notes.append(
            f"memory, size and drift not compared: the numerics keys differ ({', '.join(unlike['numerics'])}); "
            "other kernels or versions allocate and compute differently"
        )
    bandwidth = None if unlike["timing"] or same_machine else bandwidth_note(baseline, current)
    if bandwidth:
        notes.append(bandwidth)
    rows: list[Row] = []
    absent: dict[str, int] = {}
    for case in sorted(current.cases):
        cur = current.cases[case]
        base = baseline.cases.get(case)
        if base is None:
            rows.append(Row(case, "*", Judgement(Verdict.NEW, "-", "measured", "-", "no baseline for this case")))
            continue
        keys = _case_unlike(baseline, current, case, unlike, same_machine)
        for name in names:
            judgement = judge_case(name, base, cur, config=config, unlike=keys)
            judge = get_judge(name)
            if judgement is None and judge.applies(cur):
                why = {side: judge.expected(record) for side, record in (("baseline", base), ("current", cur))}
                if any(why.values()):  # the figure should be there: fail closed, with the reason
                    said = "; ".join(dict.fromkeys(w for w in why.values() if w))
                    judgement = Judgement(Verdict.NOT_MEASURED, "-", "-", "-", f"not measured on either side ({said})")
                else:
                    absent[name] = absent.get(name, 0) + 1
            if judgement is not None:
                rows.append(Row(case, name, judgement))
    gone = sorted(set(baseline.cases) - set(current.cases))
    if gone and same_machine:  # both sides ran one selection: a case only one side has failed on the other
        rows.extend(
            Row(
                case,
                "*",
                Judgement(
                    Verdict.NOT_MEASURED,
                    "measured",
                    "-",
                    "-",
                    "no result on this side: the case failed or could not be built there",
                ),
            )
            for case in gone
        )
    elif gone:
        notes.append(f"{len(gone)} baseline case(s) not in this run (not selected?): {', '.join(gone)}")
    for name, n in absent.items():
        notes.append(f"{name}: recorded by neither run, and no probe said it should be ({n} case(s))")
    new = sum(r.verdict is Verdict.NEW for r in rows)
    if new and not no_baseline:
        notes.append(
            f"{new} case(s) have no baseline figure: "
            + (
                "accepted (--accept-new)"
                if accept_new
                else f"record them (`{RECORD_BASELINE}`) or accept new cases with --accept-new "
                "(pytest: --ptq-accept-new)"
            )
        )
    rows.sort(key=lambda r: (r.verdict.rank, r.case, r.metric))
    return Comparison(baseline.path, current.path, tuple(rows), tuple(notes), accept_new, no_baseline)


def across_runs_judges() -> list[str]:
    """The judges a comparison of two separate runs applies by default: those whose figures do not
    depend on the host's state at the time (memory, size, drift; not the timing judges)."""
    return [n for n in list_judges() if get_judge(n).key != "timing"]


def bandwidth_note(baseline: Run, current: Run, *, at: float = BANDWIDTH_NOTE_AT) -> str | None:
    """A note when the two runs' memory bandwidth (``ptq.memory_bandwidth``, the median over their
    speedup visits) differs by more than ``at``; None when it does not or a run did not record it."""
    medians = []
    for run in (baseline, current):
        record = (run.data.get("ptq") or {}).get("memory_bandwidth")
        value = record.get("median_gbps") if isinstance(record, Mapping) else None
        if not isinstance(value, int | float) or value <= 0:
            return None
        medians.append(float(value))
    change = medians[1] / medians[0] - 1
    if abs(change) <= at:
        return None
    return (
        f"memory bandwidth during the speedup visits differed: baseline {medians[0]:.1f} GB/s, current "
        f"{medians[1]:.1f} GB/s ({change:+.0%}); speedups of models that stream their weights from DRAM move "
        'with it (README, "Memory bandwidth"): for a verdict on the code, time both sides interleaved (`ptq ab`)'
    )


def _differing(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The keys, of either kind, whose values differ between two environments."""
    from ptq.host.env import KEYS, differing_keys

    return sorted({k for kind in KEYS for k in differing_keys(a, b, kind)})


def resolve_baseline(root: str | Path, run: Run, explicit: str | Path | None) -> Run | None:
    """The baseline to compare with: ``explicit``; else the run's fingerprint's (its timing key);
    else a stored baseline whose numerics keys match (another runner with the same ISA flags,
    threads and versions: memory, size and drift compare, latency is "not compared"); else None."""
    from ptq.host.env import differing_keys

    if explicit:
        return load_run(explicit)
    own = baseline_path(root, run.fingerprint)
    if own.exists():
        return load_run(own)
    for path in sorted(Path(root, BASELINES).glob("*.json")):
        try:
            other = load_run(path)
        except UserError:
            continue  # listed as unreadable by missing_baseline when nothing applies
        if not differing_keys(other.environment, run.environment, "numerics"):
            return other
    return None


def _why_not(path: Path, run: Run) -> str:
    try:
        other = load_run(path)
    except UserError as exc:
        return f"{path.name} (unreadable: {exc})"
    differ = ", ".join(_differing(other.environment, run.environment)) or "fingerprint keys"
    return f"{path.name} (fingerprint {other.fingerprint}: {differ} differ)"


def missing_baseline(root: str | Path, run: Run) -> str:
    """Why no stored baseline applies to ``run``: the ones there are, how each differs, the fix."""
    stored = sorted(Path(root, BASELINES).glob("*.json"))
    listed = "; ".join(_why_not(p, run) for p in stored) or "none"
    return (
        f"no baseline for fingerprint {run.fingerprint} ({baseline_path(root, run.fingerprint)} does not exist); "
        f"stored in {Path(root, BASELINES)}: {listed}; record this machine's with `{RECORD_BASELINE}`"
    )


def compare_stored(
    root: str | Path,
    current: Run,
    *,
    baseline: str | Path | None = None,
    config: Config | None = None,
    judges: Sequence[str] | None = None,
    accept_new: bool = False,
) -> Comparison:
    """``current`` against ``baseline`` (a path), else its fingerprint's stored baseline; where
    there is none, every case is ``new`` and the comparison fails with :data:`EXIT_NO_BASELINE`."""
    base = resolve_baseline(root, current, baseline)
    why = None
    if base is None:
        why = missing_baseline(root, current)
        base = Run(f"{baseline_path(root, current.fingerprint)} (none)", current.fingerprint, current.environment, {})
    if base.path == current.path:
        raise UserError(f"{current.path} is both the run and the baseline; name another run")
    result = compare(
        base, current, config=config, judges=judges, accept_new=accept_new, no_baseline=why, across_runs=True
    )
    if why is None and baseline is None and Path(base.path) != baseline_path(root, current.fingerprint):
        # another runner's baseline was chosen: any stored one that could not be read is said, not skipped
        skipped = [_why_not(p, current) for p in sorted(Path(root, BASELINES).glob("*.json")) if _unreadable(p)]
        if skipped:
            result = dataclasses.replace(
                result,
                notes=(
                    *result.notes,
                    *(f"skipped {s}; restore it (git checkout -- FILE) or delete it" for s in skipped),
                ),
            )
    return result


def _unreadable(path: Path) -> bool:
    try:
        load_run(path)
    except UserError:
        return True
    return False


def _summary(c: Comparison) -> str:
    """``FAIL: <each failing outcome>`` or ``PASS``, then the other counts: one line."""
    counts = c.counts()
    failing = {v for v in counts if c.fails(v)} - ({Verdict.NEW} if c.no_baseline else set())  # new: as no baseline
    failed = ["no baseline"] * bool(c.no_baseline) + [OUTCOMES[v].count(counts[v]) for v in counts if v in failing]
    passed = [
        OUTCOMES[v].count(n) + (" accepted" if v is Verdict.NEW and c.accept_new else "")
        for v, n in counts.items()
        if v not in failing
    ]
    rest = f" ({', '.join(passed)})" if passed else ("" if failed else " (nothing compared)")
    return f"FAIL: {', '.join(failed)}{rest}" if failed else f"PASS{rest}"


def _text(c: Comparison) -> str:
    lines = [f"baseline: {c.baseline}", f"current:  {c.current}", ""]
    lines.append(format_table(HEADER, [r.cells() for r in c.rows]) if c.rows else "(no cases)")
    lines += ["", *(f"detail: {r.case} {r.metric}: {r.explanation}" for r in c.rows if r.explanation)]
    lines += [f"note: {n}" for n in c.notes]
    if c.no_baseline:
        lines.append(f"error: {c.no_baseline}")
    lines.append(_summary(c))
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    """A table cell: ``|`` would end it, ``<`` could open an HTML tag."""
    return text.replace("|", "\\|").replace("<", "&lt;")


def _md_table(c: Comparison, rows: Sequence[Row]) -> list[str]:
    head = [*HEADER, "detail"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [*r.cells(), r.explanation]
        if c.fails(r.verdict):
            cells[len(HEADER) - 1] = f"**{cells[len(HEADER) - 1]}**"
        lines.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
    return lines


def _markdown(c: Comparison) -> str:
    """Failing rows first, with the judges' details; notes; then every row under ``<details>``,
    last, so that a comment too long for GitHub can drop it and keep the verdicts."""
    lines = ["### ptq regression gate: " + _summary(c), "", f"Baseline `{c.baseline}`, current `{c.current}`.", ""]
    if c.no_baseline:
        lines += [f"**No baseline**: {c.no_baseline}.", ""]
    if c.shown_failing:
        lines += [
            f"Failing the gate ({len(c.shown_failing)} of {len(c.rows)} rows):",
            "",
            *_md_table(c, c.shown_failing),
            "",
        ]
    elif c.rows and not c.no_baseline:
        lines += ["No row fails the gate.", ""]
    if c.notes:
        lines += [*(f"- {n}" for n in c.notes), ""]
    if c.rows:
        lines += [f"<details><summary>All {len(c.rows)} rows</summary>", "", *_md_table(c, c.rows), "", "</details>"]
    return "\n".join(lines).rstrip() + "\n"


def _html_table(c: Comparison, rows: Sequence[Row]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in (*HEADER, "detail"))
    body = "".join(
        f'<tr class="{VERDICT_IDS[r.verdict]}{" fails" if c.fails(r.verdict) else ""}"><td><code>{escape(r.case)}</code></td>'
        + "".join(f"<td>{escape(x)}</td>" for x in r.cells()[1 : len(HEADER) - 1])
        + f'<td><span class="badge {VERDICT_IDS[r.verdict]}">{escape(r.verdict.value)}</span></td>'
        f"<td>{escape(r.explanation)}</td></tr>"
        for r in rows
    )
    return f'<table class="comparison"><tr>{head}</tr>{body}</table>'


def _html(c: Comparison) -> str:
    """A ``<div>`` the HTML report embeds, laid out as the Markdown (classes: the verdicts' ids)."""
    parts = [
        f'<div class="comparison {c.outcome}"><p class="outcome"><b>{escape(_summary(c))}</b></p>',
        f'<p class="legend">Baseline <code>{escape(c.baseline)}</code>, current <code>{escape(c.current)}</code>.</p>',
    ]
    if c.no_baseline:
        parts.append(f'<p class="error"><b>No baseline</b>: {escape(c.no_baseline)}</p>')
    if c.shown_failing:
        parts.append(
            f"<h3>Failing the gate ({len(c.shown_failing)} of {len(c.rows)} rows)</h3>"
            + _html_table(c, c.shown_failing)
        )
    elif c.rows and not c.no_baseline:
        parts.append('<p class="legend">No row fails the gate.</p>')
    if c.notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in c.notes) + "</ul>")
    if c.rows:
        parts.append(f"<details><summary>All {len(c.rows)} rows</summary>{_html_table(c, c.rows)}</details>")
    return "".join(parts) + "</div>\n"


#: The ``json`` format's ``schema`` and ``version``: a consumer checks both; the version grows
#: when a field changes meaning or goes away (adding one does not).
SCHEMA_ID, SCHEMA_VERSION = "ptq.comparison", 1


def as_json(c: Comparison) -> dict[str, Any]:
    """The comparison as the documented JSON object (see :func:`json_schema`)."""
    return {
        "schema": SCHEMA_ID,
        "version": SCHEMA_VERSION,
        "baseline": c.baseline,
        "current": c.current,
        "outcome": c.outcome,
        "exit_code": c.exit_code,
        "summary": _summary(c),
        "no_baseline": c.no_baseline,
        "accept_new": c.accept_new,
        "counts": {VERDICT_IDS[v]: n for v, n in c.counts().items()},
        "rows": [
            {
                "case": r.case,
                "metric": r.metric,
                "baseline": r.judgement.baseline,
                "current": r.judgement.current,
                "change": r.judgement.change,
                "verdict": VERDICT_IDS[r.verdict],
                "fails": c.fails(r.verdict),
                "detail": r.judgement.detail,
            }
            for r in c.rows
        ],
        "notes": list(c.notes),
    }


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the ``json`` format (``ptq/gate/schemas/comparison.schema.json``, shipped with ptq)."""
    text = resources.files("ptq.gate").joinpath("schemas/comparison.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _json(c: Comparison) -> str:
    return json.dumps(as_json(c), indent=1) + "\n"


#: Renderers of one :class:`Comparison`: ``ptq compare`` / ``ptq ab`` ``--format``, ``ptq report``'s
#: Markdown and JSON, and the table section of its HTML.
FORMATS = {"text": _text, "md": _markdown, "html": _html, "json": _json}


def render(c: Comparison, fmt: str = "text") -> str:
    return FORMATS[fmt](c)
