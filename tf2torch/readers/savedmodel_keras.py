"""Keras SavedModels (tf_keras ``model.save(dir)``): the structure from ``keras_metadata.pb``, weights from
``variables/``, so the result equals converting the ``.h5`` of the same model.

``keras_metadata.pb`` is a ``SavedMetadata`` proto ([TFK] ``protobuf/saved_metadata.proto``): one node per
Keras object with its ``node_id`` in the SavedModel object graph, its ``node_path`` (``root.layer-1``) and a JSON
``metadata`` whose root entry holds the model's ``class_name`` and ``config``. The node ids are those of the
checkpoint's object graph (``_CHECKPOINTABLE_OBJECT_GRAPH`` in ``variables/``): a layer's ``variables`` child
lists its weights in ``layer.weights`` order, each ending at a checkpoint key such as
``layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE``. The proto is decoded here (a handful of fields), so
tf_keras is not needed; the checkpoint is read with ``tf.train.load_checkpoint``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError
from ..graph import KerasGraph, Weight, WeightFunction
from .config import ModelTree, parse_model_config
from .h5 import _relative_name


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of one protobuf message: varints as int, length-delimited as bytes."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            out.append((number, data[pos:pos + length]))
            pos += length
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return out


def read_keras_metadata(path: Path) -> list[dict[str, Any]]:
    """The ``SavedMetadata`` nodes: ``node_id``, ``node_path``, ``identifier`` and the decoded ``metadata``."""
    try:
        nodes = []
        for number, value in _fields(path.read_bytes()):
            if number != 1 or not isinstance(value, bytes):
                continue
            node: dict[str, Any] = {"node_id": 0, "node_path": "", "identifier": "", "metadata": {}}
            for field, item in _fields(value):
                if field == 2 and isinstance(item, int):
                    node["node_id"] = item
                elif field == 3 and isinstance(item, bytes):
                    node["node_path"] = item.decode("utf8")
                elif field == 4 and isinstance(item, bytes):
                    node["identifier"] = item.decode("utf8")
                elif field == 5 and isinstance(item, bytes):
                    node["metadata"] = json.loads(item.decode("utf8")) if item else {}
            nodes.append(node)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: keras_metadata.pb does not parse ({exc}); the SavedModel is damaged") from None
    return nodes


def root_metadata(directory: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``SavedMetadata`` nodes and the root model's metadata (``class_name``, ``config``, ...)."""
    if not (directory / "keras_metadata.pb").is_file():
        raise ModelFileError(f"{directory}: not a Keras SavedModel (no keras_metadata.pb)")
    nodes = read_keras_metadata(directory / "keras_metadata.pb")
    root = next((n for n in nodes if n["node_path"] == "root"), None)
    if root is None or "config" not in root["metadata"]:
        raise ModelFileError(f"{directory}: keras_metadata.pb has no root model config")
    return nodes, root["metadata"]


def keras_metadata_config(directory: Path) -> dict[str, Any]:
    """The Keras model config a SavedModel stores (``{"class_name", "config"}``), as ``.h5`` files hold it."""
    directory = directory if directory.is_dir() else directory.parent
    _, meta = root_metadata(directory)
    return {"class_name": meta.get("class_name"), "config": meta["config"]}


def read_keras_saved_model(tf: Any, directory: Path) -> KerasGraph:
    nodes, meta = root_metadata(directory)
    model_config = {"class_name": meta.get("class_name"), "config": meta["config"]}
    keras_version = str(meta.get("keras_version") or "2")
    graph, tree = parse_model_config(model_config, keras_version, "savedmodel")
    prefix = str(directory / "variables" / "variables")
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as exc:  # TF raises several kinds for a missing or damaged checkpoint
        raise ModelFileError(f"{directory}: cannot read variables/ ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    objects = _object_graph(tf, reader, directory)
    by_path = {n["node_path"]: n for n in nodes}
    paths: dict[str, str] = {}
    _attach(graph, tree, by_path, objects, "root", paths)
    fill_shapes(graph, reader)
    graph.weight_source = WeightFunction(lambda w: np.asarray(reader.get_tensor(w.key)))
    graph.object_paths = paths  # layer key → its object in the SavedModel (root.layer-2)
    return graph


def _object_graph(tf: Any, reader: Any, directory: Path) -> Any:
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    proto = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        proto.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except Exception as exc:
        raise ModelFileError(f"{directory}: variables/ holds no object graph ({exc})") from None
    return proto


def _children(objects: Any, node_id: int) -> dict[str, int]:
    return {c.local_name: c.node_id for c in objects.nodes[node_id].children}


def _attach(graph: KerasGraph, tree: ModelTree, by_path: dict[str, dict[str, Any]], objects: Any,
            model_path: str, paths: dict[str, str]) -> None:
    """Give each leaf layer of ``tree`` its weights, found through the metadata node of the same name."""
    layer_paths = {n["metadata"].get("name"): p for p, n in by_path.items()
                   if p.startswith(model_path + ".") and p.count(".") == model_path.count(".") + 1}
    for key, _, sub in tree.layers:
        name = key.split("/")[-1]
        path = layer_paths.get(name)
        if path is None:
            continue
        if sub is not None:
            _attach(graph, sub, by_path, objects, path, paths)
            continue
        if key not in graph.layers:
            continue
        paths[key] = path
        node_id = by_path[path]["node_id"]
        variables = _children(objects, node_id).get("variables")
        if variables is None:
            continue
        weights = []
        for index in sorted(_children(objects, variables), key=int):
            var_id = _children(objects, variables)[index]
            attributes = objects.nodes[var_id].attributes
            if not attributes:
                raise ModelFileError(f"layer {key}: weight {index} has no value in variables/")
            attr = attributes[0]
            weights.append(Weight(_relative_name(attr.full_name, name), (), "float32", attr.checkpoint_key))
        graph.layers[key].weights = weights


def fill_shapes(graph: KerasGraph, reader: Any) -> None:
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    for layer in graph.layers.values():
        for w in layer.weights:
            w.shape = tuple(int(d) for d in shapes[w.key])
            w.dtype = dtypes[w.key].name
