"""Keras 3 ``.keras`` zip files: ``config.json``, ``metadata.json`` and ``model.weights.h5``.

Weights are not keyed by layer name but by walking the model's attributes ([K3] ``saving/saving_lib.py``):
``layers/<snake_case(ClassName)>[_N]/vars/<i>``, numbered per container in ``model.layers`` order (a
Sequential's ``layers`` leaves out its InputLayer). Recent Keras also writes the layer name as an attribute of
each ``vars`` group; where present it is used. Sub-objects (``cell``, ``forward_layer``, ``query_dense``) are
groups of their own; they follow the layer's own vars, ``forward_layer`` before ``backward_layer``, the rest
alphabetically.
"""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from pathlib import Path

import h5py

from ..errors import ModelFileError
from ..graph import KerasGraph, Weight
from ..naming import to_snake_case
from . import policy
from .config import ModelTree, parse_model_config
from .h5 import parse_json

CHILD_ORDER = {"forward_layer": 0, "backward_layer": 1}


def not_a_keras_zip(path: str, names: set[str]) -> str:
    """The error for a zip without ``config.json``. A ``torch.save`` file is a zip too (``<name>/data.pkl``): given
    back to tf2torch as SOURCE it is most likely tf2torch's own output, so say how to load that instead."""
    if any(n.endswith("/data.pkl") for n in names):
        return (f"{path}: a PyTorch file (torch.save), not a Keras model; if tf2torch wrote it, it is already "
                "converted: load it with tf2torch.load(path), or check it with tf2torch verify MODEL.h5 "
                f"{path}")
    return f"{path}: zip file without config.json; not a Keras .keras model file"


def read_keras_zip(path: str, workdir: Path) -> tuple[KerasGraph, Path | None]:
    """Parse the archive; ``model.weights.h5`` is streamed (size-checked) to ``workdir`` so h5py reads it lazily.
    Returns the graph and the path of the unpacked weights file (None without weights)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelFileError(not_a_keras_zip(path, names))
            config_text = policy.read_zip_member(archive, "config.json", policy.MAX_CONFIG_BYTES, path)
            metadata_text = (policy.read_zip_member(archive, "metadata.json", policy.MAX_METADATA_BYTES, path)
                             if "metadata.json" in names else None)
            weights_path = None
            if "model.weights.h5" in names:
                weights_path = workdir / "model.weights.h5"
                with open(weights_path, "wb") as dst:
                    policy.read_zip_member(archive, "model.weights.h5", policy.MAX_TOTAL_BYTES, path, dst)
            elif "model.weights.npz" in names:
                raise ModelFileError(f"{path}: weights stored as .npz are not supported; re-save with Keras 3's "
                                     "default (model.weights.h5)")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ModelFileError(f"{path}: the zip archive is truncated or damaged ({exc})") from None
    except (OSError, ValueError, RuntimeError) as exc:  # e.g. an encrypted member, a bad header
        raise ModelFileError(f"{path}: the zip archive cannot be read ({exc})") from None
    model_config = parse_json(config_text, f"{path}: config.json")
    metadata = parse_json(metadata_text, f"{path}: metadata.json") if metadata_text is not None else {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: metadata.json is not a JSON object")
    keras_version = str(metadata.get("keras_version", "3"))
    graph, tree = parse_model_config(model_config, keras_version, "keras")
    if weights_path is None:
        return graph, None
    try:
        file = h5py.File(weights_path, "r")
    except OSError as exc:
        raise ModelFileError(f"{path}: model.weights.h5 inside the archive is damaged ({exc})") from None
    try:
        budget = policy.Budget.for_file(weights_path)
        root = policy.group_child(file, "_layer_checkpoint_dependencies", "model.weights.h5") or file
        layers = policy.group_child(root, "layers", "model.weights.h5")
        if layers is not None:
            _attach(graph, tree, layers, budget)
    finally:
        file.close()
    return graph, weights_path


def keras_zip_config(path: str) -> object:
    """Only the decoded ``config.json`` of a ``.keras`` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ModelFileError(not_a_keras_zip(path, set(archive.namelist())))
            text = policy.read_zip_member(archive, "config.json", policy.MAX_CONFIG_BYTES, path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, OSError,
            ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: the zip archive is truncated or damaged ({exc})") from None
    return parse_json(text, f"{path}: config.json")


def _attach(graph: KerasGraph, tree: ModelTree, container: h5py.Group, budget: policy.Budget) -> None:
    by_name_attr = {}
    present = set(container)  # one listing, not an HDF5 lookup per layer
    for key in present:
        group = policy.child(container, key, container.name)
        vars_group = policy.group_child(group, "vars", group.name) if isinstance(group, h5py.Group) else None
        if vars_group is not None and "name" in vars_group.attrs:
            by_name_attr[str(policy.attribute(vars_group, "name", vars_group.name))] = key
    used: dict[str, int] = {}
    for layer_key, class_name, sub in tree.layers:
        if tree.class_name == "Sequential" and class_name == "InputLayer":
            continue
        base = to_snake_case(class_name)
        if base in used:
            used[base] += 1
            counted = f"{base}_{used[base]}"
        else:
            used[base] = 0
            counted = base
        name = layer_key.split("/")[-1]
        group_key = by_name_attr.get(name, counted)
        if group_key not in present:
            continue
        group = policy.group_child(container, group_key, f"layer {layer_key}")
        if group is None:
            continue
        if sub is not None:
            if "layers" not in group and "layer" in group:  # TimeDistributed(model): the model is its `layer`
                group = policy.group_child(group, "layer", f"layer {layer_key}")
            layers = policy.group_child(group, "layers", f"layer {layer_key}")
            if layers is not None:
                _attach(graph, sub, layers, budget)
        elif layer_key in graph.layers:
            graph.layers[layer_key].weights = list(_layer_weights(group, "", layer_key, budget, 0))


def _layer_weights(group: h5py.Group, prefix: str, layer_key: str, budget: policy.Budget, depth: int):
    if depth > policy.MAX_GROUP_DEPTH:
        raise ModelFileError(f"layer {layer_key}: weight groups nested more than {policy.MAX_GROUP_DEPTH} deep "
                             "(a cycle of hard links?); the file is damaged")
    vars_group = policy.group_child(group, "vars", f"layer {layer_key}")
    if vars_group is not None:
        try:
            indices = sorted(vars_group, key=int)
        except ValueError:
            raise ModelFileError(f"layer {layer_key}: weight names in {vars_group.name} are not numbers; the file "
                                 "is damaged") from None
        for index in indices:
            ds = policy.child(vars_group, index, f"layer {layer_key}")
            shape, dtype = policy.check_dataset(ds, f"layer {layer_key}, weight {prefix}vars/{index}", budget)
            yield Weight(f"{prefix}vars/{index}", shape, dtype, ds.name, policy.contiguous_offset(ds, budget.file_size))
    children = []
    for k in group:
        if k == "vars":
            continue
        obj = policy.child(group, k, f"layer {layer_key}")
        if isinstance(obj, h5py.Group):
            children.append(k)
    for child in sorted(children, key=lambda k: (CHILD_ORDER.get(k, 2), k)):
        yield from _layer_weights(group[child], f"{prefix}{child}/", layer_key, budget, depth + 1)


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="tf2torch-"))
