"""A self-contained HTML page (inline CSS and SVG, no scripts, nothing fetched) a reviewer can open anywhere.

Sections: the verdict, summary cards, the first divergence with the config values that matter, the error plot,
the per-call table, the model summary and the versions of every framework involved. ``fragment=True`` gives
the same content as one ``<div>`` for notebooks (``Report._repr_html_``).
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from .plot import error_plot
from .report_data import format_cosine, format_error, format_shapes

if TYPE_CHECKING:
    from .compare import LayerResult
    from .report_data import ReportData

CSS = """
.t2t{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#0f172a;line-height:1.45;max-width:1180px;margin:0 auto;padding:24px}
.t2t h1{font-size:22px;margin:0}.t2t h2{font-size:16px;margin:0 0 12px 0;color:#1e293b}
.t2t .head{display:flex;align-items:center;gap:14px;margin-bottom:6px}
.t2t .sub{color:#64748b;font-size:13px;margin-bottom:18px}
.t2t .pill{font-weight:700;font-size:13px;padding:4px 12px;border-radius:999px;letter-spacing:.04em}
.t2t .pass{background:#dcfce7;color:#166534}.t2t .fail{background:#fee2e2;color:#991b1b}
.t2t .cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:16px}
.t2t .card{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:12px 14px}
.t2t .card .k{font-size:12px;color:#64748b;text-transform:uppercase;letter-spacing:.05em}
.t2t .card .v{font-size:20px;font-weight:650;margin-top:2px;word-break:break-all}
.t2t .card .v.small{font-size:15px}
.t2t section{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:16px;margin-bottom:16px}
.t2t .alert{border-color:#fecaca;background:#fff7f7}
.t2t .alert p{margin:4px 0 10px 0}
.t2t code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;
 background:#f1f5f9;padding:1px 5px;border-radius:4px}
.t2t table{border-collapse:collapse;width:100%;font-size:12.5px}
.t2t th{position:sticky;top:0;background:#f1f5f9;text-align:left;font-weight:600;color:#334155;
 padding:6px 8px;border-bottom:1px solid #cbd5e1;white-space:nowrap}
.t2t td{padding:4px 8px;border-bottom:1px solid #f1f5f9;white-space:nowrap}
.t2t td.num{text-align:right;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.t2t th.num{text-align:right}
.t2t tr.bad td{background:#fef2f2}.t2t tr.first td{background:#fee2e2;font-weight:600}
.t2t .scroll{max-height:560px;overflow:auto;border:1px solid #e2e8f0;border-radius:8px}
.t2t .ok{color:#15803d;font-weight:600}.t2t .skip{color:#94a3b8}.t2t .no{color:#b91c1c;font-weight:700}
.t2t .grid2{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:16px}
.t2t .kv td{white-space:normal;overflow-wrap:anywhere;vertical-align:top}
.t2t .kv td:first-child{color:#64748b;width:30%;overflow-wrap:normal}
.t2t .grid2>section{min-width:0}
.t2t .note{color:#92400e;background:#fffbeb;border:1px solid #fde68a;border-radius:8px;padding:8px 12px;
 margin-bottom:10px;font-size:13px}
.t2t details{margin-bottom:8px}.t2t summary{cursor:pointer;color:#475569;font-size:13px;margin-bottom:6px}
.t2t .foot{color:#94a3b8;font-size:12px;text-align:center;margin-top:8px}
"""


def html_report(report: "ReportData", fragment: bool = False) -> str:
    body = "\n".join([
        _header(report), _cards(report), *[f'<div class="note">{escape(n)}</div>' for n in report.notes],
        _divergence(report),
        f'<section><h2>Relative error per layer call</h2>{error_plot(report)}</section>',
        _table(report), '<div class="grid2">' + _model(report) + _versions(report) + "</div>",
        '<div class="foot">made by tf2torch verify · self-contained page, no scripts</div>'])
    content = f'<style>{CSS}</style>\n<div class="t2t">\n{body}\n</div>'
    if fragment:
        return content
    title = escape(f"tf2torch verify: {report.model.get('name')} — {'match' if report.ok else 'MISMATCH'}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"></head>\n'
            f'<body style="margin:0;background:#f8fafc">{content}</body></html>\n')


def _header(report: "ReportData") -> str:
    m = report.model
    pill = ('<span class="pill pass">MATCH</span>' if report.ok else '<span class="pill fail">MISMATCH</span>')
    return (f'<div class="head"><h1>tf2torch verify · {escape(str(m.get("name")))}</h1>{pill}</div>'
            f'<div class="sub">{escape(str(m.get("source")))} · Keras {escape(str(m.get("keras_version")))} '
            f'({escape(str(m.get("format")))}) · run with {escape(str(m.get("loaded_with")))} and torch '
            f'{escape(report.versions.get("torch", "?"))} · {len(report.layers)} layer calls compared</div>')


def _cards(report: "ReportData") -> str:
    failing = len(report.failed)
    cards = [
        ("layer calls", f'{len(report.layers)}', f"{failing} failing" if failing else "all within tolerance"),
        ("max relative error", format_error(report.max_rel_error), f"judged in {report.judged_dtype}"),
        ("first divergence", report.first_divergence or "none",
         (report.divergence or {}).get("class_name", "every layer matches")),
        ("precision", report.dtype, f"rtol {report.rtol:g} · atol {report.atol:g}"),
    ]
    html = ['<div class="cards">']
    for key, value, hint in cards:
        small = " small" if len(value) > 14 else ""
        html.append(f'<div class="card"><div class="k">{escape(key)}</div><div class="v{small}">{escape(value)}</div>'
                    f'<div class="sub" style="margin:0">{escape(hint)}</div></div>')
    html.append("</div>")
    return "".join(html)


def _divergence(report: "ReportData") -> str:
    d = report.divergence
    if not d:
        return ""
    config = "".join(f"<tr><td><code>{escape(str(k))}</code></td><td><code>{escape(repr(v))}</code></td></tr>"
                     for k, v in d["config"].items())
    cause = f" · cause: <b>{escape(d['cause'])}</b>" if d.get("cause") else ""
    return (f'<section class="alert"><h2>First divergence: <a href="#first-failure"><code>{escape(d["layer"])}'
            '</code></a> '
            f'({escape(d["class_name"])}, call {d["call"]}){cause}</h2><p>{escape(d["message"])}</p>'
            + (f'<table class="kv" style="width:auto"><tr><th>config</th><th>value</th></tr>{config}</table>'
               if config else "") + "</section>")


def _table(report: "ReportData") -> str:
    """The per-call table. A failing report opens at its first failing call (no script can scroll the page): the
    calls before it, all passing, fold into a ``<details>`` above, and that row carries ``id="first-failure"``,
    which the first-divergence box links to."""
    both = any(r.float64 is not None for r in report.layers)
    head = ["#", "layer", "class", "output shape", "max abs", "max rel", "mean abs", "cosine"]
    head += ["float64 rel", "cause"] if both else []
    head.append("status")
    numeric = {"#", "max abs", "max rel", "mean abs", "cosine", "float64 rel"}
    ths = "".join(f'<th class="{"num" if h in numeric else ""}">{escape(h)}</th>' for h in head)
    first = next((i for i, r in enumerate(report.layers) if not r.ok), 0)
    before = "\n".join(_row(r, report, both) for r in report.layers[:first])
    rows = "\n".join(_row(r, report, both, anchor=i == 0 and not report.ok)
                     for i, r in enumerate(report.layers[first:]))
    earlier = (f'<details><summary>{first} earlier layer call{"s" if first > 1 else ""}, all within tolerance'
               f'</summary><div class="scroll"><table><thead><tr>{ths}</tr></thead><tbody>{before}</tbody></table>'
               "</div></details>") if first else ""
    return (f'<section><h2>Layer calls ({len(report.layers)})</h2>{earlier}<div class="scroll"><table>'
            f"<thead><tr>{ths}</tr></thead><tbody>{rows}</tbody></table></div></section>")


def _row(r: "LayerResult", report: "ReportData", both: bool, anchor: bool = False) -> str:
    m = r.metrics
    cls = "first" if (r.layer == report.first_divergence and not r.ok and
                      r.node == (report.divergence or {}).get("node")) else ("bad" if not r.ok else "")
    name = r.node if r.call == 0 else f"{r.layer} (call {r.call})"
    cells = [(str(r.index), True), (f"<code>{escape(name)}</code>", False), (escape(r.class_name), False),
             (escape(format_shapes(r.output_shapes)), False), (format_error(m.max_abs_error), True),
             (format_error(m.max_rel_error), True), (format_error(m.mean_abs_error), True),
             (format_cosine(m.cosine_similarity), True)]
    if both:
        cells += [(format_error(r.float64.max_rel_error) if r.float64 else "-", True), (escape(r.cause or ""), False)]
    status = (f'<span class="skip">{r.status}</span>' if r.status in ("skipped", "folded")
              else '<span class="ok">pass</span>' if r.ok
              else f'<span class="no">{escape(r.status.replace("_", " "))}</span>')
    cells.append((status, False))
    tds = "".join(f'<td class="{"num" if num else ""}">{text}</td>' for text, num in cells)
    ident = ' id="first-failure"' if anchor else ""
    return f'<tr class="{cls}"{ident}>{tds}</tr>'


def _kv(rows: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><td>{escape(k)}</td><td>{v}</td></tr>" for k, v in rows)


def _model(report: "ReportData") -> str:
    m = report.model
    inputs = "<br>".join(f"<code>{escape(i['name'])}</code> {escape(str(tuple(i['shape'])))} {escape(i['dtype'])}"
                         f" — {escape(i['origin'])}" for i in report.inputs)
    classes = ", ".join(f"{escape(k)} ×{v}" for k, v in list(m.get("classes", {}).items())[:14])
    more = len(m.get("classes", {})) - 14
    rows = [("name", escape(str(m.get("name")))), ("file", f"<code>{escape(str(m.get('source')))}</code>"),
            ("written by", f"Keras {escape(str(m.get('keras_version')))} ({escape(str(m.get('format')))})"),
            ("parameters", f"{m.get('parameters', 0):,}"),
            ("layers / calls", f"{m.get('layers')} / {m.get('calls')}"),
            ("torch layout", escape(str(m.get("layout")))), ("inputs", inputs),
            ("layer classes", classes + (f", … {more} more" if more > 0 else ""))]
    timings = ", ".join(f"{escape(k)} {v:.2f} s" for k, v in report.timings.items())
    rows.append(("timings", timings))
    return f'<section><h2>Model</h2><table class="kv">{_kv(rows)}</table></section>'


def _versions(report: "ReportData") -> str:
    rows = [(k, f"<code>{escape(str(v))}</code>") for k, v in report.versions.items()]
    return f'<section><h2>Versions</h2><table class="kv">{_kv(rows)}</table></section>'
