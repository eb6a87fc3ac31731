"""The inputs both sides run on: the user's arrays (``.npz``/``.npy`` or numpy), or seeded random ones made from the
model's input specs.

Random floats are standard normal. An input that feeds an ``Embedding`` gets integer ids below the smallest
``input_dim`` among them (Keras checks nothing, torch raises on an id out of range). Dimensions the model leaves
open come from ``input_shapes`` (the CLI's ``--input-shape``), the shapes the module was converted with, or else
the stand-in size ``convert`` built them with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Tf2TorchError

DEFAULT_INT_HIGH = 10  # integer inputs that feed no Embedding get ids in [0, 10)


@dataclass
class InputArray:
    """One model input: its Keras input name, the array (Keras layout, with batch) and where it came from."""

    name: str
    array: np.ndarray
    origin: str

    def describe(self) -> dict[str, Any]:
        a = self.array
        stats = {"min": _number(a.min()), "max": _number(a.max())} if a.size and a.dtype != bool else {}
        return {"name": self.name, "shape": list(a.shape), "dtype": str(a.dtype), "origin": self.origin, **stats}


def _number(value: Any) -> float | str:
    value = float(value)
    return value if np.isfinite(value) else str(value)


def vocabulary_sizes(graph: Mapping[str, Any]) -> dict[str, int]:
    """Input node id → the smallest vocabulary (``Embedding.input_dim``, ``CategoryEncoding.num_tokens``) it feeds,
    the config key each converter declares (``Facts.vocabulary``)."""
    from .. import api

    limits: dict[str, int] = {}
    for node in graph["nodes"]:
        layer = graph["layers"][node["layer"]]
        size = api.layer_facts(layer["class_name"]).vocabulary
        if size is None or not isinstance(layer["config"].get(size), int):
            continue
        for ref in node["inputs"]:
            limits[ref["node"]] = min(limits.get(ref["node"], layer["config"][size]), layer["config"][size])
    return limits


def concrete_shape(name: str, shape: Sequence[int | None], given: Sequence[int | None] | None,
                   batch_size: int, stand_in: int | None = None) -> tuple[int, ...]:
    """The input's shape with batch: open dimensions from ``given`` (``--input-shape``), else ``stand_in``."""
    dims = list(shape)
    if given is not None:
        if len(given) != len(dims):
            raise Tf2TorchError(f"input {name}: --input-shape has {len(given)} dimensions, the model expects "
                                f"{len(dims)} (without the batch axis): {_shape_text(dims)}")
        dims = [g if g is not None else d for g, d in zip(given, dims)]
    if any(d is None for d in dims) and stand_in is not None:
        dims = [stand_in if d is None else d for d in dims]
    if any(d is None for d in dims):
        raise Tf2TorchError(f"input {name} has open dimensions {_shape_text(dims)}; give them with --input-shape "
                            f"(e.g. --input-shape {','.join(str(d or 32) for d in dims)}) or pass arrays with "
                            "--input-data")
    return (batch_size, *[int(d) for d in dims])


def stand_in_size(module: Any) -> int | None:
    """The size ``convert`` gave the dimensions the model leaves open (the first of the stand-in pair its build
    accepted, ``assemble.DYNAMIC_SIZES``), so that ``verify`` runs Keras where the conversion was built and needs
    no ``--input-shape`` that ``convert`` did not (issue #20)."""
    sizes = getattr(module, "tf2torch_stand_in_sizes", None)
    return int(sizes[0]) if sizes else None


def _shape_text(dims: Sequence[int | None]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def random_inputs(graph: Mapping[str, Any], input_shapes: Sequence[Sequence[int | None] | None] | None,
                  batch_size: int = 2, seed: int = 0, stand_in: int | None = None) -> list[InputArray]:
    rng = np.random.default_rng(seed)
    vocab = vocabulary_sizes(graph)
    arrays = []
    for i, spec in enumerate(graph["input_specs"]):
        given = input_shapes[i] if input_shapes is not None and i < len(input_shapes) else None
        shape = concrete_shape(spec["name"], spec["shape"], given, batch_size, stand_in)
        opened = [d is None and (given is None or given[j] is None) for j, d in enumerate(spec["shape"])]
        standing = f"; open dimensions at the stand-in size {stand_in}, as convert built them" if any(opened) else ""
        dtype = numpy_dtype(spec)
        node_id = input_node_id(graph, spec["name"])
        if node_id in vocab:
            array = rng.integers(0, vocab[node_id], size=shape).astype(dtype)
            origin = f"random ids in [0, {vocab[node_id]}), seed {seed}"
        elif dtype == np.bool_:
            array, origin = rng.random(shape) < 0.5, f"random booleans, seed {seed}"
        elif np.issubdtype(dtype, np.integer):
            array = rng.integers(0, DEFAULT_INT_HIGH, size=shape).astype(dtype)
            origin = f"random integers in [0, {DEFAULT_INT_HIGH}), seed {seed}"
        else:
            array, origin = rng.standard_normal(shape).astype(np.float32), f"standard normal, seed {seed}"
        arrays.append(InputArray(spec["name"], array, origin + standing))
    return arrays


def numpy_dtype(spec: Mapping[str, Any]) -> np.dtype:
    name = str(spec["dtype"])
    if name == "string":
        raise Tf2TorchError(f"input {spec['name']} takes strings; pass real inputs with --input-data")
    try:
        dtype = np.dtype(name)
    except TypeError:
        return np.dtype(np.float32)  # bfloat16 and friends: both sides compute in float32 or float64
    return dtype if dtype.kind in "biu" else np.dtype(np.float32)


def input_node_id(graph: Mapping[str, Any], name: str) -> str:
    """The graph node of the top-level input ``name`` (its id is the input layer's name)."""
    for ref in graph["inputs"]:
        if ref["node"] == name or ref["node"].split("/")[-1] == name:
            return ref["node"]
    return name


def user_inputs(source: Any, graph: Mapping[str, Any]) -> list[InputArray]:
    """Arrays from a ``.npz``/``.npy`` path, one array, a list (in input order) or a dict by input name."""
    specs = graph["input_specs"]
    names = [s["name"] for s in specs]
    origin = "given"
    if isinstance(source, (str, os.PathLike)):
        origin = str(source)
        source = _read_array_file(Path(source), names)
    if isinstance(source, np.ndarray):
        source = [source]
    if isinstance(source, Mapping):
        missing = [n for n in names if n not in source]
        if missing and len(source) == len(names) and all(k.startswith("arr_") for k in source):
            source = [source[f"arr_{i}"] for i in range(len(names))]
        elif missing:
            raise Tf2TorchError(f"--input-data has no array for input(s) {', '.join(missing)} "
                                f"(it has {', '.join(sorted(source)) or 'none'})")
        else:
            source = [source[n] for n in names]
    source = [np.asarray(a) for a in source]
    if len(source) != len(specs):
        raise Tf2TorchError(f"the model has {len(specs)} input(s) ({', '.join(names)}), "
                            f"--input-data gave {len(source)}")
    arrays = []
    for spec, array in zip(specs, source):
        check_array(spec, array)
        arrays.append(InputArray(spec["name"], array, origin))
    return arrays


def _read_array_file(path: Path, names: list[str]) -> Any:
    if not path.exists():
        raise Tf2TorchError(f"--input-data {path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise Tf2TorchError(f"--input-data {path}: not a numpy .npz or .npy file ({exc})") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        return {k: data[k] for k in data.files}


def check_array(spec: Mapping[str, Any], array: np.ndarray) -> None:
    expected = list(spec["shape"])
    if array.ndim != len(expected) + 1:
        raise Tf2TorchError(f"input {spec['name']}: array of shape {tuple(array.shape)}, the model expects "
                            f"(batch, {', '.join('?' if d is None else str(d) for d in expected)})")
    for axis, (got, want) in enumerate(zip(array.shape[1:], expected), start=1):
        if want is not None and got != want:
            raise Tf2TorchError(f"input {spec['name']}: axis {axis} has size {got}, the model expects {want} "
                                f"(array shape {tuple(array.shape)})")
    if array.dtype.kind not in "biuf":
        raise Tf2TorchError(f"input {spec['name']}: arrays of dtype {array.dtype} are not supported")
