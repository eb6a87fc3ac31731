"""Activations whose Keras definition torch lacks.

Sources: [K3] ``keras/src/activations/activations.py`` and ``keras/src/backend/tensorflow/nn.py`` (Keras 3.15),
[TFK] ``tf_keras/src/activations.py`` and ``tf_keras/src/backend.py``. Numbers from a layer config stay Python
floats: torch casts a scalar to the tensor's dtype before comparing, as Keras does (``x > threshold``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .inplace import WritesOverPrivateInput, may_write_input


class ReLU(WritesOverPrivateInput, nn.ReLU):
    """``nn.ReLU`` that writes over its input where the converted model (``KerasGraphModule``, not generated code)
    knows nothing else sees it (``tf2torch/nn/inplace.py``); the numbers are the same either way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x, inplace=self.inplace or may_write_input(self))


class ReLU6(WritesOverPrivateInput, nn.ReLU6):
    """``nn.ReLU6``, over its input where nothing else sees it (as ``ReLU``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardtanh(x, self.min_val, self.max_val, self.inplace or may_write_input(self))


class SiLU(WritesOverPrivateInput, nn.SiLU):
    """``nn.SiLU`` (Keras ``swish``), over its input where nothing else sees it (as ``ReLU``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x, inplace=self.inplace or may_write_input(self))


class Hardswish(WritesOverPrivateInput, nn.Hardswish):
    """``nn.Hardswish`` (Keras ``hard_swish``), over its input where nothing else sees it (as ``ReLU``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(x, inplace=self.inplace or may_write_input(self))


class KerasHardSigmoid(nn.Module):
    """tf.keras / Keras 2 ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)`` ([TFK] ``backend.hard_sigmoid``).

    Keras 3 redefined it as ``relu6(x + 3) / 6`` (= ``nn.Hardsigmoid``); which one a file means depends on the
    Keras version that wrote it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(0.2 * x + 0.5, 0.0, 1.0)


class Exponential(nn.Module):
    """Keras ``exponential`` activation: ``exp(x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class KerasReLU(nn.Module):
    """Keras ``relu(x, negative_slope, max_value, threshold)`` ([K3] ``ReLU.static_call``, [TFK] ``backend.relu``):
    ``negative = relu(threshold - x)``; ``y = where(x > threshold, x, 0)``, clipped to ``[0, max_value]``;
    ``y -= negative_slope * negative``. Below the threshold the slope is measured from the threshold, not 0."""

    def __init__(self, max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0):
        super().__init__()
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.where(x > self.threshold, x, torch.zeros_like(x))
        if self.max_value is not None:
            y = torch.clamp(y, max=self.max_value)
        if self.negative_slope != 0.0:
            y = y - self.negative_slope * torch.relu(self.threshold - x)
        return y

    def extra_repr(self) -> str:
        return f"max_value={self.max_value}, negative_slope={self.negative_slope}, threshold={self.threshold}"


class BroadcastPReLU(nn.Module):
    """Keras ``PReLU`` whose ``alpha`` varies over more than the channel axis ([K3]/[TFK] ``prelu.py``):
    ``relu(x) - alpha * relu(-x)`` with ``alpha`` shaped like the input without its batch axis, in the layout the
    tensor is held in (``nn.PReLU`` only knows one alpha per dim-1 channel)."""

    def __init__(self, alpha_shape: Sequence[int]):
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(tuple(alpha_shape)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) - self.alpha * torch.relu(-x)


class MultiAxisSoftmax(nn.Module):
    """Keras ``Softmax(axis=[...])`` over several axes: ``exp(x - logsumexp(x, axes))`` ([K3]/[TFK] ``softmax.py``)."""

    def __init__(self, dims: Sequence[int]):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x - torch.logsumexp(x, self.dims, keepdim=True))

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Squareplus(nn.Module):
    """Keras 3 ``squareplus``: ``(x + sqrt(x² + b)) / 2``, ``b = 4`` for the string activation."""

    def __init__(self, b: float = 4.0):
        super().__init__()
        self.b = float(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x + torch.sqrt(torch.square(x) + self.b)) / 2


class SparsePlus(nn.Module):
    """Keras 3 ``sparse_plus``: 0 for ``x <= -1``, ``(x + 1)² / 4`` for ``-1 < x < 1``, ``x`` above."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        middle = 0.25 * torch.square(x + 1)
        return torch.where(x <= -1, torch.zeros_like(x), torch.where(x < 1, middle, x))


class SparseSigmoid(nn.Module):
    """Keras 3 ``sparse_sigmoid``: 0 for ``x <= -1``, 1 for ``x >= 1``, ``(x + 1) / 2`` between."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        middle = 0.5 * (x + 1)
        return torch.where(x <= -1, torch.zeros_like(x), torch.where(x >= 1, torch.ones_like(x), middle))


class KerasSparsemax(nn.Module):
    """Keras 3 ``sparsemax`` exactly as every Keras backend computes it ([K3] ``backend/*/nn.py`` ``sparsemax``).

    Trap: Keras takes ``tau = (Σ_{j in support} cumsum_j - 1) / k``, the sum of the cumulative sums over the
    support, where Martins & Astudillo (2016) take the k-th cumulative sum alone; the two agree only when one
    logit is in the support. This module reproduces Keras's numbers, not the paper's."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ranked = torch.sort(x, dim=self.dim, descending=True).values
        cumsum = torch.cumsum(ranked, dim=self.dim)
        shape = [1] * x.dim()
        shape[self.dim] = -1
        r = torch.arange(1, x.shape[self.dim] + 1, dtype=x.dtype, device=x.device).reshape(shape)
        support = ranked - (cumsum - 1) / r > 0
        k = support.sum(dim=self.dim, keepdim=True).to(x.dtype)
        kept = torch.where(support, cumsum, torch.zeros_like(cumsum))
        tau = (kept.sum(dim=self.dim, keepdim=True) - 1) / k
        return torch.clamp(x - tau, min=0.0)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
