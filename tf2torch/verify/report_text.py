"""The terminal table: one line per layer call, failures in red, then the verdict and the first divergence."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import click

from .report_data import format_cosine, format_error, format_shapes

if TYPE_CHECKING:
    from .compare import LayerResult
    from .report_data import ReportData

STATUS_TEXT = {"pass": "ok", "fail": "FAIL", "shape_mismatch": "SHAPE", "missing": "MISSING", "skipped": "skipped",
               "folded": "folded"}


def text_report(report: "ReportData", color: bool = False, width: int | None = None) -> str:
    width = width or shutil.get_terminal_size((120, 24)).columns
    both = any(r.float64 is not None for r in report.layers)
    header = ["#", "layer", "class", "output shape", "max abs", "max rel", "mean abs", "cosine"]
    header += ["f64 rel", "cause"] if both else []
    header.append("status")
    rows = [_cells(r, both) for r in report.layers]
    name_cap = max(16, width - 100 - (20 if both else 0))
    rows = [[c if i != 1 else _clip(c, name_cap) for i, c in enumerate(row)] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {0, 4, 5, 6, 7} | ({8} if both else set())
    lines = [_line(header, widths, right), _line(["-" * w for w in widths], widths, right)]
    for row, result in zip(rows, report.layers):
        line = _line(row, widths, right)
        if color and not result.ok:
            line = click.style(line, fg="red", bold=result.layer == report.first_divergence)
        lines.append(line)
    lines.append("")
    verdict = report.summary_line()
    lines.append(click.style(verdict, fg="green" if report.ok else "red", bold=True) if color else verdict)
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines) + "\n"


def _cells(r: "LayerResult", both: bool) -> list[str]:
    m = r.metrics
    name = r.node if r.call == 0 else f"{r.layer} (call {r.call})"
    cells = [str(r.index), name, r.class_name, format_shapes(r.output_shapes),
             format_error(m.max_abs_error), format_error(m.max_rel_error), format_error(m.mean_abs_error),
             format_cosine(m.cosine_similarity)]
    if both:
        cells += [format_error(r.float64.max_rel_error) if r.float64 else "-", r.cause or ""]
    cells.append(STATUS_TEXT.get(r.status, r.status))
    return cells


def _clip(text: str, cap: int) -> str:
    return text if len(text) <= cap else "…" + text[-(cap - 1):]


def _line(cells: list[str], widths: list[int], right: set[int]) -> str:
    return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
