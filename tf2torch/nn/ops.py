"""Run-time side of the operations library: one module, ``Op``, that calls a function of ``FUNCTIONS`` with the
arguments the converter fixed (constants, axes already in the tensor's layout) and the input tensors in their
slots. Each function has TensorFlow's semantics, stated where torch differs (floor division and modulo follow
the divisor's sign in both; ``round`` is half to even in both; ``gelu`` approximations; ``pad`` modes).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Slot:
    """Placeholder for the ``index``-th input tensor of an ``Op`` (or a tensor constant kept as a buffer)."""

    def __init__(self, index: int | str):
        self.index = index

    def __repr__(self) -> str:
        return f"x{self.index}" if isinstance(self.index, int) else str(self.index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Slot) and other.index == self.index

    def __hash__(self) -> int:
        return hash(("Slot", self.index))


def _fill(value: Any, tensors: tuple[torch.Tensor, ...], module: nn.Module) -> Any:
    if isinstance(value, Slot):
        return tensors[value.index] if isinstance(value.index, int) else getattr(module, value.index)
    if isinstance(value, list):
        return [_fill(v, tensors, module) for v in value]
    if isinstance(value, tuple):
        return tuple(_fill(v, tensors, module) for v in value)
    return value


def _has_slot(value: Any) -> bool:
    if isinstance(value, Slot):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_slot(v) for v in value)
    return False


def floor_divide(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.div(x, y, rounding_mode="floor")


def floor_mod(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """TF ``floormod``: the result has the divisor's sign (torch.remainder agrees)."""
    return torch.remainder(x, y)


def true_divide(x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    if dtype is not None:
        x, y = x.to(dtype), y.to(dtype)
    return torch.div(x, y)


def divide_no_nan(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.where(y == 0, torch.zeros_like(x * y), x / torch.where(y == 0, torch.ones_like(y), y))


def binary(fn_name: str) -> Any:
    return getattr(torch, fn_name)


def hard_sigmoid_k3(x: torch.Tensor) -> torch.Tensor:
    """Keras 3 / tf.keras ``hard_sigmoid`` op: relu6(x + 3) / 6."""
    return F.relu6(x + 3.0) / 6.0


def hard_swish(x: torch.Tensor) -> torch.Tensor:
    return x * F.relu6(x + 3.0) / 6.0


def gelu(x: torch.Tensor, approximate: bool) -> torch.Tensor:
    return F.gelu(x, approximate="tanh" if approximate else "none")


def leaky_relu(x: torch.Tensor, negative_slope: float) -> torch.Tensor:
    return torch.where(x >= 0, x, x * negative_slope)


def elu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.where(x > 0, x, alpha * torch.expm1(x))


def selu(x: torch.Tensor) -> torch.Tensor:
    return F.selu(x)


def softplus(x: torch.Tensor) -> torch.Tensor:
    return F.softplus(x)


def softmax(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    if len(dims) == 1:
        return torch.softmax(x, dims[0])
    shifted = x - x.amax(dim=dims, keepdim=True)
    exp = shifted.exp()
    return exp / exp.sum(dim=dims, keepdim=True)


def log_softmax(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    if len(dims) == 1:
        return torch.log_softmax(x, dims[0])
    return x - torch.logsumexp(x, dim=dims, keepdim=True)


def l2_normalize(x: torch.Tensor, dims: list[int], epsilon: float) -> torch.Tensor:
    """TF: ``x * rsqrt(max(sum(x**2), epsilon))``."""
    return x * torch.rsqrt(torch.clamp(torch.sum(x * x, dim=dims, keepdim=True), min=epsilon))


def reduce(x: torch.Tensor, op: str, dims: list[int] | None, keepdim: bool, correction: int = 0) -> torch.Tensor:
    """Reductions over several axes (None: all), TF semantics: an empty ``dims`` list reduces nothing."""
    if dims is not None and len(dims) == 0:
        return x
    if op in ("mean", "sum", "amax", "amin"):
        fn = getattr(torch, op)
        return fn(x, dim=dims if dims is not None else list(range(x.dim())), keepdim=keepdim)
    if op in ("std", "var"):
        dims_ = dims if dims is not None else list(range(x.dim()))
        return getattr(torch, op)(x, dim=dims_, keepdim=keepdim, correction=correction)
    fn = {"prod": torch.prod, "any": torch.any, "all": torch.all}[op]
    if op in ("any", "all") and x.dtype != torch.bool:
        x = x != 0
    for dim in sorted(dims if dims is not None else range(x.dim()), reverse=True):
        x = fn(x, dim=dim, keepdim=keepdim)
    return x


def arg_reduce(x: torch.Tensor, op: str, dim: int | None, keepdim: bool,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """``argmax`` / ``argmin`` as int64, or as ``dtype`` (a raw TF ``ArgMax``'s ``output_type``)."""
    fn = torch.argmax if op == "argmax" else torch.argmin
    if dim is None:
        out = fn(x.reshape(-1))
        out = out.reshape([1] * x.dim()) if keepdim else out
    else:
        out = fn(x, dim=dim, keepdim=keepdim)
    return out if dtype is None else out.to(dtype)


def reshape(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    return x.reshape(shape)


def reshape_keep_batch(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """A reshape whose batch entry was fixed at build time: keep the run-time batch."""
    return x.reshape(x.shape[0], *shape)


def expand_dims(x: torch.Tensor, dims: list[int]) -> torch.Tensor:
    for dim in dims:
        x = x.unsqueeze(dim)
    return x


def squeeze(x: torch.Tensor, dims: list[int] | None) -> torch.Tensor:
    if dims is None:
        return x.squeeze()
    for dim in sorted(dims, reverse=True):
        x = x.squeeze(dim)
    return x


def concat(tensors: list[torch.Tensor], dim: int) -> torch.Tensor:
    return torch.cat(tensors, dim)


def stack(tensors: list[torch.Tensor], dim: int) -> torch.Tensor:
    return torch.stack(tensors, dim)


def split(x: torch.Tensor, sizes: list[int], dim: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.split(x, sizes, dim))


def unstack(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.unbind(x, dim))


def tile(x: torch.Tensor, reps: list[int]) -> torch.Tensor:
    return x.repeat(*reps)


def repeat(x: torch.Tensor, repeats: Any, dim: int | None) -> torch.Tensor:
    if dim is None:
        return torch.repeat_interleave(x.reshape(-1), torch.as_tensor(repeats))
    return torch.repeat_interleave(x, torch.as_tensor(repeats) if isinstance(repeats, list) else repeats, dim=dim)


def broadcast_to(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    return x.expand(*shape) if x.dim() == len(shape) else torch.broadcast_to(x, shape)


def broadcast_to_keep_batch(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    return torch.broadcast_to(x, (x.shape[0], *shape))


def mirror_pad(x: torch.Tensor, dim: int, before: int, after: int, shift: int) -> torch.Tensor:
    """TF MirrorPad along ``dim``: REFLECT (``shift=1``, the edge is not repeated) or SYMMETRIC (``shift=0``)."""
    parts = []
    if before:
        parts.append(x.narrow(dim, shift, before).flip(dim))
    parts.append(x)
    if after:
        parts.append(x.narrow(dim, x.shape[dim] - after - shift, after).flip(dim))
    return torch.cat(parts, dim) if len(parts) > 1 else x


def pad(x: torch.Tensor, pads: list[int] | torch.Tensor, mode: str, value: float) -> torch.Tensor:
    """``pads`` already in torch's order (last axis first), or TF's ``paddings`` operand computed at run time (a
    tensor of (before, after) rows in axis order, [TF] ``pad_op.cc`` / ``mirror_pad_op.h``). SYMMETRIC has no
    torch mode and torch's reflect pads at most the last 3 dims of a batched tensor: both are built axis by axis
    from flips."""
    if isinstance(pads, torch.Tensor):
        pads = [int(v) for pair in reversed(pads.reshape(-1, 2).tolist()) for v in pair]
    if mode in ("symmetric", "reflect"):
        for i in range(len(pads) // 2):
            x = mirror_pad(x, x.dim() - 1 - i, pads[2 * i], pads[2 * i + 1], 1 if mode == "reflect" else 0)
        return x
    return F.pad(x, pads, mode="constant", value=value)


def cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if x.is_floating_point() and not dtype.is_floating_point and dtype != torch.bool:
        x = torch.trunc(x)  # TF casts float → int toward zero
    return x.to(dtype)


def getitem(x: torch.Tensor, index: list[Any]) -> torch.Tensor:
    """``x[index]``: ints, ``(start, stop, step)`` slices (any step sign, Python's clipping), ``None`` (new axis)
    and ``...``."""
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    out, dim = x, 0
    for item in index:
        if item is Ellipsis:
            dim += x.dim() - consumed
        elif item is None:
            out = out.unsqueeze(dim)
            dim += 1
        elif isinstance(item, tuple):
            if item[2] is not None and item[2] < 0:
                positions = torch.arange(*slice(*item).indices(out.shape[dim]), device=out.device)
                out = out.index_select(dim, positions)
            else:
                out = out[(slice(None),) * dim + (slice(*item),)]
            dim += 1
        else:
            out = out.select(dim, item)
    return out


def gather(x: torch.Tensor, indices: Any, dim: int) -> torch.Tensor:
    idx = torch.as_tensor(indices, device=x.device).long()
    idx = torch.where(idx < 0, idx + x.shape[dim], idx)
    out = torch.index_select(x, dim, idx.reshape(-1))
    return out.reshape(*x.shape[:dim], *idx.shape, *x.shape[dim + 1:])


def where(condition: torch.Tensor, x: Any, y: Any) -> torch.Tensor:
    if condition.dtype != torch.bool:
        condition = condition != 0
    return torch.where(condition, x, y)


def clip(x: torch.Tensor, low: Any, high: Any) -> torch.Tensor:
    return torch.minimum(torch.maximum(x, torch.as_tensor(low, dtype=x.dtype)), torch.as_tensor(high, dtype=x.dtype))


def full_like(x: torch.Tensor, value: float, dtype: torch.dtype | None) -> torch.Tensor:
    return torch.full_like(x, value, dtype=dtype or x.dtype)


def add_n(*xs: torch.Tensor) -> torch.Tensor:
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def power(x: torch.Tensor, y: Any) -> torch.Tensor:
    return torch.pow(x, y)


def same_tensor(x: torch.Tensor) -> torch.Tensor:
    return x


FUNCTIONS: dict[str, Any] = {
    # arithmetic
    "add": torch.add, "add_n": add_n, "subtract": torch.sub, "multiply": torch.mul, "divide": torch.div,
    "true_divide": true_divide,
    "floor_divide": floor_divide, "floor_mod": floor_mod, "power": power, "divide_no_nan": divide_no_nan,
    "minimum": torch.minimum, "maximum": torch.maximum, "squared_difference": lambda x, y: (x - y) * (x - y),
    "negative": torch.neg, "abs": torch.abs, "square": torch.square, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
    "exp": torch.exp, "log": torch.log, "log1p": torch.log1p, "expm1": torch.expm1, "sign": torch.sign,
    "round": torch.round, "floor": torch.floor, "ceil": torch.ceil, "reciprocal": torch.reciprocal,
    "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "erf": torch.erf, "clip": clip, "identity": same_tensor,
    # comparisons and logic
    "equal": torch.eq, "not_equal": torch.ne, "greater": torch.gt, "greater_equal": torch.ge, "less": torch.lt,
    "less_equal": torch.le, "logical_and": torch.logical_and, "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor, "logical_not": torch.logical_not, "where": where,
    # activations
    "relu": torch.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "hard_sigmoid": hard_sigmoid_k3,
    "hard_swish": hard_swish, "silu": F.silu, "gelu": gelu, "softmax": softmax, "log_softmax": log_softmax,
    "softplus": softplus, "softsign": F.softsign, "elu": elu, "selu": selu, "leaky_relu": leaky_relu,
    "l2_normalize": l2_normalize,
    # reductions
    "reduce": reduce, "arg_reduce": arg_reduce,
    # linear algebra
    "matmul": torch.matmul, "einsum": torch.einsum, "tensordot": torch.tensordot,
    # shapes
    "reshape": reshape, "reshape_keep_batch": reshape_keep_batch, "permute": torch.permute,
    "expand_dims": expand_dims, "squeeze": squeeze, "concat": concat, "stack": stack, "split": split,
    "unstack": unstack, "tile": tile, "repeat": repeat, "broadcast_to": broadcast_to,
    "broadcast_to_keep_batch": broadcast_to_keep_batch, "pad": pad, "cast": cast, "getitem": getitem,
    "gather": gather, "full_like": full_like,
}


class Op(nn.Module):
    """``FUNCTIONS[fn](*args, **kwargs)``: ``Slot(i)`` in the arguments stands for the i-th input tensor,
    ``Slot("c0")`` for a tensor constant (a buffer, so it follows ``.to(device)``). The constants named in
    ``stored`` are weights (a TF graph's variables): kept in the state_dict, as every weight is."""

    def __init__(self, fn: str, args: list[Any], kwargs: dict[str, Any] | None = None,
                 constants: dict[str, torch.Tensor] | None = None, label: str = "", stored: list[str] | None = None):
        super().__init__()
        if fn not in FUNCTIONS:
            raise ValueError(f"unknown operation function {fn}")
        self.fn = fn
        self.args = args
        self.kwargs = kwargs or {}
        self.label = label
        self.stored = list(stored) if stored else None
        for name, value in (constants or {}).items():
            self.register_buffer(name, value, persistent=name in (stored or ()))

    def forward(self, *tensors: torch.Tensor) -> Any:
        args = _fill(self.args, tensors, self)
        kwargs = {k: _fill(v, tensors, self) for k, v in self.kwargs.items()}
        return FUNCTIONS[self.fn](*args, **kwargs)

    def extra_repr(self) -> str:
        parts = [repr(a) if not isinstance(a, float) or math.isfinite(a) else str(a) for a in self.args]
        parts += [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.label or self.fn}({', '.join(parts)})"


# -- raw TF element-wise ops by TF name (``tf2torch/ops/tf_raw.py``) ----------------------------------------
# (the raw ops with a keras.ops twin run on FUNCTIONS above: ``ops/tf_raw.py`` SHARED_UNARY, SHARED_BINARY)
UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "ZerosLike": torch.zeros_like, "OnesLike": torch.ones_like, "IsNan": torch.isnan,
    # exact element-wise functions: torch computes them to float32 round-off, as TF's Eigen kernels do
    "Erfc": torch.erfc, "Tan": torch.tan, "Atan": torch.atan, "Asin": torch.asin,
    "Acos": torch.acos, "Sinh": torch.sinh, "Cosh": torch.cosh, "Asinh": torch.asinh, "Acosh": torch.acosh,
    "Atanh": torch.atanh, "Lgamma": torch.lgamma, "Digamma": torch.digamma, "IsInf": torch.isinf,
    "IsFinite": torch.isfinite, "Rint": torch.round,  # (torch.round and TF's Rint both round half to even)
    "Invert": torch.bitwise_not,
}


def _truncate_div(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.div(x, y, rounding_mode="trunc") if not x.is_floating_point() else x / y


BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "BiasAdd": torch.add, "BiasAddV1": torch.add, "RealDiv": torch.div, "Div": _truncate_div,
    "Atan2": torch.atan2, "TruncateMod": torch.fmod, "Xlogy": torch.xlogy,
    "Xdivy": lambda x, y: torch.where(x == 0, torch.zeros_like(x / y), x / y), "TruncateDiv": _truncate_div,
    "BitwiseAnd": torch.bitwise_and, "BitwiseOr": torch.bitwise_or, "BitwiseXor": torch.bitwise_xor,
    "LeftShift": torch.bitwise_left_shift, "RightShift": torch.bitwise_right_shift,
}


class TFUnary(nn.Module):
    """An element-wise TF op (``Erfc``, ``IsNan``...) by its TF name."""

    def __init__(self, op: str):
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
