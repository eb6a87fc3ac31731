"""Scaling layers of keras.applications: ConvNeXt's ``LayerScale`` and InceptionResNetV2's
``CustomScaleLayer``."""

from __future__ import annotations

import torch
from torch import nn


class ChannelScale(nn.Module):
    """``x * gamma`` with ``gamma`` per channel, on the channel axis ``dim`` ([K3] ``applications/convnext.py``
    ``LayerScale``)."""

    def __init__(self, channels: int, dim: int, rank: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.dim = dim
        self.rank = rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * self.rank
        shape[self.dim] = -1
        return x * self.gamma.reshape(shape)


class ScaledAdd(nn.Module):
    """``inputs[0] + inputs[1] * scale`` ([K3] ``applications/inception_resnet_v2.py`` ``CustomScaleLayer``)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return x + residual * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"
