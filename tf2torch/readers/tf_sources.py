"""TensorFlow graph files read into a ``TFSource`` the walker (``tf_graph.py``) can walk: a SavedModel signature
frozen by TensorFlow, a TF1 MetaGraph with its checkpoint's variables, a frozen GraphDef; tensor names, the
options that choose a graph's ends, and the clean-up of what TF 1.x writers left in node defs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelFileError, Tf2TorchError
from .tf_paths import checkpoint_prefix

Tensor = tuple[str, int]


def tensor_id(name: str) -> Tensor:
    """``conv1/Relu:0`` → (``conv1/Relu``, 0); ``x`` → (``x``, 0)."""
    name = name.lstrip("^")
    match = re.match(r"^(.*):(\d+)$", name)
    return (match.group(1), int(match.group(2))) if match else (name, 0)


def tensor_name(t: Tensor) -> str:
    return f"{t[0]}:{t[1]}"


@dataclass
class TFSource:
    """A TensorFlow graph ready to walk: a GraphDef, variable values by node name, and what the file says the
    inputs and outputs are (None: not said)."""

    graph_def: Any
    name: str
    source_format: str
    variables: Any = None  # a checkpoint reader (TF1) or None when every variable is already a constant
    variable_slices: dict[str, tuple[str, list[tuple[int, int]]]] = field(default_factory=dict)
    inputs: list[str] | None = None
    input_names: list[str] | None = None
    outputs: list[str] | None = None
    output_names: list[str] | None = None


@dataclass
class TFOptions:
    signature: str | None = None
    inputs: list[str] | None = None
    outputs: list[str] | None = None
    constants: dict[str, Any] = field(default_factory=dict)

    @property
    def plain(self) -> bool:
        """No option that asks for the graph rather than the Keras structure."""
        return self.signature is None and self.inputs is None and self.outputs is None and not self.constants

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> "TFOptions":
        return cls(signature=options.get("signature"), inputs=list(options["inputs"]) if options.get("inputs")
                   else None, outputs=list(options["outputs"]) if options.get("outputs") else None,
                   constants=dict(options.get("constants") or {}))


def read_source(tf: Any, path: Path, kind: str, opts: TFOptions) -> TFSource:
    if kind == "savedmodel":
        return read_saved_model(tf, path if path.is_dir() else path.parent, opts.signature)
    if kind == "checkpoint":
        return read_checkpoint(tf, path)
    return read_graphdef(tf, path)


def read_saved_model(tf: Any, directory: Path, signature: str | None) -> TFSource:
    """Freeze one signature with TensorFlow. Loading runs TensorFlow's own restore ops on ``variables/`` and
    nothing else: no Python from the SavedModel (none is stored) and no user code."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    try:
        loaded = tf.saved_model.load(str(directory))
    except Exception as exc:  # TF raises many kinds for damaged SavedModels
        raise ModelFileError(f"{directory}: TensorFlow cannot load this SavedModel ({type(exc).__name__}: "
                             f"{first_line(exc)})") from None
    signatures = dict(loaded.signatures)
    if not signatures:
        raise ModelFileError(f"{directory}: the SavedModel has no signatures; re-export it with a serving "
                             "signature (tf.saved_model.save(obj, dir, signatures=...))")
    name = signature or ("serving_default" if "serving_default" in signatures else sorted(signatures)[0])
    if name not in signatures:
        raise Tf2TorchError(f"{directory}: no signature {name!r}; the SavedModel has {', '.join(sorted(signatures))}")
    fn = signatures[name]
    # Control flow is kept as TF 2 ops (If, While with their functions), not lowered to TF 1 frames, so a loop's
    # body can be converted as a function (readers/tf_loops.py).
    frozen = convert_variables_to_constants_v2(fn, lower_control_flow=False)
    graph_def = frozen.graph.as_graph_def()
    _, kwargs = fn.structured_input_signature
    input_keys = sorted(kwargs)
    outputs = fn.structured_outputs
    output_keys = sorted(outputs) if isinstance(outputs, dict) else [str(i) for i in range(len(frozen.outputs))]
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    if len(inputs) != len(input_keys):
        input_keys = [tensor_id(t)[0] for t in inputs]
    return TFSource(graph_def, directory.name or "saved_model", "savedmodel", inputs=inputs,
                    input_names=input_keys, outputs=[t.name for t in frozen.outputs], output_names=output_keys)


def read_checkpoint(tf: Any, path: Path) -> TFSource:
    prefix = checkpoint_prefix(path)
    assert prefix is not None
    meta_path = Path(prefix + ".meta")
    if not meta_path.is_file():
        raise ModelFileError(f"{prefix}: the checkpoint has no .meta file, so no graph: tf2torch needs the graph "
                             "that goes with the weights (a .meta, a SavedModel or a frozen .pb)")
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    try:
        meta.ParseFromString(meta_path.read_bytes())
    except Exception as exc:
        raise ModelFileError(f"{meta_path}: not a MetaGraphDef ({first_line(exc)})") from None
    try:  # (not tf.train.load_checkpoint: it reads a prefix that is a directory as "the latest in it")
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    except Exception as exc:
        raise ModelFileError(f"{prefix}: cannot read the checkpoint ({type(exc).__name__}: "
                             f"{first_line(exc)})") from None
    source = TFSource(meta.graph_def, Path(prefix).name or Path(prefix).parent.name, "checkpoint",
                      variables=reader, variable_slices=_partitions(meta))
    signature = meta.signature_def.get("serving_default")
    if signature is not None:
        keys = sorted(signature.inputs)
        source.inputs, source.input_names = [signature.inputs[k].name for k in keys], keys
        keys = sorted(signature.outputs)
        source.outputs, source.output_names = [signature.outputs[k].name for k in keys], keys
    return source


def _partitions(meta: Any) -> dict[str, tuple[str, list[tuple[int, int]]]]:
    """Partitioned variables (``w/part_0``...): the full variable's checkpoint name and the slice each part holds."""
    from tensorflow.core.framework import variable_pb2

    slices = {}
    for key in ("variables", "trainable_variables"):
        if key not in meta.collection_def:
            continue
        for raw in meta.collection_def[key].bytes_list.value:
            var = variable_pb2.VariableDef()
            var.ParseFromString(raw)
            info = var.save_slice_info_def
            if info.full_name:
                bounds = [(int(o), int(o) + int(n)) for o, n in zip(info.var_offset, info.var_shape)]
                slices[tensor_id(var.variable_name)[0]] = (info.full_name, bounds)
    return slices


def read_graphdef(tf: Any, path: Path) -> TFSource:
    graph_def = tf.compat.v1.GraphDef()
    try:
        data = path.read_bytes()
        if path.suffix == ".pbtxt":
            from google.protobuf import text_format

            text_format.Parse(data.decode("utf8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a TensorFlow GraphDef ({type(exc).__name__}: {first_line(exc)})") from None
    if not graph_def.node:
        raise ModelFileError(f"{path}: the GraphDef holds no ops")
    return TFSource(graph_def, path.stem, "graphdef")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else ""


def clean_node_defs(graph_def: Any) -> Any:
    """A copy without the ``_output_shapes`` / ``_class`` attributes that TF 1.x wrote and TF 2.x may refuse."""
    cleaned = type(graph_def)()
    cleaned.CopyFrom(graph_def)
    for node in cleaned.node:
        for attr in ("_output_shapes", "_class"):
            if attr in node.attr:
                del node.attr[attr]
        node.device = ""
    return cleaned


def parse_constant(text: str) -> tuple[str, Any]:
    """``NAME=VALUE`` with VALUE as JSON (``false``, ``0.5``, ``[1, 2]``)."""
    if "=" not in text:
        raise Tf2TorchError(f"--constant {text!r}: expected NAME=VALUE, e.g. is_training=false")
    name, value = text.split("=", 1)
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        raise Tf2TorchError(f"--constant {text!r}: the value is not JSON (false, 0.5, [1, 2])") from None
