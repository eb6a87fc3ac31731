"""The source side of a transfer: a file's weights grouped by layer, each with its kind and named roles.

Three kinds of file, all read with h5py under the one reading policy (``readers.policy``), never TensorFlow:
a whole Keras model (``.h5``/``.keras``, through ``readers.open_model``: layers in the graph's call order, the
config says which weights a layer has); a Keras 2 / tf_keras ``save_weights`` ``.h5`` (root attr
``layer_names``, per layer ``weight_names``: [TFK] ``saving/legacy/hdf5_format.py``); and a Keras 3
``.weights.h5`` (``layers/<class_snake_name>[_N]/vars/<i>``, [K3] ``saving/saving_lib.py``). The Keras 3 file
names groups after the layer's class, numbered per class in ``model.layers`` order, and h5py lists them
alphabetically, so only the order within one kind is known: matching aligns within a kind, which is all it needs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterator
from typing import Any

import h5py

from ..errors import ModelFileError
from ..graph import KerasGraph, Weight
from ..naming import to_snake_case
from ..readers import (
    MAX_NESTING,
    Budget,
    check_dataset,
    contiguous_offset,
    dataset_loader,
    file_kind,
    group_child,
    guarded,
    h5_attribute,
    h5_child,
    open_h5,
    open_model,
    read_attr_list,
)
from .layers import RNN_ROLES, SourceLayer, attention_roles, named_kind, natural, normalize, split_layer

ROLES = {  # each kind's weights in Keras's own order (``layer.weights``)
    "conv": ["kernel", "bias"], "depthwise": ["depthwise_kernel", "bias"], "conv_transpose": ["kernel", "bias"],
    "separable": ["depthwise_kernel", "pointwise_kernel", "bias"],
    "dense": ["kernel", "bias"], "batchnorm": ["gamma", "beta", "moving_mean", "moving_variance"],
    "layernorm": ["gamma", "beta"], "groupnorm": ["gamma", "beta"], "lstm": ["kernel", "recurrent_kernel", "bias"],
    "gru": ["kernel", "recurrent_kernel", "bias"], "embedding": ["embeddings"],
    "attention": [f"{p}_{w}" for p in ("query", "key", "value", "output") for w in ("kernel", "bias")],
    "prelu": ["alpha"],
}


def source_kind(path: str | os.PathLike) -> str:
    """``model`` (a whole Keras model), ``keras2_weights`` or ``keras3_weights`` (``save_weights`` files),
    ``tf_checkpoint`` (a TF 1 or TF 2 checkpoint, read by variable name), ``tflite`` (a TensorFlow Lite model,
    by its operators: ``source_tflite``)."""
    kind = file_kind(path)
    if kind != "h5":
        if kind in ("keras", "checkpoint", "tflite"):
            return {"keras": "model", "checkpoint": "tf_checkpoint", "tflite": "tflite"}[kind]
        raise ModelFileError(f"{path}: tf2torch.transfer reads Keras files (.h5, .keras, .weights.h5), TF "
                             f"checkpoints and .tflite files so far; this is a {kind}. Convert it with "
                             "tf2torch.convert, or save the weights with Keras's save_weights")
    with contextlib.closing(open_h5(str(path))) as file:
        if h5_attribute(file, "model_config", "/") is not None:
            return "model"
        if "layer_names" in file.attrs or "layer_names0" in file.attrs:
            return "keras2_weights"
        if isinstance(h5_child(file, "layers", "/"), h5py.Group):
            return "keras3_weights"
    raise ModelFileError(f"{path}: an HDF5 file that is neither a Keras model nor Keras save_weights output")


@contextlib.contextmanager
def open_source(path: str | os.PathLike) -> Iterator[list[SourceLayer]]:
    """The file's layers with weights (values read when asked for); the file stays open inside the block."""
    with _layers_of(path) as layers:
        yield once([part for layer in layers for part in split_layer(normalize(layer))])


def once(layers: list[SourceLayer]) -> list[SourceLayer]:
    """Each layer once: a weight shared by two layers (Hugging Face's T5 ties its encoder's ``embed_tokens`` to
    ``shared``; ``save_weights`` lists the group under both layer names, ``shared/shared/embeddings`` twice) is one
    source, as the tied torch parameter is one target tensor."""
    seen: set[tuple[str, ...]] = set()
    out = []
    for layer in layers:
        key = (layer.name, *layer.weight_names())
        if key not in seen:
            seen.add(key)
            out.append(layer)
    return out


@contextlib.contextmanager
def _layers_of(path: str | os.PathLike) -> Iterator[list[SourceLayer]]:
    kind = source_kind(path)
    if kind == "model":
        with open_model(path) as graph:
            yield graph_layers(graph)
        return
    if kind == "tflite":
        from .source_tflite import tflite_layers

        with open_model(path) as graph:
            yield tflite_layers(graph)
        return
    if kind == "tf_checkpoint":
        from .source_tf import checkpoint_layers

        yield checkpoint_layers(path)
        return
    reader = keras2_structure if kind == "keras2_weights" else keras3_structure
    structure = guarded(functools.partial(reader, str(path)), str(path))
    file = open_h5(str(path))
    raw = os.open(path, os.O_RDONLY)
    try:
        load = dataset_loader(file, raw)
        yield [SourceLayer(name, kind_, class_name, {role: load(w) for role, w in weights.items()})
               for name, kind_, class_name, weights in structure]
    finally:
        os.close(raw)
        file.close()


@functools.cache
def kind_of_snake() -> dict[str, str]:
    """A Keras 3 weights-only file's layer group, by Keras's default (snake-case) layer name → the kind of its
    weights, as the converters declare it (``Facts.weight_kind``): ``conv2d_transpose`` → ``conv_transpose``."""
    from .. import api

    return {to_snake_case(name): api.layer_facts(name).weight_kind for name in api.classes_with("weight_kind")}


# -- whole models ----------------------------------------------------------------------------------------------
def graph_layers(graph: KerasGraph) -> list[SourceLayer]:
    """Layers with weights in the order of their first call; roles from the config (``use_bias``, ``scale``)."""
    from .. import api

    order: list[str] = []
    for node in graph.nodes:
        if node.layer not in order:
            order.append(node.layer)
    order += [key for key in graph.layers if key not in order]
    layers = []
    for key in order:
        layer = graph.layers[key]
        if not layer.weights:
            continue
        kind = api.layer_facts(layer.class_name).weight_kind  # declared by its converter (``Facts.weight_kind``)
        roles = (attention_roles([w.name for w in layer.weights]) if kind == "attention" else
                 config_roles(kind, layer.config, len(layer.weights)) if kind else None)
        if roles is None:
            roles = [w.name for w in layer.weights]
            kind = None
        weights = {role: graph.load_weight(w, lazy=True) for role, w in zip(roles, layer.weights)}
        backwards = "backward" if kind in ("lstm", "gru") and layer.config.get("go_backwards") else None
        layers.append(SourceLayer(key, kind, layer.class_name, weights, flatten_feeds(graph, key), layer.config,
                                  backwards))  # a go_backwards RNN is no one-direction torch RNN
    return layers


def config_roles(kind: str, config: dict[str, Any], count: int) -> list[str] | None:
    """The roles of a layer's stored weights, in order, as its config declares them; None if they disagree."""
    roles = list(ROLES[kind])
    if kind == "batchnorm":
        roles = [r for r in roles if (r != "gamma" or config.get("scale", True))
                 and (r != "beta" or config.get("center", True))]
    elif "bias" in roles and not config.get("use_bias", True):
        roles.remove("bias")
    return roles if len(roles) == count else None


def flatten_feeds(graph: KerasGraph, key: str) -> bool | None:
    """Whether the layer's first call takes a Flatten's output: True for a channels-last Flatten (rows in H,W,C
    order), False for a ``channels_first`` one, None when no Flatten feeds it."""
    from .. import api

    for node in graph.nodes:
        if node.layer != key or not node.inputs:
            continue
        producer = graph.layers.get(graph.node(node.inputs[0].node).layer)
        if producer is None or not api.layer_facts(producer.class_name).flattens:
            return None
        return producer.config.get("data_format") != "channels_first"
    return None


# -- weights-only files ----------------------------------------------------------------------------------------
Structure = list[tuple[str, str | None, str, dict[str, Weight]]]  # (name, kind, class, role → weight)


def _weight(file: h5py.File, dataset_path: str, where: str, budget: Budget) -> Weight:
    obj: Any = file
    for part in [p for p in dataset_path.split("/") if p]:
        obj = h5_child(obj, part, where) if isinstance(obj, h5py.Group) else None
        if obj is None:
            raise ModelFileError(f"{where}: weight {dataset_path} is listed but missing; the file is damaged")
    shape, dtype = check_dataset(obj, where, budget)
    return Weight(dataset_path.split("/")[-1], shape, dtype, obj.name, contiguous_offset(obj, budget.file_size))


def keras2_structure(path: str) -> Structure:
    """A Keras 2 / tf_keras ``save_weights`` file: the listed layers' weights, grouped by layer."""
    file, budget, out = open_h5(path), Budget.for_file(path), []
    try:
        for name in read_attr_list(file, "layer_names"):
            group = group_child(file, name, f"layer {name}")
            if group is not None:
                out += _keras2_group(file, group, name, budget)
    finally:
        file.close()
    return out


def _keras2_group(file: h5py.File, group: h5py.Group, name: str, budget: Budget) -> Structure:
    """One listed group: a MultiHeadAttention (its weights under its sub-layers' scopes, ``mha/query/kernel:0``),
    or layers grouped by scope (a nested model's group holds its inner layers' weights under their names; an RNN's
    sit under its cell's scope, ``lstm/lstm_cell/kernel:0``)."""
    names = read_attr_list(group, "weight_names")
    where = f"layer {name}"
    roles = attention_roles(names) if names and all(n.startswith(f"{name}/") for n in names) else None
    if roles is not None:
        return [(name, "attention", "", {r: _weight(file, f"{group.name}/{wn}", where, budget)
                                         for r, wn in zip(roles, names)})]
    scopes: dict[str, dict[str, Weight]] = {}
    for wn in names:
        scope, _, role = wn.split(":")[0].rpartition("/")
        scopes.setdefault(scope or name, {})[role] = _weight(file, f"{group.name}/{wn}", where, budget)
    return [(scope.rsplit("/", 1)[0] if scope.endswith(("_cell", "/cell")) else scope, named_kind(weights), "",
             weights) for scope, weights in scopes.items()]


def keras3_structure(path: str) -> Structure:
    """A Keras 3 ``.weights.h5``: ``layers/<snake_class>[_N]/vars/<i>`` (an RNN's under ``cell/vars``), nested
    models under their own ``layers``; a subclassed model's layers under their attribute names (``conv1/vars``,
    class unknown: kind from the shapes). Each layer's weights in ``layer.weights`` order, roles by position."""
    file, budget, out = open_h5(path), Budget.for_file(path), []
    try:
        _keras3_children(file, file, "", budget, out, 0)
    finally:
        file.close()
    return out


RESERVED = {"vars", "layers", "cell", "forward_layer", "backward_layer", "optimizer"}  # not layers of their own


def _keras3_children(file: h5py.File, group: h5py.Group, prefix: str, budget: Budget, out: Structure,
                     depth: int) -> None:
    """A group's layers: those of its ``layers`` list, then those held as attributes (subclassed models)."""
    if depth > MAX_NESTING:
        return
    listed = group_child(group, "layers", prefix or "/")
    if listed is not None:
        for key in sorted(listed.keys(), key=natural):
            _keras3_layer(file, listed, key, prefix, budget, out, depth)
    for key in sorted(group.keys(), key=natural):
        if key not in RESERVED:
            _keras3_layer(file, group, key, prefix, budget, out, depth)


def _keras3_layer(file: h5py.File, container: h5py.Group, key: str, prefix: str, budget: Budget,
                  out: Structure, depth: int) -> None:
    group = group_child(container, key, f"layer {prefix}{key}")
    if group is None:
        return
    kind = kind_of_snake().get(re.sub(r"_\d+$", "", key))
    if kind != "attention":  # an attention's children are its own projections
        _keras3_children(file, group, f"{prefix}{key}/", budget, out, depth + 1)
    found = [w for sub in ("vars", "cell/vars") for w in _vars(file, group, sub, f"{prefix}{key}", budget)]
    if kind == "attention":  # its weights are its sub-layers' (query_dense/vars/0...)
        found = [w for sub in sorted(group.keys()) if sub.endswith("_dense")
                 for w in _vars(file, group, f"{sub}/vars", f"{prefix}{key}", budget)]
    halves = {h: _vars(file, group, f"{h}/cell/vars", f"{prefix}{key}", budget)
              for h in ("forward_layer", "backward_layer")} if not found else {}
    if all(halves.values()) and halves:  # a Bidirectional: split into its halves by ``split_layer``
        found = [w for ws in halves.values() for w in ws]
        roles = [f"{h}/{RNN_ROLES[i]}" for h, ws in halves.items() for i in range(len(ws))]
        out.append((f"{prefix}{key}", None, key, dict(zip(roles, found))))
        return
    if not found:
        return
    roles = (attention_roles([w.key.split(f"/{key}/", 1)[-1] for w in found]) if kind == "attention"
             else _positional_roles(kind, found) if kind else _shape_roles(found))
    class_name = key if kind else ""  # an attribute's name says no class: a mapping may say the kind
    if roles is None:
        kind, roles = None, [f"vars/{i}" for i in range(len(found))]
    elif kind is None:
        kind = named_kind(dict(zip(roles, found)))
    out.append((f"{prefix}{key}", kind, class_name, dict(zip(roles, found))))


def _shape_roles(weights: list[Weight]) -> list[str] | None:
    """A layer of unknown class (an attribute of a subclassed model): a kernel and a bias by their ranks, or
    nothing (one rank-2+ weight could be a kernel, an embedding or an alpha: refused, left for a mapping)."""
    if len(weights) == 2 and len(weights[0].shape) >= 2 and len(weights[1].shape) == 1:
        return ["kernel", "bias"]
    return None


def _vars(file: h5py.File, group: h5py.Group, sub: str, where: str, budget: Budget) -> list[Weight]:
    holder: Any = group
    for part in sub.split("/"):
        holder = group_child(holder, part, where) if holder is not None else None
    if holder is None:
        return []
    names = sorted((k for k in holder.keys() if k.isdigit()), key=int)
    return [_weight(file, f"{holder.name}/{n}", f"layer {where}", budget) for n in names]


def _positional_roles(kind: str | None, weights: list[Weight]) -> list[str] | None:
    """Roles by position when the count leaves no doubt (a BatchNormalization without ``scale`` or ``center``
    stores three weights, and which one is gone cannot be told: refused, left for a mapping)."""
    if kind is None:
        return None
    roles = ROLES[kind]
    if len(weights) == len(roles) or (roles[-1] == "bias" and len(weights) == len(roles) - 1):
        return roles[:len(weights)]
    return None
