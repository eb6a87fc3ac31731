"""Keras preprocessing layers that run inside models: rescaling, normalization, cropping and padding to an aspect
ratio. Resizing (``TFResize``: every ``tf.image.resize`` method, with TF's arithmetic) lives with the other image
resizes in ``nn/image.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .image import F32, TFResize, as_float


# -- rescaling and normalization -----------------------------------------------------------------------------
class Rescale(nn.Module):
    """Keras ``Rescaling``: ``float(x) * scale + offset`` ([K3] ``layers/preprocessing/rescaling.py``).

    ``scale`` and ``offset`` come from the config: Python floats, or tensors already shaped to broadcast against
    the tensor as it is held (non-persistent buffers: the config rebuilds them)."""

    def __init__(self, scale: float | torch.Tensor, offset: float | torch.Tensor):
        super().__init__()
        for name, value in (("scale", scale), ("offset", offset)):
            if isinstance(value, torch.Tensor):
                self.register_buffer(name, value, persistent=False)
            else:
                setattr(self, name, float(value))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return as_float(x) * self.scale + self.offset


class KerasNormalization(nn.Module):
    """Keras ``Normalization``: ``(x - mean) / max(sqrt(variance), epsilon)``, or with ``invert=True``
    ``mean + x * max(sqrt(variance), epsilon)``; epsilon is ``keras.backend.epsilon()`` = 1e-7
    ([K3] ``layers/preprocessing/normalization.py``, [TFK] the same formula).

    ``mean`` and ``variance`` are buffers shaped to broadcast against the tensor as it is held."""

    def __init__(self, mean: torch.Tensor, variance: torch.Tensor, invert: bool = False, epsilon: float = 1e-7):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("variance", variance)
        self.invert = invert
        self.epsilon = epsilon

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = torch.clamp_min(torch.sqrt(self.variance), self.epsilon)
        if self.invert:
            return self.mean + as_float(x) * std
        return (as_float(x) - self.mean) / std

    def extra_repr(self) -> str:
        return f"invert={self.invert}, epsilon={self.epsilon}"


# -- cropping and padding to an aspect ratio ------------------------------------------------------------------
def keras_ratio(numerator: int, denominator: int, float32: bool) -> int:
    """``int(float(numerator) / denominator)`` as Keras computes it: in float32 inside TF ops, in float64 where
    Keras 3 has static Python sizes (``utils/image_utils.py::smart_resize``)."""
    if float32:
        return int(F32(numerator) / F32(denominator))
    return int(float(numerator) / denominator)


def aspect_crop_box(height: int, width: int, target_height: int, target_width: int, *, float32: bool = True,
                    at_least_one: bool = True) -> tuple[int, int, int, int]:
    """(top, left, crop_height, crop_width) of the largest centred window with the target aspect ratio
    ([K3] ``backend/tensorflow/image.py::resize(crop_to_aspect_ratio=True)``, [TFK] ``image_utils.smart_resize``;
    tf_keras does not raise a zero size to 1)."""
    crop_height = min(height, keras_ratio(width * target_height, target_width, float32))
    crop_width = min(width, keras_ratio(height * target_width, target_height, float32))
    if at_least_one:
        crop_height, crop_width = max(crop_height, 1), max(crop_width, 1)
    top = keras_ratio(height - crop_height, 2, float32)
    left = keras_ratio(width - crop_width, 2, float32)
    return top, left, crop_height, crop_width


def aspect_padding(height: int, width: int, target_height: int, target_width: int) -> tuple[int, int]:
    """(rows, columns) Keras 3 ``pad_to_aspect_ratio`` adds on EACH side: ``int((padded - size) / 2)``, so an odd
    difference leaves the result one pixel short of the exact ratio ([K3] ``backend/tensorflow/image.py``)."""
    padded_height = max(height, keras_ratio(width * target_height, target_width, True))
    padded_width = max(width, keras_ratio(height * target_width, target_height, True))
    return keras_ratio(padded_height - height, 2, True), keras_ratio(padded_width - width, 2, True)


class CropToAspect(nn.Module):
    """Keep the largest centred H,W window of the target aspect ratio (``aspect_crop_box``) of an N,C,H,W
    tensor."""

    def __init__(self, height: int, width: int, float32: bool = True, at_least_one: bool = True):
        super().__init__()
        self.size = (int(height), int(width))
        self.float32 = float32
        self.at_least_one = at_least_one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, left, height, width = aspect_crop_box(int(x.shape[-2]), int(x.shape[-1]), *self.size,
                                                   float32=self.float32, at_least_one=self.at_least_one)
        return x[..., top:top + height, left:left + width]


class PadToAspect(nn.Module):
    """Keras 3 ``pad_to_aspect_ratio``: pad an N,C,H,W tensor with ``fill_value`` on both sides
    (``aspect_padding``)."""

    def __init__(self, height: int, width: int, fill_value: float = 0.0):
        super().__init__()
        self.size = (int(height), int(width))
        self.fill_value = float(fill_value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, columns = aspect_padding(int(x.shape[-2]), int(x.shape[-1]), *self.size)
        return F.pad(as_float(x), (columns, columns, rows, rows), value=self.fill_value)


class RoundToInputDtype(nn.Module):
    """Keras 3 image layers give integer images back as integers: ``round`` (half to even, like ``tf.round``)
    and cast ([K3] ``image_preprocessing/resizing.py``); the saturation to the original dtype's range is not
    repeated, as torch holds every integer input as int64."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.inner(x)
        return out if x.is_floating_point() else torch.round(out).to(x.dtype)


class CenterCrop2d(nn.Module):
    """Keras ``CenterCrop`` on an N,C,H,W tensor: the centred ``height x width`` window (start ``(size - target)
    // 2``) when the input is at least that large on both axes, else crop to the aspect ratio and resize
    bilinearly (``smart_resize``; [K3] ``image_preprocessing/center_crop.py``, [TFK] ``image_preprocessing.py``)."""

    def __init__(self, height: int, width: int, float32: bool = False, at_least_one: bool = True):
        super().__init__()
        self.size = (int(height), int(width))
        self.upsize = nn.Sequential(CropToAspect(height, width, float32, at_least_one), TFResize(height, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_float(x)
        extra_h, extra_w = int(x.shape[-2]) - self.size[0], int(x.shape[-1]) - self.size[1]
        if extra_h >= 0 and extra_w >= 0:
            top, left = extra_h // 2, extra_w // 2
            return x[..., top:top + self.size[0], left:left + self.size[1]]
        return self.upsize(x)
