"""Pooling: MaxPooling / AveragePooling 1D/2D/3D, their Global variants and Keras 3's adaptive pooling.

Traps ([TF] ``core/framework/kernel_shape_util.cc``, ``nn_ops.py``; [K3] ``layers/pooling/``):
- ``strides=None`` means ``strides=pool_size``.
- ``same`` pads ``pad_total = max((ceil(in/s) - 1) * s + k - in, 0)``, one more pixel AFTER than before when
  ``pad_total`` is odd; padded values never win a max and are never counted in an average's divisor. Torch's own
  implicit padding has both properties (``count_include_pad=False``) but is symmetric, so it is used when TF's
  padding is symmetric for the declared input size, or (stride > 1) with ``ceil_mode=True``, whose extra last
  window is exactly TF's. Otherwise (size-dependent or stride-1 asymmetric padding) the padding runs at run time:
  ``-inf`` before a max pool, and ``TFSameAvgPool`` for an average. The clamp at 0 when the pool is smaller
  than the stride follows TF's formula, its oneDNN and GPU kernels and Keras's JAX/torch backends; TF's Eigen CPU
  kernels for 3-D pooling (oneDNN off) shift those windows instead (tests/test_pooling.py ``eigen_3d_shift``).
- Global pooling: ``keepdims=True`` keeps the rank (so the output stays channels-first when the input was);
  ``GlobalAveragePooling1D`` honours a Keras mask (mean over the unmasked steps).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ..layout import CHANNELS_FIRST, KERAS, FlatChannelsFirst, normalize
from ..nn.padding import same_pad_module, static_same_padding, tf_same_padding
from ..nn.pooling import GlobalAvgPool, GlobalMaxPool, same_avg_pool_module
from .conv import as_tuple, channels_first_data, sequence, spatial_sizes
from .registry import POOL_KEYS, Converted, LayerSpec, converter

MAX_POOL_BY_RANK = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}
AVG_POOL_BY_RANK = {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d}
ADAPTIVE_POOL = {"max": {1: nn.AdaptiveMaxPool1d, 2: nn.AdaptiveMaxPool2d, 3: nn.AdaptiveMaxPool3d},
                 "average": {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d, 3: nn.AdaptiveAvgPool3d}}


def ceil_mode_padding(sizes: Sequence[int | None], kernel: Sequence[int],
                      stride: Sequence[int]) -> tuple[int, ...] | None:
    """Per-axis padding with which a torch pool in ``ceil_mode=True`` reproduces TF ``SAME`` for these static
    sizes, or None. Torch pads ``before`` on both sides and counts ``ceil((in + 2*before - k) / s) + 1`` windows
    ([PT] ``aten/src/ATen/native/Pool.h``, ``pooling_output_shape``); where TF pads ``after = before + 1``,
    ``(out - 1) * s = in + 2*before + 1 - k``, so for s > 1 the ceiling adds exactly TF's last window, whose
    overhang torch neither maxes over nor counts. For s = 1 it adds nothing: no such padding."""
    pads = []
    for size, k, s in zip(sizes, kernel, stride):
        if size is None:
            return None
        before, after = tf_same_padding(size, k, s)
        if after != before and s == 1:
            return None
        pads.append(before)
    return tuple(pads)


def torch_pool(mode: str, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...] = (),
               ceil_mode: bool = False) -> nn.Module:
    """``nn.MaxPoolNd`` / ``nn.AvgPoolNd``; an average never counts implicit padding, as TF never does."""
    padding = padding or (0,) * len(kernel)
    if mode == "max":
        return MAX_POOL_BY_RANK[len(kernel)](kernel, stride, padding, ceil_mode=ceil_mode)
    return AVG_POOL_BY_RANK[len(kernel)](kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)


def torch_can_pad(mode: str, kernel: Sequence[int], sizes: Sequence[int | None]) -> bool:
    """[PT] ``avg_pool3d`` refuses an input smaller than its kernel even where its padding would cover it
    (``pool3d_shape_check`` with ``check_input_size``): a 3-D average pads explicitly unless sizes allow."""
    if mode == "max" or len(kernel) < 3:
        return True
    return all(size is not None and size >= k for size, k in zip(sizes, kernel))


def same_pool(mode: str, kernel: tuple[int, ...], stride: tuple[int, ...],
              sizes: Sequence[int | None]) -> nn.Module:
    """TF ``SAME`` pooling: torch's own padding where it provably equals TF, run-time padding otherwise."""
    if torch_can_pad(mode, kernel, sizes):
        symmetric = static_same_padding(sizes, kernel, stride, (1,) * len(kernel))
        if symmetric is not None:
            return torch_pool(mode, kernel, stride, symmetric)
        left = ceil_mode_padding(sizes, kernel, stride)
        if left is not None:
            return torch_pool(mode, kernel, stride, left, ceil_mode=True)
    if mode == "max":
        return sequence(pad=same_pad_module(kernel, stride, value=float("-inf")), pool=torch_pool(mode, kernel, stride))
    return same_avg_pool_module(kernel, stride)


@converter("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
           "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
           arithmetic=POOL_KEYS)
def convert_pooling(spec: LayerSpec) -> Converted:
    n = int(spec.class_name[-2])
    mode = "max" if spec.class_name.startswith("Max") else "average"
    kernel = as_tuple(spec.config["pool_size"], n)
    stride = as_tuple(spec.config.get("strides") or kernel, n)
    padding = str(spec.config.get("padding", "valid")).lower()
    if padding == "valid":
        module = torch_pool(mode, kernel, stride)
    elif padding == "same":
        module = same_pool(mode, kernel, stride, spatial_sizes(spec, n))
    else:
        spec.fail(f"padding {padding!r} is not supported")
    layout = KERAS if channels_first_data(spec) else CHANNELS_FIRST
    return Converted(module, input_layouts=layout, output_layouts=layout)


@converter("AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D",
           "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D", arithmetic=POOL_KEYS)
def convert_adaptive_pooling(spec: LayerSpec) -> Converted:
    """Keras 3's adaptive pooling: bin i of an axis of length L into ``out`` bins covers
    [floor(i * L / out), ceil((i + 1) * L / out)), torch's bins ([K3] ``backend/tensorflow/nn.py``
    ``_adaptive_*_pool*d``, its "two-pool gather" of windows of the two sizes those bins have)."""
    n = int(spec.class_name[-2])
    mode = "max" if spec.class_name.startswith("AdaptiveMax") else "average"
    output_size = as_tuple(spec.config["output_size"], n)
    layout = KERAS if channels_first_data(spec) else CHANNELS_FIRST
    return Converted(ADAPTIVE_POOL[mode][n](output_size), input_layouts=layout, output_layouts=layout)


def global_pool_module(mode: str, n: int, dims: tuple[int, ...], keepdims: bool, channels_first: bool) -> nn.Module:
    """``nn.AdaptiveXPoolNd(1)`` (+ ``Flatten``) on an N,C,*spatial tensor, else a mean / max over ``dims``.
    The 1-D average always takes the mean module, which also honours a Keras mask."""
    if channels_first and not (mode == "average" and n == 1):
        pool = ADAPTIVE_POOL[mode][n](1)
        return pool if keepdims else sequence(pool=pool, flatten=nn.Flatten())
    if mode == "max":
        return GlobalMaxPool(dims, keepdims)
    return GlobalAvgPool(dims, keepdims, mask_dim=3 - dims[0] if n == 1 else -1)


@converter("GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GlobalMaxPool1D", "GlobalMaxPool2D",
           "GlobalMaxPool3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
           "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", arithmetic=POOL_KEYS)
def convert_global_pooling(spec: LayerSpec) -> Converted:
    """Takes a channels_last layer's input as it comes (no permute): channels-first tensors reduce axes 2..,
    Keras-layout ones 1..n. A ``channels_first`` layer asks for Keras's layout, which is then channels-first."""
    n = int(spec.class_name[-2])
    mode = "max" if spec.class_name.startswith("GlobalMax") else "average"
    keepdims = bool(spec.config.get("keepdims", False))
    layout = normalize(spec.input_layout, n + 2)
    wanted = KERAS if channels_first_data(spec) or isinstance(layout, FlatChannelsFirst) else None
    channels_first = channels_first_data(spec) or (wanted is None and layout == CHANNELS_FIRST)
    dims = tuple(range(2, n + 2)) if channels_first else tuple(range(1, n + 1))
    module = global_pool_module(mode, n, dims, keepdims, channels_first)
    return Converted(module, input_layouts=wanted, output_layouts=None if keepdims else KERAS,
                     takes_mask=mode == "average" and n == 1)
