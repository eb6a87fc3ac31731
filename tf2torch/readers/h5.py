"""Keras 2 legacy and Keras 3 ``.h5`` files (``model.save('m.h5')``), read with h5py and json only.

Layout ([TFK] ``saving/legacy/hdf5_format.py``, [K3] ``legacy/saving/legacy_h5_format.py``): root attrs
``model_config`` and ``keras_version``; ``/model_weights`` attr ``layer_names``; each layer group attr
``weight_names`` in the layer's own weight order (h5py's iteration order is alphabetical and wrong: it puts beta
before gamma). Attribute lists over 64 KB are split into ``name0``, ``name1``, ....
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from ..errors import ModelFileError
from ..graph import KerasGraph, Weight
from .config import ModelTree, parse_model_config


def read_attr_list(obj: h5py.HLObject, name: str) -> list[str]:
    """An attribute list, joined back from its ``name0``, ``name1``... chunks when Keras had to split it."""
    if name in obj.attrs:
        values = list(obj.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in obj.attrs:
            values.extend(obj.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def _text_attr(obj: h5py.HLObject, name: str) -> str | None:
    value = obj.attrs.get(name)
    if value is None:
        return None
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def read_h5(file: h5py.File, path: str) -> KerasGraph:
    config_text = _text_attr(file, "model_config")
    if config_text is None:
        raise ModelFileError(
            f"{path}: HDF5 file without a model config (weights only, from save_weights?); "
            "save the whole model with model.save('model.h5') or model.save('model.keras')")
    try:
        model_config = json.loads(config_text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: the model config is not valid JSON ({exc.msg} at char {exc.pos})") from None
    weights_root = file["model_weights"] if "model_weights" in file else file
    keras_version = _text_attr(file, "keras_version") or _text_attr(weights_root, "keras_version") or "2"
    graph, tree = parse_model_config(model_config, keras_version, "h5")
    _attach_weights(graph, tree, weights_root)
    return graph


def _attach_weights(graph: KerasGraph, tree: ModelTree, weights_root: h5py.Group) -> None:
    stored = set(read_attr_list(weights_root, "layer_names")) if _has_list(weights_root, "layer_names") else None
    for key, _, sub in tree.layers:
        name = _own_name(tree, key)
        if name not in weights_root or (stored is not None and name not in stored):
            continue
        group = weights_root[name]
        weight_names = read_attr_list(group, "weight_names")
        if sub is None:
            if key in graph.layers:
                graph.layers[key].weights = [_weight(group, wn, name) for wn in weight_names]
        else:
            _assign_nested(graph, sub, group, weight_names)


def _own_name(tree: ModelTree, key: str) -> str:
    """The layer's own name (which may hold a ``/``: tf_keras MobileNetV3's ``Conv/BatchNorm``)."""
    return key[len(tree.key) + 1:] if tree.key and key.startswith(tree.key + "/") else key


def _has_list(obj: h5py.HLObject, name: str) -> bool:
    return name in obj.attrs or f"{name}0" in obj.attrs


def _weight(group: h5py.Group, weight_name: str, layer_name: str) -> Weight:
    if weight_name not in group:
        raise ModelFileError(f"layer {layer_name}: weight {weight_name} is listed but missing; the file is damaged")
    dataset = group[weight_name]
    return Weight(_relative_name(weight_name, layer_name), tuple(dataset.shape), str(dataset.dtype), dataset.name)


def _relative_name(weight_name: str, layer_name: str) -> str:
    """``block1_conv/kernel:0`` → ``kernel``; ``bidirectional/forward_lstm/lstm_cell/kernel:0`` →
    ``forward_lstm/lstm_cell/kernel``."""
    if weight_name.startswith(layer_name + "/") and "/" in layer_name:
        return weight_name.split(":")[0][len(layer_name) + 1:]
    segments = weight_name.split(":")[0].split("/")
    if layer_name in segments[:-1]:
        segments = segments[segments.index(layer_name) + 1:]
    elif len(segments) > 1:
        segments = segments[1:]
    return "/".join(segments)


def _assign_nested(graph: KerasGraph, tree: ModelTree, group: h5py.Group, weight_names: list[str]) -> None:
    """A nested model keeps all its weights in one group; each name carries the inner layer's scope, though
    not always the scopes of the models in between (``deep_dense/kernel:0`` for a layer two models down)."""
    for wn in weight_names:
        found = _owner(tree, wn.split(":")[0].split("/"))
        if found is None:
            raise ModelFileError(f"nested model {tree.key}: cannot tell which layer weight {wn} belongs to")
        key, owner_name = found
        if wn not in group:
            raise ModelFileError(f"layer {key}: weight {wn} is listed but missing; the file is damaged")
        ds = group[wn]
        if key in graph.layers:
            graph.layers[key].weights.append(
                Weight(_relative_name(wn, owner_name), tuple(ds.shape), str(ds.dtype), ds.name))


def _owner(tree: ModelTree, segments: list[str]) -> tuple[str, str] | None:
    """(layer key, layer name) of the leaf layer a scoped weight name belongs to, searching nested models."""
    leaves = {key.split("/")[-1]: key for key, _, sub in tree.layers if sub is None}
    subs = {key.split("/")[-1]: sub for key, _, sub in tree.layers if sub is not None}
    for i, segment in enumerate(segments[:-1]):
        if segment in subs:
            found = _owner(subs[segment], segments[i + 1:])
            if found is not None:
                return found
        if segment in leaves:
            return leaves[segment], segment
    for sub in subs.values():
        found = _owner(sub, segments)
        if found is not None:
            return found
    return None


def dataset_loader(file: h5py.File):
    def load(weight: Weight) -> np.ndarray:
        try:
            return np.asarray(file[weight.key])
        except (OSError, KeyError) as exc:
            raise ModelFileError(f"cannot read weight {weight.key}: {exc}; the file is truncated or damaged") from None
    return load


def open_h5(path: str) -> Any:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot open as HDF5 ({exc}); the file is truncated or damaged") from None
