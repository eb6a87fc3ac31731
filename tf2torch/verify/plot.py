"""An inline SVG plot of per-layer relative error against depth, log scale: no plotting library needed.

The float32 (or the judged) series is blue, the float64 series green, the tolerance a dashed line; failing calls
are red dots, and the first divergence is marked. Exact zeros sit on the bottom edge as hollow dots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report_data import ReportData

WIDTH, HEIGHT = 1120, 320
LEFT, RIGHT, TOP, BOTTOM = 68, 20, 34, 46
BLUE, GREEN, RED, GREY = "#2563eb", "#059669", "#dc2626", "#94a3b8"


def error_plot(report: "ReportData") -> str:
    rows = report.layers
    main = [_value(r.metrics.max_rel_error) for r in rows]
    f64 = [_value(r.float64.max_rel_error) if r.float64 is not None else None for r in rows]
    has_f64 = any(v is not None for v in f64)
    lo, hi = _decades([*main, *f64, report.rtol])
    n = max(len(rows), 2)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + plot_w * i / (n - 1)

    def y(v: float | None) -> float:
        if v is None or v <= 0:
            return TOP + plot_h
        t = (math.log10(v) - lo) / (hi - lo)
        return TOP + plot_h * (1 - min(max(t, 0.0), 1.0))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
             f'role="img" aria-label="relative error per layer call, log scale" class="t2t-plot">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#f8fafc" stroke="#e2e8f0"/>']
    parts += _y_axis(lo, hi, y, plot_w)
    parts += _x_axis(len(rows), x, plot_h)
    tol_y = y(report.rtol)
    parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{tol_y:.1f}" y2="{tol_y:.1f}" stroke="{RED}" '
                 f'stroke-width="1.2" stroke-dasharray="6 4" opacity="0.7"/>')
    parts.append(f'<text x="{LEFT + plot_w - 4}" y="{tol_y - 5:.1f}" text-anchor="end" fill="{RED}" '
                 f'font-size="11">rtol {report.rtol:g}</text>')
    first = next((r.index for r in rows if r.layer == report.first_divergence and not r.ok), None)
    if first is not None:
        fx = x(first)
        parts.append(f'<line x1="{fx:.1f}" x2="{fx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="{RED}" '
                     f'stroke-width="1.5"/>')
        anchor = "start" if fx < LEFT + plot_w * 0.7 else "end"
        dx = 5 if anchor == "start" else -5
        parts.append(f'<text x="{fx + dx:.1f}" y="{TOP + 14}" text-anchor="{anchor}" fill="{RED}" font-size="12" '
                     f'font-weight="600">first divergence: {escape(str(report.first_divergence))}</text>')
    if has_f64:
        parts += _series(f64, rows, x, y, GREEN, "float64", dots=len(rows) <= 300)
    label = "float32" if has_f64 or report.dtype != "float64" else "float64"
    parts += _series(main, rows, x, y, BLUE, label, dots=len(rows) <= 300, mark_failures=True)
    parts += _legend(label, has_f64, any(not r.ok for r in rows))
    parts.append(f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 8}" text-anchor="middle" fill="#475569" '
                 f'font-size="12">layer call (depth order)</text>')
    parts.append(f'<text x="16" y="{TOP + plot_h / 2}" text-anchor="middle" fill="#475569" font-size="12" '
                 f'transform="rotate(-90 16 {TOP + plot_h / 2})">max relative error</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _value(v: object) -> float | None:
    if v is None or isinstance(v, str):
        return None
    return float(v) if math.isfinite(float(v)) else 1e300


def _decades(values: Sequence[float | None]) -> tuple[int, int]:
    positive = [v for v in values if v is not None and v > 0]
    if not positive:
        return -8, 0
    lo = math.floor(math.log10(min(positive)))
    hi = math.ceil(math.log10(max(positive)))
    lo, hi = max(lo, -18), min(max(hi, lo + 2), 3)
    return lo, hi if hi > lo else lo + 1


def _y_axis(lo: int, hi: int, y, plot_w: float) -> list[str]:
    parts = []
    step = 1 if hi - lo <= 10 else 2
    for d in range(lo, hi + 1, step):
        yy = y(10.0 ** d)
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e2e8f0"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{yy + 4:.1f}" text-anchor="end" fill="#64748b" '
                     f'font-size="11">1e{d}</text>')
    return parts


def _x_axis(n: int, x, plot_h: float) -> list[str]:
    if n == 0:
        return []
    step = max(1, _nice_step(n / 10))
    parts = []
    for i in range(0, n, step):
        xx = x(i)
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 5}" '
                     f'stroke="#94a3b8"/>')
        parts.append(f'<text x="{xx:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle" fill="#64748b" '
                     f'font-size="11">{i}</text>')
    return parts


def _nice_step(raw: float) -> int:
    if raw <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return int(m * power)
    return int(10 * power)


def _series(values, rows, x, y, colour: str, label: str, dots: bool, mark_failures: bool = False) -> list[str]:
    points = [(x(i), y(v)) for i, v in enumerate(values) if v is not None]
    if not points:
        return []
    path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
    parts = [f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.4" opacity="0.85"/>']
    for i, (v, r) in enumerate(zip(values, rows)):
        if v is None:
            continue
        failed = mark_failures and not r.ok
        if not (dots or failed):
            continue
        fill = RED if failed else (colour if v > 0 else "#ffffff")
        radius = 3.6 if failed else 2.4
        tip = f"#{r.index} {r.node} ({r.class_name}) {label}: {v:.3g}" + ("  FAIL" if failed else "")
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="{radius}" fill="{fill}" stroke="'
                     f'{RED if failed else colour}" stroke-width="1"><title>{escape(tip)}</title></circle>')
    return parts


def _legend(label: str, has_f64: bool, has_failures: bool) -> list[str]:
    items = [(BLUE, label)] + ([(GREEN, "float64")] if has_f64 else []) + ([(RED, "failing call")] if has_failures
                                                                           else [])
    parts = []
    xx = LEFT + 4
    for colour, text in items:
        parts.append(f'<circle cx="{xx + 5}" cy="{TOP - 14}" r="4" fill="{colour}"/>')
        parts.append(f'<text x="{xx + 14}" y="{TOP - 10}" fill="#334155" font-size="12">{escape(text)}</text>')
        xx += 24 + 7 * len(text)
    return parts
