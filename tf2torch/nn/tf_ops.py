"""Run-time modules for raw TensorFlow graph ops (``tf2torch/ops/tf_raw.py`` builds them).

Each module does one TF op with TF's own semantics; constant operands are buffers, so the module's state_dict
holds every number the op needs. Formulas follow [TF] ``core/kernels/`` (cited per module). Imports nothing
else of tf2torch but ``nn.padding``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .ops import mirror_pad
from .padding import tf_same_padding

UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu, "Relu6": lambda x: torch.clamp(x, 0.0, 6.0), "Elu": F.elu, "Selu": F.selu,
    "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Softplus": F.softplus, "Softsign": F.softsign,
    "Exp": torch.exp, "Log": torch.log, "Log1p": torch.log1p, "Sqrt": torch.sqrt, "Rsqrt": torch.rsqrt,
    "Square": torch.square, "Neg": torch.neg, "Abs": torch.abs, "Floor": torch.floor, "Ceil": torch.ceil,
    "Round": torch.round, "Sign": torch.sign, "Reciprocal": torch.reciprocal, "Inv": torch.reciprocal,
    "Erf": torch.erf, "Sin": torch.sin, "Cos": torch.cos, "LogicalNot": torch.logical_not,
    "ZerosLike": torch.zeros_like, "OnesLike": torch.ones_like, "IsNan": torch.isnan,
    # exact element-wise functions: torch computes them to float32 round-off, as TF's Eigen kernels do
    "Erfc": torch.erfc, "Expm1": torch.expm1, "Tan": torch.tan, "Atan": torch.atan, "Asin": torch.asin,
    "Acos": torch.acos, "Sinh": torch.sinh, "Cosh": torch.cosh, "Asinh": torch.asinh, "Acosh": torch.acosh,
    "Atanh": torch.atanh, "Lgamma": torch.lgamma, "Digamma": torch.digamma, "IsInf": torch.isinf,
    "IsFinite": torch.isfinite, "Rint": torch.round,  # (torch.round and TF's Rint both round half to even)
    "Invert": torch.bitwise_not,
}


def _div_no_nan(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.where(y == 0, torch.zeros_like(x / torch.where(y == 0, torch.ones_like(y), y)),
                       x / torch.where(y == 0, torch.ones_like(y), y))


def _floor_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.div(x, y, rounding_mode="floor")


def _truncate_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.div(x, y, rounding_mode="trunc") if not x.is_floating_point() else x / y


BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Add": torch.add, "AddV2": torch.add, "BiasAdd": torch.add, "BiasAddV1": torch.add, "Sub": torch.sub,
    "Mul": torch.mul,
    "RealDiv": torch.div, "Div": _truncate_div, "FloorDiv": _floor_div, "FloorMod": torch.remainder,
    "Maximum": torch.maximum, "Minimum": torch.minimum, "Pow": torch.pow,
    "SquaredDifference": lambda x, y: torch.square(x - y), "DivNoNan": _div_no_nan,
    "Greater": torch.gt, "GreaterEqual": torch.ge, "Less": torch.lt, "LessEqual": torch.le,
    "Equal": torch.eq, "NotEqual": torch.ne, "LogicalAnd": torch.logical_and, "LogicalOr": torch.logical_or,
    "Atan2": torch.atan2, "TruncateMod": torch.fmod, "Xlogy": torch.xlogy,
    "Xdivy": lambda x, y: torch.where(x == 0, torch.zeros_like(x / y), x / y), "TruncateDiv": _truncate_div,
    "BitwiseAnd": torch.bitwise_and, "BitwiseOr": torch.bitwise_or, "BitwiseXor": torch.bitwise_xor,
    "LeftShift": torch.bitwise_left_shift, "RightShift": torch.bitwise_right_shift,
}


class TFUnary(nn.Module):
    """An element-wise TF op (``Relu``, ``Rsqrt``...) by its TF name."""

    def __init__(self, op: str, alpha: float | None = None):
        super().__init__()
        self.op = op
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.op == "LeakyRelu":
            return F.leaky_relu(x, self.alpha)
        return UNARY[self.op](x)

    def extra_repr(self) -> str:
        return self.op


class TFBinary(nn.Module):
    """A broadcasting binary TF op; a constant operand is the buffer ``const`` on side ``const_side``."""

    def __init__(self, op: str, const: torch.Tensor | None = None, const_side: int = 1):
        super().__init__()
        self.op = op
        self.const_side = const_side
        if const is not None:
            self.register_buffer("const", const)
        else:
            self.const = None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.const is not None:
            x, y = (x, self.const) if self.const_side == 1 else (self.const, x)
        return BINARY[self.op](x, y)

    def extra_repr(self) -> str:
        return self.op


class Operands(nn.Module):
    """Base of ops taking a mix of run-time tensors and constants: ``slots[i]`` is ``("input", k)`` or
    ``("const", j)`` (buffer ``const{j}``)."""

    def __init__(self, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor]):
        super().__init__()
        self.slots = [tuple(s) for s in slots]
        self.n_consts = len(consts)
        for j, c in enumerate(consts):
            self.register_buffer(f"const{j}", c)

    @property
    def consts(self) -> list[torch.Tensor]:
        """The constants in the order given (what ``emit`` writes back as the constructor's argument)."""
        return [getattr(self, f"const{j}") for j in range(self.n_consts)]

    def gather(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [inputs[i] if kind == "input" else getattr(self, f"const{i}") for kind, i in self.slots]


class TFFunction(Operands):
    """Ops that are one torch call over their operands: ``AddN``, ``Select``, ``Einsum``, ``BatchMatMulV2``,
    ``Pack``, ``ConcatV2``, ``Tile``..."""

    def __init__(self, op: str, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor],
                 params: dict[str, Any] | None = None, **more: Any):
        super().__init__(slots, consts)
        self.op = op
        self.params = {**(params or {}), **more}  # (one dict, so emit can write it back)

    def forward(self, *inputs: torch.Tensor) -> Any:
        args = self.gather(inputs)
        p = self.params
        op = self.op
        if op == "AddN":
            out = args[0]
            for a in args[1:]:
                out = out + a
            return out
        if op in ("Select", "SelectV2"):
            cond, x, y = args
            if op == "Select" and cond.dim() == 1 and x.dim() > 1:  # v1 Select: a vector picks rows
                cond = cond.reshape(-1, *[1] * (x.dim() - 1))
            return torch.where(cond, x, y)
        if op == "Einsum":
            return torch.einsum(p["equation"], *args)
        if op == "BatchMatMulV2" or op == "BatchMatMul" or op == "MatMul":
            a, b = args
            if p.get("adj_x"):
                a = a.transpose(-1, -2)
            if p.get("adj_y"):
                b = b.transpose(-1, -2)
            return torch.matmul(a, b)
        if op == "ReverseV2":
            return torch.flip(args[0], p["axes"]) if p["axes"] else args[0]
        if op == "Pack":
            return torch.stack([a.to(args[0].dtype) for a in args], dim=p["axis"])
        if op == "ConcatV2":
            return torch.cat(args, dim=p["axis"])
        if op == "Tile":
            return args[0].repeat(*[int(m) for m in args[1].tolist()])
        if op == "Reshape":
            shape = [int(s) for s in args[1].tolist()]
            return args[0].reshape(shape)
        if op == "Slice":  # begin and size computed at run time; size -1 runs to the end
            begin, size = args[1].tolist(), args[2].tolist()
            return args[0][tuple(slice(b, None if n == -1 else b + n) for b, n in zip(begin, size))]
        if op == "Range":  # [TF] sequence_ops.cc: start, limit, delta of the output's dtype
            start, limit, delta = (a.item() for a in args)
            return torch.arange(start, limit, delta, dtype=p["dtype"])
        if op == "BroadcastArgs":
            shape = torch.broadcast_shapes(tuple(args[0].tolist()), tuple(args[1].tolist()))
            return torch.tensor(shape, dtype=args[0].dtype)
        if op == "BroadcastTo":
            return torch.broadcast_to(args[0], [int(s) for s in args[1].tolist()])
        if op == "Fill":
            return torch.full([int(s) for s in args[0].tolist()], args[1].item(), dtype=args[1].dtype)
        if op == "GatherV2":
            params, indices = args
            axis = p["axis"]
            flat = torch.index_select(params, axis, indices.reshape(-1).long())
            return flat.reshape(*params.shape[:axis], *indices.shape, *params.shape[axis + 1:])
        raise NotImplementedError(op)

    def extra_repr(self) -> str:
        return f"{self.op}, {self.params}" if self.params else self.op


class TFReduce(nn.Module):
    """``Mean`` / ``Sum`` / ``Max`` / ``Min`` / ``Prod`` / ``All`` / ``Any`` over fixed axes."""

    def __init__(self, op: str, axes: Sequence[int], keepdim: bool):
        super().__init__()
        self.op = op
        self.axes = tuple(int(a) for a in axes)
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.axes:
            return x
        if self.op == "Mean":
            return x.mean(dim=self.axes, keepdim=self.keepdim)
        if self.op == "Sum":
            return x.sum(dim=self.axes, keepdim=self.keepdim)
        out = x
        for axis in sorted(self.axes, reverse=True):
            if self.op == "Max":
                out = out.amax(dim=axis, keepdim=self.keepdim)
            elif self.op == "Min":
                out = out.amin(dim=axis, keepdim=self.keepdim)
            elif self.op == "Prod":
                out = out.prod(dim=axis, keepdim=self.keepdim)
            elif self.op == "All":
                out = out.all(dim=axis, keepdim=self.keepdim)
            else:
                out = out.any(dim=axis, keepdim=self.keepdim)
        return out

    def extra_repr(self) -> str:
        return f"{self.op}, axes={self.axes}, keepdim={self.keepdim}"


class TFShape(nn.Module):
    """``Shape``, ``Size``, ``Rank``: the run-time shape as an integer tensor, in TF's axis order (``order`` reads
    a channels-first tensor's axes in that order), its element count or its rank; computed from the tensor on
    every call, so a size derived from the input follows the input."""

    def __init__(self, dtype: torch.dtype = torch.int32, order: Sequence[int] | None = None, what: str = "Shape"):
        super().__init__()
        self.dtype = dtype
        self.order = tuple(order) if order is not None else None
        self.what = what

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.what == "Size":
            return torch.tensor(x.numel(), dtype=self.dtype)
        if self.what == "Rank":
            return torch.tensor(x.dim(), dtype=self.dtype)
        shape = tuple(x.shape)
        if self.order is not None:
            shape = tuple(shape[i] for i in self.order)
        return torch.tensor(shape, dtype=self.dtype)

    def extra_repr(self) -> str:
        return self.what


class TFShapeN(nn.Module):
    """``ShapeN``: the run-time shape of each input (held in TF's layout)."""

    def __init__(self, dtype: torch.dtype = torch.int32):
        super().__init__()
        self.dtype = dtype

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.tensor(tuple(x.shape), dtype=self.dtype) for x in xs)


class TFSoftmax(nn.Module):
    def __init__(self, dim: int, log: bool = False):
        super().__init__()
        self.dim = dim
        self.log = log

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(x, self.dim) if self.log else torch.softmax(x, self.dim)


class TFPermute(nn.Module):
    def __init__(self, perm: Sequence[int]):
        super().__init__()
        self.perm = tuple(int(p) for p in perm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(self.perm)


class TFSqueeze(nn.Module):
    """``Squeeze`` (given axes, or every axis of size 1) and ``ExpandDims``."""

    def __init__(self, axes: Sequence[int], expand: bool = False):
        super().__init__()
        self.axes = tuple(int(a) for a in axes)
        self.expand = expand

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.expand:
            return x.unsqueeze(self.axes[0])
        if not self.axes:
            return x.squeeze()
        return x.squeeze(self.axes)


class TFCast(nn.Module):
    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)


class TFSlice(nn.Module):
    """``StridedSlice`` / ``Slice`` with constant bounds: ``spec`` is one entry per output axis step: ``("slice",
    begin, end, step)`` (None for open ends), ``("index", i)``, ``("new",)`` or ``("ellipsis",)``. Negative steps
    gather the indices Python's ``range`` gives, which is TF's rule too ([TF] ``strided_slice_op.cc``)."""

    def __init__(self, spec: Sequence[Sequence[Any]]):
        super().__init__()
        self.spec = [tuple(s) for s in spec]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index: list[Any] = []
        reversed_axes = []
        for entry in self.spec:
            kind = entry[0]
            if kind == "slice":
                _, begin, end, step = entry
                if step < 0:
                    reversed_axes.append((len(index), begin, end, step))
                    index.append(slice(None))
                else:
                    index.append(slice(begin, end, step))
            elif kind == "index":
                index.append(entry[1])
            elif kind == "new":
                index.append(None)
            else:
                index.append(Ellipsis)
        if reversed_axes:
            dims = _index_dims(index, x.dim())
            for position, begin, end, step in reversed_axes:
                axis = dims[position]
                picks = list(range(x.shape[axis]))[slice(begin, end, step)]
                x = torch.index_select(x, axis, torch.tensor(picks, dtype=torch.long, device=x.device))
        return x[tuple(index)]

    def extra_repr(self) -> str:
        return str(self.spec)


def strided_slice_spec(begin: Sequence[int], end: Sequence[int], strides: Sequence[int],
                       masks: dict[str, int]) -> list[Any]:
    """[TF] ``strided_slice`` masks → one entry per slicing axis (see ``TFSlice``)."""
    spec: list[Any] = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        bit = 1 << i
        if masks["ellipsis_mask"] & bit:
            spec.append(("ellipsis",))
        elif masks["new_axis_mask"] & bit:
            spec.append(("new",))
        elif masks["shrink_axis_mask"] & bit:
            spec.append(("index", int(b)))
        else:
            spec.append(("slice", None if masks["begin_mask"] & bit else int(b),
                         None if masks["end_mask"] & bit else int(e), int(s)))
    return spec


class TFDynamicSlice(Operands):
    """``StridedSlice`` whose begin / end / strides are computed at run time (``x[:, t]`` in a loop body): the
    slice is built from their values on each call, with TF's masks, as ``TFSlice`` does for constant bounds."""

    def __init__(self, masks: dict[str, int], slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor]):
        super().__init__(slots, consts)
        self.masks = dict(masks)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x, begin, end, strides = self.gather(inputs)
        bounds = [[int(v) for v in t.reshape(-1).tolist()] for t in (begin, end, strides)]
        if any(s == 0 for s in bounds[2]):
            raise ValueError("StridedSlice: stride 0")
        return TFSlice(strided_slice_spec(*bounds, self.masks))(x)

    def extra_repr(self) -> str:
        return str(self.masks)


def _index_dims(index: list[Any], rank: int) -> list[int]:
    """The input axis each entry of a basic index addresses (None / new axes address none)."""
    dims, axis = [], 0
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    for item in index:
        if item is Ellipsis:
            dims.append(-1)
            axis += rank - consumed
        elif item is None:
            dims.append(-1)
        else:
            dims.append(axis)
            axis += 1
    return dims


class TFSplit(nn.Module):
    """``Split`` / ``SplitV`` / ``Unpack``: a tuple of tensors. On an axis whose size is known only at run time,
    ``sizes`` is ``[-1] * num`` (``Split``: equal parts) or holds one ``-1`` (``SplitV``: the rest)."""

    def __init__(self, sizes: Sequence[int] | None, axis: int, unstack: bool = False):
        super().__init__()
        self.sizes = list(sizes) if sizes is not None else None
        self.axis = axis
        self.unstack = unstack

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.unstack or self.sizes is None:
            return tuple(torch.unbind(x, self.axis))
        sizes = self.sizes
        if sizes.count(-1) > 1:
            sizes = [x.shape[self.axis] // len(sizes)] * len(sizes)
        elif -1 in sizes:
            rest = x.shape[self.axis] - sum(s for s in sizes if s != -1)
            sizes = [rest if s == -1 else s for s in sizes]
        return tuple(torch.split(x, sizes, dim=self.axis))


class TFPad(nn.Module):
    """``Pad`` / ``PadV2`` / ``MirrorPad``: ``pads`` is (before, after) per axis. ``REFLECT`` excludes the edge,
    ``SYMMETRIC`` repeats it ([TF] ``mirror_pad_op.h``); done per axis with flips, for any axis."""

    def __init__(self, pads: Sequence[Sequence[int]] | None, mode: str = "CONSTANT", value: float = 0.0):
        super().__init__()
        self.pads = [tuple(int(v) for v in p) for p in pads] if pads is not None else None  # None: per call
        self.mode = mode
        self.value = value

    def forward(self, x: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        pads = self.pads if given is None else [tuple(int(v) for v in p) for p in given.reshape(-1, 2).tolist()]
        if self.mode == "CONSTANT":
            flat: list[int] = []
            for before, after in reversed(pads):
                flat.extend((before, after))
            return F.pad(x, flat, value=self.value)
        shift = 1 if self.mode == "REFLECT" else 0
        for axis, (before, after) in enumerate(pads):
            x = mirror_pad(x, axis, before, after, shift)
        return x

    def extra_repr(self) -> str:
        return f"pads={self.pads}, mode={self.mode}"


CUBIC_TABLE_SIZE = 1024


def _cubic_table(a: float) -> torch.Tensor:
    """[TF] resize_bicubic_op.cc ``InitCoeffsTable``: the cubic kernel at 1025 offsets, for |x| in [0, 1] (column 0)
    and [1, 2] (column 1), in float32 as TF computes it."""
    x = torch.arange(CUBIC_TABLE_SIZE + 1, dtype=torch.float32) / CUBIC_TABLE_SIZE
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    x = x + 1.0
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.stack([near, far], 1)


def _cubic_axis(x: torch.Tensor, axis: int, n_out: int, scale: float, half_pixel: bool) -> torch.Tensor:
    """``ResizeBicubic`` along one axis as TF's kernel: the fractional offset rounded to 1/1024 and looked up in
    the table; half-pixel centers use Keys' a = -0.5, drop taps outside the input and renormalize, legacy
    (a = -0.75) clamps the taps ([TF] ``GetWeightsAndIndices``)."""
    n_in = x.shape[axis]
    table = _cubic_table(-0.5 if half_pixel else -0.75)
    out = torch.arange(n_out, dtype=torch.float32)
    src = (out + 0.5) * scale - 0.5 if half_pixel else out * scale
    base = torch.floor(src)
    offset = torch.round((src - base) * CUBIC_TABLE_SIZE).long()  # (lrintf: half to even, as torch.round)
    weights = torch.stack([table[offset, 1], table[offset, 0], table[CUBIC_TABLE_SIZE - offset, 0],
                           table[CUBIC_TABLE_SIZE - offset, 1]], 1)  # [n_out, 4]
    taps = base.long().unsqueeze(1) + torch.arange(-1, 3)
    clamped = taps.clamp(0, n_in - 1)
    if half_pixel:
        weights = torch.where(clamped == taps, weights, torch.zeros_like(weights))
        total = weights.sum(1, keepdim=True)
        weights = torch.where(total.abs() >= 1000 * torch.finfo(torch.float32).tiny, weights / total, weights)
    picked = torch.index_select(x, axis, clamped.reshape(-1))
    shape = list(x.shape)
    shape[axis:axis + 1] = [n_out, 4]
    picked = picked.reshape(shape)
    w_shape = [1] * len(shape)
    w_shape[axis:axis + 2] = [n_out, 4]
    return (picked * weights.reshape(w_shape).to(x.dtype)).sum(axis + 1)


def _area_weights(n_in: int, n_out: int, scale: float) -> torch.Tensor:
    """``ResizeArea`` along one axis ([TF] resize_area_op.cc): output i averages the input over
    [i scale, (i+1) scale), each input cell weighted by the part of it covered (indices past the end clamped)."""
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(lo // 1), int(-(-hi // 1))):
            weights[i, min(j, n_in - 1)] += (min(j + 1, hi) - max(j, lo)) / scale
    return weights


class TFImageResize(nn.Module):
    """``ResizeBilinear`` / ``ResizeNearestNeighbor`` (``ResizeBicubic``, ``ResizeArea``: ``_cubic_axis``,
    ``_area_weights``) on the last two axes of an N,C,H,W tensor with TF's own
    source-coordinate rules ([TF] ``image_resizer_state.h``): ``align_corners`` scales by (in-1)/(out-1);
    ``half_pixel_centers`` samples at (out + 0.5) * scale - 0.5 (bilinear) or floor((out + 0.5) * scale)
    (nearest); legacy TF1 samples at out * scale (bilinear) or floor(out * scale) (nearest)."""

    def __init__(self, size: Sequence[int] | None, method: str, align_corners: bool, half_pixel_centers: bool):
        super().__init__()
        self.size = tuple(int(s) for s in size) if size is not None else None  # None: given on each call
        self.method = method
        self.align_corners = align_corners
        self.half_pixel_centers = half_pixel_centers

    def _scale(self, n_in: int, n_out: int) -> float:
        if self.align_corners and n_out > 1:
            return (n_in - 1) / (n_out - 1)
        return n_in / n_out

    def _axis(self, x: torch.Tensor, axis: int, n_out: int) -> torch.Tensor:
        n_in = x.shape[axis]
        scale = self._scale(n_in, n_out)
        out = torch.arange(n_out, dtype=torch.float64)
        if self.method == "bicubic":
            return _cubic_axis(x, axis, n_out, scale, self.half_pixel_centers)
        if self.method == "area":
            return torch.tensordot(x, _area_weights(n_in, n_out, scale).to(x.dtype), dims=([axis], [1])).movedim(
                -1, axis)
        if self.method == "nearest":
            if self.half_pixel_centers:
                src = torch.floor((out + 0.5) * scale)
            elif self.align_corners:  # TF's roundf: halves away from zero (torch.round rounds them to even)
                src = torch.floor(out * scale + 0.5)
            else:
                src = torch.floor(out * scale)
            idx = src.clamp(0, n_in - 1).long()
            return torch.index_select(x, axis, idx)
        src = (out + 0.5) * scale - 0.5 if self.half_pixel_centers else out * scale
        floor = torch.floor(src)
        lower = floor.clamp(min=0).clamp(max=n_in - 1).long()
        upper = torch.ceil(src).clamp(min=0, max=n_in - 1).long()
        lerp = (src - floor).to(x.dtype)
        shape = [1] * x.dim()
        shape[axis] = n_out
        lerp = lerp.reshape(shape)
        a = torch.index_select(x, axis, lower)
        b = torch.index_select(x, axis, upper)
        return a + (b - a) * lerp

    def forward(self, x: torch.Tensor, size: torch.Tensor | None = None) -> torch.Tensor:
        height, width = self.size if size is None else (int(s) for s in size.reshape(-1).tolist())
        x = self._axis(x, x.dim() - 2, height)
        return self._axis(x, x.dim() - 1, width)

    def extra_repr(self) -> str:
        return (f"size={self.size}, {self.method}, align_corners={self.align_corners}, "
                f"half_pixel_centers={self.half_pixel_centers}")


class TFLRN(nn.Module):
    """``LRN`` over the channel axis (1) of N,C,H,W: ``x / (bias + alpha * sum_{|d|<=r} x[c+d]^2) ** beta``
    ([TF] ``lrn_op.cc``: alpha is not divided by the window size, unlike torch's ``LocalResponseNorm``)."""

    def __init__(self, depth_radius: int, bias: float, alpha: float, beta: float):
        super().__init__()
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.depth_radius
        sq = F.pad(torch.square(x).unsqueeze(1), (0, 0, 0, 0, r, r))
        window = F.avg_pool3d(sq, (2 * r + 1, 1, 1), stride=1).squeeze(1) * (2 * r + 1)
        return x / torch.pow(self.bias + self.alpha * window, self.beta)


class TFConvTranspose(nn.Module):
    """``Conv2DBackpropInput``: a transposed conv without padding, cropped to TF's output size (the crop starts
    at the forward conv's ``before`` padding). ``crop`` None: the output size is computed at run time (the
    node's first input, in TF's layout: ``nhwc`` says where its spatial sizes are) and the crop with it, from
    ``starts`` (VALID, EXPLICIT) or TF's SAME padding for that size."""

    def __init__(self, conv: nn.Module, crop: Sequence[tuple[int, int]] | None, starts: Sequence[int] | None = None,
                 nhwc: bool = True):
        super().__init__()
        self.conv = conv
        self.crop = [tuple(c) for c in crop] if crop is not None else None
        self.starts = list(starts) if starts is not None else None  # None: SAME
        self.nhwc = nhwc

    def _crop(self, sizes: torch.Tensor) -> list[tuple[int, int]]:
        n = len(self.conv.kernel_size)
        values = [int(v) for v in sizes.reshape(-1).tolist()]
        spatial = values[1:1 + n] if self.nhwc else values[2:2 + n]
        if self.starts is not None:
            return list(zip(self.starts, spatial))
        return [(tf_same_padding(s, k, st, d)[0], s) for s, k, st, d in
                zip(spatial, self.conv.kernel_size, self.conv.stride, self.conv.dilation)]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        y = self.conv(inputs[-1])
        for i, (start, size) in enumerate(self.crop if self.crop is not None else self._crop(inputs[0])):
            y = y.narrow(2 + i, start, size)
        return y


class TFArgMax(nn.Module):
    def __init__(self, axis: int, dtype: torch.dtype, smallest: bool = False):
        super().__init__()
        self.axis, self.dtype, self.smallest = axis, dtype, smallest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.argmin if self.smallest else torch.argmax)(x, dim=self.axis).to(self.dtype)


class TFTensorList(Operands):
    """TensorList ops ([TF] ``list_kernels.h``) on a list held as one stacked tensor ``[n, *element_shape]``:
    ``TensorListReserve`` (zeros; an element shape TF leaves open is taken from the first item set),
    ``TensorListFromTensor`` / ``TensorListStack`` (the tensor itself), ``TensorListGetItem``,
    ``TensorListSetItem`` (out of place, as TF's value semantics), ``TensorListLength``."""

    def __init__(self, op: str, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor],
                 dtype: torch.dtype = torch.float32):
        super().__init__(slots, consts)
        self.op = op
        self.dtype = dtype

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        args = self.gather(inputs)
        op = self.op
        if op == "TensorListReserve":
            shape = [int(s) for s in args[0].reshape(-1).tolist()]
            if args[0].dim() == 0:  # unknown rank: shaped by the first item set
                shape = [0]
            return torch.zeros((int(args[1]), *[max(s, 0) for s in shape]), dtype=self.dtype)
        if op in ("TensorListFromTensor", "TensorListStack"):
            return args[0]
        if op == "TensorListLength":
            return torch.tensor(args[0].shape[0], dtype=torch.int32)
        index = args[1].reshape(1).long()
        if op == "TensorListGetItem":
            return torch.index_select(args[0], 0, index).squeeze(0)
        stacked, item = args[0], args[2]
        if stacked.shape[1:] != item.shape and stacked.numel() == 0:  # an open element shape, now known
            stacked = stacked.new_zeros((stacked.shape[0], *item.shape))
        if stacked.is_floating_point() and item.is_floating_point() and stacked.dtype != item.dtype:
            stacked = stacked.to(item.dtype)  # a module moved to float64 computes its items in float64
        return stacked.index_put((index,), item.unsqueeze(0).to(stacked.dtype))

    def extra_repr(self) -> str:
        return self.op


class TFWhile(Operands):
    """``While`` / ``StatelessWhile``: ``body`` runs while ``cond`` is true on the loop variables ([TF]
    ``ops/while_v2.py``; ``maximum_iterations`` is part of ``cond`` there). ``slots`` hold each loop variable's
    initial value: a run-time input, a constant buffer, or ``("fed", 0)`` for a constant the functions were built
    with. ``cond`` and ``body`` take the other variables in order; ``body`` returns the new values of the
    variables listed in ``changing`` (the rest are invariant). Returns every variable (fed ones as empty
    tensors: the graph reads their constant directly)."""

    def __init__(self, cond: nn.Module, body: nn.Module, slots: Sequence[tuple[str, int]],
                 consts: Sequence[torch.Tensor], changing: Sequence[int]):
        super().__init__([s for s in slots if s[0] != "fed"], consts)
        self.cond = cond
        self.body = body
        self.fed = [i for i, s in enumerate(slots) if s[0] == "fed"]
        self.count = len(slots)
        self.changing = [int(i) for i in changing]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        given = iter(self.gather(inputs))
        values: list[Any] = [None if i in self.fed else next(given) for i in range(self.count)]
        live = [i for i in range(self.count) if i not in self.fed]
        while True:
            args = [values[i] for i in live]
            if not bool(self.cond(*args)):
                break
            out = self.body(*args)
            for i, value in zip(self.changing, out if isinstance(out, (tuple, list)) else (out,)):
                values[i] = value
        return tuple(torch.empty(0) if v is None else v for v in values)


class TFSpaceToBatch(nn.Module):
    """``SpaceToBatchND`` on a tensor in TF's layout ([TF] ``spacetobatch_functor.h``): the M spatial axes after
    the batch are zero-padded, cut into blocks of ``block``, and the block offsets moved in front of the batch:
    ``[B, H, W, C]`` → ``[b0*b1*B, (H+p)/b0, (W+p)/b1, C]``. TF's dilated convolutions run between this and
    ``TFBatchToSpace``."""

    def __init__(self, block: Sequence[int], pads: Sequence[Sequence[int]] | None):
        super().__init__()
        self.block = [int(b) for b in block]
        self.pads = [tuple(int(v) for v in p) for p in pads] if pads is not None else None  # None: per call

    def forward(self, x: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        m = len(self.block)
        pads = self.pads if given is None else [tuple(int(v) for v in p) for p in given.reshape(-1, 2).tolist()]
        flat: list[int] = [0, 0] * (x.dim() - 1 - m)
        for before, after in reversed(pads):
            flat.extend((before, after))
        x = F.pad(x, flat)
        batch, rest = x.shape[0], list(x.shape[1 + m:])
        split: list[int] = [batch]
        for i, b in enumerate(self.block):
            split.extend((x.shape[1 + i] // b, b))
        x = x.reshape(*split, *rest)
        perm = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)]
        perm += list(range(1 + 2 * m, x.dim()))
        x = x.permute(perm)
        return x.reshape(-1, *x.shape[1 + m:1 + 2 * m], *rest)

    def extra_repr(self) -> str:
        return f"block={self.block}, pads={self.pads}"


class TFBatchToSpace(nn.Module):
    """``BatchToSpaceND``, the inverse of ``TFSpaceToBatch`` ([TF] ``batchtospace_op.cc``): the block offsets in
    front of the batch are interleaved back into the M spatial axes, then each is cropped (before, after)."""

    def __init__(self, block: Sequence[int], crops: Sequence[Sequence[int]] | None):
        super().__init__()
        self.block = [int(b) for b in block]
        self.crops = [tuple(int(v) for v in c) for c in crops] if crops is not None else None  # None: per call

    def forward(self, x: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        m = len(self.block)
        crops = self.crops if given is None else [tuple(int(v) for v in c) for c in given.reshape(-1, 2).tolist()]
        spatial, rest = list(x.shape[1:1 + m]), list(x.shape[1 + m:])
        x = x.reshape(*self.block, -1, *spatial, *rest)
        perm = [m]
        for i in range(m):
            perm.extend((m + 1 + i, i))
        perm += list(range(1 + 2 * m, x.dim()))
        x = x.permute(perm)
        x = x.reshape(x.shape[0], *[s * b for s, b in zip(spatial, self.block)], *rest)
        for i, (before, after) in enumerate(crops):
            x = x.narrow(1 + i, before, x.shape[1 + i] - before - after)
        return x

    def extra_repr(self) -> str:
        return f"block={self.block}, crops={self.crops}"


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


def _iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one box with many, corners in either order ([TF] non_max_suppression_op.cc ``IOU``: 0 when
    either area is empty)."""
    def span(b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (torch.minimum(b[..., 0], b[..., 2]), torch.minimum(b[..., 1], b[..., 3]),
                torch.maximum(b[..., 0], b[..., 2]), torch.maximum(b[..., 1], b[..., 3]))

    y1, x1, y2, x2 = span(box)
    ys1, xs1, ys2, xs2 = span(boxes)
    area, areas = (y2 - y1) * (x2 - x1), (ys2 - ys1) * (xs2 - xs1)
    inter = (torch.minimum(y2, ys2) - torch.maximum(y1, ys1)).clamp(min=0) * \
        (torch.minimum(x2, xs2) - torch.maximum(x1, xs1)).clamp(min=0)
    union = area + areas - inter
    return torch.where((area <= 0) | (areas <= 0), torch.zeros_like(union), inter / union)


def non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, max_out: int, iou_threshold: float,
                        score_threshold: float) -> torch.Tensor:
    """Greedy hard NMS as TF's ``NonMaxSuppressionV3``: candidates above ``score_threshold`` by descending score
    (ties: lower index first), each kept unless its IoU with a kept box exceeds ``iou_threshold``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[scores[order] > score_threshold]
    kept: list[int] = []
    for i in order.tolist():
        if len(kept) >= max_out:
            break
        if not kept or not bool((_iou(boxes[i], boxes[kept]) > iou_threshold).any()):
            kept.append(i)
    return torch.tensor(kept, dtype=torch.int32)


def combined_non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, per_class: int, total: int,
                                 iou_threshold: float, score_threshold: float, pad_per_class: bool,
                                 clip_boxes: bool) -> tuple[torch.Tensor, ...]:
    """``CombinedNonMaxSuppression`` ([TF] combined_non_max_suppression_op.cc): per image, hard NMS per class
    (boxes ``[N, q, 4]``, q = 1 shared by every class), the survivors of all classes by descending score, the
    first ``total`` kept (``pad_per_class``: at most ``per_class * classes``), zero-padded, with their count."""
    size = min(total, per_class * scores.shape[-1]) if pad_per_class else total
    out_boxes, out_scores, out_classes, counts = [], [], [], []
    for b in range(boxes.shape[0]):
        found = []
        for c in range(scores.shape[-1]):
            class_boxes = boxes[b, :, 0 if boxes.shape[2] == 1 else c]
            kept = non_max_suppression(class_boxes, scores[b, :, c], per_class, iou_threshold, score_threshold)
            found += [(float(scores[b, i, c]), c, class_boxes[i]) for i in kept.tolist()]
        found = sorted(found, key=lambda f: -f[0])[:size]
        picked = torch.zeros(size, 4, dtype=boxes.dtype)
        for j, (_, _, box) in enumerate(found):
            picked[j] = box.clamp(0.0, 1.0) if clip_boxes else box
        out_boxes.append(picked)
        out_scores.append(torch.tensor([f[0] for f in found] + [0.0] * (size - len(found)), dtype=scores.dtype))
        out_classes.append(torch.tensor([float(f[1]) for f in found] + [0.0] * (size - len(found)),
                                        dtype=scores.dtype))
        counts.append(len(found))
    return (torch.stack(out_boxes), torch.stack(out_scores), torch.stack(out_classes),
            torch.tensor(counts, dtype=torch.int32))


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


def _crop_and_resize(image: torch.Tensor, boxes: torch.Tensor, box_index: torch.Tensor, size: torch.Tensor,
                     method: str, extrapolation: float) -> torch.Tensor:
    """``CropAndResize`` on NHWC images ([TF] crop_and_resize_op.cc): box ``(y1, x1, y2, x2)`` in [0, 1] of
    ``image[box_index]`` sampled on a ``size`` grid at ``y1 (H-1) + i (y2-y1)(H-1)/(h-1)`` (the middle when
    h = 1), bilinear or nearest (rounded); samples outside the image are ``extrapolation``."""
    height, width = image.shape[1], image.shape[2]
    crop_h, crop_w = (int(v) for v in size.reshape(-1).tolist())

    def coords(lo: torch.Tensor, hi: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
        if n_out == 1:
            return (0.5 * (lo + hi) * (n_in - 1)).unsqueeze(-1)
        steps = torch.arange(n_out, dtype=image.dtype)
        return lo.unsqueeze(-1) * (n_in - 1) + steps * ((hi - lo) * (n_in - 1) / (n_out - 1)).unsqueeze(-1)

    ys, xs = coords(boxes[:, 0], boxes[:, 2], crop_h, height), coords(boxes[:, 1], boxes[:, 3], crop_w, width)
    picked = image[box_index.long()]  # [boxes, H, W, C]
    batch = torch.arange(picked.shape[0]).reshape(-1, 1, 1)

    def sample(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return picked[batch, yi.long().clamp(0, height - 1).unsqueeze(-1), xi.long().clamp(0, width - 1).unsqueeze(1)]

    if method == "nearest":
        out = sample(torch.round(ys), torch.round(xs))
    else:
        y0, x0 = torch.floor(ys), torch.floor(xs)
        dy, dx = (ys - y0).reshape(*ys.shape, 1, 1), (xs - x0).reshape(xs.shape[0], 1, -1, 1)
        top = sample(y0, x0) + (sample(y0, torch.ceil(xs)) - sample(y0, x0)) * dx
        bottom = sample(torch.ceil(ys), x0) + (sample(torch.ceil(ys), torch.ceil(xs)) - sample(torch.ceil(ys), x0)) * dx
        out = top + (bottom - top) * dy
    inside = ((ys >= 0) & (ys <= height - 1)).unsqueeze(-1) & ((xs >= 0) & (xs <= width - 1)).unsqueeze(1)
    return torch.where(inside.unsqueeze(-1), out, torch.full_like(out, extrapolation))


def _extract_patches(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], rate: Sequence[int],
                     same: bool) -> torch.Tensor:
    """``ExtractImagePatches`` on N,C,H,W: each output position holds its window as (row, column, channel),
    channel fastest, as TF's N,H,W,(kh kw C) does ([TF] extract_image_patches_op.cc); SAME pads with zeros."""
    if same:
        pads = [tf_same_padding(x.shape[2 + i], kernel[i], stride[i], rate[i]) for i in range(2)]
        x = F.pad(x, (*pads[1], *pads[0]))
    n, c = x.shape[:2]
    cols = F.unfold(x, tuple(kernel), dilation=tuple(rate), stride=tuple(stride))
    out_h = (x.shape[2] - (kernel[0] - 1) * rate[0] - 1) // stride[0] + 1
    cols = cols.reshape(n, c, kernel[0] * kernel[1], -1).permute(0, 2, 1, 3)
    return cols.reshape(n, kernel[0] * kernel[1] * c, out_h, -1)


def _max_pool_with_argmax(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], same: bool,
                          with_batch: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``MaxPoolWithArgmax`` on NHWC: the maxima and where each was, flattened as ``((b H + y) W + x) C + c``
    (``b`` only with ``include_batch_in_index``) ([TF] maxpooling_op.cc)."""
    n, height, width, c = x.shape
    planes = x.permute(0, 3, 1, 2)
    top = left = 0
    if same:
        (top, bottom), (left, right) = (tf_same_padding(height, kernel[0], stride[0]),
                                        tf_same_padding(width, kernel[1], stride[1]))
        planes = F.pad(planes, (left, right, top, bottom), value=float("-inf"))
    values, index = F.max_pool2d(planes, tuple(kernel), tuple(stride), return_indices=True)
    y, xs = index // planes.shape[3] - top, index % planes.shape[3] - left
    flat = (y * width + xs) * c + torch.arange(c).reshape(1, c, 1, 1)
    if with_batch:
        flat = flat + torch.arange(n).reshape(n, 1, 1, 1) * (height * width * c)
    return values.permute(0, 2, 3, 1), flat.permute(0, 2, 3, 1)


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


class TFCall(Operands):
    """An op that is one function above of its operands (constants as buffers) and fixed ``params``."""

    def __init__(self, op: str, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor],
                 params: dict[str, Any] | None = None, **more: Any):
        super().__init__(slots, consts)
        self.op = op
        self.params = {**(params or {}), **more}  # (one dict, so emit can write it back)

    def forward(self, *inputs: torch.Tensor) -> Any:
        args = self.gather(inputs)
        p = self.params
        op = self.op
        if op in ("Cumsum", "Cumprod"):
            return _cumulative(args[0], p["axis"], p["exclusive"], p["reverse"], op == "Cumprod")
        if op == "DepthToSpace":
            return _depth_to_space(args[0], p["block"])
        if op == "SpaceToDepth":
            return _space_to_depth(args[0], p["block"])
        if op == "OneHot":
            return _one_hot(*args, axis=p["axis"])
        if op.startswith("TensorScatter"):
            return _scatter(*args, how=p["how"])
        if op == "ScatterNd":
            indices, updates, shape = args
            return _scatter(updates.new_zeros([int(s) for s in shape.tolist()]), indices, updates, "add")
        if op == "GatherNd":
            return _gather_nd(*args)
        if op == "MatrixBandPart":
            return _band_part(*args)
        if op == "ReverseSequence":
            return _reverse_sequence(*args, seq_axis=p["seq_axis"], batch_axis=p["batch_axis"])
        if "Segment" in op:
            count = int(args[2]) if op.startswith("Unsorted") else int(args[1].max()) + 1
            return _segments(args[0], args[1], count, p["how"], not op.startswith("Unsorted"))
        if op == "CombinedNonMaxSuppression":
            boxes, scores, per_class, total, iou, threshold = args
            return combined_non_max_suppression(boxes, scores, int(per_class), int(total), float(iou),
                                                float(threshold), p["pad_per_class"], p["clip_boxes"])
        if op.startswith("NonMaxSuppression"):
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
        if op in ("Unique", "UniqueWithCounts"):
            found = _unique(args[0], p["index_dtype"])
            return found if op == "UniqueWithCounts" else found[:2]
        if op in ("Bincount", "DenseBincount"):
            return _bincount(args[0], args[1], args[2], p.get("binary", False))
        if op == "AdjustContrastv2":  # [TF] adjust_contrast_op.cc: around each image's per-channel mean
            mean = args[0].mean(dim=(-3, -2), keepdim=True)
            return (args[0] - mean) * args[1] + mean
        if op == "CropAndResize":
            return _crop_and_resize(*args, method=p["method"], extrapolation=p["extrapolation"])
        if op == "ExtractImagePatches":
            return _extract_patches(args[0], p["kernel"], p["stride"], p["rate"], p["same"])
        if op == "MaxPoolWithArgmax":
            values, index = _max_pool_with_argmax(args[0], p["kernel"], p["stride"], p["same"], p["with_batch"])
            return values, index.to(p["index_dtype"])
        if op.startswith("FakeQuant"):
            low, high = (args[1], args[2]) if len(args) == 3 else (torch.tensor(p["min"]), torch.tensor(p["max"]))
            return _fake_quant(args[0], low, high, p["bits"], p["narrow"])
        if op == "DynamicPartition":
            return tuple(args[0][args[1] == i] for i in range(p["count"]))
        if op == "MatrixSetDiag":
            out = args[0].clone()
            out.diagonal(dim1=-2, dim2=-1).copy_(args[1])
            return out
        if op == "TopKV2":
            values, indices = torch.topk(args[0], int(args[1]), dim=-1, largest=True, sorted=True)
            return values, indices.to(p["index_dtype"])
        return CALLS[op](*args)

    def extra_repr(self) -> str:
        return f"{self.op}, {self.params}" if self.params else self.op


CALLS: dict[str, Callable[..., torch.Tensor]] = {
    "ClipByValue": lambda x, lo, hi: torch.minimum(torch.maximum(x, lo), hi),
    "Roll": lambda x, shift, axis: torch.roll(x, [int(s) for s in shift.reshape(-1).tolist()],
                                              [int(a) for a in axis.reshape(-1).tolist()]),
    "InvertPermutation": lambda x: torch.argsort(x).to(x.dtype),
    "MatrixDeterminant": torch.linalg.det,
    "MatrixDiag": torch.diag_embed,
    "MatrixDiagPart": lambda x: torch.diagonal(x, dim1=-2, dim2=-1),
    "Where": lambda x: torch.nonzero(x),
    "DynamicStitch": _dynamic_stitch,
    "ParallelDynamicStitch": _dynamic_stitch,
}
