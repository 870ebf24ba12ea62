"""``ptq report``'s HTML: one self-contained file (inline CSS and SVG, a few lines of inline JS,
nothing fetched) showing a history of runs: what changed last, speedups, trade-offs, trends,
per-layer SQNR and the environment of every run. Given a chained history (:mod:`ptq.storage.chain`),
its trends come from the per-commit summaries alone: the chained latency with its interval,
memory, size and drift as one series per numerics key, and each runner's absolute figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from html import escape

from ptq.config import Config
from ptq.gate.comparison import Comparison, compare, render
from ptq.host.env import NUMERICS_KEYS
from ptq.render.svg import Point, fmt, heat_color, interval_bar, line_chart, scatter_chart, sparkline
from ptq.render.trends import METRICS, Marker, Metric, Reading, Step, keyed_series, layer_sqnr, series
from ptq.stats.decide import Verdict
from ptq.storage.chain import CommitSummary, TrendPoint, trend
from ptq.storage.history import chain_runs
from ptq.storage.runs import Run

__all__ = ["chain_chart", "render_html"]

#: Environment fields shown per run, in this order.
ENV_FIELDS = (
    "cpu_model",
    "cpu_flags",
    "logical_cpus",
    "threads",
    "os",
    "python",
    "torch",
    "torchvision",
    "torchao",
    "quantized_engine",
)

#: Trend charts per case card.
CARD_METRICS = ("latency", "memory", "drift")
#: A chained history's charts per case, after its chained latency: one series per numerics key.
CHAIN_METRICS = ("memory", "size", "drift")

CSS = """
:root{--ink:#1d2430;--muted:#6b7480;--line:#e3e7ec;--bg:#f6f7f9;--red:#d1342f;--green:#1f9d55;--blue:#3867a8}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
header{background:#1d2430;color:#fff;padding:22px 32px 18px}header h1{margin:0 0 4px;font-size:22px;font-weight:600}
header p{margin:0;color:#b9c2cf}nav{margin-top:12px}nav a{color:#cfe0ff;margin-right:16px;text-decoration:none;font-size:13px}
main{padding:8px 32px 40px;max-width:1500px}section{margin-top:26px}h2{font-size:17px;margin:0 0 10px;font-weight:600}
h3{font-size:14px;margin:16px 0 8px}.tiles{display:flex;gap:12px;flex-wrap:wrap}
.tile{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;min-width:150px}
.tile b{display:block;font-size:26px;line-height:1.1}.tile span{color:var(--muted);font-size:12px}
.tile.bad b{color:var(--red)}.tile.good b{color:var(--green)}
table{border-collapse:collapse;background:#fff;border:1px solid var(--line);border-radius:8px;overflow:hidden;font-size:13px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}th{background:#fafbfc;font-weight:600;color:#404a57}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.changed{background:#fff4cc}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:11px;font-weight:600;line-height:18px;white-space:nowrap}
.badge.regression{background:#fde2e1;color:var(--red)}.badge.improvement{background:#dcf3e5;color:var(--green)}
.badge.unchanged,.badge.new{background:#e6edf7;color:var(--blue)}.badge.incomparable{background:#eceff2;color:#6b7480}
.badge.improved{background:#dcf3e5;color:var(--green)}.badge.ok{background:#e6edf7;color:var(--blue)}
.badge.not-measured,.badge.not-compared{background:#eceff2;color:#6b7480}
.comparison tr.fails td{background:#fff5f5}.comparison p.outcome{font-size:15px;margin:12px 0 4px}
.comparison:not(.pass) p.outcome,.comparison p.error{color:var(--red)}.comparison.pass p.outcome{color:var(--green)}
.comparison ul.notes{color:var(--muted);font-size:12px;padding-left:18px}
.models{display:grid;grid-template-columns:repeat(auto-fill,minmax(600px,1fr));gap:14px}.models table{width:100%}.models.wide{grid-template-columns:repeat(auto-fill,minmax(660px,1fr))}main{overflow-x:hidden}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 14px;overflow-x:auto}
.card h3{margin:0 0 2px}.card .sub{color:var(--muted);font-size:12px;margin-bottom:6px}
.cases{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
.chartlabel{font-size:12px;color:#404a57;margin:6px 0 0}.chartlabel i{color:var(--muted);font-style:normal}
.none{color:var(--muted);font-size:12px;border:1px dashed var(--line);border-radius:6px;padding:8px;margin:4px 0;background:#fbfbfc}
svg.chart text.tick{font-size:10px;fill:#6b7480}svg.chart text.unit{font-size:10px;fill:#6b7480}
svg.chart text.axis{font-size:11px;fill:#404a57}svg.chart text.pl{font-size:11px;fill:#1d2430}
.legend{font-size:12px;color:var(--muted);margin:6px 0 12px}.legend span{margin-right:14px}
.heat td{text-align:center;font-variant-numeric:tabular-nums;min-width:62px}.heat td.layer{text-align:left;font-family:ui-monospace,monospace}
details>summary{cursor:pointer;font-weight:600;font-size:15px;margin:14px 0 8px}
input#filter{padding:6px 10px;border:1px solid #c9d0d8;border-radius:6px;width:260px;font-size:13px}
code{font-family:ui-monospace,monospace;font-size:12px}small{color:var(--muted)}
"""

JS = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('.case').forEach(function (c) {
    c.style.display = c.dataset.case.indexOf(q) >= 0 ? '' : 'none';
  });
});
"""

#: Shown where a run has no value.
DASH = "\u2013"

_BADGE_CLASS = {v: v.value for v in Marker} | {Marker.INCOMPARABLE: "incomparable"}


def _badge(verdict: Marker | None) -> str:
    if verdict is None:
        return ""
    return f'<span class="badge {_BADGE_CLASS[verdict]}">{escape(verdict.value)}</span>'


def _date(run: Run) -> str:
    try:
        return datetime.fromisoformat(run.time).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return run.time or "?"


def _reading_text(metric: Metric, r: Reading) -> str:
    text = f"{fmt(r.value)} {metric.unit}".strip()
    if r.low is not None and r.high is not None:
        text += f" [{fmt(r.low)}, {fmt(r.high)}]"
    return text


def _step_points(metric: Metric, steps: Sequence[Step]) -> list[Point]:
    """Chart points of a series, each marked and explained by the gate's verdict on it."""
    points = []
    for s in steps:
        if s.reading is None:
            points.append(Point(None))
            continue
        tip = f"{s.run.label} · {_date(s.run)} · {_reading_text(metric, s.reading)}"
        if s.verdict is not None and s.previous is not None and s.judgement is not None:
            j = s.judgement
            change = f" ({j.change})" if j.change != "-" else f" ({j.detail})" if j.detail else ""
            tip += f" · gate: {s.verdict.value} vs {s.previous.label}{change}"
        elif s.verdict is not None:
            tip += f" · {s.verdict.value}"
        points.append(Point(s.reading.value, s.reading.low, s.reading.high, s.verdict.value if s.verdict else "", tip))
    return points


def _not_recorded(metric: Metric, where: str) -> str:
    return (
        f'<p class="chartlabel">{escape(metric.title)}</p>'
        f'<div class="none">{escape(metric.title)} not recorded in any {where} of this case</div>'
    )


def _trend(metric: Metric, case: str, runs: Sequence[Run], config: Config) -> str:
    steps = series(metric, case, runs, config)
    present = [s.reading for s in steps if s.reading is not None]
    if not present:
        return _not_recorded(metric, "run")
    what = " / ".join(sorted({reading.label for reading in present}))
    missing = len(steps) - len(present)
    note = f" · not recorded in {missing} of {len(steps)} runs" if missing else ""
    chart = line_chart(
        _step_points(metric, steps), [r.label for r in runs], unit=metric.unit, label=f"{metric.title} of {case}"
    )
    return f'<p class="chartlabel">{escape(metric.title)} <i>{escape(what)}{escape(note)}</i></p>{chart}'


def _cases_by_model(runs: Sequence[Run]) -> dict[str, list[str]]:
    models: dict[str, list[str]] = {}
    for run in runs:
        for name, rec in run.cases.items():
            cases = models.setdefault(rec.model, [])
            if name not in cases:
                cases.append(name)
    return models


def _summary(runs: Sequence[Run], c: Comparison | None) -> str:
    """Tiles, then the latest run's comparison as ``ptq compare`` renders it (one engine, one verdict)."""
    latest = runs[-1]
    tiles = [
        f'<div class="tile"><b>{len(runs)}</b><span>runs, {escape(runs[0].label)} … {escape(latest.label)}</span></div>',
        f'<div class="tile"><b>{len(latest.cases)}</b><span>cases in the latest run</span></div>',
    ]
    if c is None:
        return f'<div class="tiles">{"".join(tiles)}</div><p class="legend">Only one run: nothing to compare yet.</p>'
    counts = c.counts()
    failing, improved = len(c.failing), counts.get(Verdict.IMPROVED, 0)
    tiles += [
        f'<div class="tile {"bad" if failing else ""}"><b>{failing}</b><span>rows failing the gate</span></div>',
        f'<div class="tile {"good" if improved else ""}"><b>{improved}</b><span>improvements</span></div>',
        f'<div class="tile"><b>{counts.get(Verdict.OK, 0)}</b><span>ok</span></div>',
    ]
    return f'<div class="tiles">{"".join(tiles)}</div>{render(c, "html")}'


def _speedup_tables(runs: Sequence[Run], models: dict[str, list[str]], config: Config) -> str:
    metric, latency = METRICS["speedup"], METRICS["latency"]
    latest = runs[-1]
    cards = []
    for model, cases in models.items():
        rows = []
        readings = {c: metric.read(latest.cases[c]) for c in cases if c in latest.cases}
        ends = [v for r in readings.values() if r for v in (r.value, r.low, r.high) if v is not None and v > 0]
        lo, hi = min([0.5, *ends]) / 1.15, max([2.0, *ends]) * 1.15
        for case in cases:
            rec = latest.cases.get(case)
            if rec is None:
                continue
            sp, lat = readings[case], latency.read(rec)
            steps = series(metric, case, runs, config)
            spark_points = [
                Point(
                    s.reading.value if s.reading else None,
                    kind=s.verdict.value if s.verdict else "",
                    tip=f"{s.run.label}: {fmt(s.reading.value)}x" if s.reading else "",
                )
                for s in steps
            ]
            spark = (
                sparkline(spark_points, label=f"speedup trend of {case}")
                if any(p.value is not None for p in spark_points)
                else ""
            )
            cell = (
                (
                    f"{interval_bar(sp.value, sp.low, sp.high, lo, hi, tip=_reading_text(metric, sp))} "
                    f"<b>{fmt(sp.value)}x</b>"
                    + (
                        f" <small>[{fmt(sp.low)}, {fmt(sp.high)}]</small>"
                        if sp.low is not None and sp.high is not None
                        else ""
                    )
                )
                if sp
                else '<span class="none">not recorded</span>'
            )
            quantized, floating = rec.extra_info.get("quantized_layers"), rec.extra_info.get("float_layers")
            quant = (
                f"{quantized}/{quantized + floating}"
                if isinstance(quantized, int) and isinstance(floating, int)
                else DASH
            )
            rows.append(
                f"<tr><td>{escape(rec.recipe or case)}<br><small><code>{escape(str(rec.extra_info.get('stack', DASH)))}</code></small></td>"
                f'<td class="num">{fmt(lat.value) if lat else DASH}</td><td>{cell}</td><td>{spark}</td>'
                f'<td class="num">{quant}</td><td>{_badge(steps[-1].verdict)}</td></tr>'
            )
        cards.append(
            f'<div class="card"><h3>{escape(model)}</h3><div class="sub">run {escape(latest.label)}; log axis, the dashed line is 1.0x '
            f"(as fast as fp32); green: faster beyond its interval</div><table><tr><th>recipe, stack</th><th>median ms</th><th>speedup [interval]</th>"
            f"<th>over runs</th><th>quantized</th><th>last step</th></tr>{''.join(rows)}</table></div>"
        )
    return f'<div class="models wide">{"".join(cards)}</div>'


def _pick_cell(pick: dict | None) -> str:
    if not pick:
        return DASH
    ran = f" [{escape(pick['precision'])}]" if pick.get("precision") else ""
    return (
        f"{escape(pick['recipe'])}{ran} <b>{fmt(pick['median_ms'])}</b> ms <small>{pick['vs_best']:.2f}x"
        f"{', ' + escape(pick['drift']) if pick.get('drift') else ''}</small>"
    )


def _fastest(runs: Sequence[Run]) -> str:
    """The latest run's fastest in-tolerance case per model and stack (``ptq.fastest``)."""
    summaries = runs[-1].data.get("ptq", {}).get("fastest")
    if not summaries:
        return '<p class="none">The latest run records no fastest-path summary (a run before it was added, or no case in tolerance).</p>'
    cards = []
    for s in summaries:
        rows = "".join(
            f"<tr><td>{escape(st['stack'])}</td><td>{_pick_cell(st['fastest'])}</td><td>{_pick_cell(st['fp32'])}</td>"
            f"<td>{_pick_cell(st['int8'])}</td><td><small>"
            + escape(", ".join(f"{op['op']} {op['share']:.0%}" for op in st.get("limits") or ()) or DASH)
            + "</small></td></tr>"
            for st in s["stacks"]
        )
        versus = s.get("torch_int8_vs_peer")
        note = (
            (
                f"torch's fastest int8 ({escape(versus['torch_int8'])}) takes {versus['ratio']:.2f}x the time of the fastest peer "
                f"({escape(versus['peer'])})"
            )
            if versus
            else "no torch int8 and peer pair in tolerance"
        )
        cards.append(
            f'<div class="card"><h3>{escape(s["model"])}</h3><div class="sub">fastest overall: {escape(s["best"]["case"])}; '
            f"{note}; x: median over the fastest</div><table><tr><th>stack</th><th>fastest in tolerance</th><th>best fp32</th>"
            f"<th>best int8</th><th>top ops by self time</th></tr>{rows}</table></div>"
        )
    return f'<div class="models wide">{"".join(cards)}</div>'


def _scatters(runs: Sequence[Run], models: dict[str, list[str]]) -> str:
    """Latest run, one point per quantized case; fp32 (no drift by definition) is the dashed line."""
    latest, lat_m, drift_m = runs[-1], METRICS["latency"], METRICS["drift"]
    cards = []
    for model, cases in models.items():
        found, ref = [], None
        for case in cases:
            rec = latest.cases.get(case)
            lat = lat_m.read(rec) if rec is not None else None
            if rec is None or lat is None:
                continue
            if rec.recipe == "fp32":
                ref = (lat.value, f"fp32 {fmt(lat.value)} ms")
                continue
            drift = drift_m.read(rec)
            if drift is not None:
                found.append((rec, lat, drift))
        labels = [d.label for _, _, d in found]
        if not found:
            cards.append(
                f'<div class="card"><h3>{escape(model)}</h3><div class="none">drift not recorded for '
                f"{escape(model)} in run {escape(latest.label)}</div></div>"
            )
            continue
        label = max(set(labels), key=labels.count)
        kept = [(rec, lat, d) for rec, lat, d in found if d.label == label]
        pts = [
            (lat.value, d.value, rec.recipe or rec.case, f"{rec.case}: {fmt(lat.value)} ms, {label} {fmt(d.value)}")
            for rec, lat, d in kept
        ]
        direction = "higher is better" if kept[0][2].higher_is_better else "lower is better"
        other = len(found) - len(kept)
        note = f'<div class="sub">{other} case(s) record another drift figure and are left out</div>' if other else ""
        chart = scatter_chart(
            pts,
            xunit="median latency (ms), left is faster",
            yunit=f"{label}, {direction}",
            label=f"latency vs drift for {model}",
            vline=ref,
        )
        cards.append(
            f'<div class="card"><h3>{escape(model)}</h3><div class="sub">run {escape(latest.label)}; '
            f"each point a recipe</div>{chart}{note}</div>"
        )
    return f'<div class="models">{"".join(cards)}</div>'


def _case_cards(runs: Sequence[Run], models: dict[str, list[str]], config: Config) -> str:
    blocks = []
    for model, cases in models.items():
        cards = []
        for case in cases:
            rec = next((r.cases[case] for r in reversed(runs) if case in r.cases), None)
            stack = rec.extra_info.get("stack", "") if rec else ""
            charts = "".join(_trend(METRICS[m], case, runs, config) for m in CARD_METRICS)
            cards.append(
                f'<div class="card case" data-case="{escape(case.lower())}"><h3>{escape(case)}</h3>'
                f'<div class="sub">{escape(str(stack))}</div>{charts}</div>'
            )
        blocks.append(
            f"<details open><summary>{escape(model)} <small>({len(cases)} cases)</small></summary>"
            f'<div class="cases">{"".join(cards)}</div></details>'
        )
    return "".join(blocks)


def _sqnr(runs: Sequence[Run], models: dict[str, list[str]]) -> str:
    tables = []
    for cases in models.values():
        for case in cases:
            per_run = [(run, layer_sqnr(run.cases[case]) if case in run.cases else None) for run in runs]
            if not any(v for _, v in per_run):
                continue
            layers = list(dict.fromkeys(name for _, v in per_run if v for name in v))
            head = "".join(f"<th>{escape(run.label)}</th>" for run, _ in per_run)
            rows = []
            for layer in layers:
                cells = []
                for run, values in per_run:
                    db = values.get(layer) if values else None
                    cells.append(
                        f'<td style="background:{heat_color(db)}" title="{escape(f"{layer} in {run.label}: {db:.1f} dB")}">{db:.1f}</td>'
                        if db is not None
                        else f'<td title="not recorded">{DASH}</td>'
                    )
                rows.append(f'<tr><td class="layer">{escape(layer)}</td>{"".join(cells)}</tr>')
            tables.append(
                f'<h3><code>{escape(case)}</code></h3><table class="heat"><tr><th>layer</th>{head}</tr>{"".join(rows)}</table>'
            )
    if not tables:
        return '<div class="none">per-layer SQNR not recorded in any run</div>'
    return (
        '<p class="legend">SQNR of each layer\'s quantized output against its float output, in dB: '
        "red is noisy (10 dB: error a third of the signal), green is clean (40 dB and up).</p>" + "".join(tables)
    )


def _environments(runs: Sequence[Run]) -> str:
    head = "".join(f"<th>{escape(k)}</th>" for k in ("run", "date", "branch", "fingerprint", *ENV_FIELDS, "file"))
    rows: list[str] = []
    prev: Run | None = None
    for run in runs:
        cells = []
        for key in ("fingerprint", *ENV_FIELDS):
            value = run.fingerprint if key == "fingerprint" else run.environment.get(key)
            text = ", ".join(map(str, value)) if isinstance(value, list) else (DASH if value is None else str(value))
            prev_value = (
                None if prev is None else (prev.fingerprint if key == "fingerprint" else prev.environment.get(key))
            )
            changed = prev is not None and prev_value != value
            cells.append(f"<td{' class=changed' if changed else ''}>{escape(text)}</td>")
        rows.append(
            f"<tr><td><code>{escape(run.label)}</code></td><td>{escape(_date(run))}</td><td>{escape(run.branch or DASH)}</td>"
            f"{''.join(cells)}<td><code>{escape(run.path.rsplit('/', 1)[-1])}</code></td></tr>"
        )
        prev = run
    return (
        '<p class="legend">Yellow cells differ from the run above; latency is compared only between runs '
        f'with the same fingerprint.</p><div style="overflow-x:auto"><table><tr>{head}</tr>{"".join(rows)}</table></div>'
    )


def chain_points(points: Sequence[TrendPoint]) -> list[Point]:
    """The chained trend as chart points: the level with its propagated interval, a link that is
    a step marked by its direction, each tip naming the link."""
    out = []
    for pt in points:
        lk = pt.link
        kind = ("regression" if lk.ratio > 1 else "improvement") if pt.step and lk is not None else ""
        tip = f"{pt.commit[:12]}: trend {pt.level:.4f} [{pt.low:.4f}, {pt.high:.4f}]"
        tip += (
            f" · link {lk.ratio:.4f} [{lk.low:.4f}, {lk.high:.4f}], {lk.verdict.lower()}"
            if lk is not None
            else " · not timed at this commit"
        )
        out.append(Point(pt.level, pt.low, pt.high, kind, tip + (" · parent not measured (gap)" if pt.gap else "")))
    return out


def chain_chart(chain: Sequence[CommitSummary], case: str) -> str:
    """``case``'s chained latency over ``chain``: running product of its links, 95% band."""
    return line_chart(
        chain_points(trend(chain, case)), [s.commit[:7] for s in chain], unit="x", label=f"chained latency of {case}"
    )


def _varying(envs: Sequence[dict]) -> list[str]:
    """The numerics keys whose values differ between ``envs``: what tells their series apart."""
    return [k for k in NUMERICS_KEYS if len({json.dumps(e.get(k), sort_keys=True) for e in envs}) > 1]


def _keyed_trends(metric: Metric, case: str, runs: Sequence[Run], config: Config) -> str:
    """One chart per numerics key under which ``case`` recorded ``metric``: a runner with another
    key starts its own series, judged only against its own earlier points."""
    keyed = keyed_series(metric, case, runs, config=config)
    if not keyed:
        return _not_recorded(metric, "commit")
    envs = {key: dict(next(s.run for s in steps if s.reading is not None).environment) for key, steps in keyed.items()}
    varying = _varying(list(envs.values()))
    parts = []
    for key, steps in keyed.items():
        present = [s.reading for s in steps if s.reading is not None]
        what = " / ".join(sorted({reading.label for reading in present}))
        which = ", ".join(f"{k} {envs[key].get(k)}" for k in varying)
        head = f"numerics key {key}" + (f" ({which})" if which else "") if len(keyed) > 1 else what
        chart = line_chart(
            _step_points(metric, steps),
            [r.label for r in runs],
            unit=metric.unit,
            label=f"{metric.title} of {case}, numerics key {key}",
        )
        parts.append(
            f'<p class="chartlabel">{escape(metric.title)} <i>{escape(head)} · {len(present)} commit{"s" if len(present) != 1 else ""}</i></p>{chart}'
        )
    return "".join(parts)


def _absolute(chain: Sequence[CommitSummary], case: str) -> str:
    """The secondary series: each commit's own absolute figure, one chart per runner (timing key)."""
    parts = []
    for runner in dict.fromkeys(s.runner for s in chain if case in s.links):
        points = [
            Point(s.links[case].ms, tip=f"{s.commit[:12]}: {fmt(s.links[case].ms)} ms")
            if s.runner == runner and case in s.links
            else Point(None)
            for s in chain
        ]
        statistic = next(s.statistic for s in chain if s.runner == runner)
        chart = line_chart(points, [s.commit[:7] for s in chain], unit="ms", label=f"{statistic} of {case} on {runner}")
        parts.append(
            f'<p class="chartlabel">absolute {escape(statistic)} <i>runner {escape(runner or "?")}, '
            f"comparable on this runner only</i></p>{chart}"
        )
    return "".join(parts)


def _chain_cards(chain: Sequence[CommitSummary], config: Config) -> str:
    runs = chain_runs(chain)
    cards = []
    for case in sorted({c for s in chain for c in (*s.links, *s.records)}):
        rec = next((s.record(case) for s in reversed(chain) if case in s.records), None)
        timed = any(case in s.links for s in chain)
        latency = (
            f'<p class="chartlabel">chained latency <i>running product of the ratios to the parent, '
            f"95% band; ▲▼ a step</i></p>{chain_chart(chain, case)}"
            if timed
            else '<div class="none">not timed by the duet at any commit</div>'
        )
        charts = "".join(_keyed_trends(METRICS[m], case, runs, config) for m in CHAIN_METRICS)
        stack = rec.extra_info.get("stack", "") if rec else ""
        cards.append(
            f'<div class="card case" data-case="{escape(case.lower())}"><h3>{escape(case)}</h3>'
            f'<div class="sub">{escape(str(stack))}</div>{latency}{charts}{_absolute(chain, case)}</div>'
        )
    return f'<div class="cases">{"".join(cards)}</div>'


def _commits(chain: Sequence[CommitSummary]) -> str:
    rows, prev = [], None
    for s in chain:
        gap = prev is not None and s.parent != prev.commit
        steps = sum(1 for lk in s.links.values() if lk.is_step())
        cells = [
            (s.runner or DASH, prev is not None and s.runner != prev.runner),
            (s.numerics_key or DASH, prev is not None and s.numerics_key != prev.numerics_key),
        ]
        keyed = "".join(
            f"<td{' class=changed' if changed else ''}><code>{escape(text)}</code></td>" for text, changed in cells
        )
        rows.append(
            f"<tr><td><code>{escape(s.commit[:12])}</code></td><td{' class=changed' if gap else ''}><code>"
            f"{escape(s.parent[:12])}</code>{' (gap)' if gap else ''}</td><td>{escape(s.time)}</td>{keyed}"
            f'<td class="num">{len(s.links)}</td><td class="num">{steps}</td><td class="num">{len(s.records)}</td>'
            f"<td><small>{escape('; '.join(s.notes)) or DASH}</small></td></tr>"
        )
        prev = s
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "commit",
            "parent",
            "time",
            "runner (timing key)",
            "numerics key",
            "cases chained",
            "steps",
            "cases with numerics",
            "notes",
        )
    )
    return (
        '<p class="legend">Yellow: another runner, another numerics key (a new memory, size and drift series), '
        "or a parent without a summary (the chain has a gap there).</p>"
        f'<div style="overflow-x:auto"><table><tr>{head}</tr>{"".join(rows)}</table></div>'
    )


def _chain_sections(chain: Sequence[CommitSummary], config: Config) -> list[tuple[str, str, str]]:
    legend = (
        '<p class="legend"><span style="color:#d1342f">▲ regression</span><span style="color:#1f9d55">▼ improvement'
        '</span><span style="color:#3867a8">● unchanged ○ first of its series</span> — chained latency: the running '
        "product of each commit's duet ratio to its parent, band its propagated 95% interval, a step where a link's "
        "interval excludes 1 by more than 2%. Memory, size and drift: the commit's own figures, one series per "
        "numerics key, each point judged by the gate against the previous point of its series.</p>"
    )
    return [
        (
            "chain",
            "Chained history per case (from the per-commit summaries)",
            legend
            + '<input id="filter" type="search" placeholder="filter cases, e.g. static_int8">'
            + _chain_cards(chain, config),
        ),
        ("commits", "Commits of the chained history", _commits(chain)),
    ]


def render_html(
    runs: Sequence[Run],
    *,
    title: str = "ptq report",
    config: Config | None = None,
    comparison: Comparison | None = None,
    chain: Sequence[CommitSummary] | None = None,
) -> str:
    """The whole report for ``runs`` (oldest first); ``config`` holds the gate's thresholds.
    ``comparison``: the latest run's (``ptq report`` judges it against ``--baseline``); default:
    the latest run against the one before it, all judges. ``chain`` (oldest first): the trends
    come from its summaries instead of the runs, which may then be none at all."""
    if not runs and not chain:
        raise ValueError("render_html needs at least one run or a chained history")
    config = config or Config()
    sections = _run_sections(runs, config, comparison, trends=not chain) if runs else []
    if chain:
        sections[len(sections) - 2 if runs else 0 : 0] = _chain_sections(chain, config)  # before SQNR and environments
        span = f"{len(chain)} commits, {escape(chain[0].time)} … {escape(chain[-1].time)}"
    else:
        span = f"{len(runs)} runs, {_date(runs[0])} … {_date(runs[-1])}"
    if runs:
        span += f"; latest on {escape(str(runs[-1].environment.get('cpu_model', '?')))}"
    nav = "".join(f'<a href="#{key}">{escape(name.split(" (")[0])}</a>' for key, name, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{escape(name)}</h2>{html}</section>' for key, name, html in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body><header><h1>{escape(title)}</h1>"
        f"<p>{span}</p><nav>{nav}</nav></header><main>{body}</main><script>{JS}</script></body></html>"
    )


def _run_sections(
    runs: Sequence[Run], config: Config, comparison: Comparison | None, *, trends: bool
) -> list[tuple[str, str, str]]:
    """The sections a history of runs gives; ``trends``: with its trends per case (a chained
    history draws its own)."""
    models = _cases_by_model(runs)
    if comparison is None and len(runs) > 1:
        comparison = compare(runs[-2], runs[-1], config=config)
    legend = (
        '<p class="legend"><span style="color:#d1342f">▲ regression</span><span style="color:#1f9d55">▼ improvement</span>'
        '<span style="color:#9aa3ad">◇ not comparable (other machine or figure)</span><span style="color:#3867a8">● unchanged '
        "○ first</span><span>band: IQR of the timed rounds, or the speedup's interval</span> — each point is judged against the "
        "previous comparable run by the regression gate's judges (thresholds from [tool.ptq.gate]), as "
        "<code>ptq compare</code> would judge it.</p>"
    )
    sections = [
        ("summary", "Latest change", _summary(runs, comparison)),
        ("speedup", "Speedup over fp32 per model", _speedup_tables(runs, models, config)),
        ("fastest", "Fastest in-tolerance path per model and stack", _fastest(runs)),
        ("tradeoff", "Latency vs drift per model (which recipe is worth it)", _scatters(runs, models)),
    ]
    if trends:
        sections.append(
            (
                "trends",
                "Trends per case",
                legend + '<input id="filter" type="search" placeholder="filter '
                'cases, e.g. static_int8">' + _case_cards(runs, models, config),
            )
        )
    return [
        *sections,
        ("sqnr", "Per-layer SQNR over time", _sqnr(runs, models)),
        ("env", "Environment of each run", _environments(runs)),
    ]
