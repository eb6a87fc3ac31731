"""TF ``SAME`` padding as small pure functions and a module that applies it at run time.

[TF] ``core/framework/kernel_shape_util.cc``: ``out = ceil(in / s)``, ``k_eff = (k - 1) * d + 1``,
``pad_total = max((out - 1) * s + k_eff - in, 0)``, ``before = pad_total // 2``, the odd pixel goes after
(bottom/right). PyTorch's own padding is symmetric, so for stride > 1 (and even ``k_eff``) the two part ways.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def tf_same_padding(size: int, kernel: int, stride: int = 1, dilation: int = 1) -> tuple[int, int]:
    """(before, after) padding TF ``SAME`` applies along one spatial axis of length ``size``. ``size`` may be a
    symbolic size (``torch.export`` with a dynamic dimension): the arithmetic then stays symbolic, and never floors
    a negative number (ONNX's integer ``Div`` truncates toward zero)."""
    k_eff = (kernel - 1) * dilation + 1
    out = (size + stride - 1) // stride
    total = (out - 1) * stride + k_eff - size
    total = max(total, 0) if isinstance(total, int) else torch.sym_max(total, 0)
    return total // 2, total - total // 2


def static_same_padding(sizes: Sequence[int | None], kernel: Sequence[int], stride: Sequence[int],
                        dilation: Sequence[int]) -> tuple[int, ...] | None:
    """Symmetric per-axis padding equal to TF ``SAME`` for these input sizes, or None when it is asymmetric or
    depends on an unknown (dynamic) size: then ``TFSamePad`` must pad at run time."""
    pads = []
    for size, k, s, d in zip(sizes, kernel, stride, dilation):
        if size is None:
            if s != 1:
                return None
            size = 1  # stride 1: the padding does not depend on the size
        before, after = tf_same_padding(size, k, s, d)
        if before != after:
            return None
        pads.append(before)
    return tuple(pads)


class TFSamePad(nn.Module):
    """Pads the trailing spatial axes of an N,C,*spatial tensor exactly as TF ``SAME`` would, computed from the
    actual input size at run time, so the converted model accepts every input size the original does."""

    def __init__(self, kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int] | None = None,
                 value: float = 0.0):
        super().__init__()
        self.kernel_size = tuple(kernel_size)
        self.stride = tuple(stride)
        self.dilation = tuple(dilation or (1,) * len(self.kernel_size))
        self.value = value

    def pads_for(self, x: torch.Tensor) -> list[int]:
        """``F.pad``'s list (last axis first, before then after) for this input's size."""
        pads: list[int] = []
        spatial = x.shape[-len(self.kernel_size):]
        for size, k, s, d in zip(reversed(spatial), reversed(self.kernel_size), reversed(self.stride),
                                 reversed(self.dilation)):
            pads.extend(tf_same_padding(size, k, s, d))
        return pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pads_for(x), value=self.value)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, dilation={self.dilation}, value={self.value}"


class TFSamePad1d(TFSamePad):
    """TF ``SAME`` padding for N,C,L tensors."""


class TFSamePad2d(TFSamePad):
    """TF ``SAME`` padding for N,C,H,W tensors."""


class TFSamePad3d(TFSamePad):
    """TF ``SAME`` padding for N,C,D,H,W tensors."""


SAME_PAD_BY_RANK = {1: TFSamePad1d, 2: TFSamePad2d, 3: TFSamePad3d}


def same_pad_module(kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int] | None = None,
                    value: float = 0.0) -> TFSamePad:
    return SAME_PAD_BY_RANK[len(kernel_size)](kernel_size, stride, dilation, value)
