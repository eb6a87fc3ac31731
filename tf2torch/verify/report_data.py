"""The verification report's data: one row per Keras layer call, the verdict, what is needed to reproduce it, and
the number formats every writer shares. The writers (``report_md``, ``report_html``, ``report_text``, ``plot``)
import this module; ``report.Report`` adds the methods that call them, so no writer imports ``report.py`` back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .compare import LayerResult

SCHEMA = "tf2torch-verify/1"
QUIET_FAILURES = 5  # failing calls ``verify -q`` lists below its verdict


@dataclass
class ReportData:
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
