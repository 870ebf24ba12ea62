"""Small inline SVG charts written in Python, so a report is one file that works offline."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

__all__ = [
    "COLORS",
    "Point",
    "fmt",
    "heat_color",
    "interval_bar",
    "line_chart",
    "nice_ticks",
    "scatter_chart",
    "sparkline",
]

#: Verdict -> colour; the series itself is drawn in ``COLORS["line"]``.
COLORS = {
    "line": "#3867a8",
    "band": "#3867a8",
    "regression": "#d1342f",
    "improvement": "#1f9d55",
    "unchanged": "#3867a8",
    "new": "#3867a8",
    "not comparable": "#9aa3ad",
    "grid": "#e3e7ec",
    "axis": "#6b7480",
}


def fmt(x: float) -> str:
    """A figure with about three significant digits."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    digits = max(0, 2 - math.floor(math.log10(abs(x))))
    return f"{x:.{min(digits, 4)}f}"


def nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks, t = [], start
    while t <= hi + step * 0.5:
        ticks.append(round(t, 10))
        t += step
    return ticks


@dataclass(frozen=True)
class Point:
    """One x position's value; ``kind`` is a verdict name (or "" for a plain point)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    kind: str = ""
    tip: str = ""


def _frame(width: int, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def _marker(x: float, y: float, kind: str, tip: str) -> str:
    color = COLORS.get(kind, COLORS["line"])
    title = f"<title>{escape(tip)}</title>" if tip else ""
    if kind == "regression":
        return (
            f'<path class="pt regression" d="M{x:.1f},{y - 6:.1f} L{x + 5.5:.1f},{y + 4:.1f} L{x - 5.5:.1f},{y + 4:.1f}Z" '
            f'fill="{color}" stroke="#fff" stroke-width="1">{title}</path>'
        )
    if kind == "improvement":
        return (
            f'<path class="pt improvement" d="M{x:.1f},{y + 6:.1f} L{x + 5.5:.1f},{y - 4:.1f} L{x - 5.5:.1f},{y - 4:.1f}Z" '
            f'fill="{color}" stroke="#fff" stroke-width="1">{title}</path>'
        )
    if kind == "not comparable":
        return (
            f'<path class="pt incomparable" d="M{x:.1f},{y - 4.5:.1f} L{x + 4.5:.1f},{y:.1f} L{x:.1f},{y + 4.5:.1f} '
            f'L{x - 4.5:.1f},{y:.1f}Z" fill="#fff" stroke="{color}" stroke-width="1.5">{title}</path>'
        )
    fill = "#fff" if kind == "new" else color
    return f'<circle class="pt" cx="{x:.1f}" cy="{y:.1f}" r="3.2" fill="{fill}" stroke="{color}" stroke-width="1.5">{title}</circle>'


def _y_grid(ticks: Sequence[float], y: Callable[[float], float], x_from: float, x_to: float) -> list[str]:
    """Horizontal grid lines at ``ticks`` with their labels left of ``x_from``."""
    out = []
    for t in ticks:
        out.append(f'<line x1="{x_from}" x2="{x_to}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{COLORS["grid"]}"/>')
        out.append(
            f'<text x="{x_from - 5}" y="{y(t) + 3.5:.1f}" text-anchor="end" class="tick">{escape(fmt(t))}</text>'
        )
    return out


def line_chart(
    points: Sequence[Point], xlabels: Sequence[str], *, unit: str, label: str, width: int = 300, height: int = 118
) -> str:
    """A trend over runs: spread band, line (broken where a run has no value), verdict markers."""
    left, right, top, bottom = 46, 10, 10, 22
    values = [v for p in points for v in (p.value, p.low, p.high) if v is not None]
    lo, hi = min(values), max(values)
    # At least 10% of the level in view, so run-to-run noise of a steady figure is not magnified.
    span = abs(lo + hi) / 2 * 0.1
    if hi - lo < span:
        mid = (lo + hi) / 2
        lo, hi = mid - span / 2, mid + span / 2
    ticks = nice_ticks(lo, hi, 3)
    y0, y1 = min(ticks[0], lo), max(ticks[-1], hi)
    n = len(points)
    xs = [left + (width - left - right) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - y0) / ((y1 - y0) or 1))

    body = _y_grid(ticks, y, left, width - right)
    if unit:
        body.append(f'<text x="4" y="{top + 2}" class="unit" dominant-baseline="hanging">{escape(unit)}</text>')
    stride = max(1, math.ceil(n / 6))
    for i, text in enumerate(xlabels):
        if i % stride == 0 or i == n - 1:
            body.append(
                f'<text x="{xs[i]:.1f}" y="{height - 6}" text-anchor="middle" class="tick">{escape(text)}</text>'
            )
    segments: list[list[tuple[int, float]]] = [[]]  # (index, value) of each unbroken run of values
    for i, p in enumerate(points):
        if p.value is None:
            segments.append([])
        else:
            segments[-1].append((i, p.value))
    for seg in filter(None, segments):
        banded = [
            (i, low, high)
            for i, _ in seg
            if (low := points[i].low) is not None and (high := points[i].high) is not None
        ]
        if len(banded) > 1:
            upper = " ".join(f"{xs[i]:.1f},{y(high):.1f}" for i, _, high in banded)
            lower = " ".join(f"{xs[i]:.1f},{y(low):.1f}" for i, low, _ in reversed(banded))
            body.append(f'<polygon class="band" points="{upper} {lower}" fill="{COLORS["band"]}" fill-opacity="0.13"/>')
        for i, low, high in banded:
            body.append(
                f'<line x1="{xs[i]:.1f}" x2="{xs[i]:.1f}" y1="{y(low):.1f}" y2="{y(high):.1f}" '
                f'stroke="{COLORS["band"]}" stroke-opacity="0.35" stroke-width="3" stroke-linecap="round"/>'
            )
        if len(seg) > 1:
            path = " ".join(f"{xs[i]:.1f},{y(value):.1f}" for i, value in seg)
            body.append(
                f'<polyline class="line" points="{path}" fill="none" stroke="{COLORS["line"]}" stroke-width="1.8"/>'
            )
    for i, p in enumerate(points):
        if p.value is not None:
            body.append(_marker(xs[i], y(p.value), p.kind, p.tip))
    return _frame(width, height, body, label)


def _log_ticks(lo: float, hi: float) -> list[float]:
    mantissas = (1,) if hi / lo > 300 else (1, 2, 5)
    ticks = [m * 10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in mantissas]
    inside = [t for t in ticks if lo <= t <= hi]
    below, above = [t for t in ticks if t < lo], [t for t in ticks if t > hi]
    return ([below[-1]] if below else []) + inside + ([above[0]] if above else [])


def scatter_chart(
    points: Sequence[tuple[float, float, str, str]],
    *,
    xunit: str,
    yunit: str,
    label: str,
    vline: tuple[float, str] | None = None,
    width: int = 440,
    height: int = 260,
) -> str:
    """Labelled points ``(x, y, name, tip)``: which recipe buys how much speed for how much drift.

    The x axis turns logarithmic when x spans more than a factor of 20 (latencies often do);
    ``vline`` marks a reference x (the fp32 latency) with its label."""
    left, right, top, bottom = 58, 24, 16, 40
    xs = [p[0] for p in points] + ([vline[0]] if vline else [])
    log = min(xs) > 0 and max(xs) / min(xs) > 20
    xt = _log_ticks(min(xs), max(xs)) if log else nice_ticks(min(xs), max(xs), 4)
    yt = nice_ticks(min(p[1] for p in points), max(p[1] for p in points), 4)
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    fx = math.log10 if log else (lambda v: v)

    def sx(v: float) -> float:
        return left + (width - left - right) * (fx(v) - fx(x0)) / ((fx(x1) - fx(x0)) or 1)

    def sy(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - y0) / ((y1 - y0) or 1))

    body = _y_grid(yt, sy, left, width - right)
    for t in xt:
        body.append(
            f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="{top}" y2="{height - bottom}" stroke="{COLORS["grid"]}"/>'
        )
        body.append(
            f'<text x="{sx(t):.1f}" y="{height - bottom + 14}" text-anchor="middle" class="tick">{escape(fmt(t))}</text>'
        )
    xtitle = xunit + (" (log scale)" if log else "")
    body.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 6}" text-anchor="middle" class="axis">{escape(xtitle)}</text>'
    )
    mid = (top + height - bottom) / 2
    body.append(
        f'<text x="12" y="{mid:.0f}" text-anchor="middle" class="axis" transform="rotate(-90 12 {mid:.0f})">{escape(yunit)}</text>'
    )
    if vline:
        body.append(
            f'<line x1="{sx(vline[0]):.1f}" x2="{sx(vline[0]):.1f}" y1="{top}" y2="{height - bottom}" '
            f'stroke="{COLORS["axis"]}" stroke-dasharray="4,3"/><text x="{sx(vline[0]) + 4:.1f}" y="{top + 9}" '
            f'class="tick">{escape(vline[1])}</text>'
        )
    placed: list[tuple[float, float, float]] = []  # label extents: x from, x to, baseline
    for i, (x, yv, name, tip) in sorted(enumerate(points), key=lambda p: p[1][1]):
        color = PALETTE[i % len(PALETTE)]
        px, py = sx(x), sy(yv)
        anchor = "end" if px > width * 0.65 else "start"
        dx = -8 if anchor == "end" else 8
        ly = py + 4
        x_from = px + dx - (6.3 * len(name) if anchor == "end" else 0)
        x_to = x_from + 6.3 * len(name)
        while any(abs(ly - oy) < 12 and x_from < o_to and o_from < x_to for o_from, o_to, oy in placed):
            ly -= 12
        placed.append((x_from, x_to, ly))
        body.append(
            f'<g class="pt"><circle cx="{px:.1f}" cy="{py:.1f}" r="5" fill="{color}" fill-opacity="0.85" '
            f'stroke="#fff"><title>{escape(tip)}</title></circle>'
            f'<text x="{px + dx:.1f}" y="{ly:.1f}" text-anchor="{anchor}" class="pl">{escape(name)}</text></g>'
        )
    return _frame(width, height, body, label)


PALETTE = ("#3867a8", "#e07b39", "#1f9d55", "#9b59b6", "#d1342f", "#17a2b8", "#b8860b", "#6c757d")


def interval_bar(
    value: float,
    low: float | None,
    high: float | None,
    lo: float,
    hi: float,
    *,
    width: int = 120,
    height: int = 18,
    tip: str = "",
) -> str:
    """A ratio with its interval on a log axis from ``lo`` to ``hi``, 1.0x dashed: a one-row forest plot.
    Green when the whole interval is above 1 (faster than fp32), red when below, grey when it straddles."""
    pad = 5

    def sx(v: float) -> float:
        t = (math.log(max(v, lo)) - math.log(lo)) / (math.log(hi) - math.log(lo))
        return pad + (width - 2 * pad) * min(max(t, 0.0), 1.0)

    color = (
        COLORS["improvement"]
        if (low if low is not None else value) > 1
        else (COLORS["regression"] if (high if high is not None else value) < 1 else COLORS["not comparable"])
    )
    body = [
        f'<line x1="{pad}" x2="{width - pad}" y1="{height / 2}" y2="{height / 2}" stroke="{COLORS["grid"]}"/>',
        f'<line x1="{sx(1):.1f}" x2="{sx(1):.1f}" y1="1" y2="{height - 1}" stroke="{COLORS["axis"]}" stroke-dasharray="2,2"/>',
    ]
    if low is not None and high is not None:
        body.append(
            f'<line x1="{sx(low):.1f}" x2="{sx(high):.1f}" y1="{height / 2}" y2="{height / 2}" stroke="{color}" '
            f'stroke-width="4" stroke-linecap="round" stroke-opacity="0.4"/>'
        )
    body.append(
        f'<circle cx="{sx(value):.1f}" cy="{height / 2}" r="4.5" fill="{color}"><title>{escape(tip)}</title></circle>'
    )
    return _frame(width, height, body, tip or "interval")


def sparkline(points: Sequence[Point], *, width: int = 110, height: int = 26, label: str = "") -> str:
    """A trend without axes, for table cells; verdict markers as in :func:`line_chart`."""
    values = [p.value for p in points if p.value is not None]
    lo, hi = min(values), max(values)
    span = max(hi - lo, abs(lo + hi) / 2 * 0.1) or 1.0
    mid = (lo + hi) / 2
    n = len(points)
    pad = 6

    def sx(i: int) -> float:
        return pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)

    def sy(v: float) -> float:
        return height / 2 - (v - mid) / span * (height - 2 * pad)

    body, seg = [], []
    for i, p in enumerate([*points, Point(None)]):
        if p.value is not None:
            seg.append(f"{sx(i):.1f},{sy(p.value):.1f}")
        elif seg:
            if len(seg) > 1:
                body.append(
                    f'<polyline points="{" ".join(seg)}" fill="none" stroke="{COLORS["line"]}" stroke-width="1.5"/>'
                )
            seg = []
    body += [_marker(sx(i), sy(p.value), p.kind, p.tip) for i, p in enumerate(points) if p.value is not None]
    return _frame(width, height, body, label or "trend")


def heat_color(db: float) -> str:
    """SQNR in dB -> red (<= 10 dB, the layer's error is a third of its signal) .. green (>= 40 dB)."""
    t = min(max((db - 10) / 30, 0.0), 1.0)
    hue = 4 + t * 126
    return f"hsl({hue:.0f}, 62%, {88 - 20 * (1 - abs(t - 0.5) * 2) * 0.3:.0f}%)"
