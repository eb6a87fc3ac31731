"""Locally connected layers (tf_keras ``LocallyConnected1D`` / ``LocallyConnected2D``): a convolution whose
kernel differs at every output position.

The kernel is held as tf_keras's implementation 1 stores it, (positions, features, filters): a window is
flattened in the order ``backend.local_conv`` flattens it, (*window, C) for channels_last and (C, *window) for
channels_first; the bias is (*output, filters), which tf_keras reshapes (does not transpose) to
(filters, *output) for channels_first. Tensors are in Keras's layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class LocallyConnected(nn.Module):
    def __init__(self, kernel_size: Sequence[int], strides: Sequence[int], output_shape: Sequence[int],
                 in_channels: int, filters: int, use_bias: bool = True, channels_first: bool = False):
        super().__init__()
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = tuple(int(s) for s in strides)
        self.output_shape = tuple(int(o) for o in output_shape)
        self.in_channels, self.filters, self.channels_first = int(in_channels), int(filters), bool(channels_first)
        self.use_bias = bool(use_bias)
        positions = 1
        for size in self.output_shape:
            positions *= size
        features = self.in_channels
        for k in self.kernel_size:
            features *= k
        self.weight = nn.Parameter(torch.empty(positions, features, self.filters))
        self.bias = nn.Parameter(torch.empty(*self.output_shape, self.filters)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank = len(self.kernel_size)
        first = 2 if self.channels_first else 1  # the first spatial dim
        windows = x
        for d, (k, s) in enumerate(zip(self.kernel_size, self.strides)):
            windows = windows.unfold(first + d, k, s)  # the window dims are appended at the end
        # channels_last: (B, *out, C, *window) → (B, *out, *window, C); channels_first: (B, C, *out, *window) →
        # (B, *out, C, *window)
        if self.channels_first:
            order = [0, *range(2, 2 + rank), 1, *range(2 + rank, 2 + 2 * rank)]
        else:
            order = [0, *range(1, 1 + rank), *range(2 + rank, 2 + 2 * rank), 1 + rank]
        batch = x.shape[0]
        patches = windows.permute(order).reshape(batch, -1, self.weight.shape[1])
        y = torch.bmm(patches.transpose(0, 1), self.weight).transpose(0, 1)  # (B, positions, filters)
        y = y.reshape(batch, *self.output_shape, self.filters)
        if self.channels_first:
            y = y.permute(0, rank + 1, *range(1, rank + 1))
            # tf_keras ``bias_add`` RESHAPES the (*output, filters) bias to (filters, *output), it does not
            # transpose it: output (f, *p) gets the bias entry at flat index f * positions + p
            return y if self.bias is None else y + self.bias.reshape(self.filters, *self.output_shape)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, strides={self.strides}, output_shape={self.output_shape}, "
                f"in_channels={self.in_channels}, filters={self.filters}, use_bias={self.use_bias}, "
                f"channels_first={self.channels_first}")
