"""Convolutions: Conv, DepthwiseConv, SeparableConv and transposed Conv, 1-D to 3-D.

Traps ([K3] ``layers/convolutional/``, [TF] ``kernel_shape_util.cc``): kernels are stored channels-last style
(``kernel_size + (in // groups, filters)``) even for ``channels_first`` models and are permuted once here; TF
``SAME`` padding with stride > 1 is asymmetric for some input sizes, so it folds into the conv's own (symmetric)
padding only when it is symmetric for the declared input size and otherwise runs as a ``TFSamePad`` module;
``causal`` pads ``dilation * (kernel - 1)`` on the left only; the config ``activation`` acts on Keras's last axis.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from torch import nn

from ..layout import CHANNELS_FIRST, KERAS
from ..nn.conv import Conv2d
from ..nn.padding import same_pad_module, static_same_padding
from ..nn.transposed import TF_CONV_TRANSPOSE_BY_RANK, keras_transpose_crop, torch_transpose_padding
from ..transforms import depthwise_kernel_to_oihw, hwio_to_oihw, transposed_kernel_to_iohw
from .activations import activation_for
from .registry import CONV_KEYS, KERNEL_AND_BIAS, Converted, LayerSpec, as_conv_weight, as_parameter, converter

CONV_BY_RANK = {1: nn.Conv1d, 2: Conv2d, 3: nn.Conv3d}  # Conv2d: torch's, 1×1 calls as a matrix product
CONV_TRANSPOSE_BY_RANK = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


# -- config helpers ------------------------------------------------------------------------------------------
def as_tuple(value: Any, n: int) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value) if len(value) == n else tuple(int(value[0]) for _ in range(n))
    return (int(value),) * n


def spatial_rank(spec: LayerSpec) -> int:
    """1, 2 or 3 from the class name (``Conv2D``, ``SeparableConvolution1D``, ``Conv3DTranspose``...)."""
    match = re.search(r"([123])D", spec.class_name)
    if match is None:
        spec.fail("cannot tell the number of spatial dimensions from the class name")
    return int(match.group(1))


def channels_first_data(spec: LayerSpec) -> bool:
    return spec.config.get("data_format") == "channels_first"


def conv_layout(spec: LayerSpec) -> str:
    """The layout the torch conv needs: the Keras tensor as is for ``channels_first`` data, else channels first."""
    return KERAS if channels_first_data(spec) else CHANNELS_FIRST


def conv_activation(spec: LayerSpec) -> nn.Module | None:
    """The config ``activation``; softmax follows Keras's last axis (channels, or W for ``channels_first`` data)."""
    return activation_for(spec, channel_dim=-1 if channels_first_data(spec) else 1)


def reject_keras1_config(spec: LayerSpec) -> None:
    if "nb_filter" in spec.config or "border_mode" in spec.config:
        spec.fail("Keras 1 convolution configs (nb_filter, border_mode, subsample) are not supported; "
                  "re-save the model with Keras 2 or later")


def spatial_sizes(spec: LayerSpec, n: int) -> tuple[int | None, ...]:
    """Spatial input sizes in Keras order, None where dynamic."""
    shape = spec.input_shape
    return tuple(shape[2:2 + n]) if channels_first_data(spec) else tuple(shape[1:1 + n])


def padding_modules(spec: LayerSpec, kernel: tuple[int, ...], stride: tuple[int, ...],
                    dilation: tuple[int, ...], value: float = 0.0) -> tuple[nn.Module | None, tuple[int, ...]]:
    """(explicit pad module or None, symmetric padding for the layer itself) for Keras ``padding``."""
    n = len(kernel)
    padding = str(spec.config.get("padding", "valid")).lower()
    if padding == "valid":
        return None, (0,) * n
    if padding == "causal":
        left = dilation[0] * (kernel[0] - 1)
        return nn.ConstantPad1d((left, 0), value), (0,)
    if padding != "same":
        spec.fail(f"padding {padding!r} is not supported")
    symmetric = static_same_padding(spatial_sizes(spec, n), kernel, stride, dilation)
    if symmetric is not None:
        return None, symmetric
    return same_pad_module(kernel, stride, dilation, value), (0,) * n


def strided_conv(spec: LayerSpec, weight: np.ndarray, bias: np.ndarray | None,
                 groups: int) -> tuple[nn.Module | None, nn.Module]:
    """(pad module or None, ``Conv{n}d``) with the layer's strides, dilation and padding; ``weight`` is OIHW."""
    n = weight.ndim - 2
    kernel_size = tuple(weight.shape[2:])
    stride = as_tuple(spec.config.get("strides", 1), n)
    dilation = as_tuple(spec.config.get("dilation_rate", 1), n)
    pad, padding = padding_modules(spec, kernel_size, stride, dilation)
    conv = CONV_BY_RANK[n](weight.shape[1] * groups, weight.shape[0], kernel_size, stride=stride, padding=padding,
                           dilation=dilation, groups=groups, bias=bias is not None)
    conv.weight = as_conv_weight(weight)
    if bias is not None:
        conv.bias = as_parameter(bias)
    return pad, conv


def pointwise_conv(kernel: np.ndarray, bias: np.ndarray | None) -> nn.Module:
    """1×1 ``Conv{n}d`` from a Keras (1, ..., 1, in, out) kernel."""
    weight = hwio_to_oihw(kernel)
    conv = CONV_BY_RANK[weight.ndim - 2](weight.shape[1], weight.shape[0], 1, bias=bias is not None)
    conv.weight = as_conv_weight(weight)
    if bias is not None:
        conv.bias = as_parameter(bias)
    return conv


def stored_weights(spec: LayerSpec, kernels: int) -> tuple[list[np.ndarray], np.ndarray | None]:
    """(kernels, bias or None) in Keras order: the kernels first, then the bias when ``use_bias``; their shapes
    checked against the config (``kernel_size``, ``filters``, ``depth_multiplier``, ``groups``)."""
    use_bias = bool(spec.config.get("use_bias", True))
    arrays = spec.weights(expected=kernels + int(use_bias))
    spec.check_shapes(arrays, expected_weight_shapes(spec, kernels, use_bias))
    return arrays[:kernels], (arrays[kernels] if use_bias else None)


def expected_weight_shapes(spec: LayerSpec, kernels: int, use_bias: bool) -> list[tuple[int | None, ...]]:
    """The stored shapes a convolution config implies ([K3] ``layers/convolutional/base_*conv.py`` ``build``)."""
    n = spatial_rank(spec)
    size = as_tuple(spec.config["kernel_size"], n)
    channels = spec.input_shape[1] if channels_first_data(spec) else spec.input_shape[-1]
    name = spec.class_name
    if "Depthwise" in name:
        multiplier = int(spec.config.get("depth_multiplier", 1))
        shapes: list[tuple[int | None, ...]] = [(*size, channels, multiplier)]
        out = None if channels is None else channels * multiplier
    elif "Separable" in name:
        multiplier = int(spec.config.get("depth_multiplier", 1))
        filters = int(spec.config["filters"])
        depth = None if channels is None else channels * multiplier
        shapes = [(*size, channels, multiplier), (*((1,) * n), depth, filters)]
        out = filters
    elif "Transpose" in name or "Deconv" in name:
        filters = int(spec.config["filters"])
        shapes, out = [(*size, filters, channels)], filters
    else:
        filters = int(spec.config["filters"])
        groups = int(spec.config.get("groups", 1) or 1)
        shapes = [(*size, None if channels is None else channels // groups, filters)]
        out = filters
    return shapes[:kernels] + ([(out,)] if use_bias else [])


# -- converters ----------------------------------------------------------------------------------------------
@converter("Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D",
           regularizers=KERNEL_AND_BIAS, theano_flip=("kernel",), weight_kind="conv", arithmetic=CONV_KEYS)
def convert_conv(spec: LayerSpec) -> Converted:
    """``Conv{n}d`` with ``groups`` (contiguous in both); kernel (*k, in // groups, out) → OIHW."""
    reject_keras1_config(spec)
    (kernel,), bias = stored_weights(spec, 1)
    groups = int(spec.config.get("groups", 1) or 1)
    pad, conv = strided_conv(spec, hwio_to_oihw(kernel), bias, groups)
    layout = conv_layout(spec)
    return Converted(sequence(pad=pad, conv=conv, activation=conv_activation(spec)), input_layouts=layout,
                     output_layouts=layout)


@converter("DepthwiseConv1D", "DepthwiseConv2D", defaults={"groups": 1}, weight_kind="depthwise", arithmetic=CONV_KEYS,
           regularizers={"depthwise_regularizer": ("weight",), "bias_regularizer": ("bias",)})
def convert_depthwise_conv(spec: LayerSpec) -> Converted:
    """``Conv{n}d(in, in * dm, groups=in)``. The kernel is ``depthwise_kernel`` in [TFK] but ``kernel`` in [K3]
    (read by position); output channel ``c * dm + m`` ([TF] ``depthwise_conv2d``). Keras 3 runs stride > 1 with
    dilation > 1 as a dilated conv subsampled after TF ``SAME`` padding for the strided output: the same numbers
    as torch's strided dilated conv ([K3] ``backend/tensorflow/nn.py``)."""
    reject_keras1_config(spec)
    (kernel,), bias = stored_weights(spec, 1)
    pad, conv = strided_conv(spec, depthwise_kernel_to_oihw(kernel), bias, groups=kernel.shape[-2])
    layout = conv_layout(spec)
    return Converted(sequence(pad=pad, conv=conv, activation=conv_activation(spec)), input_layouts=layout,
                     output_layouts=layout)


@converter("SeparableConv1D", "SeparableConv2D", defaults={"groups": 1},
           regularizers={"depthwise_regularizer": ("depthwise.weight",),
                         "pointwise_regularizer": ("pointwise.weight",), "bias_regularizer": ("bias",)},
           weight_kind="separable", arithmetic=CONV_KEYS)
@converter("SeparableConvolution1D", "SeparableConvolution2D", defaults={"groups": 1}, weight_kind="separable",
           arithmetic=CONV_KEYS)
def convert_separable_conv(spec: LayerSpec) -> Converted:
    """Depthwise conv without bias (it owns strides, padding and dilation), then a 1×1 conv with the layer's
    single bias ([K3] ``layers/convolutional/base_separable_conv.py``, [TF] ``nn_impl.separable_conv2d``)."""
    reject_keras1_config(spec)
    (depthwise, pointwise), bias = stored_weights(spec, 2)
    pad, spatial = strided_conv(spec, depthwise_kernel_to_oihw(depthwise), None, groups=depthwise.shape[-2])
    layout = conv_layout(spec)
    module = sequence(pad=pad, depthwise=spatial, pointwise=pointwise_conv(pointwise, bias),
                      activation=conv_activation(spec))
    return Converted(module, input_layouts=layout, output_layouts=layout)


# Theano flipping: of the transposed spellings, keras 2.3.1 saving.py ``conv_layers`` names Conv2DTranspose and
# Deconvolution2D only; regularizers: the classes ``tf2torch.regularization_loss`` reproduces.
@converter("Conv2DTranspose", regularizers=KERNEL_AND_BIAS, theano_flip=("kernel",), weight_kind="conv_transpose",
           arithmetic=CONV_KEYS)
@converter("Conv1DTranspose", "Conv3DTranspose", "Convolution2DTranspose", regularizers=KERNEL_AND_BIAS,
           weight_kind="conv_transpose", arithmetic=CONV_KEYS)
@converter("Deconvolution2D", theano_flip=("kernel",), arithmetic=CONV_KEYS)
@converter("Convolution1DTranspose", "Convolution3DTranspose", "Deconvolution3D", "Deconv2D", "Deconv3D",
           arithmetic=CONV_KEYS)
def convert_conv_transpose(spec: LayerSpec) -> Converted:
    """Kernel (*k, out, in) → (in, out, *k), no flip. Keras's output window is the full transposed conv cropped as
    in ``nn.transposed``; a plain ``ConvTranspose{n}d`` when its padding/output_padding cut the same window
    (e.g. k=4, s=2, same → padding=1), else ``TFConvTranspose{n}d`` (k=3, s=2, same: torch's padding=1,
    output_padding=1 is one pixel off). [TFK] accepts and ignores ``groups`` (its kernel is never grouped)."""
    reject_keras1_config(spec)
    cfg = spec.config
    n = spatial_rank(spec)
    padding = str(cfg.get("padding", "valid")).lower()
    if padding not in ("valid", "same"):
        spec.fail(f"padding {padding!r} is not supported for a transposed convolution")
    groups = int(cfg.get("groups", 1) or 1)
    if groups != 1 and spec.keras_major >= 3:
        spec.fail(f"groups={groups} is not supported for a transposed convolution")
    (kernel,), bias = stored_weights(spec, 1)
    weight = transposed_kernel_to_iohw(kernel)
    stride = as_tuple(cfg.get("strides", 1), n)
    dilation = as_tuple(cfg.get("dilation_rate", 1), n)
    # each axis grows to at most size * stride + the dilated kernel; the channels go from in to out
    sizes = [d or 1 for d in (spec.input_shape[2:] if channels_first_data(spec) else spec.input_shape[1:-1])]
    spec.check_declared_size(float(np.prod([(size * s + (k - 1) * d) / size for size, s, k, d
                                            in zip(sizes, stride, weight.shape[2:], dilation)]))
                             * weight.shape[1] / max(weight.shape[0], 1))
    output_padding = cfg.get("output_padding")
    output_padding = (None,) * n if output_padding is None else as_tuple(output_padding, n)
    crop = [keras_transpose_crop(k, s, d, padding, op)
            for k, s, d, op in zip(weight.shape[2:], stride, dilation, output_padding)]
    conv = transposed_conv(weight, bias, stride, dilation, crop)
    layout = conv_layout(spec)
    return Converted(sequence(conv=conv, activation=conv_activation(spec)), input_layouts=layout,
                     output_layouts=layout)


def transposed_conv(weight: np.ndarray, bias: np.ndarray | None, stride: tuple[int, ...],
                    dilation: tuple[int, ...], crop: list[tuple[int, int]]) -> nn.Module:
    """``nn.ConvTranspose{n}d`` when its padding/output_padding cut ``crop`` on every axis, else
    ``TFConvTranspose{n}d``; ``weight`` is (in, out, *k)."""
    n = weight.ndim - 2
    in_channels, out_channels, *kernel_size = weight.shape
    torch_pads = [torch_transpose_padding(c, s, d) for c, s, d in zip(crop, stride, dilation)]
    if all(p is not None for p in torch_pads):
        conv = CONV_TRANSPOSE_BY_RANK[n](
            in_channels, out_channels, tuple(kernel_size), stride=stride, padding=tuple(p[0] for p in torch_pads),
            output_padding=tuple(p[1] for p in torch_pads), dilation=dilation, bias=bias is not None)
    else:
        conv = TF_CONV_TRANSPOSE_BY_RANK[n](in_channels, out_channels, kernel_size, stride, dilation, crop,
                                            bias=bias is not None)
    conv.weight = as_parameter(weight)
    if bias is not None:
        conv.bias = as_parameter(bias)
    return conv


def sequence(**parts: nn.Module | None) -> nn.Module:
    """The single module when only one part is present, else an ``nn.Sequential`` with named parts."""
    present = {k: v for k, v in parts.items() if v is not None}
    if len(present) == 1:
        return next(iter(present.values()))
    seq = nn.Sequential()
    for k, v in present.items():
        seq.add_module(k, v)
    return seq
