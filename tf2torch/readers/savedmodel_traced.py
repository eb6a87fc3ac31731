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

from ..graph import TRACED_LAYER, KerasGraph, Layer, Overrides, Weight


def needs_trace(layer: Layer, convertible: Callable[[str], bool]) -> bool:
    """A ``Lambda`` (its bytecode is never run), or a layer whose class the caller cannot convert: the reader
    does not know what converts, the caller says (``api`` passes ``support.has_converter``)."""
    if layer.class_name in ("InputLayer",):
        return False
    return layer.class_name == "Lambda" or not convertible(layer.class_name)


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


def traced_ir(tf: Any, concrete: Any, name: str, walk_function: Callable[..., KerasGraph]) -> KerasGraph:
    """The concrete function frozen and walked into a sub-IR by ``walk_function`` (``tf_graph.walk_function``,
    given by the caller: this module sits below the graph walker and never imports it)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from .tf_sources import TFOptions, TFSource

    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False)
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in frozen.outputs]
    source = TFSource(frozen.graph.as_graph_def(), name, "function", inputs=inputs,
                      input_names=[f"input_{i}" for i in range(len(inputs))], outputs=outputs,
                      output_names=[f"output_{i}" for i in range(len(outputs))])
    return walk_function(tf, source, TFOptions())


def trace_layers(tf: Any, directory: Path, graph: KerasGraph, convertible: Callable[[str], bool],
                 walk_function: Callable[..., KerasGraph]) -> bool:
    """Replace every layer without a converter by its traced function; False when one has none (the caller
    then converts the serving signature instead). Ops of the functions without a converter are listed at once,
    after reading (``tf2torch/support.py``)."""
    keys = [k for k, layer in graph.layers.items() if needs_trace(layer, convertible)]
    if not keys:
        return True
    loaded = tf.saved_model.load(str(directory))
    paths = graph.object_paths
    concretes = {k: layer_function(loaded, paths.get(k)) for k in keys}
    if any(c is None for c in concretes.values()):
        return False
    loaders: dict[str, Callable[[], np.ndarray]] = {}
    for key in keys:
        sub = traced_ir(tf, concretes[key], key, walk_function)
        layer = graph.layers[key]
        weights = []
        for sub_key, sub_layer in sub.layers.items():
            for w in sub_layer.weights:
                name = f"call/{sub_key}/{w.name}"
                weights.append(Weight(name, tuple(w.shape), w.dtype, f"{key}::{name}"))
                loaders[f"{key}::{name}"] = (lambda g=sub, w=w: g.load_weight(w))
        layer.config = {"name": layer.config.get("name", key), "keras_class_name": layer.class_name,
                        "trainable": layer.config.get("trainable", True), "function": sub.to_json()}
        layer.class_name = TRACED_LAYER
        layer.weights = weights
    graph.weight_source = Overrides(loaders, graph.weight_source)
    return True
