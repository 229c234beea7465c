"""Small charts drawn on the server as inline SVG: no script, readable without JavaScript, scaled to the
screen by their viewBox (a phone's 390 px as a desktop's 1200). Every text is escaped here.

Used by the observatory page: zero point and limiting magnitude against time, per filter, and the
uploads per month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

#: a colour per series, in order (colour-blind safe: Okabe-Ito)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 62, 16, 16, 44


@dataclass
class Series:
    label: str
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    #: 1-sigma errors of y (same units), or None for none
    err: list[float | None] = field(default_factory=list)


def _swatch(colour: str) -> str:
    # an SVG square, not a styled span: the pages' policy allows no inline style
    return (
        '<svg class="swatch" viewBox="0 0 10 10" aria-hidden="true">'
        f'<rect width="10" height="10" fill="{colour}"/></svg>'
    )


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return []
    if high <= low:
        low, high = low - 0.5, high + 0.5
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.ceil(low / step - 1e-9) * step
    ticks, value = [], start
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _label(value: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if abs(step - round(step, digits)) > 1e-9:
        digits += 1
    return f"{value:.{digits}f}"


def _bounds(values: list[float], pad: float = 0.05) -> tuple[float, float]:
    low, high = min(values), max(values)
    span = high - low or 1.0
    return low - span * pad, high + span * pad


def scatter(
    series: list[Series], *, x_label: str, y_label: str, title: str, chart_id: str, invert_y: bool = False
) -> str:
    """Points (with error bars) per series against a shared x; magnitudes drawn bright-up with ``invert_y``."""
    xs = [x for s in series for x in s.x]
    ys = [y for s in series for y in s.y] + [
        y + sign * e for s in series for y, e in zip(s.y, s.err) if e for sign in (-1, 1)
    ]
    if not xs:
        return f'<p class="hint" id="{escape(chart_id)}">Nothing to draw yet.</p>'
    x0, x1 = _bounds(xs)
    y0, y1 = _bounds(ys, 0.08)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        frac = (y - y0) / (y1 - y0)
        return TOP + (frac if invert_y else 1 - frac) * plot_h

    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>',
    ]
    xt, yt = nice_ticks(x0, x1), nice_ticks(y0, y1, 5)
    xstep = xt[1] - xt[0] if len(xt) > 1 else 1.0
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    for t in xt:
        if x0 <= t <= x1:
            parts.append(
                f'<line x1="{px(t):.1f}" x2="{px(t):.1f}" y1="{TOP}" y2="{TOP + plot_h}" class="grid"/>'
                f'<text x="{px(t):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{_label(t, xstep)}</text>'
            )
    for t in yt:
        if y0 <= t <= y1:
            parts.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" class="grid"/>'
                f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_label(t, ystep)}</text>'
            )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle" class="axis">{escape(x_label)}</text>'
        f'<text x="14" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.0f})">{escape(y_label)}</text>'
    )
    legend = []
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        marks = []
        for x, y, e in zip(s.x, s.y, s.err or [None] * len(s.x)):
            cx, cy = px(x), py(y)
            if e:
                marks.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{py(y - e):.1f}" y2="{py(y + e):.1f}"/>')
            marks.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.2"><title>{escape(s.label)}: '
                f"{x:.3f}, {y:.3f}{f' ± {e:.3f}' if e else ''}</title></circle>"
            )
        parts.append(
            f'<g class="series" data-label="{escape(s.label, quote=True)}" fill="{colour}" '
            f'stroke="{colour}">{"".join(marks)}</g>'
        )
        legend.append(f"<li>{_swatch(colour)}{escape(s.label)} ({len(s.x)})</li>")
    svg = (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="chart-svg" role="img" aria-label="{escape(title, quote=True)}" '
        f'id="{escape(chart_id, quote=True)}" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )
    return (
        f'<figure class="svg-chart">{svg}<figcaption><ul class="legend">{"".join(legend)}</ul>'
        f"{escape(title)}</figcaption></figure>"
    )


def bars(
    labels: list[str], stacks: dict[str, list[int]], *, title: str, chart_id: str, y_label: str = "uploads"
) -> str:
    """Stacked bars, one per label (e.g. a month), one colour per stack key (e.g. an upload state)."""
    if not labels:
        return f'<p class="hint" id="{escape(chart_id)}">Nothing to draw yet.</p>'
    totals = [sum(column) for column in zip(*stacks.values())] if stacks else [0] * len(labels)
    top = max(max(totals, default=0), 1)
    ticks = [t for t in nice_ticks(0, top, 5) if t >= 0]
    top = max(top, ticks[-1] if ticks else top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(labels)
    width = max(min(slot * 0.7, 40), 1.5)
    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="frame"/>']
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1
    for t in ticks:
        y = TOP + plot_h - t / top * plot_h
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(t, step)}</text>'
        )
    every = max(1, math.ceil(len(labels) / 10))
    keys = list(stacks)
    for i, label in enumerate(labels):
        x = LEFT + slot * i + (slot - width) / 2
        base = 0
        for k, key in enumerate(keys):
            value = stacks[key][i]
            if not value:
                continue
            h = value / top * plot_h
            y = TOP + plot_h - (base + value) / top * plot_h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(label)}: {value} {escape(key)}</title></rect>'
            )
            base += value
        if i % every == 0:
            parts.append(
                f'<text x="{x + width / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">{escape(label)}</text>'
            )
    parts.append(
        f'<text x="14" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2:.0f})">{escape(y_label)}</text>'
    )
    legend = "".join(
        f"<li>{_swatch(PALETTE[k % len(PALETTE)])}{escape(key)} ({sum(stacks[key])})</li>" for k, key in enumerate(keys)
    )
    svg = (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" class="chart-svg" role="img" aria-label="{escape(title, quote=True)}" '
        f'id="{escape(chart_id, quote=True)}" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )
    return (
        f'<figure class="svg-chart">{svg}<figcaption><ul class="legend">{legend}</ul>{escape(title)}</figcaption>'
        "</figure>"
    )
