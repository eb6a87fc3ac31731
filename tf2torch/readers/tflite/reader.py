"""A ``.tflite`` file → the IR, reading the FlatBuffer with the checked accessor of ``flatbuf.py``; never
TensorFlow. Subgraph 0 is the model; each operator becomes one IR node of class ``tflite>BUILTIN`` (or
``tflite>custom:Code``) whose config holds its options and its ``operands`` in the form of ``tf.raw`` nodes:
``{"input": k}`` (the k-th run-time input), an inline constant (``value``), a weight (``weight``: read from the
file when converting), ``{"absent": True}`` (an optional input, index -1) or ``{"state": "zeros"}`` (a variable
tensor no operator writes first: an LSTM's state, zero when the interpreter starts).

What is checked before anything is allocated (the reading policy, ``readers/policy.py``): every table, vector
and string lies inside the file; tensor, buffer and operator indices are in range; a rank is at most
``MAX_WEIGHT_RANK``; a constant's buffer holds exactly its shape's bytes and a weight at most
``MAX_WEIGHT_BYTES``; a buffer stored after the FlatBuffer (models over 2 GiB) lies inside the file.
A ``DEQUANTIZE`` of a constant float16 tensor (float16 weight quantization) is folded: its users read the
float16 weight, widened to float32 when it is loaded.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import ModelFileError
from ...graph import InputSpec, KerasGraph, Layer, Node, TensorRef, Weight
from .. import policy
from .flatbuf import Buffer, Table
from .schema import IDENTIFIER, TENSOR_TYPES, TYPE_NAMES, builtin_name, element_count, read_options
from .sparse import sparse_positions

CLASS_PREFIX = "tflite>"
INLINE_LIMIT = 64  # integer constants (shapes, axes, paddings) up to this size and float scalars live in the config
MAX_CUSTOM_OPTIONS = 4096  # bytes of a custom operator's options kept in the IR
QUANTIZED_TYPES = frozenset({"int8", "uint8", "int16"})
DEQUANTIZED_TYPES = QUANTIZED_TYPES | {"int32"}  # constants with scales: weights, and biases (int32)


@dataclass
class Stored:
    """Where a constant tensor's values lie in the file, and how to read them."""

    offset: int
    nbytes: int
    dtype: str
    shape: tuple[int, ...]
    widen: bool = False  # float16 read as float32 (a folded DEQUANTIZE)
    scale: tuple[float, ...] = ()  # a quantized constant, read as float32 ``(q - zero_point) * scale``
    zero_point: tuple[int, ...] = ()
    axis: int = 0  # per-channel scales: the axis they run along (``quantized_dimension``)
    positions: np.ndarray | None = None  # a sparse constant: the dense flat position of each stored value

    @property
    def value_dtype(self) -> str:
        """The dtype its values are read as."""
        return "float32" if self.widen or self.scale else self.dtype


@dataclass
class TensorInfo:
    name: str
    shape: list[int]
    signature: list[int]
    dtype: str | None
    type_name: str
    stored: Stored | None
    quantized: bool
    variable: bool = False  # a state tensor (an LSTM's), zeros when the interpreter starts


def is_tflite(head: bytes) -> bool:
    return len(head) >= 8 and head[4:8] == IDENTIFIER


def _buffers(model: Table, buf: Buffer) -> list[tuple[int, int]]:
    """(offset, size) of each buffer's bytes; (0, 0) for an empty one."""
    spans = []
    for b in model.tables(12, "Model.buffers"):
        start, count = b.vector(4, 1, "Buffer.data")
        if count:
            spans.append((start, count))
            continue
        offset, size = b.scalar(6, "Q"), b.scalar(8, "Q")
        if offset > 1 and (offset + size > buf.size):
            raise buf.damaged(f"a buffer of {size} bytes at byte {offset} lies past the end of the file")
        spans.append((offset, size) if offset > 1 else (0, 0))
    return spans


def _tensor(t: Table, i: int, spans: list[tuple[int, int]], buf: Buffer) -> TensorInfo:
    what = f"tensor {i}"
    shape = t.scalars(4, "i", f"{what} shape")
    signature = t.scalars(18, "i", f"{what} shape_signature") or list(shape)
    if len(shape) > policy.MAX_WEIGHT_RANK or len(signature) != len(shape) or any(d < 0 for d in shape) \
            or any(d < -1 for d in signature):
        raise buf.damaged(f"{what}: shape {shape} (signature {signature})")
    type_code = t.scalar(6, "b")
    dtype = TENSOR_TYPES.get(type_code)
    index = t.scalar(8, "I")
    if index >= len(spans):
        raise buf.damaged(f"{what}: buffer {index} of {len(spans)}")
    name = t.string(10, f"{what} name") or f"tensor{i}"
    quant = t.table(12, f"{what} quantization")
    quantized = quant is not None and quant.vector(8, 4, f"{what} scales")[1] > 0
    offset, size = spans[index]
    if quantized and size and dtype in DEQUANTIZED_TYPES and t.table(16, f"{what} sparsity") is None:
        return TensorInfo(name, shape, signature, dtype, TYPE_NAMES.get(type_code, str(type_code)),
                          _quantized_constant(quant, shape, dtype, offset, size, what, buf), quantized,
                          bool(t.scalar(14, "?", False)))
    stored = None
    type_name = TYPE_NAMES.get(type_code, str(type_code))
    sparsity = t.table(16, f"{what} sparsity")
    if sparsity is not None and size and dtype is not None and not quantized and size % np.dtype(dtype).itemsize == 0:
        positions = sparse_positions(sparsity, shape, size // np.dtype(dtype).itemsize, what, buf)
        stored = Stored(offset, size, dtype, tuple(shape), positions=positions)  # what DENSIFY expands
        return TensorInfo(name, shape, signature, dtype, type_name, stored, quantized, bool(t.scalar(14, "?", False)))
    if sparsity is not None:  # compressed values tf2torch does not read
        dtype, type_name = None, f"sparse {type_name}"
    if size:
        if dtype is None:
            stored = Stored(offset, size, "", tuple(shape))
        else:
            expected = element_count(shape) * np.dtype(dtype).itemsize if shape else np.dtype(dtype).itemsize
            if 0 in shape:
                expected = 0
            if expected != size or size > policy.MAX_WEIGHT_BYTES:
                raise buf.damaged(f"{what} ({name}): shape {shape} of {dtype} needs {expected} bytes, its buffer "
                                  f"holds {size}")
            stored = Stored(offset, size, dtype, tuple(shape))
    return TensorInfo(name, shape, signature, dtype, type_name, stored, quantized,
                      bool(t.scalar(14, "?", False)))


def _quantized_constant(quant: Table, shape: list[int], dtype: str, offset: int, size: int, what: str,
                        buf: Buffer) -> Stored:
    """A quantized constant (int8 / uint8 / int16 weights, int32 biases) with its ``QuantizationParameters``
    (schema.fbs: scale, zero_point, quantized_dimension): one scale, or one per index of ``quantized_dimension``;
    read as float32 ``(q - zero_point) * scale``, as the interpreter's ``DEQUANTIZE`` computes."""
    scale = quant.scalars(8, "f", f"{what} scales")
    zero_point = quant.scalars(10, "q", f"{what} zero points") or [0] * len(scale)
    axis = quant.scalar(16, "i")
    expected = element_count(shape) * np.dtype(dtype).itemsize if shape else np.dtype(dtype).itemsize
    if len(zero_point) != len(scale) or (len(scale) > 1 and not (0 <= axis < len(shape) and
                                                                  shape[axis] == len(scale))) \
            or 0 in shape or expected != size or 4 * size > policy.MAX_WEIGHT_BYTES * np.dtype(dtype).itemsize:
        raise buf.damaged(f"{what}: {len(scale)} scales and {len(zero_point)} zero points on axis {axis} of a "
                          f"{dtype} tensor of shape {shape} in {size} bytes")
    return Stored(offset, size, dtype, tuple(shape), scale=tuple(scale), zero_point=tuple(zero_point), axis=axis)


def _codes(model: Table) -> list[str]:
    names = []
    for c in model.tables(6, "Model.operator_codes"):
        code = max(c.scalar(4, "b"), c.scalar(10, "i"))  # deprecated_builtin_code for codes < 127
        names.append("custom:" + c.string(6, "OperatorCode.custom_code") if code == 32 else builtin_name(code))
    return names


def read_structure(path: str, data: Any) -> tuple[KerasGraph, dict[str, Stored]]:
    """The IR of subgraph 0 and where each weight lies in the file. ``data``: the file's bytes (an mmap)."""
    buf = Buffer(data, path)
    if buf.size < 8 or not is_tflite(bytes(data[:8])):
        raise buf.damaged("no TFL3 file identifier")
    model = buf.root("Model")
    version = model.scalar(4, "I")
    if version != 3:
        raise buf.damaged(f"schema version {version} (tf2torch reads version 3, every TFLite since 2018)")
    codes = _codes(model)
    spans = _buffers(model, buf)
    subgraphs = model.tables(8, "Model.subgraphs")
    if not subgraphs:
        raise buf.damaged("no subgraph")
    sg = subgraphs[0]
    tensors = [_tensor(t, i, spans, buf) for i, t in enumerate(sg.tables(4, "SubGraph.tensors"))]
    inputs, outputs = sg.scalars(6, "i", "SubGraph.inputs"), sg.scalars(8, "i", "SubGraph.outputs")
    ops = []
    for i, op in enumerate(sg.tables(10, "SubGraph.operators")):
        code = op.scalar(4, "I")
        ins, outs = op.scalars(6, "i", f"operator {i} inputs"), op.scalars(8, "i", f"operator {i} outputs")
        if code >= len(codes) or any(not -1 <= t < len(tensors) for t in ins) \
                or any(not 0 <= t < len(tensors) for t in outs) or not outs:
            raise buf.damaged(f"operator {i}: opcode {code} of {len(codes)}, tensors {ins} -> {outs} of "
                              f"{len(tensors)}")
        options = read_options(op)
        if codes[code].startswith("custom:"):  # a custom operator's own bytes (MediaPipe: a C struct)
            start, count = op.vector(14, 1, f"operator {i} custom_options")
            options = {"custom_options": list(bytes(data[start:start + min(count, MAX_CUSTOM_OPTIONS)]))}
        ops.append((codes[code], ins, outs, options))
    if any(not 0 <= t < len(tensors) for t in inputs + outputs):
        raise buf.damaged(f"subgraph inputs {inputs} / outputs {outputs} of {len(tensors)} tensors")
    return Builder(path, data, tensors, inputs, outputs).build(ops)


def _segment(part: str) -> str:
    part = re.sub(r"\W", "_", part)
    return "_" + part if part[:1].isdigit() or part in ("", "self") else part


def layer_key(name: str) -> str:
    """A tensor name → an IR layer key: the first of the names TFLite joins with ``;`` when it fuses ops
    (``model/conv/Relu;model/conv/BiasAdd;...``), its scope path kept (submodule names follow it)."""
    first = name.split(";")[0].strip("/")
    return "/".join(_segment(p) for p in first.split("/") if p) or "op"


def unique_keys(names: list[str]) -> list[str]:
    """Keys for the ops, in order: unique, and no key also the scope of another (``dense`` beside
    ``dense/MatMul`` becomes ``dense/dense_op``), as for TF graphs (``readers/tf_graph.py`` ``layer_keys``)."""
    keys, seen = [], set()
    for name in names:
        key, n = layer_key(name), 1
        while key in seen:
            key, n = f"{layer_key(name)}_{n}", n + 1
        seen.add(key)
        keys.append(key)
    scopes = {"/".join(k.split("/")[:i]) for k in keys for i in range(1, k.count("/") + 1)}
    return [f"{k}/{k.split('/')[-1]}_op" if k in scopes else k for k in keys]


class Builder:
    """The IR of one subgraph from its tensors and operators (already bounds-checked)."""

    def __init__(self, path: str, data: Any, tensors: list[TensorInfo], inputs: list[int], outputs: list[int]):
        self.path, self.data, self.tensors, self.inputs, self.outputs = path, data, tensors, inputs, outputs
        self.stored: dict[str, Stored] = {}
        self.producer: dict[int, TensorRef] = {}

    def fold_dequantize(self, ops: list[tuple[str, list[int], list[int], dict[str, Any]]]) -> list[Any]:
        kept = []
        for op in ops:
            name, ins, outs, _ = op
            src = self.tensors[ins[0]] if name in ("DEQUANTIZE", "DENSIFY") and len(ins) == 1 else None
            out = self.tensors[outs[0]]
            if name == "DENSIFY" and src is not None and src.stored is not None and src.stored.positions is not None \
                    and out.shape == src.shape and out.dtype == src.dtype:
                out.stored = src.stored  # a sparse weight, expanded when it is loaded
                continue
            if src is not None and src.stored is not None and (src.dtype == "float16" or src.stored.scale):
                # float16 weights, or int8 weights the interpreter dequantizes
                out.stored = dataclasses.replace(src.stored, widen=src.dtype == "float16")
                out.dtype = "float32"
                continue
            kept.append(op)
        return kept

    def operand(self, index: int, slot: int, refs: list[TensorRef], weights: list[Weight]) -> dict[str, Any]:
        if index < 0:
            return {"absent": True}
        t = self.tensors[index]
        if t.stored is None:
            if t.variable and index not in self.producer:  # a state the operator starts from zeros and updates
                return {"state": "zeros", "shape": list(t.shape), "dtype": t.dtype}
            if index not in self.producer:
                raise damaged(self.path, f"tensor {index} ({t.name}) is read, but it holds no values and no operator "
                                        "before this one writes it")
            refs.append(self.producer[index])
            return {"input": len(refs) - 1}
        if not t.stored.dtype:
            return {"unreadable": t.type_name}
        dtype = "float32" if t.stored.scale else t.dtype
        entry: dict[str, Any] = {"dtype": dtype, "shape": list(t.shape)}
        count = element_count(t.shape) if t.shape else 1
        kind = np.dtype(t.stored.value_dtype).kind
        if (count <= INLINE_LIMIT and kind in "biu") or (count == 1 and kind == "f"):
            entry["value"] = load(self.data, t.stored).reshape(-1).tolist()
        else:
            entry["weight"] = len(weights)
            weights.append(Weight(f"operand{slot}", tuple(t.shape), str(dtype), f"tensor{index}"))
            self.stored[f"tensor{index}"] = t.stored
        return entry

    def build(self, ops: list[Any]) -> tuple[KerasGraph, dict[str, Stored]]:
        ops = self.fold_dequantize(ops)
        layers: dict[str, Layer] = {}
        nodes: list[Node] = []
        specs = []
        for i in self.inputs:
            t = self.tensors[i]
            key = _segment(t.name)
            batch = [None if d < 0 else d for d in t.signature]
            layers[key] = Layer(key, "InputLayer", {"name": key, "tf_name": t.name, "batch_shape": batch,
                                                    "dtype": t.dtype or t.type_name})
            nodes.append(Node(key, key))
            specs.append(InputSpec(key, tuple(batch[1:]), t.dtype or t.type_name))
            self.producer[i] = TensorRef(key, 0)
        keys = unique_keys([self.tensors[outs[0]].name for _, _, outs, _ in ops])
        keys = [k if k not in layers else f"{k}_op" for k in keys]
        for key, (name, ins, outs, options) in zip(keys, ops):
            refs: list[TensorRef] = []
            weights: list[Weight] = []
            operands = [self.operand(t, slot, refs, weights) for slot, t in enumerate(ins)]
            out_infos = [self.tensors[o] for o in outs]
            config = {"op": name, "tflite_name": out_infos[0].name, "output_tensors": list(outs),
                      "operands": operands, "options": options,
                      "output_shapes": [[None if d < 0 else d for d in t.signature] for t in out_infos],
                      "output_dtypes": [t.dtype or t.type_name for t in out_infos],
                      "quantized": sorted({self.tensors[t].name for t in [*ins, *outs] if t >= 0 and
                                           self.tensors[t].quantized and self.tensors[t].dtype in QUANTIZED_TYPES})}
            layers[key] = Layer(key, CLASS_PREFIX + name, config, weights)
            nodes.append(Node(key, key, refs))
            for slot, o in enumerate(outs):
                self.producer[o] = TensorRef(key, slot)
        outputs = []
        for o in self.outputs:
            if o not in self.producer or self.tensors[o].stored is not None:
                raise damaged(self.path, f"output {self.tensors[o].name} is not computed by an operator")
            outputs.append(self.producer[o])
        graph = KerasGraph(name=re.sub(r"\W", "_", self.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]) or "model",
                           layers=layers, nodes=nodes, inputs=[self.producer[i] for i in self.inputs],
                           outputs=outputs, input_specs=specs, keras_version="tflite", source_format="tflite",
                           output_names=[self.tensors[o].name for o in self.outputs])
        return graph, self.stored


def damaged(path: str, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}; the .tflite file is damaged")


def load(data: Any, stored: Stored) -> np.ndarray:
    """A constant's values, copied out of ``data`` (the file's bytes; FlatBuffers are little-endian)."""
    raw = bytes(data[stored.offset:stored.offset + stored.nbytes])
    array = np.frombuffer(raw, dtype=np.dtype(stored.dtype).newbyteorder("<"))
    if stored.positions is not None:  # a sparse constant: its values scattered into zeros
        dense = np.zeros(int(np.prod(stored.shape)), array.dtype)
        dense[stored.positions] = array
        array = dense
    array = array.reshape(stored.shape)
    if stored.scale:
        shape = [1] * array.ndim
        if len(stored.scale) > 1:
            shape[stored.axis] = -1
        scale = np.asarray(stored.scale, np.float32).reshape(shape)
        zero_point = np.asarray(stored.zero_point, np.float32).reshape(shape)
        return ((array.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return array.astype(np.float32 if stored.widen else np.dtype(stored.dtype))
