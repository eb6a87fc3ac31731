"""Run-time modules for Keras 3 operations recorded in functional graphs (``keras.src.ops``): comparisons and
logical ops, ``expand_dims``, ``squeeze``, ``zeros_like``/``ones_like``, ``any``/``all``, ``cast``. Plain torch:
generated code copies them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

COMPARISONS = {
    "NotEqual": torch.ne, "Equal": torch.eq, "Greater": torch.gt, "GreaterEqual": torch.ge,
    "Less": torch.lt, "LessEqual": torch.le, "LogicalOr": torch.logical_or, "LogicalAnd": torch.logical_and,
    "LogicalXor": torch.logical_xor,
}


class BinaryOp(nn.Module):
    """``fn(a, b)`` where either side may be a constant from the saved graph."""

    def __init__(self, op: str, constant: Any = None, constant_position: int | None = None):
        super().__init__()
        self.op = op
        self.constant = constant
        self.constant_position = constant_position

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        args = list(tensors)
        if self.constant_position is not None:
            args.insert(self.constant_position, torch.as_tensor(self.constant, dtype=tensors[0].dtype))
        return COMPARISONS[self.op](args[0], args[1])

    def extra_repr(self) -> str:
        extra = f", constant={self.constant} at {self.constant_position}" if self.constant_position is not None else ""
        return f"op={self.op}{extra}"


class LogicalNot(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.logical_not(x)


class ExpandDims(nn.Module):
    def __init__(self, axis: int):
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(self.axis)


class Squeeze(nn.Module):
    def __init__(self, axis: int | None):
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.squeeze() if self.axis is None else x.squeeze(self.axis)


class FilledLike(nn.Module):
    """``zeros_like`` / ``ones_like`` with Keras's optional dtype."""

    def __init__(self, value: float, dtype: torch.dtype | None):
        super().__init__()
        self.value = value
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, self.value, dtype=self.dtype or x.dtype)


class Reduce(nn.Module):
    """``any`` / ``all`` over ``axis`` (None: every axis)."""

    def __init__(self, op: str, axis: Any, keepdims: bool):
        super().__init__()
        self.op = op
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = torch.any if self.op == "any" else torch.all
        if self.axis is None:
            out = fn(x)
            return out.reshape([1] * x.dim()) if self.keepdims else out
        axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
        for axis in sorted((a % x.dim() for a in axes), reverse=True):
            x = fn(x, dim=axis, keepdim=self.keepdims)
        return x


class Cast(nn.Module):
    def __init__(self, dtype: torch.dtype):
        super().__init__()
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype)
