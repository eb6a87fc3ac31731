"""Dense: ``y = activation(x @ kernel + bias)`` on the last axis of any-rank input.

Traps: the kernel is (in, units), torch's weight is (units, in); after a Flatten of a channels-first tensor the
rows are reordered once at conversion (Keras flattens in H,W,C order, [K3] ``reshaping/flatten.py``), so no
permute runs at inference. The weight is built in blocks straight from the file (``kernel_to_linear``): VGG16's
fc1 kernel is 411 MB, and a whole stored copy next to a whole transposed one put its conversion over budget.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from ..layout import KERAS, FlatChannelsFirst
from ..transforms import BLOCK_BYTES, kernel_to_linear  # noqa: F401  (BLOCK_BYTES: re-exported)
from .activations import activation_for
from .registry import KERNEL_AND_BIAS, Converted, LayerSpec, as_parameter, converter, weight_array_dtype


@converter("Dense", defaults={"lora_rank": None, "lora_alpha": None, "quantization_config": None},
           mask="propagate", regularizers=KERNEL_AND_BIAS, weight_kind="dense",
           arithmetic=("units", "activation", "use_bias"))
def convert_dense(spec: LayerSpec) -> Converted:
    use_bias = spec.config.get("use_bias", True)
    units = int(spec.config["units"])
    stored = spec.weights(expected=2 if use_bias else 1, lazy=True)
    spec.check_shapes(stored, [(spec.input_shape[-1], units), (units,)], ["kernel", "bias"])
    kernel, layout = stored[0], spec.input_layout
    if isinstance(layout, FlatChannelsFirst):
        channels, spatial, wanted = layout.channels, layout.spatial, None
    else:
        channels, spatial, wanted = kernel.shape[0], (), KERAS
    weight = kernel_to_linear(kernel, channels, spatial, weight_array_dtype(kernel.dtype))
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=use_bias)
    linear.weight = as_parameter(weight)
    if use_bias:
        linear.bias = as_parameter(np.asarray(stored[1]))
    activation = activation_for(spec, channel_dim=-1)
    module = linear if activation is None else nn.Sequential(linear, activation)
    return Converted(module, input_layouts=wanted, output_layouts=KERAS)
