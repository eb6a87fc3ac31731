"""Reshaping modules torch lacks: Keras's crop, reshape, permute, repeat and TF1-era bilinear upsampling.

Each keeps its numbers from the layer config as plain attributes (no weights), so ``load`` rebuilds it from
the config alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Crop(nn.Module):
    """``x[..., before:size - after, ...]`` on the dims ``first_dim, first_dim + 1, ...``.

    [K3]/[TFK] ``reshaping/cropping{1,2,3}d.py`` slice ``x[:, before:-after]`` and special-case ``after == 0``
    (``-0`` would cut everything); ``narrow`` with the length ``size - before - after`` has no such edge."""

    def __init__(self, cropping: Sequence[tuple[int, int]], first_dim: int):
        super().__init__()
        self.cropping = tuple((int(b), int(a)) for b, a in cropping)
        self.first_dim = first_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (before, after) in enumerate(self.cropping):
            dim = self.first_dim + i
            x = x.narrow(dim, before, x.shape[dim] - before - after)
        return x

    def extra_repr(self) -> str:
        return f"cropping={self.cropping}, first_dim={self.first_dim}"


class Reshape(nn.Module):
    """Keras ``Reshape(target_shape)``: row-major reshape of every sample; ``target_shape`` excludes the batch
    axis and may hold one -1 ([K3] ``reshaping/reshape.py``)."""

    def __init__(self, target_shape: Sequence[int]):
        super().__init__()
        self.target_shape = tuple(int(d) for d in target_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.target_shape)

    def extra_repr(self) -> str:
        return f"target_shape={self.target_shape}"


class Permute(nn.Module):
    """``x.permute(dims)`` with ``dims`` over all axes, batch included (0-indexed, unlike Keras's ``Permute``)."""

    def __init__(self, dims: Sequence[int]):
        super().__init__()
        self.dims = tuple(int(d) for d in dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class RepeatVector(nn.Module):
    """Keras ``RepeatVector(n)``: (N, F) → (N, n, F) ([K3] ``reshaping/repeat_vector.py``)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = int(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).repeat(1, self.n, 1)

    def extra_repr(self) -> str:
        return f"n={self.n}"


class Repeat(nn.Module):
    """Each element ``repeats`` times along ``dim``, like ``np.repeat``: Keras's nearest upsampling
    ([K3] ``ops.repeat``, [TFK] ``backend.repeat_elements``) on a tensor whose upsampled axis is not last."""

    def __init__(self, repeats: int, dim: int):
        super().__init__()
        self.repeats = int(repeats)
        self.dim = int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.repeats, dim=self.dim)

    def extra_repr(self) -> str:
        return f"repeats={self.repeats}, dim={self.dim}"


class LegacyBilinearUpsample2d(nn.Module):
    """TF1 ``resize_bilinear(align_corners=False, half_pixel_centers=False)`` by integer factors on N,C,H,W.

    TF1 samples ``src = dst * in / out`` and clamps the upper neighbour to ``in - 1`` ([TF]
    ``kernels/image/resize_bilinear_op.cc``, legacy scaler). For ``out = s * in`` that is torch's
    ``align_corners=True`` grid on the input padded by one replicated pixel (``(in + 1) → (s * in + 1)``
    samples, the last one dropped). Torch's own modes use half-pixel centres, which is TF2's rule instead."""

    def __init__(self, scale_factor: Sequence[int]):
        super().__init__()
        self.scale_factor = tuple(int(s) for s in scale_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        sh, sw = self.scale_factor
        padded = F.pad(x, (0, 1, 0, 1), mode="replicate")
        out = F.interpolate(padded, size=(height * sh + 1, width * sw + 1), mode="bilinear", align_corners=True)
        return out[..., :-1, :-1]

    def extra_repr(self) -> str:
        return f"scale_factor={self.scale_factor}"


class ChannelsFirstFlatten(nn.Module):
    """Flatten a Keras ``channels_first`` tensor the way Keras does: channels moved last first."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *range(2, x.dim()), 1).flatten(1)


def flat_channels_first_to_keras(x: torch.Tensor, channels: int, spatial: tuple[int, ...]) -> torch.Tensor:
    """Reorder a Flatten of an N,C,*S tensor into Keras's N,(*S, C) order."""
    x = x.reshape(x.shape[0], channels, *spatial)
    return x.permute(0, *range(2, 2 + len(spatial)), 1).flatten(1)
