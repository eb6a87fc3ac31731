"""The TensorFlow side of ``verify`` for TensorFlow graphs (SavedModel signatures, TF1 checkpoints, frozen
graphs): the graph the conversion read — inputs, constants and control flow resolved the same way — run by
TensorFlow in one session, fetching the output of every op the converted module computes. Rows are TF op names,
so they follow the graph's name scopes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

MULTI_OUTPUT = ("Split", "SplitV", "Unpack")
LOOPS = ("While", "StatelessWhile")


def compared_outputs(layer: Mapping[str, Any]) -> list[int]:
    """The outputs of a raw op that are compared: all of a split, the used ones of a loop, else the first;
    never a TensorList (a ``variant``: TensorFlow cannot hand its value out; the ops reading it are compared)."""
    config = layer["config"]
    dtypes = config["output_dtypes"]
    if config["op"] in LOOPS:
        picked = list(config.get("outputs_used") or [0])
    elif config["op"] in MULTI_OUTPUT:
        picked = list(range(len(dtypes)))
    else:
        picked = [0]
    return [i for i in picked if dtypes[i] != "variant"]


def picked_outputs(graph: Mapping[str, Any]) -> dict[str, list[int]]:
    """Node id → the outputs ``run_graph`` fetched, where that is not simply every output of the torch call."""
    picked = {}
    for node in graph["nodes"]:
        layer = graph["layers"][node["layer"]]
        if str(layer["class_name"]).startswith("tf.raw>") and layer["config"]["op"] not in MULTI_OUTPUT:
            picked[node["id"]] = compared_outputs(layer)
    return picked


def is_tf_graph(graph: Mapping[str, Any]) -> bool:
    return any(str(layer["class_name"]).startswith("tf.raw>") for layer in graph["layers"].values())


def run_graph(source: str | os.PathLike, options: Mapping[str, Any], graph_json: Mapping[str, Any],
              inputs: Mapping[str, np.ndarray]) -> tuple[str, dict[str, list[np.ndarray]]]:
    """(TensorFlow version, op name → its outputs) for ``inputs`` keyed by input name."""
    from ..graph import KerasGraph
    from ..readers import file_kind
    from ..readers.tf_graph import TFOptions, prepare, read_source, runnable_graph_def
    from ..readers.tf_paths import import_tensorflow

    tf = import_tensorflow()
    opts = TFOptions.from_dict(dict(options))
    walker, _ = prepare(tf, read_source(tf, Path(source), file_kind(source), opts), opts)
    graph = KerasGraph.from_json(dict(graph_json))
    graph_def = runnable_graph_def(walker, graph)
    fetches: dict[str, list[str]] = {}
    for node in graph.nodes:
        layer = graph.layers[node.layer]
        if layer.class_name == "InputLayer":
            continue
        outputs = compared_outputs({"config": layer.config})
        if outputs:
            fetches[node.id] = [f"{node.id}:{i}" for i in outputs]
    feeds = {}
    for node in graph.nodes:
        layer = graph.layers[node.layer]
        if layer.class_name == "InputLayer":
            feeds[f"{layer.config['tf_name']}:0"] = inputs[node.layer]
    tf_graph = tf.Graph()
    with tf_graph.as_default():
        tf.graph_util.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=tf_graph) as session:
        values = session.run(fetches, feeds)
    return f"tensorflow {tf.__version__}", {k: [np.asarray(v) for v in vs] for k, vs in values.items()}
