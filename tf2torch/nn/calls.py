"""Run-time module for the TensorFlow ops that are one function of their operands (``TFCall``: ``Pack``, ``Tile``,
``Cumsum``, ``OneHot``, scatters and gathers, segment reductions, ``Unique``...), each function by TF op name in
``TF_CALLS``; the raw ops with a keras.ops twin run on ``nn/ops.py`` instead. Formulas follow [TF]
``core/kernels/`` (cited per function).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from .image import (
    _crop_and_resize,
    _extract_patches,
    _max_pool_with_argmax,
    combined_non_max_suppression,
    non_max_suppression,
)
from .shapes import Operands


# -- ops that are one small function of their operands, by TF name ([TF] core/kernels/, cited per op) ---------
def _cumulative(x: torch.Tensor, axis: int, exclusive: bool, reverse: bool, prod: bool) -> torch.Tensor:
    """``Cumsum`` / ``Cumprod``: ``exclusive`` shifts by one (the first is 0 or 1), ``reverse`` from the end."""
    if reverse:
        x = x.flip(axis)
    out = torch.cumprod(x, axis) if prod else torch.cumsum(x, axis)
    if exclusive:
        first = torch.ones_like(x.narrow(axis, 0, 1)) if prod else torch.zeros_like(x.narrow(axis, 0, 1))
        out = torch.cat([first, out.narrow(axis, 0, x.shape[axis] - 1)], axis)
    return out.flip(axis) if reverse else out


def _depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """NHWC ``DepthToSpace`` (DCR order, [TF] depthtospace_op.cc): depth splits as (row, column, channel)."""
    n, h, w, c = x.shape
    x = x.reshape(n, h, w, block, block, c // (block * block)).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h * block, w * block, c // (block * block))


def _space_to_depth(x: torch.Tensor, block: int) -> torch.Tensor:
    n, h, w, c = x.shape
    x = x.reshape(n, h // block, block, w // block, block, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // block, w // block, c * block * block)


def _one_hot(indices: torch.Tensor, depth: torch.Tensor, on: torch.Tensor, off: torch.Tensor,
             axis: int) -> torch.Tensor:
    """``OneHot``: out-of-range indices (negative or >= depth) give a row of ``off`` ([TF] one_hot_op.h)."""
    classes = torch.arange(int(depth), device=indices.device)
    hot = indices.long().unsqueeze(-1) == classes
    out = torch.where(hot, on, off)
    return out if axis == -1 else out.movedim(-1, axis)


def _linear_index(indices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The leading-axes index vectors of ``*ScatterNd`` / ``GatherNd`` as row numbers of ``shape[:k]``."""
    k = indices.shape[-1]
    strides = torch.ones(k, dtype=torch.long)
    for i in range(k - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return (indices.long() * strides).sum(-1).reshape(-1)


def _scatter(tensor: torch.Tensor, indices: torch.Tensor, updates: torch.Tensor, how: str) -> torch.Tensor:
    """``TensorScatter{Update,Add,Sub,Max,Min}`` and ``ScatterNd`` (add into zeros): each index vector names
    a slice of ``tensor``; duplicates add (Add, ScatterNd) or reduce ([TF] scatter_nd_op.cc)."""
    k = indices.shape[-1]
    rows = _linear_index(indices, tensor.shape)
    flat = tensor.reshape(-1, *tensor.shape[k:]).clone()
    values = updates.reshape(-1, *tensor.shape[k:]).to(flat.dtype)
    if how == "update":
        flat = flat.index_copy(0, rows, values)
    elif how in ("add", "sub"):
        flat = flat.index_add(0, rows, values if how == "add" else -values)
    else:
        flat = flat.index_reduce(0, rows, values, how, include_self=True)
    return flat.reshape(tensor.shape)


def _gather_nd(params: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    k = indices.shape[-1]
    rows = _linear_index(indices, params.shape)
    picked = params.reshape(-1, *params.shape[k:]).index_select(0, rows)
    return picked.reshape(*indices.shape[:-1], *params.shape[k:])


def _band_part(x: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor) -> torch.Tensor:
    """``MatrixBandPart``: keeps ``i - j <= lower`` and ``j - i <= upper`` (negative: the whole triangle)."""
    rows = torch.arange(x.shape[-2]).unsqueeze(-1)
    cols = torch.arange(x.shape[-1])
    keep = ((int(lower) < 0) | (rows - cols <= int(lower))) & ((int(upper) < 0) | (cols - rows <= int(upper)))
    return torch.where(keep, x, torch.zeros_like(x))


def _reverse_sequence(x: torch.Tensor, lengths: torch.Tensor, seq_axis: int, batch_axis: int) -> torch.Tensor:
    """``ReverseSequence``: in batch row b, the first ``lengths[b]`` steps reversed, the rest kept."""
    steps = torch.arange(x.shape[seq_axis])
    shape = [1] * x.dim()
    shape[batch_axis], shape[seq_axis] = -1, x.shape[seq_axis]
    length = lengths.long().reshape(-1, 1)
    index = torch.where(steps < length, length - 1 - steps, steps)  # [batch, time]
    if batch_axis > seq_axis:
        index = index.t()
        shape[batch_axis], shape[seq_axis] = x.shape[batch_axis], -1
    return torch.gather(x, seq_axis, index.reshape(shape).expand_as(x))


SEGMENT_INITIAL = {"sum": 0.0, "prod": 1.0, "amax": float("-inf"), "amin": float("inf")}


def _segments(data: torch.Tensor, ids: torch.Tensor, count: int, how: str, empty_zero: bool) -> torch.Tensor:
    """``(Unsorted)Segment{Sum,Prod,Max,Min,Mean}``: an empty segment is the reduction's identity (unsorted:
    the dtype's lowest / highest for max / min) or 0 (sorted ``Segment*``) ([TF] segment_reduction_ops_impl.h)."""
    rows = ids.long().reshape(-1)
    values = data.reshape(-1, *data.shape[ids.dim():])
    kept = rows >= 0  # (unsorted: a negative id drops its row)
    rows, values = rows[kept], values[kept]
    initial = SEGMENT_INITIAL["sum" if how == "mean" else how]
    if data.is_floating_point() and how in ("amax", "amin"):
        info = torch.finfo(data.dtype)
        initial = info.min if how == "amax" else info.max
    out = torch.full((count, *values.shape[1:]), initial, dtype=data.dtype)
    if how in ("sum", "mean"):
        out = out.index_add(0, rows, values)
    else:
        out = out.index_reduce(0, rows, values, how, include_self=False)
    hits = torch.zeros(count, dtype=data.dtype).index_add(0, rows, torch.ones_like(rows, dtype=data.dtype))
    hits = hits.reshape(-1, *[1] * (values.dim() - 1))
    if how == "mean":
        out = out / hits.clamp(min=1)
    return torch.where(hits > 0, out, torch.zeros_like(out)) if empty_zero else out


def _unique(x: torch.Tensor, out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``Unique`` / ``UniqueWithCounts`` of a vector: the values in order of first occurrence ([TF] unique_op.cc),
    each element's position among them, and each value's count."""
    values, inverse = torch.unique(x, sorted=True, return_inverse=True)
    steps = torch.arange(x.numel())
    first = torch.full((values.numel(),), x.numel(), dtype=torch.long).scatter_reduce(0, inverse, steps, "amin")
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    index = rank[inverse]
    return values[order], index.to(out_dtype), torch.bincount(index, minlength=values.numel()).to(out_dtype)


def _dynamic_stitch(*args: torch.Tensor) -> torch.Tensor:
    """``DynamicStitch``: ``merged[indices[m][i]] = data[m][i]``, later pieces winning ([TF] dynamic_stitch_op.cc)."""
    n = len(args) // 2
    indices, data = args[:n], args[n:]
    inner = data[0].shape[indices[0].dim():]
    rows = torch.cat([i.reshape(-1).long() for i in indices])
    values = torch.cat([d.reshape(-1, *inner) for d in data])
    merged = values.new_zeros((int(rows.max()) + 1 if rows.numel() else 0, *inner))
    return merged.index_put((rows,), values)  # (index_put keeps the last write of a repeated index on CPU)


def _bincount(values: torch.Tensor, size: torch.Tensor, weights: torch.Tensor, binary: bool) -> torch.Tensor:
    """``Bincount`` / ``DenseBincount`` of a vector or of each row of a matrix: values outside [0, size) are
    dropped; empty ``weights`` count; ``binary`` marks presence ([TF] bincount_op.cc)."""
    n = int(size)
    rows = values.reshape(-1, values.shape[-1])
    w = weights.reshape(rows.shape) if weights.numel() else torch.ones(rows.shape, dtype=weights.dtype)
    kept = (rows >= 0) & (rows < n)
    where = (torch.arange(rows.shape[0]).unsqueeze(-1).expand_as(rows)[kept], rows[kept].long())
    out = torch.zeros(rows.shape[0], n, dtype=w.dtype).index_put(where, w[kept], accumulate=True)
    if binary:
        out = torch.zeros_like(out).index_put(where, torch.ones_like(w[kept]))
    return out.reshape(*values.shape[:-1], n)


def _fake_quant(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, bits: int, narrow: bool) -> torch.Tensor:
    """``FakeQuantWithMinMaxArgs`` / ``Vars`` ([TF] fake_quant_ops_functor.h): the range nudged so that 0 is a
    quantization step, values clamped to it and rounded to the nearest step (half up), in float32."""
    q_min, q_max = (1.0 if narrow else 0.0), float((1 << bits) - 1)
    low, high = low.float(), high.float()
    scale = (high - low) / (q_max - q_min)
    zero_from_min = q_min - low / scale
    zero = torch.where(zero_from_min < q_min, torch.tensor(q_min),
                       torch.where(zero_from_min > q_max, torch.tensor(q_max), torch.sign(zero_from_min)
                                   * torch.floor(torch.abs(zero_from_min) + 0.5)))  # (std::round: half away)
    nudged_min, nudged_max = (q_min - zero) * scale, (q_max - zero) * scale
    shifted = torch.minimum(torch.maximum(x, nudged_min), nudged_max) - nudged_min
    return torch.floor(shifted * (1.0 / scale) + 0.5) * scale + nudged_min


# -- each op as a function of (operands, params, TF op name) ------------------------------------------------------
def _select(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    """v1 ``Select`` (``SelectV2`` broadcasts: ``where`` of ``nn/ops.py``)."""
    cond, x, y = args
    if cond.dim() == 1 and x.dim() > 1:  # v1 Select: a vector picks rows
        cond = cond.reshape(-1, *[1] * (x.dim() - 1))
    return torch.where(cond, x, y)


def _matmul(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    a, b = args
    if p.get("adj_x"):
        a = a.transpose(-1, -2)
    if p.get("adj_y"):
        b = b.transpose(-1, -2)
    return torch.matmul(a, b)


def _slice(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    """begin and size computed at run time; size -1 runs to the end."""
    begin, size = args[1].tolist(), args[2].tolist()
    return args[0][tuple(slice(b, None if n == -1 else b + n) for b, n in zip(begin, size))]


def _range(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    """[TF] sequence_ops.cc: start, limit, delta of the output's dtype."""
    start, limit, delta = (a.item() for a in args)
    return torch.arange(start, limit, delta, dtype=p["dtype"])


def _broadcast_args(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    shape = torch.broadcast_shapes(tuple(args[0].tolist()), tuple(args[1].tolist()))
    return torch.tensor(shape, dtype=args[0].dtype)


def _gather_v2(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    params, indices = args
    axis = p["axis"]
    flat = torch.index_select(params, axis, indices.reshape(-1).long())
    return flat.reshape(*params.shape[:axis], *indices.shape, *params.shape[axis + 1:])


def _scatter_nd(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    indices, updates, shape = args
    return _scatter(updates.new_zeros([int(s) for s in shape.tolist()]), indices, updates, "add")


def _segment_op(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    count = int(args[2]) if op.startswith("Unsorted") else int(args[1].max()) + 1
    return _segments(args[0], args[1], count, p["how"], not op.startswith("Unsorted"))


def _combined_nms(args: list[Any], p: dict[str, Any], op: str) -> tuple[torch.Tensor, ...]:
    boxes, scores, per_class, total, iou, threshold = args
    return combined_non_max_suppression(boxes, scores, int(per_class), int(total), float(iou), float(threshold),
                                        p["pad_per_class"], p["clip_boxes"])


def _nms(args: list[Any], p: dict[str, Any], op: str) -> Any:
    boxes, scores, max_out, iou = args[:4]
    threshold = float(args[4]) if len(args) > 4 else float("-inf")
    kept = non_max_suppression(boxes, scores, int(max_out), float(iou), threshold)
    count = torch.tensor(kept.numel(), dtype=torch.int32)
    if p.get("pad"):
        kept = torch.cat([kept, kept.new_zeros(int(max_out) - kept.numel())])
    if op == "NonMaxSuppressionV5":
        picked = scores[kept.long()] if kept.numel() else scores.new_zeros(0)
        if p.get("pad"):
            picked = torch.where(torch.arange(kept.numel()) < count, picked, torch.zeros_like(picked))
        return kept, picked, count
    return (kept, count) if op == "NonMaxSuppressionV4" else kept


def _unique_op(args: list[Any], p: dict[str, Any], op: str) -> tuple[torch.Tensor, ...]:
    found = _unique(args[0], p["index_dtype"])
    return found if op == "UniqueWithCounts" else found[:2]


def _adjust_contrast(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    """[TF] adjust_contrast_op.cc: around each image's per-channel mean."""
    mean = args[0].mean(dim=(-3, -2), keepdim=True)
    return (args[0] - mean) * args[1] + mean


def _max_pool_argmax(args: list[Any], p: dict[str, Any], op: str) -> tuple[torch.Tensor, torch.Tensor]:
    values, index = _max_pool_with_argmax(args[0], p["kernel"], p["stride"], p["same"], p["with_batch"])
    return values, index.to(p["index_dtype"])


def _fake_quant_op(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    low, high = (args[1], args[2]) if len(args) == 3 else (torch.tensor(p["min"]), torch.tensor(p["max"]))
    return _fake_quant(args[0], low, high, p["bits"], p["narrow"])


def _matrix_set_diag(args: list[Any], p: dict[str, Any], op: str) -> torch.Tensor:
    out = args[0].clone()
    out.diagonal(dim1=-2, dim2=-1).copy_(args[1])
    return out


def _top_k(args: list[Any], p: dict[str, Any], op: str) -> tuple[torch.Tensor, torch.Tensor]:
    values, indices = torch.topk(args[0], int(args[1]), dim=-1, largest=True, sorted=True)
    return values, indices.to(p["index_dtype"])


TF_CALLS: dict[str, Callable[[list[Any], dict[str, Any], str], Any]] = {
    "Select": _select,
    "MatMul": _matmul, "BatchMatMul": _matmul, "BatchMatMulV2": _matmul,
    "ReverseV2": lambda a, p, op: torch.flip(a[0], p["axes"]) if p["axes"] else a[0],
    "Pack": lambda a, p, op: torch.stack([t.to(a[0].dtype) for t in a], dim=p["axis"]),
    "ConcatV2": lambda a, p, op: torch.cat(a, dim=p["axis"]),
    "Tile": lambda a, p, op: a[0].repeat(*[int(m) for m in a[1].tolist()]),
    "Reshape": lambda a, p, op: a[0].reshape([int(s) for s in a[1].tolist()]),
    "Slice": _slice, "Range": _range, "BroadcastArgs": _broadcast_args,
    "BroadcastTo": lambda a, p, op: torch.broadcast_to(a[0], [int(s) for s in a[1].tolist()]),
    "Fill": lambda a, p, op: torch.full([int(s) for s in a[0].tolist()], a[1].item(), dtype=a[1].dtype),
    "GatherV2": _gather_v2,
    "Cumsum": lambda a, p, op: _cumulative(a[0], p["axis"], p["exclusive"], p["reverse"], False),
    "Cumprod": lambda a, p, op: _cumulative(a[0], p["axis"], p["exclusive"], p["reverse"], True),
    "DepthToSpace": lambda a, p, op: _depth_to_space(a[0], p["block"]),
    "SpaceToDepth": lambda a, p, op: _space_to_depth(a[0], p["block"]),
    "OneHot": lambda a, p, op: _one_hot(*a, axis=p["axis"]),
    **{f"TensorScatter{k}": lambda a, p, op: _scatter(*a, how=p["how"]) for k in ("Update", "Add", "Sub", "Max",
                                                                                    "Min")},
    "ScatterNd": _scatter_nd, "GatherNd": lambda a, p, op: _gather_nd(*a),
    "MatrixBandPart": lambda a, p, op: _band_part(*a),
    "ReverseSequence": lambda a, p, op: _reverse_sequence(*a, seq_axis=p["seq_axis"], batch_axis=p["batch_axis"]),
    **{f"{u}Segment{k}": _segment_op for u in ("", "Unsorted") for k in ("Sum", "Mean", "Max", "Min", "Prod")},
    "CombinedNonMaxSuppression": _combined_nms,
    **{f"NonMaxSuppressionV{v}": _nms for v in (2, 3, 4, 5)},
    "Unique": _unique_op, "UniqueWithCounts": _unique_op,
    "Bincount": lambda a, p, op: _bincount(a[0], a[1], a[2], p.get("binary", False)),
    "DenseBincount": lambda a, p, op: _bincount(a[0], a[1], a[2], p.get("binary", False)),
    "AdjustContrastv2": _adjust_contrast,
    "CropAndResize": lambda a, p, op: _crop_and_resize(*a, method=p["method"], extrapolation=p["extrapolation"]),
    "ExtractImagePatches": lambda a, p, op: _extract_patches(a[0], p["kernel"], p["stride"], p["rate"], p["same"]),
    "MaxPoolWithArgmax": _max_pool_argmax,
    "FakeQuantWithMinMaxArgs": _fake_quant_op, "FakeQuantWithMinMaxVars": _fake_quant_op,
    "DynamicPartition": lambda a, p, op: tuple(a[0][a[1] == i] for i in range(p["count"])),
    "MatrixSetDiag": _matrix_set_diag, "TopKV2": _top_k,
    "Roll": lambda a, p, op: torch.roll(a[0], [int(s) for s in a[1].reshape(-1).tolist()],
                                        [int(x) for x in a[2].reshape(-1).tolist()]),
    "InvertPermutation": lambda a, p, op: torch.argsort(a[0]).to(a[0].dtype),
    "MatrixDeterminant": lambda a, p, op: torch.linalg.det(a[0]),
    "MatrixDiag": lambda a, p, op: torch.diag_embed(a[0]),
    "MatrixDiagPart": lambda a, p, op: torch.diagonal(a[0], dim1=-2, dim2=-1),
    "Where": lambda a, p, op: torch.nonzero(a[0]),
    "DynamicStitch": lambda a, p, op: _dynamic_stitch(*a),
    "ParallelDynamicStitch": lambda a, p, op: _dynamic_stitch(*a),
}


class TFCall(Operands):
    """A TF op that is one function of ``TF_CALLS`` of its operands (constants as buffers) and fixed ``params``:
    ``Select``, ``BatchMatMulV2``, ``Pack``, ``ConcatV2``, ``Tile``, ``Cumsum``..."""

    def __init__(self, op: str, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor],
                 params: dict[str, Any] | None = None, **more: Any):
        super().__init__(slots, consts)
        if op not in TF_CALLS:
            raise ValueError(f"unknown TF op function {op}")
        self.op = op
        self.params = {**(params or {}), **more}  # (one dict, so emit can write it back)

    def forward(self, *inputs: torch.Tensor) -> Any:
        return TF_CALLS[self.op](self.gather(inputs), self.params, self.op)

    def extra_repr(self) -> str:
        return f"{self.op}, {self.params}" if self.params else self.op
