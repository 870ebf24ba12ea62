"""``ptq report --format md``: the pull-request comment. Regressions first, then improvements,
then counts of the rest, so a reviewer reads what matters in the first lines."""

from __future__ import annotations

from ptq.config import Config
from ptq.runs import Run
from ptq.svg import fmt
from ptq.trends import Change, Marker, Reading, compare

__all__ = ["MARKER", "render_markdown"]

#: Hidden first line that CI looks for to update its one comment instead of adding another.
MARKER = "<!-- ptq-report -->"


def _cell(r: Reading | None, unit: str) -> str:
    if r is None:
        return "-"
    text = f"{fmt(r.value)} {unit}".strip()
    if r.low is not None and r.high is not None:
        text += f" [{fmt(r.low)}, {fmt(r.high)}]"
    return text


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _table(changes: list[Change], base: Run, current: Run) -> list[str]:
    lines = [f"| case | metric | {base.label} | {current.label} | change |", "|---|---|---:|---:|---:|"]
    for c in changes:
        change = f"{(c.ratio - 1) * 100:+.1f}%" if c.ratio is not None else "-"
        what = c.metric.title + (f" ({c.new.label})" if c.metric.key == "drift" else "")
        lines.append(f"| `{c.case}` | {what} | {_cell(c.old, c.metric.unit)} | {_cell(c.new, c.metric.unit)} | {change} |")
    return lines


def render_markdown(base: Run, current: Run, config: Config | None = None) -> str:
    """Every figure judged by the gate's judges (thresholds from ``config``'s ``[tool.ptq.gate]``)."""
    changes = compare(base, current, config=config)
    by = {v: [c for c in changes if c.verdict is v] for v in Marker}
    reg, imp = by[Marker.REGRESSION], by[Marker.IMPROVEMENT]
    status = "❌" if reg else "✅"
    lines = [MARKER, f"### {status} ptq: {_plural(len(reg), 'regression')}, {_plural(len(imp), 'improvement')}",
             f"`{current.label}` against `{base.label}` (fingerprints `{current.fingerprint}` / `{base.fingerprint}`)", ""]
    if reg:
        lines += ["#### Regressions", *_table(reg, base, current), ""]
    if imp:
        lines += ["#### Improvements (refresh the baseline to keep them)", *_table(imp, base, current), ""]
    counts = [f"{len(by[Marker.UNCHANGED])} unchanged"]
    if by[Marker.NEW]:
        counts.append(f"{len(by[Marker.NEW])} new (no baseline figure)")
    if by[Marker.INCOMPARABLE]:
        counts.append(f"{len(by[Marker.INCOMPARABLE])} not comparable (other machine fingerprint or figure)")
    missing = sorted(set(base.cases) - set(current.cases))
    if missing:
        counts.append(f"{len(missing)} baseline cases not run")
    lines.append("Figures: " + ", ".join(counts) + ".")
    return "\n".join(lines) + "\n"
