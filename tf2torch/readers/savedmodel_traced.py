"""Layers of a Keras SavedModel that tf2torch has no converter for (a custom class whose Python code is not
importable here, a ``Lambda``), converted from their own traced call function.

tf_keras saves each layer's call as concrete functions in the SavedModel's object graph, on the layer's object
(``root.layer-2.__call__``, [TFK] ``saving/legacy/saved_model/layer_serialization.py``). The rest of the model
still comes from the Keras config (as for ``.h5``); such a layer keeps its Keras name and becomes one IR layer of
class ``tf.traced>KerasLayer`` whose config carries the traced function, frozen by TensorFlow and walked by the
graph walker into a sub-IR (``tf2torch/ops/tf_control.py`` assembles it). Nothing of the user's Python runs: a
concrete function is a TensorFlow graph.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UnsupportedLayerError
from ..graph import KerasGraph, Layer, Overrides, Weight

TRACED_LAYER = "tf.traced>KerasLayer"


def needs_trace(layer: Layer) -> bool:
    from ..converters import registry

    if layer.class_name in ("InputLayer",):
        return False
    return layer.class_name == "Lambda" or registry.converter_for(layer.class_name) is None


def layer_function(loaded: Any, path: str | None) -> Any:
    """The inference concrete function of the layer object at ``path`` (``root.layer-2``), or None: a
    ``__call__`` function traced with ``training`` False or absent."""
    if path is None:
        return None
    obj = loaded
    for part in path.split(".")[1:]:
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    fn = getattr(obj, "__call__", None)  # noqa: B004  (the restored tf.function saved as the layer's __call__)
    if not hasattr(fn, "_list_all_concrete_functions_for_serialization"):
        return None
    import tensorflow as tf

    for concrete in fn._list_all_concrete_functions_for_serialization():
        flat = tf.nest.flatten(concrete.structured_input_signature)
        if not any(v is True for v in flat):  # the training=True trace computes something else
            return concrete
    return None


def traced_ir(tf: Any, concrete: Any, name: str) -> KerasGraph:
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from .tf_graph import build_ir, prepare
    from .tf_sources import TFOptions, TFSource

    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in frozen.outputs]
    source = TFSource(frozen.graph.as_graph_def(), name, "function", inputs=inputs,
                      input_names=[f"input_{i}" for i in range(len(inputs))], outputs=outputs,
                      output_names=[f"output_{i}" for i in range(len(outputs))])
    walker, ends = prepare(tf, source, TFOptions())
    return build_ir(walker, ends.inputs, ends.input_names, ends.outputs, ends.output_names, function=True)


def trace_layers(tf: Any, directory: Path, graph: KerasGraph) -> bool:
    """Replace every layer without a converter by its traced function; False when one has none (the caller
    then converts the serving signature instead). Ops of the functions without a converter are listed at once."""
    keys = [k for k, layer in graph.layers.items() if needs_trace(layer)]
    if not keys:
        return True
    loaded = tf.saved_model.load(str(directory))
    paths = graph.object_paths
    concretes = {k: layer_function(loaded, paths.get(k)) for k in keys}
    if any(c is None for c in concretes.values()):
        return False
    loaders: dict[str, Callable[[], np.ndarray]] = {}
    unsupported: list[tuple[str, str]] = []
    reasons: dict[str, str] = {}
    for key in keys:
        sub = traced_ir(tf, concretes[key], key)
        layer = graph.layers[key]
        weights = []
        for sub_key, sub_layer in sub.layers.items():
            for w in sub_layer.weights:
                name = f"call/{sub_key}/{w.name}"
                weights.append(Weight(name, tuple(w.shape), w.dtype, f"{key}::{name}"))
                loaders[f"{key}::{name}"] = (lambda g=sub, w=w: g.load_weight(w))
        unsupported.extend((f"{key}/{k}", c) for k, c in sub.unsupported)
        reasons.update({f"{key}/{k}": v for k, v in sub.reasons.items()})
        layer.config = {"name": layer.config.get("name", key), "keras_class_name": layer.class_name,
                        "trainable": layer.config.get("trainable", True), "function": sub.to_json()}
        layer.class_name = TRACED_LAYER
        layer.weights = weights
    if unsupported:
        raise UnsupportedLayerError(unsupported, reasons)
    graph.weight_source = Overrides(loaders, graph.weight_source)
    return True
