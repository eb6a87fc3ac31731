"""Helpers shared by the operation converters: constants in the tensor's dtype and layout, axes remapped to the
layout the tensor runs in, and the ``Converted`` of an ``Op``."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import layout as L
from ..contract import Converted
from ..nn.ops import Op, Slot
from .registry import OpCall, TensorArg

TORCH_DTYPES = {"bool": torch.bool, "float16": torch.float32, "bfloat16": torch.float32, "float32": torch.float32,
                "float64": torch.float64, "int8": torch.int64, "int16": torch.int64, "int32": torch.int64,
                "int64": torch.int64, "uint8": torch.int64, "uint16": torch.int64, "uint32": torch.int64}

# A TF graph's tensors keep their integer widths (``ops/tf_raw.py``; a spelling with ``graph_dtypes=True``).
GRAPH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float32,
                "int32": torch.int32, "int64": torch.int64, "int8": torch.int8, "uint8": torch.uint8,
                "int16": torch.int16, "bool": torch.bool}


def torch_dtype(call: OpCall, name: Any) -> torch.dtype | None:
    """Keras / TF dtype name → the torch dtype tf2torch computes it in (integers run as int64, like the inputs;
    a raw TF graph's own dtypes where the spelling fixes ``graph_dtypes``)."""
    if name is None:
        return None
    if isinstance(name, dict):  # tf_keras DType serialization
        name = name.get("name") or name.get("config", {}).get("name")
    key = str(name).removeprefix("tf.")
    table = GRAPH_DTYPES if call.arg("graph_dtypes", False) else TORCH_DTYPES
    if key not in table:
        call.fail(f"dtype {name!r} is not supported")
    return table[key]


def constant_dtype(value: Any, like: torch.dtype | None, keras_major: int) -> torch.dtype:
    """The dtype a Python / numpy constant takes next to a tensor of dtype ``like``: the tensor's own dtype
    (TF converts the constant; Keras 3 treats Python scalars as weak types), except a float constant next to an
    integer tensor, which Keras 3 promotes to float32 (TF refuses that call when the model is built)."""
    array = np.asarray(value)
    if like is None:
        return torch.bool if array.dtype == bool else (torch.float32 if array.dtype.kind == "f" else torch.int64)
    if like.is_floating_point:
        return like
    if array.dtype.kind == "f" and not np.all(np.mod(array, 1) == 0):
        return torch.float32
    if array.dtype.kind == "f" and keras_major >= 3:
        return torch.float32
    return like


def layout_constant(value: Any, dtype: torch.dtype, rank: int, layout: L.Layout) -> torch.Tensor:
    """A constant broadcast against a tensor of ``rank`` held in ``layout``: padded to the rank and permuted."""
    t = torch.as_tensor(np.asarray(value), dtype=dtype)
    if t.dim() == 0 or layout != L.CHANNELS_FIRST:
        return t
    t = t.reshape(*([1] * (rank - t.dim())), *t.shape)
    return t.permute(L.to_channels_first_perm(rank)).contiguous()


def common_layout(call: OpCall, tensors: list[TensorArg], constants: list[Any]) -> L.Layout:
    """The layout an elementwise op can run in without moving its inputs: their shared layout when all have the
    same rank and every constant broadcasts in it; KERAS otherwise."""
    layouts = {call.layout(t) for t in tensors}
    ranks = {call.rank(t) for t in tensors}
    if len(layouts) != 1 or len(ranks) != 1:
        return L.KERAS
    layout, rank = layouts.pop(), ranks.pop()
    if layout == L.KERAS:
        return layout
    dims = [np.ndim(c) for c in constants]
    if all(d == 0 for d in dims):
        return layout
    if layout == L.CHANNELS_FIRST and all(d <= rank for d in dims):
        return layout
    return L.KERAS


class Stored:
    """A constant operand that is a stored weight (a TF graph's variable, ``ops/tf_raw.py``): its buffer is kept
    in the state_dict, so a module rebuilt by ``tf2torch.load`` gets its value back."""

    def __init__(self, value: Any):
        self.value = value


def elementwise(call: OpCall, fn: str, operands: list[Any], kwargs: dict[str, Any] | None = None,
                constant_types: torch.dtype | None = None) -> Converted:
    """``fn`` applied elementwise to tensors and constants (either side), broadcasting like TF; runs in the
    inputs' own layout when they share one."""
    tensors = [o for o in operands if isinstance(o, TensorArg)]
    if not tensors:
        call.fail("no tensor among the arguments")
    stored = [f"c{i}" for i, o in enumerate(o for o in operands if not isinstance(o, TensorArg) and o is not None)
              if isinstance(o, Stored)]
    operands = [o.value if isinstance(o, Stored) else o for o in operands]
    constants = [o for o in operands if not isinstance(o, TensorArg) and o is not None]
    layout = common_layout(call, tensors, constants)
    rank = call.rank(tensors[0])
    like = next((call.dtype(t) for t in tensors if call.dtype(t).is_floating_point), call.dtype(tensors[0]))
    args, buffers = [], {}
    for o in operands:
        if isinstance(o, TensorArg) or o is None:
            args.append(Slot(o.index) if o is not None else None)
            continue
        dtype = constant_types or constant_dtype(o, like, call.keras_major)
        name = f"c{len(buffers)}"
        buffers[name] = layout_constant(o, dtype, rank, layout)
        args.append(Slot(name))
    return op_result(call, Op(fn, args, kwargs, buffers, label=call.spelling.name, stored=stored), layout)


def op_result(call: OpCall, module: Op, layout: L.Layout = L.KERAS,
              output_layouts: Any = None) -> Converted:
    """Every input in ``layout`` (tensors the op does not treat elementwise arrive in KERAS layout)."""
    return Converted(module, input_layouts=[layout] * call.n_inputs,
                     output_layouts=layout if output_layouts is None else output_layouts, output_mask="none")


def keras_op(call: OpCall, fn: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> Converted:
    """An op computed on tensors in KERAS layout (axes as Keras numbers them)."""
    return op_result(call, Op(fn, [slots(a) for a in args], {k: slots(v) for k, v in (kwargs or {}).items()},
                              label=call.spelling.name))


def slots(value: Any) -> Any:
    if isinstance(value, TensorArg):
        return Slot(value.index)
    if isinstance(value, list):
        return [slots(v) for v in value]
    if isinstance(value, tuple):
        return tuple(slots(v) for v in value)
    return value


def axis_list(call: OpCall, name: str, rank: int, default: Any = None) -> list[int] | None:
    """An ``axis`` argument (int, list or None) as a list of non-negative Keras axes (None stays None)."""
    axis = call.constant(name, default)
    if axis is None:
        return None
    axes = list(axis) if isinstance(axis, (list, tuple, np.ndarray)) else [axis]
    out = []
    for a in axes:
        a = int(a)
        if not -rank <= a < rank:
            call.fail(f"axis {a} is out of range for a tensor of rank {rank}")
        out.append(a % rank)
    return out


def in_layout(axes: list[int] | None, rank: int, layout: L.Layout) -> list[int] | None:
    if axes is None:
        return None
    return [L.keras_axis_in_layout(a, rank, layout) for a in axes]
