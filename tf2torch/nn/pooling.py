"""Pooling modules for the TF semantics torch's own pooling modules cannot express.

- ``TFSameAvgPool``: [TF] ``avg_pool`` with ``SAME`` padding divides each window by the number of INPUT elements
  it covers (padding is never counted) and pads one more pixel after than before when the padding total is odd
  ([TF] ``core/framework/kernel_shape_util.cc``). When that padding is asymmetric or depends on the input size,
  pad zeros at run time and divide the pooled input by the pooled ones-mask.
- ``GlobalAvgPool`` / ``GlobalMaxPool``: Keras ``Global{Average,Max}Pooling{1,2,3}D`` as a mean / max over fixed
  axes, for tensors held in Keras's own layout; ``GlobalAvgPool`` also takes the Keras mask that
  ``GlobalAveragePooling1D`` honours ([K3] ``layers/pooling/global_average_pooling1d.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .padding import same_pad_module

AVG_POOL_BY_RANK = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}


class TFSameAvgPool(nn.Module):
    """TF ``SAME`` average pooling for any input size: ``pool(pad(x)) / pool(pad(ones))``, where ``pad`` adds
    zeros exactly as TF ``SAME`` would for the actual size, so padded pixels add nothing to the sum and are left
    out of the divisor (the pool's own ``1 / kernel volume`` cancels)."""

    def __init__(self, kernel_size: Sequence[int], stride: Sequence[int]):
        super().__init__()
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)  # read back by the Python emitter
        self.pad = same_pad_module(kernel_size, stride)
        self.pool = AVG_POOL_BY_RANK[len(kernel_size)](tuple(kernel_size), tuple(stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ones = x.new_ones((1, 1, *x.shape[2:]))
        return self.pool(self.pad(x)) / self.pool(self.pad(ones))


class TFSameAvgPool1d(TFSameAvgPool):
    """TF ``SAME`` average pooling for N,C,L tensors."""


class TFSameAvgPool2d(TFSameAvgPool):
    """TF ``SAME`` average pooling for N,C,H,W tensors."""


class TFSameAvgPool3d(TFSameAvgPool):
    """TF ``SAME`` average pooling for N,C,D,H,W tensors."""


SAME_AVG_POOL_BY_RANK = {1: TFSameAvgPool1d, 2: TFSameAvgPool2d, 3: TFSameAvgPool3d}


def same_avg_pool_module(kernel_size: Sequence[int], stride: Sequence[int]) -> TFSameAvgPool:
    return SAME_AVG_POOL_BY_RANK[len(kernel_size)](kernel_size, stride)


class GlobalAvgPool(nn.Module):
    """Mean over the axes ``dims``. With a mask (shaped like ``x`` without the axis ``mask_dim``), the mean of
    the unmasked steps only: ``sum(where(mask, x, 0)) / sum(mask)``, as Keras ``GlobalAveragePooling1D`` does
    ([K3] ``global_average_pooling1d.py``; [TFK] multiplies by the mask instead, equal for finite inputs)."""

    def __init__(self, dims: Sequence[int], keepdim: bool = False, mask_dim: int = -1):
        super().__init__()
        self.dims = tuple(dims)
        self.keepdim = keepdim
        self.mask_dim = mask_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            return x.mean(self.dims, keepdim=self.keepdim)
        keep = mask.bool().unsqueeze(self.mask_dim)
        total = torch.where(keep, x, torch.zeros_like(x)).sum(self.dims, keepdim=self.keepdim)
        return total / keep.to(x.dtype).sum(self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, keepdim={self.keepdim}"


class GlobalMaxPool(nn.Module):
    """Maximum over the axes ``dims``."""

    def __init__(self, dims: Sequence[int], keepdim: bool = False):
        super().__init__()
        self.dims = tuple(dims)
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"dims={self.dims}, keepdim={self.keepdim}"
