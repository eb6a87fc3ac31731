"""Keras 2 legacy and Keras 3 ``.h5`` files (``model.save('m.h5')``), read with h5py and json only.

Layout ([TFK] ``saving/legacy/hdf5_format.py``, [K3] ``legacy/saving/legacy_h5_format.py``): root attrs
``model_config`` and ``keras_version``; ``/model_weights`` attr ``layer_names``; each layer group attr
``weight_names`` in the layer's own weight order (h5py's iteration order is alphabetical and wrong: it puts beta
before gamma). Attribute lists over 64 KB are split into ``name0``, ``name1``, ....
"""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np

from ..errors import ModelFileError
from ..graph import KerasGraph, Weight
from . import policy
from .config import ModelTree, parse_model_config


def read_attr_list(obj: h5py.HLObject, name: str) -> list[str]:
    """An attribute list, joined back from its ``name0``, ``name1``... chunks when Keras had to split it."""
    where = obj.name or "/"
    value = policy.attribute(obj, name, where)
    if value is not None:
        values = _as_list(value, f"{where} attribute {name}")
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in obj.attrs:
            values.extend(_as_list(policy.attribute(obj, f"{name}{chunk}", where), f"{where} attribute {name}"))
            chunk += 1
    return [policy.text(v, f"{where} attribute {name}") if isinstance(v, bytes) else str(v) for v in values]


def _as_list(value: object, what: str) -> list:
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return list(value)
    raise ModelFileError(f"{what} should be a list of names; the file is damaged")


def _text_attr(obj: h5py.HLObject, name: str) -> str | None:
    value = policy.attribute(obj, name, obj.name or "/")
    if value is None:
        return None
    return policy.text(value, f"attribute {name}")


def h5_config_text(file: h5py.File, path: str) -> str:
    config_text = _text_attr(file, "model_config")
    if config_text is None:
        raise ModelFileError(
            f"{path}: HDF5 file without a model config (weights only, from save_weights?); "
            "save the whole model with model.save('model.h5') or model.save('model.keras')")
    return config_text


def read_h5(file: h5py.File, path: str) -> KerasGraph:
    config_text = h5_config_text(file, path)
    model_config = parse_json(config_text, f"{path}: the model config")
    weights_root = policy.group_child(file, "model_weights", path) or file
    keras_version = _text_attr(file, "keras_version") or _text_attr(weights_root, "keras_version") or "2"
    graph, tree = parse_model_config(model_config, keras_version, "h5")
    graph.trained_with = _text_attr(file, "backend") or _text_attr(weights_root, "backend")
    _attach_weights(graph, tree, weights_root, policy.Budget.for_file(path))
    return graph


def _attach_weights(graph: KerasGraph, tree: ModelTree, weights_root: h5py.Group, budget: policy.Budget) -> None:
    stored = set(read_attr_list(weights_root, "layer_names")) if _has_list(weights_root, "layer_names") else None
    for key, _, sub in tree.layers:
        name = _own_name(tree, key)
        if stored is not None and name not in stored:
            continue
        group = policy.group_child(weights_root, name, f"layer {key}")
        if group is None:
            continue
        weight_names = read_attr_list(group, "weight_names")
        if sub is None:
            if key in graph.layers:
                graph.layers[key].weights = [_weight(group, wn, name, budget) for wn in weight_names]
        else:
            _assign_nested(graph, sub, group, weight_names, budget)


def _own_name(tree: ModelTree, key: str) -> str:
    """The layer's own name (which may hold a ``/``: tf_keras MobileNetV3's ``Conv/BatchNorm``)."""
    return key[len(tree.key) + 1:] if tree.key and key.startswith(tree.key + "/") else key


def _has_list(obj: h5py.HLObject, name: str) -> bool:
    return name in obj.attrs or f"{name}0" in obj.attrs


def _dataset(group: h5py.Group, weight_name: str, layer: str, budget: policy.Budget) -> tuple[h5py.Dataset, tuple]:
    """The dataset at a (possibly scoped) weight path, each step checked by the policy."""
    obj: object = group
    parts = [p for p in weight_name.split("/") if p]
    if not parts:
        raise ModelFileError(f"layer {layer}: an empty weight name; the file is damaged")
    for part in parts:
        if not isinstance(obj, h5py.Group):
            obj = None
            break
        obj = policy.child(obj, part, f"layer {layer}, weight {weight_name}")
        if obj is None:
            break
    if obj is None:
        raise ModelFileError(f"layer {layer}: weight {weight_name} is listed but missing; the file is damaged")
    return obj, policy.check_dataset(obj, f"layer {layer}, weight {weight_name}", budget)


def _weight(group: h5py.Group, weight_name: str, layer_name: str, budget: policy.Budget) -> Weight:
    dataset, (shape, dtype) = _dataset(group, weight_name, layer_name, budget)
    return Weight(_relative_name(weight_name, layer_name), shape, dtype, dataset.name,
                  policy.contiguous_offset(dataset, budget.file_size))


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


def _assign_nested(graph: KerasGraph, tree: ModelTree, group: h5py.Group, weight_names: list[str],
                   budget: policy.Budget) -> None:
    """A nested model keeps all its weights in one group; each name carries the inner layer's scope, though
    not always the scopes of the models in between (``deep_dense/kernel:0`` for a layer two models down)."""
    index = _OwnerIndex(tree)
    for wn in weight_names:
        found = index.owner(wn.split(":")[0].split("/"))
        if found is None:
            raise ModelFileError(f"nested model {tree.key}: cannot tell which layer weight {wn} belongs to")
        key, owner_name = found
        ds, (shape, dtype) = _dataset(group, wn, key, budget)
        if key in graph.layers:
            graph.layers[key].weights.append(Weight(_relative_name(wn, owner_name), shape, dtype, ds.name,
                                                    policy.contiguous_offset(ds, budget.file_size)))


class _OwnerIndex:
    """Which leaf layer a scoped weight name belongs to, searching nested models; each model's name tables are
    built once (not per weight)."""

    def __init__(self, tree: ModelTree):
        self.tables: dict[int, tuple[dict[str, str], dict[str, ModelTree]]] = {}
        self.tree = tree

    def _tables(self, tree: ModelTree) -> tuple[dict[str, str], dict[str, ModelTree]]:
        if id(tree) not in self.tables:
            leaves = {key.split("/")[-1]: key for key, _, sub in tree.layers if sub is None}
            subs = {key.split("/")[-1]: sub for key, _, sub in tree.layers if sub is not None}
            self.tables[id(tree)] = (leaves, subs)
        return self.tables[id(tree)]

    def owner(self, segments: list[str], tree: ModelTree | None = None) -> tuple[str, str] | None:
        """(layer key, layer name) of the leaf layer a scoped weight name belongs to."""
        leaves, subs = self._tables(tree or self.tree)
        for i, segment in enumerate(segments[:-1]):
            if segment in subs:
                found = self.owner(segments[i + 1:], subs[segment])
                if found is not None:
                    return found
            if segment in leaves:
                return leaves[segment], segment
        for sub in subs.values():
            found = self.owner(segments, sub)
            if found is not None:
                return found
        return None


def dataset_loader(file: h5py.File, raw: int | None = None, start: int = 0, size: int | None = None):
    """Weights of an open file as ``policy.StoredWeight``: checked now, their values read when asked for;
    those the structure's reading found contiguous (``Weight.offset``) straight from ``raw``, a descriptor of the
    same file, once their extent is checked against its size now. ``start`` and ``size``: where the HDF5 file
    lies inside ``raw`` (a ``.keras`` archive's ``model.weights.h5``, read in place); default the whole file."""
    def load(weight: Weight) -> policy.StoredWeight:
        if raw is not None and weight.offset is not None:
            dtype = np.dtype(weight.dtype)
            nbytes = int(np.prod(weight.shape, dtype=np.int64)) * dtype.itemsize
            if weight.offset + nbytes > file_size or start + weight.offset + nbytes > os.fstat(raw).st_size:
                raise ModelFileError(f"cannot read weight {weight.key}: the file ends before its values; the file "
                                     "is truncated")
            return policy.ContiguousStoredWeight(raw, start + weight.offset, weight.key, tuple(weight.shape), dtype)
        try:
            obj = file.get(weight.key)
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"cannot read weight {weight.key}: {exc}; the file is truncated or damaged") from None
        if obj is None:
            raise ModelFileError(f"cannot read weight {weight.key}: missing; the file is damaged")
        return policy.stored_weight(obj, weight.key, file_size)
    file_size = os.path.getsize(file.filename) if size is None else size
    return load


def parse_json(text: str | bytes, what: str) -> object:
    """JSON text of a model config; damaged or too deeply nested text is a ``ModelFileError``."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{what} is not valid JSON ({exc})") from None
    except RecursionError:
        raise ModelFileError(f"{what} nests too deeply to be read (models nested thousands deep?); tf2torch reads "
                             f"at most {policy.MAX_NESTING} levels of nested models") from None


def open_h5(path: str) -> Any:
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot open as HDF5 ({exc}); the file is truncated or damaged") from None
