"""Keras's regularization layers that act only in training: identities in eval mode, Keras's noise in train mode.

``shared_dims`` are the dims of the tensor (as held) along which one noise value is shared: Keras's
``noise_shape`` entries equal to 1, and the spatial axes of SpatialDropout1D/2D/3D. The random stream is torch's,
so a Keras ``seed`` does not reproduce TF's draws; the distributions are Keras's own:

- ``Dropout``: ``x * keep / (1 - rate)``, ``keep = uniform >= rate`` ([K3] ``backend.random.dropout``, [TF]
  ``tf.nn.dropout``); SpatialDropout shares ``keep`` across the spatial axes.
- ``GaussianNoise``: ``x + normal(0, stddev)`` ([K3]/[TFK] ``regularization/gaussian_noise.py``).
- ``GaussianDropout``: ``x * normal(1, sqrt(rate / (1 - rate)))`` for ``0 < rate < 1``.
- ``AlphaDropout``: dropped units become ``alpha' = -1.6733 * 1.0507`` (SELU's negative saturation), then
  ``a * x + b`` with ``a = ((1 - rate)(1 + rate alpha'^2))^-1/2``, ``b = -a alpha' rate``, which keeps a SELU
  network's mean and variance ([K3]/[TFK] ``regularization/alpha_dropout.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def noise_shape(x: torch.Tensor, shared_dims: Sequence[int]) -> list[int]:
    """``x``'s shape with 1 on ``shared_dims``."""
    return [1 if d in shared_dims else s for d, s in enumerate(x.shape)]


def keep_mask(x: torch.Tensor, rate: float, shared_dims: Sequence[int]) -> torch.Tensor:
    """1.0 where a unit is kept (``uniform >= rate``, as TF draws it), broadcastable against ``x``."""
    return (torch.rand(noise_shape(x, shared_dims), dtype=x.dtype, device=x.device) >= rate).to(x.dtype)


class _Noise(nn.Module):
    def __init__(self, rate: float, shared_dims: Sequence[int] = ()):
        super().__init__()
        self.rate = float(rate)
        self.shared_dims = tuple(int(d) for d in shared_dims)

    def extra_repr(self) -> str:
        shared = f", shared_dims={self.shared_dims}" if self.shared_dims else ""
        return f"rate={self.rate}{shared}"


class Dropout(_Noise):
    """Keras Dropout / SpatialDropout1D-3D in train mode; the identity in eval mode (and for rate 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        if self.rate >= 1:
            raise ValueError(f"dropout rate {self.rate} drops every unit (Keras refuses it in training too)")
        return x * keep_mask(x, self.rate, self.shared_dims) * (1.0 / (1.0 - self.rate))


class AlphaDropout(_Noise):
    """Keras AlphaDropout in train mode (for ``0 < rate < 1``); the identity in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.rate < 1:
            return x
        alpha_p = -SELU_ALPHA * SELU_SCALE
        kept = keep_mask(x, self.rate, self.shared_dims)
        a = ((1 - self.rate) * (1 + self.rate * alpha_p**2)) ** -0.5
        b = -a * alpha_p * self.rate
        return a * (x * kept + alpha_p * (1 - kept)) + b


class GaussianDropout(_Noise):
    """Keras GaussianDropout in train mode: multiplicative ``N(1, rate / (1 - rate))`` noise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not 0 < self.rate < 1:
            return x
        stddev = math.sqrt(self.rate / (1.0 - self.rate))
        return x * (1.0 + stddev * torch.randn_like(x))


class GaussianNoise(nn.Module):
    """Keras GaussianNoise in train mode: additive ``N(0, stddev²)`` noise."""

    def __init__(self, stddev: float):
        super().__init__()
        self.stddev = float(stddev)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.stddev == 0:
            return x
        return x + self.stddev * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"stddev={self.stddev}"
