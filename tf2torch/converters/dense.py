"""Dense: ``y = activation(x @ kernel + bias)`` on the last axis of any-rank input.

Traps: the kernel is (in, units), torch's weight is (units, in). The weight is the stored kernel transposed as a
view, not a copy: ``F.linear`` multiplies by ``weight.T``, which is the kernel itself, contiguous, so inference
runs the same matrix product and conversion holds each kernel once (VGG16's fc1 is 411 MB). After a Flatten of a
channels-first tensor Dense asks for Keras's H,W,C order ([K3] ``reshaping/flatten.py``): a copy of the small
activation instead of a reordered copy of the large kernel (with the trunk in channels-last memory, that order is
the one the activation already has).
"""

from __future__ import annotations

import torch
from torch import nn

from ..layout import KERAS
from .activations import activation_for
from .registry import Converted, LayerSpec, as_parameter, converter, to_tensor


def dense_kernel_to_linear(kernel: torch.Tensor) -> torch.Tensor:
    """Keras (in, units) → torch ``Linear.weight`` (units, in): the transposed view, no copy."""
    return kernel.T


@converter("Dense", defaults={"lora_rank": None, "lora_alpha": None, "quantization_config": None})
def convert_dense(spec: LayerSpec) -> Converted:
    use_bias = spec.config.get("use_bias", True)
    units = int(spec.config["units"])
    arrays = spec.weights(expected=2 if use_bias else 1)
    spec.check_shapes(arrays, [(spec.input_shape[-1], units), (units,)], ["kernel", "bias"])
    weight = dense_kernel_to_linear(to_tensor(arrays[0]))
    arrays[0] = None
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=use_bias)
    linear.weight = nn.Parameter(weight)
    if use_bias:
        linear.bias = as_parameter(arrays[1])
    activation = activation_for(spec, channel_dim=-1)
    module = linear if activation is None else nn.Sequential(linear, activation)
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS)
