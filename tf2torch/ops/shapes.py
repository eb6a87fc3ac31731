"""Shape operations: reshape, transpose, expand_dims, squeeze, concatenate, stack, split, unstack, tile, repeat,
broadcast_to, pad, cast, getitem / strided_slice, take / gather, zeros_like / ones_like.

They run on KERAS-layout tensors (the axes and shapes in the file are Keras's), except concatenate and stack,
which remap their axis when every input runs in one layout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import layout as L
from ..contract import Converted
from ..nn.ops import Op, Slot
from .common import axis_list, keras_op, op_result, slots, torch_dtype
from .registry import OpCall, TensorArg, has_tensor, operation, spelling


def _ints(call: OpCall, name: str, default: Any = None) -> list[int]:
    value = call.constant(name, default)
    if isinstance(value, (int, np.integer)):
        return [int(value)]
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        call.fail(f"argument {name}={value!r} is not a list of integers")


spelling("keras.ops.Reshape", "reshape", "x, newshape:shape")
spelling("tf.reshape", "reshape", "tensor:x, shape, name=None")


@operation("reshape")
def convert_reshape(call: OpCall) -> Converted:
    """The shape includes the batch axis, as the model wrote it (usually -1)."""
    shape = [-1 if v is None else v for v in _ints_or_none(call, "shape")]
    return keras_op(call, "reshape", [call.tensor("x"), shape])


def _ints_or_none(call: OpCall, name: str) -> list[int | None]:
    value = call.constant(name)
    return [None if v is None else int(v) for v in value]


spelling("keras.ops.Transpose", "transpose", "x, axes=None")
spelling("tf.compat.v1.transpose", "transpose", "a:x, perm:axes=None, name='transpose', conjugate=False")
spelling("tf.transpose", "transpose", "a:x, perm:axes=None, conjugate=False, name='transpose'")


@operation("transpose")
def convert_transpose(call: OpCall) -> Converted:
    x = call.tensor("x")
    rank = call.rank(x)
    axes = call.constant("axes")
    perm = list(reversed(range(rank))) if axes is None else [int(a) % rank for a in axes]
    if sorted(perm) != list(range(rank)):
        call.fail(f"axes {axes} are not a permutation of {rank} axes")
    if call.constant("conjugate", False):
        call.fail("conjugate transpose is not supported")
    return keras_op(call, "permute", [x, perm])


spelling("keras.ops.ExpandDims", "expand_dims", "x, axis")
spelling("tf.expand_dims", "expand_dims", "input:x, axis, name=None")
spelling("tf.compat.v1.expand_dims", "expand_dims", "input:x, axis=None, name=None, dim=None")


@operation("expand_dims")
def convert_expand_dims(call: OpCall) -> Converted:
    x = call.tensor("x")
    if call.constant("dim", None) is not None:
        call.fail("the deprecated dim argument is not supported; use axis")
    axes = _ints(call, "axis")
    out_rank = call.rank(x) + len(axes)
    dims = sorted(a % out_rank for a in axes)
    return keras_op(call, "expand_dims", [x, dims])


spelling("keras.ops.Squeeze", "squeeze", "x, axis=None")
spelling("tf.compat.v1.squeeze", "squeeze", "input:x, axis=None, name=None, squeeze_dims=None")
spelling("tf.squeeze", "squeeze", "input:x, axis=None, name=None")


@operation("squeeze")
def convert_squeeze(call: OpCall) -> Converted:
    """Without an axis: the axes Keras knows to be 1 when the model is built (never the batch axis)."""
    x = call.tensor("x")
    if call.constant("squeeze_dims", None) is not None:
        call.fail("the deprecated squeeze_dims argument is not supported; use axis")
    rank = call.rank(x)
    axes = axis_list(call, "axis", rank)
    if axes is None:
        axes = [i for i, d in enumerate(call.shape(x)) if d == 1 and i > 0]
    return keras_op(call, "squeeze", [x, axes])


spelling("keras.ops.Concatenate", "concatenate", "xs, axis=0")
spelling("tf.concat", "concatenate", "values:xs, axis, name='concat'")
spelling("keras.ops.Stack", "stack", "xs, axis=0")
spelling("tf.stack", "stack", "values:xs, axis=0, name='stack'")


@operation("concatenate")
@operation("stack")
def convert_join(call: OpCall) -> Converted:
    xs = call.arg("xs")
    if not isinstance(xs, list) or not all(isinstance(t, TensorArg) for t in xs):
        call.fail("only a list of tensors computed in the model is supported")
    rank = call.rank(xs[0])
    out_rank = rank + (call.op == "stack")
    axis = int(call.constant("axis"))
    if not -out_rank <= axis < out_rank:
        call.fail(f"axis {axis} is out of range")
    layouts = {call.layout(t) for t in xs}
    layout = layouts.pop() if len(layouts) == 1 else L.KERAS
    if call.op == "stack" or not isinstance(layout, str):
        layout = L.KERAS
    dim = L.keras_axis_in_layout(axis, out_rank, layout)
    fn = "concat" if call.op == "concatenate" else "stack"
    return op_result(call, Op(fn, [slots(xs), dim], label=call.spelling.name), layout)


spelling("keras.ops.Split", "split", "x, indices_or_sections, axis=0")
spelling("tf.split", "split", "value:x, num_or_size_splits:sizes, axis=0, num=None, name='split'")


@operation("split")
def convert_split(call: OpCall) -> Converted:
    """Keras 3 (numpy): a number of equal sections or the split points; TF: a number or the sizes (one -1)."""
    x = call.tensor("x")
    rank = call.rank(x)
    axis = axis_list(call, "axis", rank)[0]
    size = call.shape(x)[axis]
    if size is None:
        call.fail("split along an axis whose size is not fixed is not supported")
    if call.has("indices_or_sections"):
        spec = call.constant("indices_or_sections")
        if isinstance(spec, list):
            points = [0, *[int(p) for p in spec], size]
            sizes = [b - a for a, b in zip(points, points[1:])]
        else:
            sizes = [size // int(spec)] * int(spec)
    else:
        spec = call.constant("sizes")
        if call.constant("num", None) is not None:
            call.fail("split with num is not supported")
        if isinstance(spec, list):
            sizes = [int(s) for s in spec]
            if -1 in sizes:
                sizes[sizes.index(-1)] = size - (sum(sizes) + 1)
        else:
            sizes = [size // int(spec)] * int(spec)
    if sum(sizes) != size:
        call.fail(f"split sizes {sizes} do not add up to the axis size {size}")
    return op_result(call, Op("split", [Slot(x.index), sizes, axis], label=call.spelling.name))


spelling("keras.ops.Unstack", "unstack", "x, num=None, axis=0")
spelling("tf.unstack", "unstack", "value:x, num=None, axis=0, name='unstack'")


@operation("unstack")
def convert_unstack(call: OpCall) -> Converted:
    x = call.tensor("x")
    axis = axis_list(call, "axis", call.rank(x))[0]
    call.constant("num", None)
    return op_result(call, Op("unstack", [Slot(x.index), axis], label=call.spelling.name))


spelling("keras.ops.Tile", "tile", "x, repeats")
spelling("tf.tile", "tile", "input:x, multiples:repeats, name=None")


@operation("tile")
def convert_tile(call: OpCall) -> Converted:
    x = call.tensor("x")
    reps = _ints(call, "repeats")
    rank = call.rank(x)
    if len(reps) > rank:
        call.fail("tile with more repeats than axes is not supported")
    reps = [1] * (rank - len(reps)) + reps  # numpy: missing leading repeats are 1 (TF requires them all)
    return keras_op(call, "tile", [x, reps])


spelling("keras.ops.Repeat", "repeat", "x, repeats, axis=None")
spelling("tf.repeat", "repeat", "input:x, repeats, axis=None, name=None")


@operation("repeat")
def convert_repeat(call: OpCall) -> Converted:
    x = call.tensor("x")
    repeats = call.constant("repeats")
    repeats = [int(r) for r in repeats] if isinstance(repeats, list) else int(repeats)
    axes = axis_list(call, "axis", call.rank(x))
    return keras_op(call, "repeat", [x, repeats, None if axes is None else axes[0]])


spelling("keras.ops.BroadcastTo", "broadcast_to", "x, shape")
spelling("tf.broadcast_to", "broadcast_to", "input:x, shape, name=None")


@operation("broadcast_to")
def convert_broadcast_to(call: OpCall) -> Converted:
    return keras_op(call, "broadcast_to", [call.tensor("x"), _ints(call, "shape")])


spelling("keras.ops.Pad", "pad", "x, constant_values=None, pad_width:paddings, mode='constant'")
spelling("tf.compat.v1.pad", "pad", "tensor:x, paddings, mode='CONSTANT', name=None, constant_values=0")
spelling("tf.pad", "pad", "tensor:x, paddings, mode='CONSTANT', constant_values=0, name=None")


@operation("pad")
def convert_pad(call: OpCall) -> Converted:
    """Constant paddings pad in the layout the tensor runs in; paddings computed at run time (a raw TF graph's
    ``Pad`` to a multiple of a stride) are read on each call, in TF's axis order."""
    x = call.tensor("x")
    rank = call.rank(x)
    mode = str(call.constant("mode")).lower()
    if mode not in ("constant", "reflect", "symmetric"):
        call.fail(f"pad mode {mode!r} is not supported")
    value = float(call.constant("constant_values") or 0)
    paddings = call.arg("paddings")
    if isinstance(paddings, TensorArg):
        return keras_op(call, "pad", [x, paddings, mode, value])
    paddings = call.constant("paddings")
    pairs = [[int(v) for v in p] for p in paddings] if isinstance(paddings[0], list) else [
        [int(paddings[0]), int(paddings[1])]] * rank
    if len(pairs) != rank:
        call.fail(f"{len(pairs)} padding pairs for a tensor of rank {rank}")
    sizes = [1, *[d or 1 for d in call.shape(x)[1:]]]  # constant paddings from the file: checked before building
    call.spec.check_declared_size(float(np.prod([(d + sum(pair)) / d for d, pair in zip(sizes, pairs)])))
    layout = call.layout(x)
    if layout == L.CHANNELS_FIRST:
        pairs = [pairs[p] for p in L.to_channels_first_perm(rank)]
    elif layout != L.KERAS:
        layout = L.KERAS
    pads = [v for pair in reversed(pairs) for v in pair]
    while len(pads) > 2 and pads[-2:] == [0, 0]:
        pads = pads[:-2]
    return op_result(call, Op("pad", [Slot(x.index), pads, mode, value], label=call.spelling.name), layout)


spelling("keras.ops.Cast", "cast", "x, dtype")
spelling("tf.cast", "cast", "x, dtype, name=None")
spelling("keras.ops.ZerosLike", "zeros_like", "x, dtype=None")
spelling("keras.ops.OnesLike", "ones_like", "x, dtype=None")
spelling("tf.zeros_like", "zeros_like", "input:x, dtype=None, name=None")
spelling("tf.ones_like", "ones_like", "input:x, dtype=None, name=None")


@operation("cast")
def convert_cast(call: OpCall) -> Converted:
    x = call.tensor("x")
    dtype = torch_dtype(call, call.constant("dtype"))
    return op_result(call, Op("cast", [Slot(x.index), dtype], label=call.spelling.name), call.layout(x))


@operation("zeros_like")
@operation("ones_like")
def convert_filled_like(call: OpCall) -> Converted:
    x = call.tensor("x")
    value = 0.0 if call.op == "zeros_like" else 1.0
    dtype = torch_dtype(call, call.constant("dtype"))
    return op_result(call, Op("full_like", [Slot(x.index), value, dtype], label=call.spelling.name), call.layout(x))


# -- indexing -------------------------------------------------------------------------------------------------
spelling("keras.ops.GetItem", "getitem", "x, key")
spelling("tf.__operators__.getitem", "getitem", "tensor:x, slice_spec:key, var=None")


@operation("getitem")
def convert_getitem(call: OpCall) -> Converted:
    x = call.tensor("x")
    key = call.arg("key")
    if has_tensor(key):
        call.fail("indexing with a tensor computed in the model is not supported")
    items = key if isinstance(key, list) else [key]
    index = []
    for item in items:
        if isinstance(item, dict) and set(item) <= {"start", "stop", "step"}:  # tf_keras slice
            item = (item.get("start"), item.get("stop"), item.get("step"))
        if isinstance(item, tuple):
            if item[2] == 0:
                call.fail("slice step 0")
            index.append(tuple(None if v is None else int(v) for v in item))
        elif item is None or item is Ellipsis:
            index.append(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            index.append(int(item))
        else:
            call.fail(f"index {item!r} is not supported")
    if sum(1 for i in index if i is not None and i is not Ellipsis) > call.rank(x):
        call.fail(f"too many indices for a tensor of rank {call.rank(x)}")
    return keras_op(call, "getitem", [x, index])


spelling("tf.strided_slice", "strided_slice",
         "input_:x, begin, end, strides=None, begin_mask=0, end_mask=0, ellipsis_mask=0, new_axis_mask=0, "
         "shrink_axis_mask=0, var=None, name=None")


@operation("strided_slice")
def convert_strided_slice(call: OpCall) -> Converted:
    """``tf.strided_slice`` as the index it stands for: the masks' bit i applies to the i-th begin/end entry."""
    x = call.tensor("x")
    begin, end = _ints(call, "begin"), _ints(call, "end")
    strides = _ints(call, "strides") if call.constant("strides") is not None else [1] * len(begin)
    masks = {name: int(call.constant(name)) for name in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    index: list[Any] = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        bit = 1 << i
        if masks["ellipsis_mask"] & bit:
            index.append(Ellipsis)
        elif masks["new_axis_mask"] & bit:
            index.append(None)
        elif masks["shrink_axis_mask"] & bit:
            index.append(b)
        else:
            index.append((None if masks["begin_mask"] & bit else b, None if masks["end_mask"] & bit else e, s))
    return keras_op(call, "getitem", [x, index])


spelling("keras.ops.Take", "gather", "x, indices, axis=None")
spelling("tf.compat.v1.gather", "gather",
         "params:x, indices, validate_indices=None, name=None, axis=None, batch_dims=0")
spelling("tf.gather", "gather", "params:x, indices, validate_indices=None, axis=None, batch_dims=0, name=None")


@operation("gather")
def convert_gather(call: OpCall) -> Converted:
    """Keras 3 ``take`` without an axis flattens; TF ``gather``'s default axis is 0."""
    x = call.tensor("x")
    indices = call.arg("indices")
    rank = call.rank(x)
    if int(call.constant("batch_dims", 0)) != 0:
        call.fail("gather with batch_dims is not supported")
    axis = call.constant("axis")
    if axis is None and call.spelling.name.startswith("keras.ops."):
        call.fail("take without an axis (over the flattened tensor, batch included) is not supported")
    axis = 0 if axis is None else int(axis) % rank
    return keras_op(call, "gather", [x, _indices(indices), axis])


def _indices(indices: Any) -> Any:
    if isinstance(indices, TensorArg):
        return indices
    return torch.as_tensor(np.asarray(indices), dtype=torch.int64).tolist()
