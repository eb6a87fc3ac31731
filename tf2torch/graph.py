"""The graph IR between readers and converters: plain, JSON-able data.

A ``KerasGraph`` holds each Keras layer once (config and weight handles) and each *call* of a layer as a
``Node``. Nested models are flattened: their layers are keyed ``outer/inner`` and their calls expanded in
place, so a shared layer is one ``Layer`` with several ``Node``s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
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


@dataclass
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


@dataclass
class Layer:
    name: str
    class_name: str
    config: dict[str, Any]
    weights: list[Weight] = field(default_factory=list)


@dataclass
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


@dataclass
class InputSpec:
    """A model input: Keras shape without the batch axis (None where dynamic) and dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    declared: bool = True  # False: the config names no shape (a Keras 2.2 Sequential); --input-shape gives it


@dataclass
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
    _loader: Callable[[Weight], StoredArray] | None = field(default=None, repr=False, compare=False)

    @property
    def keras_major(self) -> int:
        return keras_major(self.keras_version)

    def load_weight(self, weight: Weight, lazy: bool = False) -> Any:
        """Read one weight array from the file (nothing is cached: peak memory stays near one copy);
        ``lazy=True``: a ``StoredArray`` its reader may not have read yet, for the caller to read in blocks."""
        if self._loader is None:
            return np.zeros(weight.shape, dtype=weight.dtype)
        stored = self._loader(weight)
        return stored if lazy else np.asarray(stored)

    def node(self, node_id: str) -> Node:
        """A node by id; the index is built once per node list (a per-call scan made many inputs quadratic)."""
        cached = self.__dict__.get("_by_id")
        if cached is None or cached[0] is not self.nodes or cached[1] != len(self.nodes):
            cached = (self.nodes, len(self.nodes), self._nodes_by_id())
            self.__dict__["_by_id"] = cached
        return cached[2][node_id]

    def _nodes_by_id(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    def to_json(self) -> dict[str, Any]:
        """Everything but the weight values: enough to rebuild the module structure. ``output_names`` and
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
                           "weights": [{"name": w.name, "shape": tuple(w.shape), "dtype": w.dtype, "key": w.key}
                                       for w in v.weights]}
                       for k, v in self.layers.items()},
            "nodes": [{"id": n.id, "layer": n.layer, "inputs": [ref(r) for r in n.inputs],
                       "tensor_kwargs": {k: ([ref(x) for x in r] if isinstance(r, list) else ref(r))
                                         for k, r in n.tensor_kwargs.items()},
                       "kwargs": copy.deepcopy(n.kwargs)}
                      for n in self.nodes],
            "inputs": [ref(r) for r in self.inputs],
            "outputs": [ref(r) for r in self.outputs],
            "input_specs": [{"name": s.name, "shape": tuple(s.shape), "dtype": s.dtype} for s in self.input_specs],
            "keras_version": self.keras_version,
            "source_format": self.source_format,
            "trained_with": self.trained_with,
            "output_names": list(self.output_names),
            "containers": None if self.containers is None else list(self.containers),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "KerasGraph":
        def ref(r: dict[str, Any]) -> TensorRef:
            return TensorRef(r["node"], r["index"])

        layers = {
            k: Layer(v["name"], v["class_name"], v["config"],
                     [Weight(w["name"], tuple(w["shape"]), w["dtype"], w["key"]) for w in v["weights"]])
            for k, v in data["layers"].items()
        }
        nodes = [
            Node(n["id"], n["layer"], [ref(r) for r in n["inputs"]],
                 {k: ([ref(x) for x in r] if isinstance(r, list) else ref(r)) for k, r in n["tensor_kwargs"].items()},
                 n["kwargs"])
            for n in data["nodes"]
        ]
        output_names, containers = data.get("output_names") or [], data.get("containers")
        if not (isinstance(output_names, list) and all(isinstance(n, str) for n in output_names)):
            raise TypeError(f"output_names {output_names!r} are not a list of names")
        if containers is not None and not (isinstance(containers, list)
                                           and all(isinstance(c, str) for c in containers)):
            raise TypeError(f"containers {containers!r} are not a list of layer keys")
        return cls(
            name=data["name"], layers=layers, nodes=nodes,
            inputs=[ref(r) for r in data["inputs"]], outputs=[ref(r) for r in data["outputs"]],
            input_specs=[InputSpec(s["name"], tuple(s["shape"]), s["dtype"]) for s in data["input_specs"]],
            keras_version=data["keras_version"], source_format=data["source_format"],
            output_names=list(output_names), containers=containers, trained_with=data.get("trained_with"),
        )
