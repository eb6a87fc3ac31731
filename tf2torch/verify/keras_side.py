"""The Keras side: load the original model with the Keras that wrote it and run it once, keeping the output of
every layer call.

Keras 3 files load with Keras 3; Keras 2 files (tf.keras, standalone Keras) with tf_keras, because Keras 3 reads
some Keras 2 configs with other semantics (``hard_sigmoid`` is ``clip(0.2x + 0.5)`` in Keras 2 and
``relu6(x + 3) / 6`` in Keras 3: [K3] ``activations/activations.py``, [TFK] ``activations.py``).

The run walks the model's own graph the way ``Functional.call`` does ([K3] ``ops/function.py``
``_run_through_graph``, [TFK] ``engine/functional.py`` ``_run_internal_graph``), in eager mode with
``training=False``: each layer call runs once, nested models are entered instead of called (so their layers are
seen), and a shared layer gives one output per call. Each call is named like the tf2torch graph names it:
``layer``, ``layer:1`` for its second call, ``outer/inner`` inside a nested model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelFileError, Tf2TorchError

FLOAT_NAMES = ("float16", "bfloat16", "float32", "float64", "mixed_float16", "mixed_bfloat16")


@dataclass
class KerasModel:
    """A loaded Keras model and the Keras that runs it (``flavour`` is ``keras`` or ``tf_keras``)."""

    keras: Any
    flavour: str
    model: Any
    note: str | None = None

    @property
    def version(self) -> str:
        return f"{self.flavour} {self.keras.__version__}"


def import_keras(keras_major: int) -> tuple[Any, str, str | None]:
    """The Keras module that wrote a file of ``keras_major``, with a note when we must fall back. Imported
    without TensorFlow's import-time log lines (``quiet.import_quietly``)."""
    from ..quiet import import_quietly

    if keras_major == 2:
        try:
            tf_keras = import_quietly("tf_keras")
            return tf_keras, "tf_keras", None
        except ImportError:
            note = ("Keras 2 file loaded with Keras 3 (tf_keras is not installed): layers whose meaning changed "
                    "between versions, such as hard_sigmoid, may differ; pip install tf-keras")
    else:
        note = None
    try:
        keras = import_quietly("keras")
    except ImportError:
        raise Tf2TorchError("verify runs the original model and needs Keras: pip install -c constraints.txt -e "
                            "'.[verify]' in the tf2torch clone (tf2torch is not on PyPI)") from None
    if not keras.__version__.startswith("3") and keras_major == 3:
        raise Tf2TorchError(f"this file was written by Keras 3; the installed Keras is {keras.__version__}")
    return keras, ("keras" if keras.__version__.startswith("3") else "tf_keras"), note


def check_safe_to_load(path: str) -> Callable[[], None]:
    """Refuse, before Keras opens it, a file that Keras could not load without running code stored in it, or that
    breaks the reading policy (external storage, links, bombs: Keras would read those too). The same check as
    ``convert``: a ``Lambda``'s bytecode is never executed, reachable or not ([K3] ``safe_mode``; tf_keras loads
    ``.h5`` Lambdas without asking).

    Returns the wait for the policy's read of the file's structure, which runs meanwhile in the reading
    watchdog's child process (``readers.prefetch``): call it before Keras opens the file. The caller imports Keras
    (TensorFlow: seconds on one core) in between, so the read costs the other core and no wait; forked before
    TensorFlow is imported, the child also starts cheaper. Measured on DenseNet121, one process: the check held the
    main thread 0.64-0.73 s when it ran after the import, 0.14-0.28 s overlapped (2 cores, load ~8)."""
    from ..errors import UnsupportedLayerError
    from ..readers import layers_with_code, open_model, prefetch, read_config

    prefetch(path)
    code = layers_with_code(read_config(path))
    if code:
        reason = ("stores Python bytecode, which tf2torch never executes (verify loads the model with Keras, so it "
                  "refuses it too); replace the Lambda with a built-in layer")
        raise UnsupportedLayerError(code, {name: reason for name, _ in code})

    def wait() -> None:
        with open_model(path):
            pass

    return wait


def load_keras_model(path: str, keras_major: int, dtype: str = "float32") -> KerasModel:
    """Load ``path`` with the right Keras, in ``dtype`` (``float64`` rebuilds every layer in float64); never runs
    code stored in the file (``check_safe_to_load``, and ``safe_mode=True`` where Keras has it)."""
    wait_for_policy = check_safe_to_load(path)
    keras, flavour, note = import_keras(keras_major)
    wait_for_policy()
    try:
        model = keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds; the user needs one line
        message = " ".join(str(exc).split())[:300]
        raise ModelFileError(f"{path}: {flavour} {keras.__version__} cannot load this model ({message})") from None
    if dtype == "float64":
        model = as_float64(model)
    return KerasModel(keras, flavour, model, note)


# keras 2.3.1 keras/engine/saving.py: the layers whose kernel (and ConvLSTM2D's recurrent kernel) it flipped when
# loading a file trained with Theano; conv_utils.convert_kernel reverses every axis but the last two
THEANO_FLIPPED = ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "ConvLSTM2D")


def flip_theano_kernels(model: Any) -> int:
    """Load-time kernel flipping as Keras 2.0-2.3 did it for a Theano-trained file, on a model loaded by today's
    Keras (which does not): the reference for a module converted with ``flip_theano_kernels``. Returns how many
    kernels were flipped."""
    flipped, stack = 0, [model]
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", None) or [])
        inner = layer.layer if type(layer).__name__ == "TimeDistributed" else layer
        kind = type(inner).__name__
        if kind not in THEANO_FLIPPED:
            continue
        for variable in layer.weights:
            name = (getattr(variable, "path", None) or variable.name).split("/")[-1].split(":")[0]
            if name == "kernel" or (name == "recurrent_kernel" and kind == "ConvLSTM2D"):
                value = np.asarray(variable.numpy())
                variable.assign(np.flip(value, axis=tuple(range(value.ndim - 2))).copy())
                flipped += 1
    return flipped


def live_keras_model(model: Any, dtype: str = "float32") -> KerasModel:
    """A Keras model already in memory (Keras 3 or tf_keras), in ``dtype``."""
    flavour = "tf_keras" if type(model).__module__.startswith("tf_keras") else "keras"
    keras = importlib.import_module(flavour)
    if not isinstance(model, keras.Model):
        raise Tf2TorchError(f"expected a Keras model file or a keras.Model, got {type(model).__name__}")
    return KerasModel(keras, flavour, as_float64(model) if dtype == "float64" else model)


def float64_config(value: Any) -> Any:
    """A model config with every floating dtype (string or dtype-policy object) replaced by float64."""
    if isinstance(value, list):
        return [float64_config(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "dtype" and isinstance(item, str) and item in FLOAT_NAMES:
            out[key] = "float64"
        elif key == "dtype" and isinstance(item, dict) and str(item.get("config", {}).get("name")) in FLOAT_NAMES:
            out[key] = {**item, "config": {**item["config"], "name": "float64"}}
        else:
            out[key] = float64_config(item)
    return out


def as_float64(model: Any) -> Any:
    """Rebuild ``model`` from its config with float64 layers and copy its weights in.

    Setting the global float type before loading is not enough: saved configs name each layer's dtype
    (``float32``), and the saved name wins.
    """
    try:
        clone = type(model).from_config(float64_config(model.get_config()))
        weights = model.get_weights()
        clone.set_weights([w.astype(np.float64) if np.issubdtype(w.dtype, np.floating) else w for w in weights])
    except Exception as exc:  # a custom model class Keras cannot rebuild from its config
        message = " ".join(str(exc).split())[:200]
        raise Tf2TorchError(f"cannot rebuild {model.name} in float64 ({type(exc).__name__}: {message}); "
                            "verify in float32 instead") from None
    return clone


# -- running the graph ------------------------------------------------------------------------------------------
class _Reusable:
    """tf_keras's ``Node.map_arguments`` pops a value per use; ours may be used any number of times."""

    def __init__(self, value: Any):
        self.value = value

    def pop(self) -> Any:
        return self.value


class GraphWalker:
    """Runs a Functional or Sequential model node by node and reports every layer call's outputs."""

    def __init__(self, loaded: KerasModel, record: Callable[[str, list[np.ndarray]], None]):
        self.k = loaded.keras
        self.keras3 = loaded.flavour == "keras" and loaded.keras.__version__.startswith("3")
        self.record = record

    # Differences between Keras 3 and tf_keras, each in one place.
    def graph_or_none(self, model: Any) -> Any:
        graph = getattr(model, "_functional", None) if self.keras3 else None
        graph = graph if graph is not None else model
        return graph if getattr(graph, "_nodes_by_depth", None) is not None else None

    def graph_of(self, model: Any) -> Any:
        graph = self.graph_or_none(model)
        if graph is None:
            raise Tf2TorchError(f"model {model.name} has no layer graph (a subclassed model?); verify needs a "
                                "Functional or Sequential model")
        return graph

    def is_model(self, op: Any) -> bool:
        return isinstance(op, self.k.Model) and self.graph_or_none(op) is not None

    def tensor_id(self, x: Any) -> Any:
        return id(x) if self.keras3 else str(id(x))

    def operation(self, node: Any) -> Any:
        return node.operation if self.keras3 else node.layer

    def input_ids(self, node: Any) -> list[Any]:
        return [id(x) for x in node.input_tensors] if self.keras3 else list(node.flat_input_ids)

    def output_ids(self, node: Any) -> list[Any]:
        return [id(x) for x in node.outputs] if self.keras3 else list(node.flat_output_ids)

    def flatten(self, value: Any) -> list[Any]:
        if self.keras3:
            return list(self.k.tree.flatten(value))
        import tensorflow as tf

        return list(tf.nest.flatten(value))

    def call(self, node: Any, op: Any, values: dict[Any, Any]) -> list[Any]:
        if self.keras3:
            args, kwargs = node.arguments.fill_in(values)
            if "training" in getattr(op, "_call_context_args", ()):
                kwargs["training"] = False
        else:
            args, kwargs = node.map_arguments({k: _Reusable(v) for k, v in values.items()})
            if getattr(op, "_expects_training_arg", False):
                kwargs["training"] = False
        return self.flatten(op(*args, **kwargs))

    def to_numpy(self, value: Any) -> np.ndarray:
        """A TensorFlow tensor as a read-only view of its own buffer: ``keras.ops.convert_to_numpy`` copies it
        (``np.array`` in [K3] ``backend/tensorflow/core.py``), a second copy of every activation held to the
        end of the run (DenseNet121, batch 2: 428 outputs)."""
        if not self.keras3 or type(value).__name__ == "EagerTensor":
            return np.asarray(value)
        return np.asarray(self.k.ops.convert_to_numpy(value))

    # The walk itself.
    def run(self, model: Any, inputs: list[Any], prefix: str = "") -> list[Any]:
        graph = self.graph_of(model)
        values = {self.tensor_id(x): v for x, v in zip(graph.inputs, inputs)}
        own = {id(n) for nodes in graph._nodes_by_depth.values() for n in nodes}
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                op = self.operation(node)
                if op is None or node.is_input or any(i not in values for i in self.input_ids(node)):
                    continue
                calls = [n for n in op._inbound_nodes if id(n) in own]
                call = next(i for i, n in enumerate(calls) if n is node)
                node_id = prefix + op.name + (f":{call}" if call else "")
                if self.is_model(op):
                    outputs = self.run(op, [values[i] for i in self.input_ids(node)], node_id + "/")
                else:
                    outputs = self.call(node, op, values)
                    self.record(node_id, [self.to_numpy(o) for o in outputs])
                values.update(zip(self.output_ids(node), outputs))
        return [values[self.tensor_id(x)] for x in graph.outputs]


def input_names(loaded: KerasModel) -> list[str]:
    """The names of the model's input layers, in the order of ``model.inputs``."""
    names = []
    for x in loaded.model.inputs:
        history = x._keras_history
        layer = getattr(history, "operation", None) or getattr(history, "layer", None)
        names.append(layer.name)
    return names


def run_layers(loaded: KerasModel, inputs: dict[str, np.ndarray],
               on_call: Callable[[str], None] | None = None) -> dict[str, list[np.ndarray]]:
    """Run the model once on ``inputs`` (by input name, Keras layout); every layer call's outputs by node id."""
    outputs: dict[str, list[np.ndarray]] = {}

    def record(node_id: str, values: list[np.ndarray]) -> None:
        outputs[node_id] = values
        if on_call is not None:
            on_call(node_id)

    walker = GraphWalker(loaded, record)
    ordered = []
    for name, x in zip(input_names(loaded), loaded.model.inputs):
        if name not in inputs:
            raise Tf2TorchError(f"no values for the Keras input {name!r}")
        dtype = str(getattr(x.dtype, "name", x.dtype))
        ordered.append(walker.k.ops.convert_to_tensor(inputs[name].astype(dtype)) if walker.keras3
                       else _tf_constant(inputs[name].astype(dtype)))
    walker.run(loaded.model, ordered)
    return outputs


def _tf_constant(array: np.ndarray) -> Any:
    import tensorflow as tf

    return tf.constant(array)
