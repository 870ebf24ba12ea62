"""Compare a run with a baseline: every case through every judge, a table, an exit code.

Exit codes (``ptq compare``, ``ptq ab``; ``--ptq-compare`` fails the pytest session instead):
0 no regression, 1 at least one regression, 2 usage error or bad input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ptq.config import Config
from ptq.gate import Verdict
from ptq.judges import DEFAULTS, Judgement, get_judge, list_judges
from ptq.report import format_table
from ptq.runs import CaseRecord, Run

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_REGRESSION", "Comparison", "Row", "compare", "judge_case", "render"]

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2

HEADER = ["case", "metric", "baseline", "current", "change", "verdict"]


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


@dataclass(frozen=True)
class Comparison:
    baseline: str
    current: str
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.verdict is Verdict.REGRESSION]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.regressions else EXIT_OK

    def counts(self) -> dict[Verdict, int]:
        return {v: sum(r.verdict is v for r in self.rows) for v in Verdict if any(r.verdict is v for r in self.rows)}


def _settings(config: Config, extra_info: Mapping[str, object]) -> dict[str, Any]:
    return config.resolve("gate", model=str(extra_info.get("model", "")), recipe=str(extra_info.get("recipe", "")),
                          defaults=DEFAULTS)


def judge_case(name: str, base: CaseRecord, cur: CaseRecord, *, same_env: bool, config: Config) -> Judgement | None:
    """Judge ``name``'s figure of one case, baseline against current: NOT_MEASURED where one side
    lacks it, NOT_COMPARED for a timing across environments; None where neither side has it or
    the judge does not apply (speedup of fp32). The one place a verdict is made, for the gate
    and the report's trend markers alike."""
    judge = get_judge(name)
    if not judge.applies(cur):
        return None
    b, c = judge.extract(base), judge.extract(cur)
    if b is None and c is None:
        return None
    if b is None or c is None:
        where = "baseline" if b is None else "current run"
        return Judgement(Verdict.NOT_MEASURED, "-" if b is None else "measured", "-" if c is None else "measured", "-",
                         f"not in the {where}" + (f"; {judge.missing_hint}" if judge.missing_hint else ""))
    if judge.same_environment and not same_env:
        return Judgement(Verdict.NOT_COMPARED, "-", "-", "-", "different fingerprint")
    return judge.judge(b, c, _settings(config, cur.extra_info))


def compare(
    baseline: Run, current: Run, *, config: Config | None = None, judges: Sequence[str] | None = None,
    same_machine: bool = False,
) -> Comparison:
    """Judge each case of ``current`` against ``baseline``; regressions first in ``rows``.

    ``same_machine``: both runs were timed interleaved on one machine (``ptq ab``), so timings
    are compared even where the fingerprints differ (two torch versions, say).
    """
    config = config or Config()
    names = list(judges) if judges is not None else list_judges()
    same_env = baseline.fingerprint == current.fingerprint
    notes: list[str] = []
    differing = sorted(k for k in set(baseline.environment) | set(current.environment)
                       if k in _fingerprint_keys() and baseline.environment.get(k) != current.environment.get(k))
    if not same_env and same_machine:
        same_env = True
        notes.append(f"fingerprints differ ({', '.join(differing) or 'fingerprint'}) but both sides ran interleaved "
                     "on this machine: timings compared")
    if not same_env:
        notes.append(
            f"latency and speedup not compared: environment fingerprint {current.fingerprint} differs from the "
            f"baseline's {baseline.fingerprint} ({', '.join(differing) or 'fingerprint'} differ); timings from "
            "different machines or stacks say nothing about the code. Memory, size and drift are still compared."
        )
    rows: list[Row] = []
    unmeasured: dict[str, int] = {}
    for case in sorted(current.cases):
        cur = current.cases[case]
        base = baseline.cases.get(case)
        if base is None:
            rows.append(Row(case, "*", Judgement(Verdict.NEW, "-", "measured", "-", "no baseline for this case")))
            continue
        for name in names:
            judgement = judge_case(name, base, cur, same_env=same_env, config=config)
            if judgement is None:
                if get_judge(name).applies(cur):
                    unmeasured[name] = unmeasured.get(name, 0) + 1
            else:
                rows.append(Row(case, name, judgement))
    gone = sorted(set(baseline.cases) - set(current.cases))
    if gone:
        notes.append(f"{len(gone)} baseline case(s) not in this run (not selected?): {', '.join(gone)}")
    for name, n in unmeasured.items():
        notes.append(f"{name}: not measured in either run ({n} case(s))")
    rows.sort(key=lambda r: (r.verdict.rank, r.case, r.metric))
    return Comparison(baseline.path, current.path, tuple(rows), tuple(notes))


def _fingerprint_keys() -> tuple[str, ...]:
    from ptq.env import FINGERPRINT_KEYS

    return FINGERPRINT_KEYS


def _summary(c: Comparison) -> str:
    counts = ", ".join(f"{n} {v.value}" for v, n in c.counts().items()) or "nothing compared"
    verdict = f"FAIL: {len(c.regressions)} regression(s)" if c.regressions else "PASS"
    return f"{verdict} ({counts})"


def _text(c: Comparison) -> str:
    lines = [f"baseline: {c.baseline}", f"current:  {c.current}", ""]
    lines.append(format_table(HEADER, [r.cells() for r in c.rows]) if c.rows else "(no cases)")
    lines += ["", *(f"note: {n}" for n in c.notes), _summary(c)]
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown(c: Comparison) -> str:
    lines = ["### ptq regression gate: " + _summary(c), "", f"Baseline `{c.baseline}`, current `{c.current}`.", ""]
    if c.rows:
        lines.append("| " + " | ".join(HEADER) + " |")
        lines.append("|" + "---|" * len(HEADER))
        for r in c.rows:
            cells = r.cells()
            if r.verdict is Verdict.REGRESSION:
                cells[-1] = f"**{cells[-1]}**"
            lines.append("| " + " | ".join(_md_cell(x) for x in cells) + " |")
    lines += ["", *(f"- {n}" for n in c.notes)]
    return "\n".join(lines).rstrip() + "\n"


FORMATS = {"text": _text, "md": _markdown}


def render(c: Comparison, fmt: str = "text") -> str:
    return FORMATS[fmt](c)
