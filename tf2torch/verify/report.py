"""The verification report: one row per Keras layer call, the verdict, and what is needed to reproduce it.

``Report.to_json`` follows ``docs/report-schema.md`` (``schema: "tf2torch-verify/1"``); ``to_markdown`` is
for a pull-request comment, ``to_html`` a self-contained page, ``to_text`` the terminal table, and
``_repr_html_`` shows the HTML page inline in a notebook.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .compare import LayerResult

SCHEMA = "tf2torch-verify/1"
QUIET_FAILURES = 5  # failing calls ``verify -q`` lists below its verdict
REPORT_SUFFIXES = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}


@dataclass
class Report:
    ok: bool
    max_rel_error: float
    first_divergence: str | None
    layers: list[LayerResult]
    dtype: str
    rtol: float
    atol: float
    divergence: dict[str, Any] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # -- views ------------------------------------------------------------------------------------------
    @property
    def failed(self) -> list[LayerResult]:
        return [r for r in self.layers if not r.ok]

    @property
    def judged_dtype(self) -> str:
        """The run whose errors decide pass/fail: float64 only when only float64 ran."""
        return "float64" if self.dtype == "float64" else "float32"

    def summary_line(self) -> str:
        folded = sum(1 for r in self.layers if r.status == "folded")
        n = len(self.layers) - folded
        more = f" ({folded} more folded by --optimize into the layers compared)" if folded else ""
        if self.ok:
            return (f"OK: {n} layer calls match within rtol={self.rtol:g}, atol={self.atol:g} ({self.judged_dtype})"
                    f"{more}; max relative error {format_error(self.max_rel_error)}")
        d = self.divergence or {}
        return (f"MISMATCH: {len(self.failed)} of {n} layer calls differ; first divergence at "
                f"{self.first_divergence} ({d.get('class_name', '?')}): {d.get('message', '')}")

    def quiet_text(self, shown: int = QUIET_FAILURES) -> str:
        """``verify -q``: the verdict, then at most ``shown`` failing calls and how many more (issue #20: a
        mismatching model printed 367 FAIL lines)."""
        lines = [self.summary_line()]
        failed = self.failed
        for r in failed[:shown]:
            lines.append(f"  FAIL {r.node} ({r.class_name}): {r.status.replace('_', ' ')}, max rel "
                         f"{format_error(r.metrics.max_rel_error)}")
        if len(failed) > shown:
            lines.append(f"  … and {len(failed) - shown} more failing calls: --report report.html lists them all")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "ok": self.ok,
            "max_rel_error": _json_number(self.max_rel_error),
            "first_divergence": self.first_divergence,
            "divergence": self.divergence,
            "dtype": self.dtype,
            "rtol": self.rtol,
            "atol": self.atol,
            "summary": self.summary_line(),
            "model": self.model,
            "inputs": self.inputs,
            "versions": self.versions,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "notes": self.notes,
            "layers": [r.to_dict() for r in self.layers],
        }

    # -- writers ------------------------------------------------------------------------------------------
    def to_json(self, path: str | os.PathLike | None = None, indent: int | None = 2) -> str:
        text = json.dumps(self.to_dict(), indent=indent, allow_nan=False)
        return _maybe_write(text + "\n", path)

    def to_markdown(self, path: str | os.PathLike | None = None) -> str:
        from .report_md import markdown_report

        return _maybe_write(markdown_report(self), path)

    def to_html(self, path: str | os.PathLike | None = None) -> str:
        from .report_html import html_report

        return _maybe_write(html_report(self), path)

    def to_text(self, color: bool = False, width: int | None = None) -> str:
        from .report_text import text_report

        return text_report(self, color=color, width=width)

    def save(self, path: str | os.PathLike) -> None:
        """Write the report in the format its suffix names (.json, .md, .html)."""
        kind = report_kind(path)
        {"json": self.to_json, "markdown": self.to_markdown, "html": self.to_html}[kind](path)

    def _repr_html_(self) -> str:
        from .report_html import html_report

        return html_report(self, fragment=True)

    def __repr__(self) -> str:
        return f"<tf2torch.verify Report: {self.summary_line()}>"


def report_kind(path: str | os.PathLike) -> str:
    from ..errors import Tf2TorchError

    suffix = Path(path).suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise Tf2TorchError(f"--report {path}: unknown report type {suffix or '(none)'}; use .json, .md or .html")
    return REPORT_SUFFIXES[suffix]


def _maybe_write(text: str, path: str | os.PathLike | None) -> str:
    if path is not None:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return text


def _json_number(value: float | None) -> Any:
    if value is None:
        return None
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf"
    return value


def format_error(value: Any) -> str:
    """Errors for people: 3 significant digits, exact zero as 0."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return "inf" if value > 0 else "nan"
    return f"{value:.2e}"


def format_cosine(value: Any) -> str:
    if value is None or isinstance(value, str):
        return "-" if value is None else value
    return f"{value:.6f}"


def format_shapes(shapes: list[list[int]] | None) -> str:
    if not shapes:
        return "-"
    return " ".join("(" + ", ".join(str(d) for d in s) + ")" for s in shapes)
