"""Dense: ``y = activation(x @ kernel + bias)`` on the last axis of any-rank input.

Traps: the kernel is (in, units), torch's weight is (units, in); after a Flatten of a channels-first tensor the
rows are reordered once at conversion (Keras flattens in H,W,C order, [K3] ``reshaping/flatten.py``), so no
permute runs at inference. The weight is built in blocks straight from the file (``kernel_to_linear``): VGG16's
fc1 kernel is 411 MB, and a whole stored copy next to a whole transposed one put its conversion over budget.
"""

from __future__ import annotations

import math

import numpy as np
from torch import nn

from ..graph import StoredArray
from ..layout import KERAS, FlatChannelsFirst
from .activations import activation_for
from .registry import Converted, LayerSpec, as_parameter, converter, weight_array_dtype

BLOCK_BYTES = 8 << 20  # stored rows read (and transposed) at a time


def kernel_to_linear(kernel: StoredArray, channels: int, spatial: tuple[int, ...] = (),
                     dtype: np.dtype | None = None, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """Keras (H*W*C, units) kernel → torch ``Linear.weight`` (units, C*H*W) that consumes a C,H,W-ordered flatten;
    with ``spatial=()`` a plain (in, units) → (units, in) transpose. The result is allocated once, in ``dtype``
    (default: the kernel's), and filled from blocks of stored rows of at most ``block_bytes``, read from ``kernel``
    as they are needed: no whole-size temporary exists besides the result (a block is larger only where the
    file's HDF5 chunks span more rows: ``rows_per_chunk``)."""
    rows, units = kernel.shape
    positions = math.prod(spatial)
    if rows != positions * channels:
        raise ValueError(f"a kernel of {rows} rows cannot take a flatten of {channels} channels x {spatial}")
    out = np.empty((units, rows), dtype=dtype or kernel.dtype)
    if out.size == 0:
        return out
    by_position = out.reshape(units, channels, positions)  # a view: column c*positions + s
    row_bytes = units * max(out.itemsize, np.dtype(kernel.dtype).itemsize)
    # stored rows per block; at least one HDF5 chunk's rows, so a chunk is decompressed at most a few times
    step = max(1, block_bytes // row_bytes, getattr(kernel, "rows_per_chunk", 1))
    with np.errstate(over="ignore"):  # float64 past float32's range becomes inf, silently, as torch's cast does
        if step >= channels:  # whole spatial positions per block (stored row s*channels + c)
            per = step // channels
            for s0 in range(0, positions, per):
                s1 = min(positions, s0 + per)
                block = kernel[s0 * channels:s1 * channels].reshape(s1 - s0, channels, units)
                by_position[:, :, s0:s1] = block.transpose(2, 1, 0)
        else:  # a block holds part of one position's channels
            for s in range(positions):
                for c0 in range(0, channels, step):
                    c1 = min(channels, c0 + step)
                    by_position[:, c0:c1, s] = kernel[s * channels + c0:s * channels + c1].T
    return out


@converter("Dense", defaults={"lora_rank": None, "lora_alpha": None, "quantization_config": None})
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
