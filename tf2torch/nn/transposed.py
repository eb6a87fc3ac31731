"""Keras-exact transposed convolutions: output length and the crop of the full transposed conv.

Keras output length ([K3] ``backend/common/backend_utils.py`` ``_get_output_shape_given_tf_padding``, [TFK]
``utils/conv_utils.py`` ``deconv_output_length``), with ``k_eff = (k - 1) * d + 1``:
``valid``: ``O = (I - 1) * s + k_eff + op`` (op defaults to ``max(k_eff, s) - k_eff``);
``same``: ``O = I * s`` when op is None, else ``(I - 1) * s + k_eff % 2 + op``.
TF then runs the gradient of a conv over an input of length ``O`` ([TF] ``conv_ops`` backprop input), i.e. the
full transposed conv (length ``(I - 1) * s + k_eff``) cropped by that conv's TF ``SAME`` padding on the left and
cut (or zero-extended) to ``O``. TF only runs it when ``ceil(O / s) == I``, and then both crops are the same for
every input length, so they are fixed numbers of the config. No kernel flip: both frameworks' transposed conv is
the adjoint of their cross-correlation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .padding import tf_same_padding


def keras_transpose_extent(kernel: int, stride: int, dilation: int, padding: str,
                           output_padding: int | None) -> int:
    """``O - (I - 1) * s``: how far a Keras transposed conv's output reaches past the last input's position."""
    k_eff = (kernel - 1) * dilation + 1
    if padding == "valid":
        return k_eff + (max(k_eff, stride) - k_eff if output_padding is None else output_padding)
    return stride if output_padding is None else k_eff % 2 + output_padding


def keras_transpose_output_length(size: int, kernel: int, stride: int, dilation: int, padding: str,
                                  output_padding: int | None) -> int:
    """Keras's output length ``O`` for input length ``size``."""
    return (size - 1) * stride + keras_transpose_extent(kernel, stride, dilation, padding, output_padding)


def keras_transpose_crop(kernel: int, stride: int, dilation: int, padding: str,
                         output_padding: int | None) -> tuple[int, int]:
    """(before, after) to cut from the full transposed conv along one axis; a negative ``after`` appends zeros.

    ``before`` is TF's ``SAME`` padding of the forward conv over the output: ``max((I-1)s + k_eff - O, 0) // 2``
    (0 for ``valid``)."""
    k_eff = (kernel - 1) * dilation + 1
    extent = keras_transpose_extent(kernel, stride, dilation, padding, output_padding)
    before = 0 if padding == "valid" else max(k_eff - extent, 0) // 2
    return before, k_eff - extent - before


def torch_transpose_padding(crop: tuple[int, int], stride: int, dilation: int) -> tuple[int, int] | None:
    """(padding, output_padding) for which ``nn.ConvTranspose{n}d`` cuts exactly ``crop``, or None.

    Torch keeps ``full[p : len - p + output_padding]`` (zeros past the end) and needs
    ``0 <= output_padding < max(stride, dilation)``. For k=3, s=2, ``same`` the crop is (0, 1): torch's popular
    ``padding=1, output_padding=1`` keeps ``full[1:]`` instead, one pixel off."""
    before, after = crop
    output_padding = before - after
    if 0 <= output_padding < max(stride, dilation):
        return before, output_padding
    return None


def crop_and_add_bias(full: torch.Tensor, crop: Sequence[tuple[int, int]], bias: torch.Tensor | None) -> torch.Tensor:
    """Cut ``crop[i]`` from spatial axis ``i`` of an N,C,*spatial tensor (negative: zeros), then add the bias."""
    pads: list[int] = []
    for before, after in reversed(crop):
        pads.extend((-before, -after))
    y = F.pad(full, pads)
    if bias is not None:
        y = y + bias.view(1, -1, *([1] * len(crop)))
    return y


FUNCTIONAL = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


class TFConvTranspose:
    """Base of ``TFConvTranspose{1,2,3}d``: a torch ``ConvTranspose{n}d`` (same ``weight`` (in, out, *k) and
    ``bias``) whose forward is the full transposed conv without bias, Keras's crop, then the bias (Keras adds it
    after the crop, so appended positions get the bias too). Used when no torch ``padding``/``output_padding``
    gives the same window."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Sequence[int], stride: Sequence[int],
                 dilation: Sequence[int], crop: Sequence[tuple[int, int]], bias: bool = True):
        super().__init__(in_channels, out_channels, tuple(kernel_size), stride=tuple(stride),  # type: ignore[call-arg]
                         dilation=tuple(dilation), bias=bias)
        self.crop = tuple((int(b), int(a)) for b, a in crop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        functional = FUNCTIONAL[len(self.kernel_size)]  # type: ignore[attr-defined]
        full = functional(x, self.weight, None, self.stride, 0, 0, self.groups, self.dilation)  # type: ignore[attr-defined]
        return crop_and_add_bias(full, self.crop, self.bias)  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        return super().extra_repr() + f", crop={self.crop}"  # type: ignore[misc]


class TFConvTranspose1d(TFConvTranspose, nn.ConvTranspose1d):
    """Keras-exact ``Conv1DTranspose`` on N,C,L tensors."""


class TFConvTranspose2d(TFConvTranspose, nn.ConvTranspose2d):
    """Keras-exact ``Conv2DTranspose`` on N,C,H,W tensors."""


class TFConvTranspose3d(TFConvTranspose, nn.ConvTranspose3d):
    """Keras-exact ``Conv3DTranspose`` on N,C,D,H,W tensors."""


TF_CONV_TRANSPOSE_BY_RANK = {1: TFConvTranspose1d, 2: TFConvTranspose2d, 3: TFConvTranspose3d}


class ConvBackpropInput(nn.Module):
    """``Conv2DBackpropInput``: a transposed conv without padding, cropped to TF's output size (the crop starts
    at the forward conv's ``before`` padding). ``crop`` None: the output size is computed at run time (the
    node's first input, in TF's layout: ``nhwc`` says where its spatial sizes are) and the crop with it, from
    ``starts`` (VALID, EXPLICIT) or TF's SAME padding for that size."""

    def __init__(self, conv: nn.Module, crop: Sequence[tuple[int, int]] | None, starts: Sequence[int] | None = None,
                 nhwc: bool = True):
        super().__init__()
        self.conv = conv
        self.crop = [tuple(c) for c in crop] if crop is not None else None
        self.starts = list(starts) if starts is not None else None  # None: SAME
        self.nhwc = nhwc

    def _crop(self, sizes: torch.Tensor) -> list[tuple[int, int]]:
        n = len(self.conv.kernel_size)
        values = [int(v) for v in sizes.reshape(-1).tolist()]
        spatial = values[1:1 + n] if self.nhwc else values[2:2 + n]
        if self.starts is not None:
            return list(zip(self.starts, spatial))
        return [(tf_same_padding(s, k, st, d)[0], s) for s, k, st, d in
                zip(spatial, self.conv.kernel_size, self.conv.stride, self.conv.dilation)]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        y = self.conv(inputs[-1])
        for i, (start, size) in enumerate(self.crop if self.crop is not None else self._crop(inputs[0])):
            y = y.narrow(2 + i, start, size)
        return y
