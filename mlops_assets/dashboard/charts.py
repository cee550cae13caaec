"""Charts as inline SVG: the dashboard is one static file that renders offline, with no script or CDN.

Each function returns an ``<svg>`` string with a ``<title>`` per mark, so hovering shows the value.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _fmt(v: float) -> str:
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def line_chart(x: Sequence[str], series: dict[str, Sequence[float | None]], title: str, *, width: int = 560,
               height: int = 220, hline: tuple[float, str] | None = None, dashed: Sequence[str] = (),
               y_label: str = "", band: tuple[Sequence, Sequence, str] | None = None) -> str:
    """One line per series over the categorical x (weeks); ``None`` leaves a gap; ``hline``: (value,
    label) drawn as a red reference line (a target); ``band``: (lower, upper, label) shaded under
    the lines."""
    left, right, top, bottom = 56, 12, 28, 40
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    if hline:
        values.append(hline[0])
    if band:
        values += [v for v in band[1] if v is not None and math.isfinite(v)]
    if not x or not values:
        return _empty(title, width, height)
    lo, hi = min(0.0, min(values)), max(values) * 1.08 or 1.0
    w, h = width - left - right, height - top - bottom
    def px(i):
        return left + (w * i / (len(x) - 1) if len(x) > 1 else w / 2)

    def py(v):
        return top + h - (v - lo) / (hi - lo) * h
    out = [_open(width, height, title)]
    for t in _ticks(lo, hi):
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{py(t) + 4:.1f}" text-anchor="end" font-size="10">{_fmt(t)}</text>')
    every = max(1, len(x) // 6)
    for i, label in enumerate(x):
        if (i % every == 0 and len(x) - 1 - i >= every / 2) or i == len(x) - 1:
            out.append(f'<text x="{px(i):.1f}" y="{top + h + 14}" text-anchor="middle" font-size="10">'
                       f'{esc(label)}</text>')
    if band:
        out.append(_band(band, px, py, left, height))
    if hline:
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{py(hline[0]):.1f}" y2="{py(hline[0]):.1f}" '
                   f'stroke="#d62728" stroke-dasharray="4 3"><title>{esc(hline[1])}</title></line>'
                   f'<text x="{left + w}" y="{py(hline[0]) - 3:.1f}" text-anchor="end" font-size="10" '
                   f'fill="#d62728">{esc(hline[1])}</text>')
    for k, (name, ys) in enumerate(series.items()):
        color = PALETTE[k % len(PALETTE)]
        dash = ' stroke-dasharray="5 3"' if name in dashed else ""
        path, pen = [], "M"
        for i, v in enumerate(ys):
            if v is None or not math.isfinite(v):
                pen = "M"
                continue
            path.append(f"{pen}{px(i):.1f},{py(v):.1f}")
            pen = "L"
            out.append(f'<circle cx="{px(i):.1f}" cy="{py(v):.1f}" r="2.5" fill="{color}">'
                       f'<title>{esc(name)} {esc(x[i])}: {_fmt(v)}</title></circle>')
        if path:
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.6"{dash}/>')
        out.append(f'<rect x="{left + 6 + 120 * k}" y="{height - 14}" width="10" height="3" fill="{color}"/>'
                   f'<text x="{left + 20 + 120 * k}" y="{height - 10}" font-size="10">{esc(name)}</text>')
    if y_label:
        out.append(f'<text x="12" y="{top + h / 2}" font-size="10" transform="rotate(-90 12 {top + h / 2})" '
                   f'text-anchor="middle">{esc(y_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _band(band, px, py, left: float, height: float) -> str:
    """The shaded area between two series, one polygon per run of weeks where both exist, and its
    legend entry at the right of the legend row."""
    lower, upper, label = band
    out, run = [], []
    for i, (lo, hi) in enumerate([*zip(lower, upper), (None, None)]):
        if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
            run.append((i, lo, hi))
            continue
        if run:
            points = [f"{px(j):.1f},{py(h):.1f}" for j, _, h in run] + \
                     [f"{px(j):.1f},{py(low):.1f}" for j, low, _ in reversed(run)]
            out.append(f'<polygon points="{" ".join(points)}" fill="{BAND_COLOR}" fill-opacity="0.25" stroke="none">'
                       f'<title>{esc(label)}</title></polygon>')
            run = []
    out.append(f'<rect x="{left + 366}" y="{height - 18}" width="10" height="10" fill="{BAND_COLOR}" '
               f'fill-opacity="0.25"/><text x="{left + 380}" y="{height - 10}" font-size="10">{esc(label)}</text>')
    return "".join(out)


BAND_COLOR = "#ff7f0e"  # the forecast's colour: its band


def bar_chart(labels: Sequence[str], series: dict[str, Sequence[float]], title: str, *, width: int = 560,
              bar_height: int = 13) -> str:
    """Horizontal bars, one group per label, one bar per series (e.g. LASSO and network)."""
    if not labels:
        return _empty(title, width, 60)
    left, right, top = 190, 50, 28
    group = bar_height * len(series) + 6
    height = top + group * len(labels) + 24
    values = [abs(v) for s in series.values() for v in s if v is not None and math.isfinite(v)]
    hi = max(values) if values else 1.0
    w = width - left - right
    out = [_open(width, height, title)]
    for i, label in enumerate(labels):
        y0 = top + i * group
        out.append(f'<text x="{left - 6}" y="{y0 + group / 2 + 2}" text-anchor="end" font-size="10">'
                   f'{esc(label)}</text>')
        for k, (name, vals) in enumerate(series.items()):
            v = vals[i]
            if v is None or not math.isfinite(v):
                continue
            length = abs(v) / hi * w if hi else 0
            color = PALETTE[k % len(PALETTE)] if v >= 0 else "#999"
            out.append(f'<rect x="{left}" y="{y0 + k * bar_height}" width="{length:.1f}" height="{bar_height - 2}" '
                       f'fill="{color}"><title>{esc(label)} {esc(name)}: {v:.4g}</title></rect>'
                       f'<text x="{left + length + 3:.1f}" y="{y0 + k * bar_height + bar_height - 4}" '
                       f'font-size="9">{v:.3g}</text>')
    for k, name in enumerate(series):
        out.append(f'<rect x="{left + 100 * k}" y="{height - 12}" width="10" height="8" fill="{PALETTE[k]}"/>'
                   f'<text x="{left + 14 + 100 * k}" y="{height - 5}" font-size="10">{esc(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def heatmap(rows: Sequence[str], cols: Sequence[str], value, title: str, *, cell: int = 16,
            legend: str = "") -> str:
    """``value(row, col)`` -> (ratio to threshold or None, flagged, tooltip): white at 0, red at and
    above 1 (the threshold); a flagged cell gets a black border."""
    if not rows or not cols:
        return _empty(title, 560, 60)
    left, top = 170, 30
    width, height = left + cell * len(cols) + 80, top + cell * len(rows) + 80
    out = [_open(width, height, title)]
    for i, r in enumerate(rows):
        out.append(f'<text x="{left - 4}" y="{top + i * cell + cell - 4}" text-anchor="end" font-size="10">'
                   f'{esc(r)}</text>')
        for j, c in enumerate(cols):
            ratio, flagged, tip = value(r, c)
            if ratio is None:
                fill = "#f4f4f4"
            else:
                t = max(0.0, min(1.0, ratio))
                fill = f"rgb(255,{int(255 - 190 * t)},{int(255 - 190 * t)})"
            stroke = ' stroke="#000" stroke-width="1.5"' if flagged else ' stroke="#fff"'
            out.append(f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell}" height="{cell}" '
                       f'fill="{fill}"{stroke}><title>{esc(r)} {esc(c)}: {esc(tip)}</title></rect>')
    every = max(1, len(cols) // 8)
    for j, c in enumerate(cols):
        if (j % every == 0 and len(cols) - 1 - j >= every / 2) or j == len(cols) - 1:
            x = left + j * cell + cell / 2
            y = top + len(rows) * cell + 8
            out.append(f'<text x="{x}" y="{y}" font-size="9" transform="rotate(45 {x} {y})">{esc(c)}</text>')
    if legend:
        out.append(f'<text x="4" y="{height - 4}" font-size="10">{esc(legend)}</text>')
    out.append("</svg>")
    return "".join(out)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif"><title>{esc(title)}</title>'
            f'<text x="4" y="16" font-size="12" font-weight="bold">{esc(title)}</text>')


def _empty(title: str, width: int, height: int) -> str:
    return (_open(width, height, title) +
            f'<text x="{width / 2}" y="{height / 2 + 8}" text-anchor="middle" font-size="11" fill="#777">'
            f'no data yet</text></svg>')
