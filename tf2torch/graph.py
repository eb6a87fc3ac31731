"""The graph IR between readers and converters: plain, declared, JSON-able data.

A ``KerasGraph`` holds each Keras layer once (config and weight handles) and each *call* of a layer as a
``Node``. Nested models are flattened: their layers are keyed ``outer/inner`` and their calls expanded in
place, so a shared layer is one ``Layer`` with several ``Node``s.

Every field is declared (the classes have ``__slots__``: setting an undeclared attribute raises
``AttributeError``, where readers once hung ``_loader``, ``object_paths`` and ``unsupported`` on ``__dict__``,
issue #21), and ``KerasGraph.from_json(g.to_json()) == g`` for every field (weights by reference, not values;
``to_json`` dropped ``output_names`` and ``containers`` once, issue #14/#20). Weight values come from one declared
``weight_source`` (a ``WeightSource``), never from a patched attribute.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

# The class of a Keras layer converted from its traced call function (a Keras SavedModel layer without a
# converter): ``readers/savedmodel_traced.py`` writes it, ``ops/tf_control.py`` converts it.
TRACED_LAYER = "tf.traced>KerasLayer"


def keras_major(keras_version: str) -> int:
    """2 for files written by Keras 1/2 and tf.keras (tf_keras), 3 for Keras 3 files."""
    try:
        return 3 if int(str(keras_version).split(".")[0]) >= 3 else 2
    except ValueError:
        return 2


@dataclass(frozen=True)
class TensorRef:
    """Output ``index`` of node ``node``."""

    node: str
    index: int = 0


class StoredArray(Protocol):
    """A weight that may not be read yet: ``shape``, ``dtype``, ``ndim`` and blocks of leading-axis rows
    (``stored[a:b]`` → np.ndarray); ``np.asarray(stored)`` reads it whole. An np.ndarray is one;
    ``readers.policy.StoredWeight`` reads an HDF5 dataset block by block (and says how many rows its chunks
    span, ``rows_per_chunk``, the least a block should read)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    ndim: int

    def __getitem__(self, rows: slice) -> np.ndarray: ...


class WeightSource(Protocol):
    """Where a graph's weight values come from: ``load(weight)`` → a ``StoredArray`` (not read yet, or an
    np.ndarray). Readers set one on ``KerasGraph.weight_source``; ``Overrides`` composes two, a wrapper
    (``theano_kernels``) transforms one, instead of patching a loader attribute (issue #21)."""

    def load(self, weight: Weight) -> StoredArray: ...


@dataclass(frozen=True)
class WeightFunction:
    """A ``WeightSource`` over a function of the weight handle (an open file's dataset reader, a checkpoint's
    ``get_tensor``)."""

    read: Callable[[Weight], StoredArray]

    def load(self, weight: Weight) -> StoredArray:
        return self.read(weight)


@dataclass(frozen=True)
class Overrides:
    """A ``WeightSource`` that reads the weights whose ``key`` it names its own way (a loop body's or a traced
    function's weights, read through their sub-graph) and every other weight from ``fallback``."""

    by_key: Mapping[str, Callable[[], StoredArray]]
    fallback: WeightSource | None = None

    def load(self, weight: Weight) -> StoredArray:
        read = self.by_key.get(weight.key)
        if read is not None:
            return read()
        if self.fallback is None:
            raise KeyError(f"no stored values for weight {weight.key!r}")
        return self.fallback.load(weight)


@dataclass(slots=True)
class Weight:
    """A stored weight: its path relative to the layer (``kernel``, ``vars/0``, ``cell/vars/1``) and its shape.

    ``key`` locates the dataset inside the file; the array itself is only read by ``KerasGraph.load_weight``.
    ``offset``: where an HDF5 dataset stored contiguous and unfiltered (as Keras writes them) keeps its values in
    the file, so they are read with one ``pread`` and no HDF5 call; None: read through HDF5.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    key: str = ""
    offset: int | None = None


@dataclass(slots=True)
class Layer:
    name: str
    class_name: str
    config: dict[str, Any]
    weights: list[Weight] = field(default_factory=list)


@dataclass(slots=True)
class Node:
    """One call of a layer: positional tensor inputs, tensor keyword inputs (``mask``, ``initial_state``: one
    tensor or a list) and constant kwargs."""

    id: str
    layer: str
    inputs: list[TensorRef] = field(default_factory=list)
    tensor_kwargs: dict[str, TensorRef | list[TensorRef]] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)


    def all_inputs(self) -> list[TensorRef]:
        refs = list(self.inputs)
        for value in self.tensor_kwargs.values():
            refs.extend(value if isinstance(value, list) else [value])
        return refs


@dataclass(slots=True)
class InputSpec:
    """A model input: Keras shape without the batch axis (None where dynamic) and dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    declared: bool = True  # False: the config names no shape (a Keras 2.2 Sequential); --input-shape gives it


@dataclass(slots=True)
class KerasGraph:
    name: str
    layers: dict[str, Layer]
    nodes: list[Node]
    inputs: list[TensorRef]
    outputs: list[TensorRef]
    input_specs: list[InputSpec]
    keras_version: str = "unknown"
    source_format: str = "unknown"
    output_names: list[str] = field(default_factory=list)
    containers: list[str] | None = None  # layer-key prefixes that are nested models (None: every "/" nests)
    trained_with: str | None = None  # the Keras backend an .h5 file names (``theano`` flips convolutions)
    object_paths: dict[str, str] = field(default_factory=dict)  # SavedModel: layer key → its object (root.layer-2)
    # Not part of the IR's value: where the weight values come from (None: zeros) and the node index (a cache).
    weight_source: WeightSource | None = field(default=None, repr=False, compare=False)
    _index: tuple[Any, ...] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def keras_major(self) -> int:
        return keras_major(self.keras_version)

    def load_weight(self, weight: Weight, lazy: bool = False) -> Any:
        """Read one weight array from the file (nothing is cached: peak memory stays near one copy);
        ``lazy=True``: a ``StoredArray`` its reader may not have read yet, for the caller to read in blocks."""
        if self.weight_source is None:
            return np.zeros(weight.shape, dtype=weight.dtype)
        stored = self.weight_source.load(weight)
        return stored if lazy else np.asarray(stored)

    def node(self, node_id: str) -> Node:
        """A node by id; the index is built once per node list (a per-call scan made many inputs quadratic)."""
        cached = self._index
        if cached is None or cached[0] is not self.nodes or cached[1] != len(self.nodes):
            cached = (self.nodes, len(self.nodes), self._nodes_by_id())
            self._index = cached
        return cached[2][node_id]

    def _nodes_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    def to_json(self) -> dict[str, Any]:
        """Every field but the weight values (weights by reference: key and file offset), as JSON-native data
        (lists, not tuples), so ``from_json(json.loads(json.dumps(g.to_json()))) == g``. ``output_names`` and
        ``containers`` travel too: without them a loaded module named its outputs ``output_i`` and read every
        ``/`` in a layer name as nesting (tf_keras MobileNetV3's ``expanded_conv/depthwise/pad`` became a child of
        the ``expanded_conv/depthwise`` Conv2d: ``'Conv2d' object has no attribute 'pad'``, issue #20)."""
        def ref(r: TensorRef) -> dict[str, Any]:
            return {"node": r.node, "index": r.index}

        # Field by field, not dataclasses.asdict: asdict's generic recursion was a fifth of the time of converting
        # a 100,000-layer model. Configs and kwargs are deep-copied as asdict did.
        return {
            "name": self.name,
            "layers": {k: {"name": v.name, "class_name": v.class_name, "config": copy.deepcopy(v.config),
                           "weights": [{"name": w.name, "shape": list(w.shape), "dtype": w.dtype, "key": w.key,
                                        "offset": w.offset} for w in v.weights]}
                       for k, v in self.layers.items()},
            "nodes": [{"id": n.id, "layer": n.layer, "inputs": [ref(r) for r in n.inputs],
                       "tensor_kwargs": {k: ([ref(x) for x in r] if isinstance(r, list) else ref(r))
                                         for k, r in n.tensor_kwargs.items()},
                       "kwargs": copy.deepcopy(n.kwargs)}
                      for n in self.nodes],
            "inputs": [ref(r) for r in self.inputs],
            "outputs": [ref(r) for r in self.outputs],
            "input_specs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "declared": s.declared}
                            for s in self.input_specs],
            "keras_version": self.keras_version,
            "source_format": self.source_format,
            "trained_with": self.trained_with,
            "output_names": list(self.output_names),
            "containers": None if self.containers is None else list(self.containers),
            "object_paths": dict(self.object_paths),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "KerasGraph":
        """The graph ``to_json`` wrote (keys added since are optional, so older ``.pt`` files load); a value of
        the wrong type is a ``TypeError`` (the caller names the damaged file)."""
        def ref(r: dict[str, Any]) -> TensorRef:
            return TensorRef(r["node"], r["index"])

        layers = {
            k: Layer(v["name"], v["class_name"], v["config"],
                     [Weight(w["name"], tuple(w["shape"]), w["dtype"], w["key"], _offset(w.get("offset")))
                      for w in v["weights"]])
            for k, v in data["layers"].items()
        }
        nodes = [
            Node(n["id"], n["layer"], [ref(r) for r in n["inputs"]],
                 {k: ([ref(x) for x in r] if isinstance(r, list) else ref(r)) for k, r in n["tensor_kwargs"].items()},
                 n["kwargs"])
            for n in data["nodes"]
        ]
        specs = [InputSpec(s["name"], tuple(s["shape"]), s["dtype"], _flag(s.get("declared", True)))
                 for s in data["input_specs"]]
        return cls(
            name=data["name"], layers=layers, nodes=nodes,
            inputs=[ref(r) for r in data["inputs"]], outputs=[ref(r) for r in data["outputs"]], input_specs=specs,
            keras_version=data["keras_version"], source_format=data["source_format"],
            trained_with=data.get("trained_with"), **_optional_fields(data),
        )


def _offset(value: Any) -> int | None:
    if value is not None and not (type(value) is int and value >= 0):
        raise TypeError(f"weight offset {value!r} is not a byte position")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{value!r} is not true or false")
    return value


def _names(value: Any, what: str, of: str = "names") -> list[str]:
    if not (isinstance(value, list) and all(isinstance(n, str) for n in value)):
        raise TypeError(f"{what} {value!r} are not a list of {of}")
    return list(value)


def _text_map(value: Any, what: str) -> dict[str, str]:
    if not (isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        raise TypeError(f"{what} {value!r} is not a mapping of names")
    return dict(value)


def _optional_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The keys ``to_json`` gained after the first ``.pt`` files were written, checked (files are hostile)."""
    containers = data.get("containers")
    return {
        "output_names": _names(data.get("output_names") or [], "output_names"),
        "containers": None if containers is None else _names(containers, "containers", "layer keys"),
        "object_paths": _text_map(data.get("object_paths") or {}, "object_paths"),
    }
