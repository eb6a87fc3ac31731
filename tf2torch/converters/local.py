"""LocallyConnected1D / LocallyConnected2D (tf_keras; Keras 3 has none): a convolution with a separate kernel at
every output position.

Traps ([TFK] ``layers/locally_connected/``, ``backend.local_conv``): tf_keras stores the kernel in one of three
layouts, chosen by ``implementation``: 1 (the Keras 2.0 layout) (positions, window * C, filters) with each window
flattened (*window, C) for channels_last and (C, *window) for channels_first; 2 a dense (*input, C, *output,
filters) kernel (channels_first: (C, *input, filters, *output)) of which Keras uses only the entries its
``kernel_mask`` keeps; 3 a sparse list of values that is refused. The bias is (*output, filters), added at each
position; for channels_first ``bias_add`` reshapes it to (filters, *output) without transposing, so each output
channel gets a run of consecutive stored values, as Keras computes. Only ``padding='valid'`` is converted (the
only padding implementation 1 allows).
"""

from __future__ import annotations

import itertools

import numpy as np
from torch import nn

from ..layout import KERAS
from ..nn.local import LocallyConnected
from .activations import activation_for
from .registry import Converted, LayerSpec, as_parameter, converter


def output_length(size: int, kernel: int, stride: int) -> int:
    """``conv_utils.conv_output_length`` for ``padding='valid'``."""
    return (size - kernel + stride) // stride


def dense_kernel_to_local(kernel: np.ndarray, kernel_size: tuple[int, ...], strides: tuple[int, ...],
                          output_shape: tuple[int, ...], channels_first: bool) -> np.ndarray:
    """An implementation-2 kernel (*input, C, *output, filters) — channels_first (C, *input, filters, *output) —
    as implementation 1's (positions, features, filters): at each output position, the entries of its window
    (the ones Keras's ``kernel_mask`` keeps), flattened in ``local_conv``'s order."""
    rank = len(kernel_size)
    if channels_first:  # → (*input, C, *output, filters)
        kernel = np.moveaxis(kernel, [0, rank + 1], [rank, 2 * rank + 1])
    channels, filters = kernel.shape[rank], kernel.shape[-1]
    windows = []
    for position in itertools.product(*(range(n) for n in output_shape)):
        window = tuple(slice(p * s, p * s + k) for p, s, k in zip(position, strides, kernel_size))
        block = kernel[window + (slice(None),) + tuple(position) + (slice(None),)]  # (*window, C, filters)
        if channels_first:
            block = np.moveaxis(block, rank, 0)  # (C, *window, filters)
        windows.append(block.reshape(-1, filters))
    return np.stack(windows).reshape(len(windows), channels * int(np.prod(kernel_size)), filters)


@converter("LocallyConnected1D", "LocallyConnected2D")
def convert_locally_connected(spec: LayerSpec) -> Converted:
    cfg = spec.config
    rank = 1 if spec.class_name.endswith("1D") else 2
    if str(cfg.get("padding", "valid")).lower() != "valid":
        spec.fail(f"padding {cfg['padding']!r} is not supported (only 'valid')")
    implementation = int(cfg.get("implementation", 1))
    if implementation not in (1, 2):
        spec.fail(f"implementation {implementation} (a sparse kernel) is not supported; implementations 1 and 2 are")
    channels_first = cfg.get("data_format", "channels_last") == "channels_first"
    kernel_size = tuple(int(k) for k in cfg["kernel_size"])
    strides = tuple(int(s) for s in cfg["strides"])
    filters = int(cfg["filters"])
    shape = spec.input_shape
    spatial = shape[2:] if channels_first else shape[1:-1]
    channels = shape[1] if channels_first else shape[-1]
    if len(spatial) != rank or any(n is None for n in (*spatial, channels)):
        spec.fail(f"needs a fixed input shape of rank {rank + 2}, got {shape}")
    output_shape = tuple(output_length(int(n), k, s) for n, k, s in zip(spatial, kernel_size, strides))
    use_bias = bool(cfg.get("use_bias", True))
    stored = spec.weights(expected=2 if use_bias else 1)
    positions, features = int(np.prod(output_shape)), int(channels) * int(np.prod(kernel_size))
    if implementation == 1:
        spec.check_shapes(stored[:1], [(positions, features, filters)], ["kernel"])
        kernel = stored[0]
    else:
        dense_shape = ((channels, *spatial, filters, *output_shape) if channels_first
                       else (*spatial, channels, *output_shape, filters))
        spec.check_shapes(stored[:1], [dense_shape], ["kernel"])
        kernel = dense_kernel_to_local(stored[0], kernel_size, strides, output_shape, channels_first)
    module = LocallyConnected(kernel_size, strides, output_shape, int(channels), filters, use_bias, channels_first)
    module.weight = as_parameter(np.ascontiguousarray(kernel))
    if use_bias:
        spec.check_shapes(stored[1:], [(*output_shape, filters)], ["bias"])
        module.bias = as_parameter(stored[1])
    activation = activation_for(spec)  # on the Keras-layout output: Keras's last axis is the held last axis
    if activation is not None:
        module = nn.Sequential(module, activation)
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS)
