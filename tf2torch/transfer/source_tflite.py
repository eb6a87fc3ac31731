"""A TensorFlow Lite model as a transfer source: its operators with weights, in the file's (execution) order,
their filters turned into the Keras layouts the matching works in.

TFLite stores a ``CONV_2D`` filter as (out, kh, kw, in) (OHWI), a ``DEPTHWISE_CONV_2D`` filter as
(1, kh, kw, in·multiplier), a ``TRANSPOSE_CONV`` filter as (out, kh, kw, in) with its bias in operand 3, and a
``FULLY_CONNECTED`` weight as (out, in) ([TFLite] ``lite/kernels/conv.cc``, ``depthwise_conv.cc``,
``fully_connected.cc``): read as Keras's (kh, kw, in, out), (kh, kw, in, multiplier), (kh, kw, out, in) and
(in, out), so that every transform after it is the converters' own. float16 weights (behind ``DEQUANTIZE``) are
read widened to float32 by the reader; weights of other operators are loose tensors (``loose_weights``). The
file is read by tf2torch's own FlatBuffer reader (``readers.tflite``), never TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..graph import KerasGraph
from .layers import Derived, SourceLayer

OPERATORS: dict[str, tuple[str, dict[str, str]]] = {  # operator → kind, operand → role
    "CONV_2D": ("conv", {"operand1": "kernel", "operand2": "bias"}),
    "DEPTHWISE_CONV_2D": ("depthwise", {"operand1": "depthwise_kernel", "operand2": "bias"}),
    "TRANSPOSE_CONV": ("conv_transpose", {"operand1": "kernel", "operand3": "bias"}),
    "FULLY_CONNECTED": ("dense", {"operand1": "kernel", "operand2": "bias"}),
    "PRELU": ("prelu", {"operand1": "alpha"}),
}


def tflite_layers(graph: KerasGraph) -> list[SourceLayer]:
    """The operators that hold weights, in execution order, with Keras-layout weights by role."""
    layers = []
    for node in graph.nodes:
        layer = graph.layers[node.layer]
        if not layer.weights:
            continue
        op = layer.class_name.rpartition(">")[2]  # the reader's ``tflite>CONV_2D``
        kind, roles = OPERATORS.get(op, (None, {}))
        stored = {w.name: graph.load_weight(w) for w in layer.weights}
        if kind is None or set(stored) - set(roles):
            layers.append(SourceLayer(node.layer, None, layer.class_name, stored, config=layer.config))
            continue
        weights = {roles[name]: keras_layout(op, roles[name], array, layer.config.get("options") or {})
                   for name, array in stored.items()}
        names = {roles[name]: f"{node.layer}/{name}" for name in stored}
        layers.append(SourceLayer(node.layer, kind, layer.class_name, weights, None, layer.config, None, names))
    return layers


def keras_layout(op: str, role: str, array: Any, options: dict[str, Any]) -> Any:
    """One TFLite weight seen in Keras's layout (read when asked for)."""
    shape = tuple(array.shape)
    if op == "CONV_2D" and role == "kernel" and len(shape) == 4:
        return Derived(array, (*shape[1:3], shape[3], shape[0]), lambda a: np.transpose(a, (1, 2, 3, 0)))
    if op == "TRANSPOSE_CONV" and role == "kernel" and len(shape) == 4:
        return Derived(array, (*shape[1:3], shape[0], shape[3]), lambda a: np.transpose(a, (1, 2, 0, 3)))
    if op == "DEPTHWISE_CONV_2D" and role == "depthwise_kernel" and len(shape) == 4:
        multiplier = max(1, int(options.get("depth_multiplier") or 1))
        if shape[3] % multiplier == 0:
            keras = (*shape[1:3], shape[3] // multiplier, multiplier)
            return Derived(array, keras, lambda a: a.reshape(keras))
    if op == "FULLY_CONNECTED" and role == "kernel" and len(shape) == 2:
        return Derived(array, shape[::-1], lambda a: a.T)
    return array
