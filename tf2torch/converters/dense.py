"""Dense: ``y = activation(x @ kernel + bias)`` on the last axis of any-rank input.

Traps: the kernel is (in, units), torch's weight is (units, in); after a Flatten of a channels-first tensor the
rows are reordered once at conversion (Keras flattens in H,W,C order, [K3] ``reshaping/flatten.py``), so no
permute runs at inference.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..layout import KERAS, FlatChannelsFirst
from .activations import activation_for
from .registry import Converted, LayerSpec, as_parameter, converter


def dense_kernel_to_linear(kernel: np.ndarray) -> np.ndarray:
    """Keras (in, units) → torch ``Linear.weight`` (units, in), one contiguous copy."""
    return np.ascontiguousarray(kernel.T)


def flattened_kernel_to_linear(kernel: np.ndarray, channels: int, spatial: tuple[int, ...]) -> np.ndarray:
    """Keras (H*W*C, units) kernel → torch (units, C*H*W) weight that consumes a C,H,W-ordered flatten, in a
    single copy (VGG16's fc1 is 411 MB)."""
    units = kernel.shape[1]
    k = kernel.reshape(*spatial, channels, units)
    order = (len(spatial) + 1, len(spatial), *range(len(spatial)))
    return np.ascontiguousarray(k.transpose(order)).reshape(units, -1)


@converter("Dense", defaults={"lora_rank": None, "lora_alpha": None, "quantization_config": None})
def convert_dense(spec: LayerSpec) -> Converted:
    use_bias = spec.config.get("use_bias", True)
    units = int(spec.config["units"])
    arrays = spec.weights(expected=2 if use_bias else 1)
    spec.check_shapes(arrays, [(spec.input_shape[-1], units), (units,)], ["kernel", "bias"])
    layout = spec.input_layout
    if isinstance(layout, FlatChannelsFirst):
        weight, wanted = flattened_kernel_to_linear(arrays[0], layout.channels, layout.spatial), None
    else:
        weight, wanted = dense_kernel_to_linear(arrays[0]), KERAS
    arrays[0] = None  # the stored kernel can go before the torch copy is made
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=use_bias)
    linear.weight = as_parameter(weight)
    if use_bias:
        linear.bias = as_parameter(arrays[1])
    activation = activation_for(spec, channel_dim=-1)
    module = linear if activation is None else nn.Sequential(linear, activation)
    return Converted(module, input_layouts=wanted, output_layouts=KERAS)
