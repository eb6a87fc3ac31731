"""Reductions (mean, sum, max, min, prod, std, var, any, all) and argmax / argmin, over Keras axes remapped to
the layout the tensor runs in. TF and Keras 3 ``std`` / ``var`` are the population statistics (no correction).
"""

from __future__ import annotations

from .. import layout as L
from ..contract import Converted
from ..nn.ops import Op, Slot
from .common import axis_list, in_layout, op_result, torch_dtype
from .registry import OpCall, operation, spelling

REDUCTIONS = {  # operation → (torch reduction, Keras 3 op class, tf_keras symbol)
    "mean": ("mean", "Mean", "math.reduce_mean"),
    "sum": ("sum", "Sum", "math.reduce_sum"),
    "max": ("amax", "Max", "math.reduce_max"),
    "min": ("amin", "Min", "math.reduce_min"),
    "prod": ("prod", "Prod", "math.reduce_prod"),
    "std": ("std", "Std", "math.reduce_std"),
    "var": ("var", "Var", "math.reduce_variance"),
    "any": ("any", "Any", "math.reduce_any"),
    "all": ("all", "All", "math.reduce_all"),
}

for _op, (_, _k3, _tf) in REDUCTIONS.items():
    spelling(f"keras.ops.{_k3}", _op, "x, axis=None, keepdims=False, initial=None, dtype=None")
    spelling(f"tf.{_tf}", _op, "input_tensor:x, axis=None, keepdims=False, name=None")
spelling("keras.ops.Amax", "max", "x, axis=None, keepdims=False")
spelling("keras.ops.Amin", "min", "x, axis=None, keepdims=False")


def _operation(call: OpCall) -> Converted:
    x = call.tensor("x")
    if call.constant("initial", None) is not None:
        call.fail("a reduction with an initial value is not supported")
    if call.constant("dtype", None) is not None:
        call.fail("a reduction with a dtype is not supported")
    rank = call.rank(x)
    axes = axis_list(call, "axis", rank)
    keepdims = bool(call.constant("keepdims"))
    layout = call.layout(x)
    out_layout = reduced_layout(rank, layout, axes, keepdims)
    if out_layout is None:
        layout, out_layout = L.KERAS, L.KERAS
    fn, kwargs = REDUCTIONS[call.op][0], {}
    module = Op("reduce", [Slot(x.index), fn, in_layout(axes, rank, layout), keepdims], kwargs,
                label=call.spelling.name)
    return op_result(call, module, layout, out_layout)


def reduced_layout(rank: int, layout: L.Layout, axes: list[int] | None, keepdims: bool) -> L.Layout | None:
    """The layout of a reduction's result computed on a tensor in ``layout``; None when it would be neither
    KERAS nor CHANNELS_FIRST (the op then runs on a KERAS-layout input)."""
    if layout == L.KERAS or (keepdims and isinstance(layout, str)):
        return layout
    if not isinstance(layout, str):
        return None
    if axes is None:
        return L.KERAS
    kept_keras = [a for a in range(rank) if a not in axes]
    kept_held = [a for a in (0, rank - 1, *range(1, rank - 1)) if a not in axes]
    if kept_held == kept_keras:
        return L.KERAS
    n = len(kept_keras)
    if n >= 3 and [kept_keras[i] for i in L.to_channels_first_perm(n)] == kept_held:
        return L.CHANNELS_FIRST
    return None


for _op in REDUCTIONS:
    operation(_op)(_operation)


spelling("keras.ops.Argmax", "argmax", "x, axis=None, keepdims=False")
spelling("keras.ops.Argmin", "argmin", "x, axis=None, keepdims=False")
spelling("tf.math.argmax", "argmax", "input:x, axis=None, name=None, dimension=None, output_type='int64'")
spelling("tf.math.argmin", "argmin", "input:x, axis=None, name=None, dimension=None, output_type='int64'")
spelling("tf.argmax", "argmax", "input:x, axis=None, name=None, dimension=None, output_type='int64'")
spelling("tf.argmin", "argmin", "input:x, axis=None, name=None, dimension=None, output_type='int64'")


@operation("argmax")
@operation("argmin")
def convert_arg_reduce(call: OpCall) -> Converted:
    """Indices as int64 (tf2torch runs every integer tensor as int64; a raw TF graph's ``output_type``). TF's
    default axis is 0; Keras 3's None flattens. Ties: the first index in TF, Keras 3 and torch alike."""
    x = call.tensor("x")
    rank = call.rank(x)
    if call.constant("dimension", None) is not None:
        call.fail("the deprecated dimension argument is not supported; use axis")
    output_type = str(call.constant("output_type", "int64"))
    kwargs = {"dtype": torch_dtype(call, output_type)} if call.arg("graph_dtypes", False) else {}
    if not kwargs and output_type not in ("int64", "int32"):
        call.fail(f"output_type {output_type!r} is not supported")
    axis = call.constant("axis")
    if axis is None and call.spelling.name.startswith("tf."):
        axis = 0
    keepdims = bool(call.constant("keepdims", False))
    if isinstance(axis, (list, tuple)):
        call.fail("argmax/argmin over several axes is not supported")
    if axis is not None and not -rank <= int(axis) < rank:
        call.fail(f"axis {axis} is out of range for a tensor of rank {rank}")
    axes = None if axis is None else [int(axis) % rank]
    layout = call.layout(x)
    out_layout = reduced_layout(rank, layout, axes, keepdims) if axes is not None else None
    if out_layout is None:
        layout, out_layout = L.KERAS, L.KERAS
    dim = None if axes is None else in_layout(axes, rank, layout)[0]
    module = Op("arg_reduce", [Slot(x.index), call.op, dim, keepdims], kwargs, label=call.spelling.name)
    return op_result(call, module, layout, out_layout)
