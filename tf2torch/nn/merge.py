"""Keras merge layers as torch modules that take their inputs as separate positional arguments.

Sources: [K3] ``keras/src/layers/merging/`` (Keras 3.15), [TFK] ``tf_keras/src/layers/merging/`` (tf.keras 2.21).
The elementwise merges fold their inputs left to right (``((x0 + x1) + x2)``), as Keras does, so float32 sums
round the same way. Inputs of lower rank are first expanded at axis 1 until every input has the same rank
([K3]/[TFK] ``Merge.call``), which ``KerasRankBroadcast`` does.
"""

from __future__ import annotations

import functools
import operator

import torch
from torch import nn

from .inplace import FreshMerge, MergesIntoPrivateInput, writable_input


class Add(MergesIntoPrivateInput, nn.Module):
    """Keras ``Add``: ``x0 + x1 + ...``; of two inputs, written over one that nothing else sees where the converted
    model says so (``tf2torch/nn/inplace.py``; ``x1 + x0`` is ``x0 + x1`` bit for bit)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        position = writable_input(self)
        if position is not None and len(xs) == 2:
            into, other = xs[position], xs[1 - position]
            if into.dtype == other.dtype and (into.shape == other.shape  # torch.broadcast_shapes costs ~30 µs
                                              or torch.broadcast_shapes(into.shape, other.shape) == into.shape):
                return into.add_(other)
        return functools.reduce(operator.add, xs)


class Subtract(FreshMerge, nn.Module):
    """Keras ``Subtract``: ``x0 - x1`` (exactly two inputs)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x - y


class Multiply(FreshMerge, nn.Module):
    """Keras ``Multiply``: ``x0 * x1 * ...``."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return functools.reduce(operator.mul, xs)


class Average(FreshMerge, nn.Module):
    """Keras ``Average``: ``(x0 + x1 + ...) / n`` (the sum first, then one division)."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return functools.reduce(operator.add, xs) / len(xs)


class Maximum(FreshMerge, nn.Module):
    """Keras ``Maximum``: the elementwise maximum of all inputs."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return functools.reduce(torch.maximum, xs)


class Minimum(FreshMerge, nn.Module):
    """Keras ``Minimum``: the elementwise minimum of all inputs."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return functools.reduce(torch.minimum, xs)


def keras_mask_on(x: torch.Tensor, mask: torch.Tensor | None, channel_dim: int) -> torch.Tensor | None:
    """A Keras mask (B, *steps) made broadcastable against ``x``, whose channels are at ``channel_dim``."""
    return None if mask is None else mask.unsqueeze(channel_dim)


class Keras3MaskedMultiply(Multiply):
    """Keras 3 ``Multiply`` with masked inputs ([K3] ``merging/multiply.py``): masked entries count as 1; when
    every input has a mask, entries masked in all of them become 0. tf.keras ignores masks here."""

    def __init__(self, channel_dim: int = -1):
        super().__init__()
        self.channel_dim = channel_dim

    def forward(self, *xs: torch.Tensor, masks: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        if masks is None:
            return super().forward(*xs)
        masks = [keras_mask_on(x, m, self.channel_dim) for x, m in zip(xs, masks)]
        output = functools.reduce(operator.mul, [x if m is None else torch.where(m, x, 1.0) for x, m in zip(xs, masks)])
        if any(m is None for m in masks):
            return output
        return torch.where(functools.reduce(operator.or_, masks), output, 0.0)

    def extra_repr(self) -> str:
        return f"channel_dim={self.channel_dim}"


class Keras3MaskedExtremum(nn.Module):
    """Keras 3 ``Maximum`` / ``Minimum`` with masked inputs ([K3] ``Merge._apply_merge_op_and_or_mask``): a masked
    entry takes the running result's value (or gives way to the next input's), so it never wins. tf.keras ignores
    masks here."""

    op = staticmethod(torch.maximum)

    def __init__(self, channel_dim: int = -1):
        super().__init__()
        self.channel_dim = channel_dim

    def forward(self, *xs: torch.Tensor, masks: list[torch.Tensor | None] | None = None) -> torch.Tensor:
        masks = [keras_mask_on(x, m, self.channel_dim) for x, m in zip(xs, masks or [None] * len(xs))]
        output, output_mask = xs[0], masks[0]
        for x, mask in zip(xs[1:], masks[1:]):
            if mask is not None:
                x = torch.where(mask, x, output)
            if output_mask is not None:
                output = torch.where(output_mask, output, x)
            output_mask = output_mask | mask if mask is not None and output_mask is not None else None
            output = self.op(output, x)
        return output

    def extra_repr(self) -> str:
        return f"channel_dim={self.channel_dim}"


class Keras3MaskedMaximum(Keras3MaskedExtremum):
    """Keras 3 ``Maximum``, honouring input masks."""

    op = staticmethod(torch.maximum)


class Keras3MaskedMinimum(Keras3MaskedExtremum):
    """Keras 3 ``Minimum``, honouring input masks."""

    op = staticmethod(torch.minimum)


class Concatenate(nn.Module):
    """Keras ``Concatenate(axis)``: ``torch.cat`` along ``dim``, the Keras axis as placed in the held layout."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def expand_to_rank(x: torch.Tensor, rank: int, channels_first: bool) -> torch.Tensor:
    """A Keras-layout tensor of lower rank expanded as Keras's merge layers do, ``expand_dims(x, 1)`` until it
    has ``rank`` axes ((B, C) → (B, 1, 1, C)); then, for a channels-first merge, its last axis moved to 1."""
    if x.dim() >= rank:
        return x
    x = x.reshape(x.shape[0], *([1] * (rank - x.dim())), *x.shape[1:])
    return x.movedim(-1, 1) if channels_first else x


class KerasRankBroadcast(nn.Module):
    """Runs ``merge`` after bringing lower-rank inputs (held in Keras's layout) to the rank of the others the way
    Keras does ([K3]/[TFK] ``Merge.call``: ``expand_dims(x, axis=1)`` repeated), for inputs like (B, H, W, C) and
    (B, C). ``channels_first``: the full-rank inputs are held N,C,*spatial."""

    def __init__(self, merge: nn.Module, rank: int, channels_first: bool):
        super().__init__()
        self.merge = merge
        self.rank = rank
        self.channels_first = channels_first

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return self.merge(*[expand_to_rank(x, self.rank, self.channels_first) for x in xs])

    def extra_repr(self) -> str:
        return f"rank={self.rank}, channels_first={self.channels_first}"


def l2_normalize(x: torch.Tensor, dim: int, square_sum_floor: float) -> torch.Tensor:
    """``x * rsqrt(max(sum(x**2, dim), floor))``. [K3] ``ops.nn.normalize`` computes
    ``x * min(rsqrt(sum x**2), 1 / epsilon())`` with ``epsilon() = 1e-7`` (floor 1e-14); [TFK] uses
    ``tf.linalg.l2_normalize`` with ``epsilon=1e-12`` on the square sum. ``F.normalize`` floors the norm at 1e-12:
    all three differ only for vectors of norm below 1e-6."""
    square_sum = torch.sum(x * x, dim=dim, keepdim=True)
    return x * torch.rsqrt(torch.clamp(square_sum, min=square_sum_floor))


class Dot(nn.Module):
    """Keras ``Dot(axes, normalize)`` on Keras-layout inputs: ``batch_dot`` written as one ``torch.einsum``.

    The output keeps ``x``'s remaining axes then ``y``'s (batch excluded); a rank-1 result becomes (B, 1)
    ([K3] ``merging/dot.py`` ``batch_dot``, [TFK] ``backend.batch_dot``). ``normalize`` L2-normalizes each
    input along its contracted axis first."""

    def __init__(self, equation: str, dims: tuple[int, int], normalize: bool, square_sum_floor: float):
        super().__init__()
        self.equation = equation
        self.dims = dims
        self.normalize = normalize
        self.square_sum_floor = square_sum_floor

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = l2_normalize(x, self.dims[0], self.square_sum_floor)
            y = l2_normalize(y, self.dims[1], self.square_sum_floor)
        out = torch.einsum(self.equation, x, y)
        return out.unsqueeze(1) if out.dim() == 1 else out

    def extra_repr(self) -> str:
        return f"{self.equation!r}, normalize={self.normalize}"


def batch_dot_equation(x_rank: int, y_rank: int, dims: tuple[int, int]) -> str:
    """The einsum equation of Keras ``batch_dot(x, y, axes=dims)`` (non-negative axes, batch axis 0 excluded):
    e.g. ranks 3, 3 and axes (1, 2) → ``'bkd,bek->bde'``."""
    letters = iter("cdefghijlmnopqrstuvwxyz")
    x_letters = ["b"] + [next(letters) for _ in range(x_rank - 1)]
    y_letters = ["b"] + [next(letters) for _ in range(y_rank - 1)]
    x_letters[dims[0]] = y_letters[dims[1]] = "k"
    out = x_letters[:dims[0]] + x_letters[dims[0] + 1:] + [a for i, a in enumerate(y_letters) if i not in (0, dims[1])]
    return f"{''.join(x_letters)},{''.join(y_letters)}->{''.join(out)}"


def join_masks(tensors: tuple[torch.Tensor, ...], masks: tuple[torch.Tensor | None, ...], axis: int) -> torch.Tensor:
    """Concatenate the masks of tensors joined along ``axis`` (not the feature axis); unmasked ones count as
    all True."""
    parts = [m if m is not None else torch.ones(t.shape[:-1], dtype=torch.bool, device=t.device)
             for t, m in zip(tensors, masks)]
    return torch.cat(parts, dim=axis)
