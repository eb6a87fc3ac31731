"""Build a real Keras model, save it, convert it with tf2torch and compare with Keras's own output.

One tolerance for the whole suite: the maximum relative output error ``max|Δ| / max|reference|`` stays within
``RTOL`` (float32 round-off). Every parametrized layer test runs against Keras 3 and tf_keras (Keras 2).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import torch

import tf2torch

RTOL = 1e-5
FLAVOURS = ("keras3", "tf_keras")
LAYOUTS = ("channels_first", "keras")
ROUND_TRIP: Any = None  # a round_trip.Recorder while tests/test_round_trip.py's final test is selected


def keras_module(flavour: str) -> Any:
    if flavour == "keras3":
        import keras

        return keras
    import tf_keras

    return tf_keras


def formats_for(flavour: str) -> tuple[str, ...]:
    """Files each Keras writes: Keras 3 → .keras and .h5; tf_keras → legacy .h5."""
    return ("keras", "h5") if flavour == "keras3" else ("h5",)


def random_inputs(model: Any, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = [2 if d is None else int(d) for d in tensor.shape]
        dtype = str(getattr(tensor.dtype, "name", tensor.dtype))
        if "int" in dtype:
            arrays.append(rng.integers(0, 5, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype("float32"))
    return arrays


def keras_outputs(model: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    if isinstance(out, dict):  # model.outputs order: Keras flattens dicts in sorted key order
        out = [out[key] for key in sorted(out)]
    if not isinstance(out, (list, tuple)):
        out = [out]
    return [np.asarray(o) for o in out]


def to_torch_input(array: np.ndarray, layout: str) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(array))
    if layout == "channels_first" and t.dim() in (4, 5):
        t = t.permute(0, t.dim() - 1, *range(1, t.dim() - 1))
    return t


def from_torch_output(t: torch.Tensor, layout: str) -> np.ndarray:
    if layout == "channels_first" and t.dim() in (4, 5):
        t = t.permute(0, *range(2, t.dim()), 1)
    return t.detach().numpy()


def torch_outputs(module: torch.nn.Module, inputs: Sequence[np.ndarray], layout: str) -> list[np.ndarray]:
    tensors = [to_torch_input(a, layout) for a in inputs]
    with torch.no_grad():
        out = module(*tensors)
    if not isinstance(out, (list, tuple)):
        out = [out]
    if ROUND_TRIP is not None:
        ROUND_TRIP.record(module, tensors, list(out))
    return [from_torch_output(o, layout) for o in out]


def max_rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    err = float(np.max(np.abs(got.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    return err / scale if scale > 0 else err


def assert_matches(got: Sequence[np.ndarray], ref: Sequence[np.ndarray], rtol: float = RTOL, what: str = "") -> float:
    assert len(got) == len(ref), f"{what}: {len(got)} outputs, Keras has {len(ref)}"
    worst = 0.0
    for i, (g, r) in enumerate(zip(got, ref)):
        assert g.shape == r.shape, f"{what}: output {i} shape {g.shape}, Keras {r.shape}"
        err = max_rel_error(g, r)
        worst = max(worst, err)
        assert err <= rtol, f"{what}: output {i} max relative error {err:.3g} > {rtol:g}"
    return worst


def check_conversion(build: Callable[[Any], Any], flavour: str, tmp_path: Path, *,
                     inputs: Sequence[np.ndarray] | None = None, layouts: Sequence[str] = LAYOUTS,
                     formats: Sequence[str] | None = None, rtol: float = RTOL) -> float:
    """Build with ``build(keras_module)``, save in every format, convert in every layout, compare outputs.
    Returns the worst relative error seen."""
    k = keras_module(flavour)
    model = build(k)
    inputs = list(inputs) if inputs is not None else random_inputs(model)
    ref = keras_outputs(model, inputs)
    worst = 0.0
    for fmt in formats or formats_for(flavour):
        path = tmp_path / f"{flavour}_model.{fmt}"
        model.save(str(path))
        for layout in layouts:
            module = tf2torch.convert(path, layout=layout)
            got = torch_outputs(module, inputs, layout)
            worst = max(worst, assert_matches(got, ref, rtol, f"{flavour} .{fmt} layout={layout}"))
    return worst
