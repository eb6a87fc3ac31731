"""The TensorFlow side of ``verify`` for TensorFlow graphs (SavedModel signatures, TF1 checkpoints, frozen
graphs): the graph the conversion read — inputs, constants and control flow resolved the same way — run by
TensorFlow in one session, fetching the output of every op the converted module computes. Rows are TF op names,
so they follow the graph's name scopes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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
              inputs: Mapping[str, np.ndarray], dtype: str = "float32") -> tuple[str, dict[str, list[np.ndarray]]]:
    """(TensorFlow version, op name → its outputs) for ``inputs`` keyed by input name. ``float64``: the same
    graph with every float32 tensor, constant and op type made float64 (``as_float64``)."""
    from ..graph import KerasGraph
    from ..readers import runnable_tf_graph

    graph = KerasGraph.from_json(dict(graph_json))
    tf, graph_def = runnable_tf_graph(source, dict(options), graph)
    if dtype == "float64":
        graph_def = as_float64(tf, graph_def)
        inputs = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in inputs.items()}
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
        try:
            values = session.run(fetches, feeds)
        except tf.errors.NotFoundError as exc:  # an op without a float64 kernel
            from ..errors import Tf2TorchError

            raise Tf2TorchError(f"TensorFlow cannot run this graph in float64 ({' '.join(str(exc).split())[:200]}); "
                                "verify in float32") from None
    return f"tensorflow {tf.__version__}", {k: [np.asarray(v) for v in vs] for k, vs in values.items()}


def as_float64(tf: Any, graph_def: Any) -> Any:
    """A copy of ``graph_def`` (and its functions) computing in float64: float32 type attributes, constants and
    function signatures become float64. ``FusedBatchNorm*`` at inference, which has no float64 kernel, becomes
    ``x * a + b`` with ``a = scale / sqrt(variance + epsilon)``, ``b = offset - mean * a`` computed in float64
    from its constant operands (the float64 run is the reference that tells round-off from a semantic error)."""
    f32, f64 = tf.float32.as_datatype_enum, tf.float64.as_datatype_enum
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    consts = {n.name: n for n in out.node if n.op == "Const"}

    def retype(nodes: Any) -> None:
        for node in nodes:
            for value in node.attr.values():
                kind = value.WhichOneof("value")
                if kind == "type" and value.type == f32:
                    value.type = f64
                elif kind == "list" and value.list.type:
                    value.list.type[:] = [f64 if t == f32 else t for t in value.list.type]
                elif kind == "tensor" and value.tensor.dtype == f32:
                    value.tensor.CopyFrom(tf.make_tensor_proto(tf.make_ndarray(value.tensor).astype(np.float64)))

    for node in list(out.node):
        if node.op.startswith("FusedBatchNorm") and not node.attr["is_training"].b:
            _batch_norm_as_affine(tf, out, node, consts)
    retype(out.node)
    for function in out.library.function:
        retype(function.node_def)
        for arg in (*function.signature.input_arg, *function.signature.output_arg):
            if arg.type == f32:
                arg.type = f64
    return out


def _batch_norm_as_affine(tf: Any, graph_def: Any, node: Any, consts: dict[str, Any]) -> None:
    scale, offset, mean, variance = (i.split(":")[0] for i in list(node.input)[1:5])
    values = [tf.make_ndarray(consts[n].attr["value"].tensor).astype(np.float64) for n in (scale, offset, mean,
                                                                                             variance)]
    a = values[0] / np.sqrt(values[3] + node.attr["epsilon"].f)
    b = values[1] - values[2] * a
    if node.attr["data_format"].s.decode() in ("NCHW", "NCDHW"):
        rank = 5 if node.attr["data_format"].s.decode() == "NCDHW" else 4
        a, b = (v.reshape(-1, *[1] * (rank - 2)) for v in (a, b))
    names = []
    for suffix, value in (("scale", a), ("shift", b)):
        const = graph_def.node.add()
        const.name, const.op = f"{node.name}/tf2torch_float64_{suffix}", "Const"
        const.attr["dtype"].type = tf.float64.as_datatype_enum
        const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        names.append(const.name)
    mul = graph_def.node.add()
    mul.name, mul.op = f"{node.name}/tf2torch_float64_mul", "Mul"
    mul.input.extend([node.input[0], names[0]])
    mul.attr["T"].type = tf.float64.as_datatype_enum
    name = node.name
    node.Clear()
    node.name, node.op = name, "AddV2"
    node.input.extend([mul.name, names[1]])
    node.attr["T"].type = tf.float64.as_datatype_enum
