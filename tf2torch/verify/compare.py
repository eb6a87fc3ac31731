"""Per layer call: compare Keras's output (the reference) with the converted module's, and judge it.

- ``max_abs_error`` = max |Δ|; ``max_rel_error`` = max |Δ| / max |reference| (the error against the layer's own
  scale, the measure tests use: elementwise relative error explodes wherever the reference crosses zero);
  ``mean_abs_error``; ``cosine_similarity`` of the flattened outputs.
- A call passes when its shapes agree and ``max_abs_error <= atol + rtol * max|reference|``.
- Round-off or semantic: with a float32 and a float64 run, an error that falls by at least ``ROUND_OFF_FALL``
  (three orders of magnitude) in float64 is round-off; one that does not is a semantic mismatch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

ROUND_OFF_FALL = 1e3
DEFAULT_RTOL = {"float32": 1e-5, "float64": 1e-10}
DEFAULT_ATOL = {"float32": 0.0, "float64": 0.0}

NOT_ARITHMETIC = ("name", "trainable", "dtype", "build_config", "batch_input_shape", "batch_shape")


def relevant_config(class_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """The config values that matter for ``class_name``'s arithmetic, as its converter declares them
    (``Facts.arithmetic``); else every short scalar value but names, initializers and the like."""
    from .. import api

    keys = api.layer_facts(class_name).arithmetic
    if keys:
        return {k: config[k] for k in keys if k in config}
    return {k: v for k, v in config.items()
            if k not in NOT_ARITHMETIC and not k.endswith(("_initializer", "_regularizer", "_constraint"))
            and not k.startswith("_") and (isinstance(v, (int, float, str, bool)) or _short_list(v))}


def _short_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) <= 8 and all(isinstance(v, (int, float, str, bool)) for v in value)


@dataclass
class Metrics:
    """How one layer call's outputs differ (the worst over its outputs); None fields where shapes differ."""

    max_abs_error: float | None = None
    max_rel_error: float | None = None
    mean_abs_error: float | None = None
    cosine_similarity: float | None = None
    scale: float | None = None
    worst_index: list[int] | None = None
    ok: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite_or_text(v) for k, v in asdict(self).items()}


def _finite_or_text(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


@dataclass
class LayerResult:
    """One row of the report: one call of one Keras layer."""

    index: int
    node: str
    layer: str
    class_name: str
    call: int
    output_shapes: list[list[int]]
    status: str = "missing"  # pass | fail | shape_mismatch | missing | skipped | folded (by --optimize)
    metrics: Metrics = field(default_factory=Metrics)
    torch_shapes: list[list[int]] | None = None
    float64: Metrics | None = None
    cause: str | None = None  # round-off | semantic, when a float32 failure has a float64 run beside it
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "skipped", "folded")

    def to_dict(self) -> dict[str, Any]:
        row = {"index": self.index, "node": self.node, "layer": self.layer, "class_name": self.class_name,
               "call": self.call, "output_shapes": self.output_shapes, "status": self.status, "ok": self.ok}
        metrics = self.metrics.to_dict()
        metrics.pop("ok")
        row.update(metrics)
        row["torch_shapes"] = self.torch_shapes
        row["float64"] = self.float64.to_dict() if self.float64 is not None else None
        row["cause"] = self.cause
        row["note"] = self.note
        return row


def _as_float(ref: torch.Tensor, got: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ref = ref if ref.is_floating_point() else ref.double()
    return ref, got.to(ref.dtype) if got.dtype != ref.dtype else got


class Scratch:
    """One reused buffer for |Δ|: a fresh multi-megabyte tensor per layer would page-fault its way in."""

    def __init__(self) -> None:
        self.buffer = torch.empty(0)

    def like(self, ref: torch.Tensor) -> torch.Tensor:
        if self.buffer.dtype != ref.dtype or self.buffer.numel() < ref.numel():
            self.buffer = torch.empty(ref.numel(), dtype=ref.dtype)
        return self.buffer[: ref.numel()].view(ref.shape)


def _abs_difference(ref: torch.Tensor, got: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """|got - ref| into ``out``; equal non-finite values count as equal, other non-finite ones as far apart."""
    err = torch.sub(got, ref, out=out).abs_()
    if not math.isfinite(float(err.amax())):
        same = (ref == got) | (torch.isnan(ref) & torch.isnan(got))
        err = torch.where(same, torch.zeros_like(err), torch.where(torch.isnan(err), torch.inf, err))
    return err


def _scale(ref: torch.Tensor) -> float:
    """max |reference| over its finite values (``amax``/``amin``: the fastest full reductions on CPU)."""
    scale = max(float(ref.amax()), -float(ref.amin()))
    if not math.isfinite(scale):
        finite = ref[torch.isfinite(ref)]
        scale = max(float(finite.amax()), -float(finite.amin())) if finite.numel() else 0.0
    return scale


def _cosine(ref: torch.Tensor, got: torch.Tensor, err: torch.Tensor) -> float:
    """cos = (|r|² + |g|² - |r - g|²) / (2 |r| |g|): three norms, no product tensor."""
    nr, ng = float(torch.linalg.vector_norm(ref)), float(torch.linalg.vector_norm(got))
    nd = float(torch.linalg.vector_norm(err))
    if nr == 0 or ng == 0 or not math.isfinite(nr * ng * nd):
        return 1.0 if nd == 0 else 0.0
    return max(-1.0, min(1.0, (nr * nr + ng * ng - nd * nd) / (2 * nr * ng)))


def compare_one(ref: torch.Tensor, got: torch.Tensor, rtol: float | None = None, atol: float = 0.0,
                scratch: Scratch | None = None) -> Metrics:
    """Metrics of one output, judged when ``rtol`` is given. Where the error peaks is found (``argmax``, a slow
    reduction) only when it matters: without a tolerance, or for a failure."""
    ref, got = _as_float(ref, got)
    if ref.numel() == 0:
        return Metrics(0.0, 0.0, 0.0, 1.0, 0.0, None, True)
    err = _abs_difference(ref, got, (scratch or Scratch()).like(ref))
    max_abs = float(err.amax())
    scale = _scale(ref)
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    ok = rtol is None or max_abs <= atol + rtol * scale
    index = _unravel(int(err.argmax()), tuple(err.shape)) if max_abs > 0 and (rtol is None or not ok) else None
    return Metrics(max_abs, rel, float(err.mean()), _cosine(ref, got, err), scale, index, ok)


def _unravel(flat: int, shape: tuple[int, ...]) -> list[int]:
    index = []
    for size in reversed(shape):
        index.append(flat % size)
        flat //= size
    return index[::-1]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Reductions on one thread: a few passes over memory gain little from threads, and on a busy machine each
    parallel reduction can stall on a descheduled worker (measured: ResNet50's comparisons took 1.3-3.2 s on
    two threads at load 4, 0.4-0.5 s on one)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def compare_outputs(refs: Sequence[torch.Tensor], gots: Sequence[torch.Tensor], rtol: float,
                    atol: float, scratch: Scratch | None = None) -> tuple[Metrics, bool]:
    """The worst metrics over a call's outputs and whether the shapes agree."""
    if len(refs) != len(gots) or any(tuple(r.shape) != tuple(g.shape) for r, g in zip(refs, gots)):
        return Metrics(), False
    with one_thread():
        each = [compare_one(r, g, rtol, atol, scratch) for r, g in zip(refs, gots)]
    worst = max(each, key=lambda m: (m.max_rel_error if m.max_rel_error is not None else math.inf))
    worst.mean_abs_error = max(m.mean_abs_error or 0.0 for m in each)
    worst.cosine_similarity = min(m.cosine_similarity if m.cosine_similarity is not None else 1.0 for m in each)
    worst.ok = all(m.ok for m in each)
    return worst, True


def cause_of(float32: Metrics, float64: Metrics | None) -> str | None:
    """Round-off when the float64 error is at least ``ROUND_OFF_FALL`` times smaller, semantic otherwise."""
    if float64 is None or float32.max_rel_error is None or float64.max_rel_error is None:
        return None
    if float64.max_rel_error * ROUND_OFF_FALL <= float32.max_rel_error:
        return "round-off"
    return "semantic"
