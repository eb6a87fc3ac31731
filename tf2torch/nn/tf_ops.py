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

UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu, "Relu6": lambda x: torch.clamp(x, 0.0, 6.0), "Elu": F.elu, "Selu": F.selu,
    "Sigmoid": torch.sigmoid, "Tanh": torch.tanh, "Softplus": F.softplus, "Softsign": F.softsign,
    "Exp": torch.exp, "Log": torch.log, "Log1p": torch.log1p, "Sqrt": torch.sqrt, "Rsqrt": torch.rsqrt,
    "Square": torch.square, "Neg": torch.neg, "Abs": torch.abs, "Floor": torch.floor, "Ceil": torch.ceil,
    "Round": torch.round, "Sign": torch.sign, "Reciprocal": torch.reciprocal, "Inv": torch.reciprocal,
    "Erf": torch.erf, "Sin": torch.sin, "Cos": torch.cos, "LogicalNot": torch.logical_not,
    "ZerosLike": torch.zeros_like, "OnesLike": torch.ones_like, "IsNan": torch.isnan,
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
        for j, c in enumerate(consts):
            self.register_buffer(f"const{j}", c)

    def gather(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [inputs[i] if kind == "input" else getattr(self, f"const{i}") for kind, i in self.slots]


class TFFunction(Operands):
    """Ops that are one torch call over their operands: ``AddN``, ``Select``, ``Einsum``, ``BatchMatMulV2``,
    ``Pack``, ``ConcatV2``, ``Tile``..."""

    def __init__(self, op: str, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor], **params: Any):
        super().__init__(slots, consts)
        self.op = op
        self.params = params

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
    """``Shape``: the run-time shape as an integer tensor, in TF's axis order (``order`` reads a channels-first
    tensor's axes in that order)."""

    def __init__(self, dtype: torch.dtype = torch.int32, order: Sequence[int] | None = None):
        super().__init__()
        self.dtype = dtype
        self.order = tuple(order) if order is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if self.order is not None:
            shape = tuple(shape[i] for i in self.order)
        return torch.tensor(shape, dtype=self.dtype)


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
    """``Split`` / ``SplitV`` / ``Unpack``: a tuple of tensors."""

    def __init__(self, sizes: Sequence[int] | None, axis: int, unstack: bool = False):
        super().__init__()
        self.sizes = list(sizes) if sizes is not None else None
        self.axis = axis
        self.unstack = unstack

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.unstack:
            return tuple(torch.unbind(x, self.axis))
        return tuple(torch.split(x, self.sizes, dim=self.axis))


class TFPad(nn.Module):
    """``Pad`` / ``PadV2`` / ``MirrorPad``: ``pads`` is (before, after) per axis. ``REFLECT`` excludes the edge,
    ``SYMMETRIC`` repeats it ([TF] ``mirror_pad_op.h``); done per axis with flips, for any axis."""

    def __init__(self, pads: Sequence[Sequence[int]], mode: str = "CONSTANT", value: float = 0.0):
        super().__init__()
        self.pads = [tuple(int(v) for v in p) for p in pads]
        self.mode = mode
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "CONSTANT":
            flat: list[int] = []
            for before, after in reversed(self.pads):
                flat.extend((before, after))
            return F.pad(x, flat, value=self.value)
        shift = 1 if self.mode == "REFLECT" else 0
        for axis, (before, after) in enumerate(self.pads):
            x = mirror_pad(x, axis, before, after, shift)
        return x

    def extra_repr(self) -> str:
        return f"pads={self.pads}, mode={self.mode}"


class TFResize(nn.Module):
    """``ResizeBilinear`` / ``ResizeNearestNeighbor`` on the last two axes of an N,C,H,W tensor with TF's own
    source-coordinate rules ([TF] ``image_resizer_state.h``): ``align_corners`` scales by (in-1)/(out-1);
    ``half_pixel_centers`` samples at (out + 0.5) * scale - 0.5 (bilinear) or floor((out + 0.5) * scale)
    (nearest); legacy TF1 samples at out * scale (bilinear) or floor(out * scale) (nearest)."""

    def __init__(self, size: Sequence[int], method: str, align_corners: bool, half_pixel_centers: bool):
        super().__init__()
        self.size = tuple(int(s) for s in size)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._axis(x, x.dim() - 2, self.size[0])
        return self._axis(x, x.dim() - 1, self.size[1])

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
    at the forward conv's ``before`` padding)."""

    def __init__(self, conv: nn.Module, crop: Sequence[tuple[int, int]]):
        super().__init__()
        self.conv = conv
        self.crop = [tuple(c) for c in crop]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        y = self.conv(inputs[-1])  # the output size, when computed at run time, comes first and is static here
        for i, (start, size) in enumerate(self.crop):
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
