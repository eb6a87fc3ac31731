"""Markdown for a pull-request comment: verdict, first divergence, failing calls, and every call folded away.

GitHub cuts comments at 65,536 characters, so the full table stops at ``MAX_ROWS`` rows with a note.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .report_data import format_cosine, format_error, format_shapes

if TYPE_CHECKING:
    from .compare import LayerResult
    from .report_data import ReportData

MAX_ROWS = 300
MAX_FAILED_ROWS = 25


def markdown_report(report: "ReportData") -> str:
    m = report.model
    icon = "✅" if report.ok else "❌"
    out = [f"### {icon} tf2torch verify: `{m.get('name')}` {'matches' if report.ok else 'does not match'} Keras", ""]
    out.append(_escape(report.summary_line()) if report.ok else
               f"{len(report.failed)} of {len(report.layers)} layer calls differ from Keras.")
    out.append("")
    out += [
        "| | |", "|---|---|",
        f"| layer calls | {len(report.layers)} ({len(report.failed)} failing) |",
        f"| max relative error | {format_error(report.max_rel_error)} |",
        f"| first divergence | {_code(report.first_divergence) if report.first_divergence else 'none'} |",
        f"| dtype | {report.dtype} (rtol {report.rtol:g}, atol {report.atol:g}) |",
        f"| model | {_code(m.get('source'))}: Keras {m.get('keras_version')} ({m.get('format')}), "
        f"{m.get('parameters', 0):,} parameters, loaded with {m.get('loaded_with')} |",
        f"| inputs | {', '.join(_input_text(i) for i in report.inputs)} |",
        "",
    ]
    if report.divergence:
        d = report.divergence
        out += [f"**First divergence:** {_code(d['layer'])} ({d['class_name']}, call {d['call']})"
                + (f", cause: **{d['cause']}**" if d.get("cause") else ""), "",
                f"> {_escape(d['message'])}", ""]
        failed = report.failed
        out += ["<b>Failing layer calls</b>", "", *_table(failed[:MAX_FAILED_ROWS], report)]
        if len(failed) > MAX_FAILED_ROWS:
            out.append(f"\n… and {len(failed) - MAX_FAILED_ROWS} more (see the full table below)")
        out.append("")
    for note in report.notes:
        out.append(f"> note: {_escape(note)}")
    out += ["", f"<details><summary>All {len(report.layers)} layer calls</summary>", "",
            *_table(report.layers[:MAX_ROWS], report)]
    if len(report.layers) > MAX_ROWS:
        out.append(f"\n… {len(report.layers) - MAX_ROWS} more rows in the JSON or HTML report")
    out += ["", "</details>", "", "<sub>" + " · ".join(f"{k} {v}" for k, v in report.versions.items()) + "</sub>", ""]
    return "\n".join(out)


def _table(rows: list["LayerResult"], report: "ReportData") -> list[str]:
    both = any(r.float64 is not None for r in report.layers)
    head = "| # | layer | class | output shape | max abs | max rel | mean abs | cosine |"
    rule = "|--:|---|---|---|--:|--:|--:|--:|"
    if both:
        head += " f64 rel | cause |"
        rule += "--:|---|"
    lines = [head + " status |", rule + "---|"]
    for r in rows:
        mm = r.metrics
        name = r.node if r.call == 0 else f"{r.layer} (call {r.call})"
        cells = [str(r.index), _code(name), r.class_name, format_shapes(r.output_shapes),
                 format_error(mm.max_abs_error), format_error(mm.max_rel_error), format_error(mm.mean_abs_error),
                 format_cosine(mm.cosine_similarity)]
        if both:
            cells += [format_error(r.float64.max_rel_error) if r.float64 else "-", r.cause or ""]
        cells.append(f"➖ {r.status}" if r.status in ("skipped", "folded")
                     else "✅" if r.ok else f"❌ {r.status.replace('_', ' ')}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _input_text(info: dict) -> str:
    return f"{_code(info['name'])} {tuple(info['shape'])} {info['dtype']} ({info['origin']})"


def _code(text: object) -> str:
    return f"`{str(text).replace('`', '')}`"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")
