"""The verification report: one row per Keras layer call, the verdict, and what is needed to reproduce it.

``Report.to_json`` follows ``docs/report-schema.md`` (``schema: "tf2torch-verify/1"``); ``to_markdown`` is
for a pull-request comment, ``to_html`` a self-contained page, ``to_text`` the terminal table, and
``_repr_html_`` shows the HTML page inline in a notebook.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .report_data import SCHEMA, ReportData, format_cosine, format_error, format_shapes  # noqa: F401  (their old home)

REPORT_SUFFIXES = {".json": "json", ".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}


class Report(ReportData):
    """The report (its data and views in ``report_data.ReportData``) and the writers of its formats."""

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
