"""The graph walker: a TensorFlow graph (SavedModel signature, TF1 checkpoint + MetaGraph, frozen GraphDef) →
the same ``KerasGraph`` IR as the Keras readers, one IR node per TF op left on the path from the inputs to
the outputs.

What happens to the graph, in order (all in memory; the files are never changed):
1. the graph is read (``readers/tf_sources.py``): a SavedModel signature is frozen by TensorFlow
   (``convert_variables_to_constants_v2``, which restores the variables and inlines the functions); a TF1
   MetaGraph is cleaned of stale ``_output_shapes`` attributes and its variables are read from the checkpoint
   by name; a frozen GraphDef is taken as is;
2. inputs and outputs (``readers/tf_ends.py``): the signature's, ``--inputs`` / ``--outputs`` tensor names, or
   the placeholders on the path and the sinks with a batch axis (losses and metrics are scalars; variable
   updates, shapes, and sinks that no longer depend on the inputs once the constants are fed are not outputs);
3. ``--constant NAME=VALUE`` feeds placeholders; a ``PlaceholderWithDefault`` not chosen as input is its
   default, unless its default is read from the training input pipeline (a ``tf.data`` iterator, a queue):
   then it is an input; identities (``Identity``, ``StopGradient``...) are looked through;
4. TF1 control flow with a constant predicate is resolved: a ``Switch`` passes its data to the live port
   only, everything fed by a dead port is dead, a ``Merge`` takes its one live input; so dead branches
   (dropout's ``RandomUniform``, batch-norm moment updates, ``Assert``) are never converted; a function call
   freezing left in the graph (``PartitionedCall``, ``StatefulPartitionedCall``) is inlined like an ``If``'s
   taken branch;
5. TF's lowering of a dilated convolution (``SpaceToBatchND`` → conv → ``BatchToSpaceND``) is folded back
   into one dilated convolution where that is exact (``readers/tf_rewrite.py``);
6. ops whose inputs are all constant are folded by TensorFlow itself (one session over the constant
   sub-graph); each remaining op becomes an IR node of class ``tf.raw>OpType`` whose constant operands are
   inline (small) or weights (large), converted by ``tf2torch/ops/tf_raw.py``;
7. a TF 2 ``While`` carries its ``cond`` and ``body`` functions walked the same way (``readers/tf_loops.py``);
   TensorLists are never folded (they have no numpy value) but converted. A TF 1 while frame (control flow
   v1) and its TensorArrays were rebuilt as such a ``While`` and TensorLists when the graph was read
   (``readers/tf_frames.py``, from the walker's constructor).
Control dependencies are ignored: they order side effects (updates, asserts), never values.
Every op on the path becomes a node whether or not it converts: that is decided after reading
(``tf2torch/support.py``). The walker's state machine lives in ``readers/tf_walker.py``; the modules below this
one (``tf_walker``, ``tf_ends``, ``tf_loops``, ``tf_frames``, ``tf_rewrite``, ``tf_sources``,
``savedmodel_traced``) never import it: the loop and traced-call readers are handed ``walk_function`` to walk
their sub-graphs.
"""

from __future__ import annotations

import contextlib
import keyword
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError, Tf2TorchError
from ..graph import InputSpec, KerasGraph, Layer, Node, Overrides, TensorRef, Weight, WeightFunction
from .tf_ends import (
    PIPELINE_OP_PREFIXES,
    Ends,
    choose_outputs,
    defaults_from_the_input_pipeline,
    live_sinks,
    placeholders_on_the_path,
)
from .tf_loops import LOOP_OP_TYPES
from .tf_paths import import_tensorflow, tf_kind
from .tf_rewrite import fold_dilated_convolutions
from .tf_sources import (
    Tensor,
    TFOptions,
    TFSource,
    read_source,
    tensor_id,
    tensor_name,
)
from .tf_walker import CALL_OPS, RAW, Walker

INLINE_LIMIT = 64  # integer constants (shapes, axes) up to this size and float scalars live in the op's config;
# every other constant (kernels, biases, batch-norm statistics) is a weight


# -- opening each format ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_tf_model(path: str | os.PathLike, kind: str, options: dict[str, Any],
                  convertible: Callable[[str], bool] | None = None) -> Iterator[KerasGraph]:
    """The IR of a TF model. ``convertible`` (a class name → whether it converts, given by the caller): a Keras
    SavedModel's layer it refuses converts from its traced call function; None: only ``Lambda`` layers do."""
    tf = import_tensorflow()
    opts = TFOptions.from_dict(options)
    p = Path(path)
    if kind == "savedmodel" and opts.plain:
        directory = p if p.is_dir() else p.parent
        if (directory / "keras_metadata.pb").exists():
            graph = keras_saved_model_or_none(tf, directory, convertible or (lambda class_name: True))
            if graph is not None:
                yield graph
                return
    yield walk(tf, read_source(tf, p, kind, opts), opts)


def keras_saved_model_or_none(tf: Any, directory: Path, convertible: Callable[[str], bool]) -> KerasGraph | None:
    """The Keras structure; a layer without a converter (a custom class whose code is not importable here, a
    ``Lambda``) converts from its own traced call function (readers/savedmodel_traced.py). None sends the model
    through its serving signature instead (a subclassed model, a layer saved without its functions)."""
    from .savedmodel_keras import read_keras_saved_model
    from .savedmodel_traced import trace_layers

    try:
        graph = read_keras_saved_model(tf, directory)
    except ModelFileError as exc:
        if "subclassed" in str(exc) or "Lambda" in str(exc):
            return None
        raise
    return graph if trace_layers(tf, directory, graph, convertible, walk_function) else None


def prepare(tf: Any, source: TFSource, options: TFOptions) -> tuple[Walker, Ends]:
    """Choose the inputs and outputs, feed the constants and resolve the graph between them."""
    walker = Walker(tf, source, options)
    walker.apply_constants()
    outputs, output_names = choose_outputs(walker)
    if options.inputs:
        inputs = [walker.known(n, "--inputs") for n in options.inputs]
        input_names = [re.sub(r"\W", "_", t[0]) for t in inputs]
    elif source.inputs:
        inputs = [tensor_id(n) for n in source.inputs]
        input_names = list(source.input_names or [t[0] for t in inputs])
    else:
        inputs, input_names = [], []
    input_ops = {t[0] for t in inputs}
    if any(t[1] != 0 for t in inputs):
        raise Tf2TorchError("--inputs must name op outputs :0 (placeholders or the first output of an op)")
    order = walker.cone(outputs, input_ops)
    default_inputs = not options.inputs and not source.inputs
    if default_inputs:
        fed_by_pipeline = defaults_from_the_input_pipeline(walker, order)
        if fed_by_pipeline:
            order = walker.cone(outputs, fed_by_pipeline)
        pipeline = {n for n in order if walker.nodes[n].op.startswith(PIPELINE_OP_PREFIXES)}
        readers = [(n, t) for n in order if n not in pipeline and n not in fed_by_pipeline
                   for t in walker.data_inputs(n) if t[0] in pipeline]
        if readers:
            reader, read = readers[0]
            raise Tf2TorchError(f"the outputs ({', '.join(tensor_name(o) for o in outputs)}) read the training input "
                                f"pipeline ({reader} reads {tensor_name(read)}, not through a placeholder with a "
                                "default); name the outputs with --outputs (or the inputs with --inputs)")
        inputs, input_names, input_ops = placeholders_on_the_path(walker, order, fed_by_pipeline)
    walker.forward(order, input_ops)
    if not options.outputs and not source.outputs:
        outputs, output_names = live_sinks(walker, outputs, output_names)
        if default_inputs:  # the placeholders that only the dropped sinks read (labels, a learning rate) go too
            inputs, input_names, _ = placeholders_on_the_path(walker, walker.cone(outputs, input_ops), input_ops)
    if fold_dilated_convolutions(walker, outputs, {t[0] for t in inputs}):
        walker.tf_graph = walker._import()  # the folded convolutions' new shapes
    return walker, Ends(inputs, input_names, outputs, output_names)


def walk(tf: Any, source: TFSource, options: TFOptions) -> KerasGraph:
    walker, ends = prepare(tf, source, options)
    return build_ir(walker, ends.inputs, ends.input_names, ends.outputs, ends.output_names)


def walk_function(tf: Any, source: TFSource, options: TFOptions) -> KerasGraph:
    """A function's graph (a loop's cond or body, a traced layer's call) walked into a sub-IR (inputs of any
    rank). Given to ``tf_loops`` and ``savedmodel_traced``, which sit below this module and never import it."""
    walker, ends = prepare(tf, source, options)
    return build_ir(walker, ends.inputs, ends.input_names, ends.outputs, ends.output_names, function=True)


# -- IR ---------------------------------------------------------------------------------------------------------
def attr_json(tf: Any, value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "s":
        return value.s.decode("utf8", "replace")
    if kind in ("i", "f", "b"):
        return getattr(value, kind)
    if kind == "type":
        return tf.as_dtype(value.type).name
    if kind == "shape":
        return None if value.shape.unknown_rank else [d.size if d.size >= 0 else None for d in value.shape.dim]
    if kind == "list":
        lst = value.list
        if lst.s:
            return [s.decode("utf8", "replace") for s in lst.s]
        if lst.i:
            return list(lst.i)
        if lst.f:
            return list(lst.f)
        if lst.type:
            return [tf.as_dtype(t).name for t in lst.type]
        if lst.b:
            return list(lst.b)
        return []
    if kind == "func":
        return value.func.name
    return None  # tensors (Const values) are carried as operands, not attributes


CALL_SCOPE = re.compile(r"^(Stateful)?PartitionedCall(_\d+)?$")


def layer_keys(names: list[str]) -> dict[str, str]:
    """Op name → IR layer key: the op's name scope path without the ``StatefulPartitionedCall`` scopes that
    inlined functions add, and ``dense/<op>_op`` when an op's name is also another op's scope (``dense`` beside
    ``dense/MatMul``)."""
    def segment(part: str) -> str:  # fx writes submodule paths as attribute accesses: no keywords
        return part + "_" if keyword.iskeyword(part) else part

    short = {n: "/".join(segment(p) for p in n.split("/") if not CALL_SCOPE.match(p)) or n for n in names}
    if len(set(short.values())) != len(short):
        short = {n: "/".join(segment(p) for p in n.split("/")) for n in names}
    keys = list(short.values())
    scopes = {"/".join(k.split("/")[:i]) for k in keys for i in range(1, k.count("/") + 1)}
    return {n: (f"{k}/{k.split('/')[-1]}_op" if k in scopes else k) for n, k in short.items()}


def build_ir(walker: Walker, inputs: list[Tensor], input_names: list[str], outputs: list[Tensor],
             output_names: list[str], function: bool = False) -> KerasGraph:
    """The IR of the resolved graph between ``inputs`` and ``outputs``. ``function``: the graph of a loop's
    cond or body (inputs of any rank). Every op on the path becomes a node, converter or not: what converts is
    decided after reading (``tf2torch/support.py``); a function call left in the graph is marked
    ``function_call`` for that pass to say so."""
    tf = walker.tf
    outputs = [walker.resolve(o) for o in outputs]
    for o, name in zip(outputs, output_names):
        if walker.state.get(o[0]) != "dyn":
            raise Tf2TorchError(f"output {name} ({tensor_name(o)}) does not depend on the inputs")
    ops = ops_on_the_path(walker, inputs, outputs)
    const_operands = sorted({walker.resolve(t) for n in ops for t in walker.data_inputs(n)
                             if walker.state.get(walker.resolve(t)[0]) == "const"})
    values = dict(zip(const_operands, walker.evaluate(const_operands))) if const_operands else {}
    input_keys = {t[0]: re.sub(r"\W", "_", name) for t, name in zip(inputs, input_names)}
    keys = layer_keys(ops)
    keys.update(input_keys)
    layers, nodes, specs = input_layers(walker, inputs, input_keys, function)
    loaders: dict[str, Any] = {}  # weights of loop functions, by key
    for n in ops:
        layer, node, loop_loaders = op_layer(walker, n, keys[n], input_keys, values)
        layers[layer.name] = layer
        nodes.append(node)
        loaders.update(loop_loaders)
    mark_outputs_used(layers, nodes, outputs)
    graph = KerasGraph(name=walker.source.name, layers=layers, nodes=nodes,
                       inputs=[TensorRef(input_keys[t[0]], 0) for t in inputs],
                       outputs=[TensorRef(input_keys.get(o[0], o[0]), o[1]) for o in outputs], input_specs=specs,
                       keras_version=f"tf-{tf.__version__}", source_format=walker.source.source_format)
    graph.weight_source = Overrides(loaders, WeightFunction(lambda w: values[tensor_id(w.key)]))
    return graph


def ops_on_the_path(walker: Walker, inputs: list[Tensor], outputs: list[Tensor]) -> list[str]:
    """The ops on the path, after resolution, in the graph's order: walk back from the outputs through dynamic
    ops only (the inputs' ops end the walk and are not included)."""
    input_ops = {t[0] for t in inputs}
    needed: list[str] = []
    seen: set[str] = set()
    stack = [o[0] for o in outputs]
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        needed.append(n)
        if n in input_ops:
            continue
        for t in walker.data_inputs(n):
            r = walker.resolve(t)
            if walker.state.get(r[0]) == "dyn":
                stack.append(r[0])
    order_index = {n: i for i, n in enumerate(walker.cone(outputs, input_ops))}
    needed.sort(key=order_index.__getitem__)
    return [n for n in needed if n not in input_ops]


def input_layers(walker: Walker, inputs: list[Tensor], input_keys: dict[str, str],
                 function: bool) -> tuple[dict[str, Layer], list[Node], list[InputSpec]]:
    """One ``InputLayer`` per input (named like its spec, as for Keras), its node and its spec."""
    layers: dict[str, Layer] = {}
    nodes: list[Node] = []
    specs = []
    for op_name, _ in inputs:
        t = walker.tf_tensor((op_name, 0))
        shape = t.shape.as_list() if t.shape.rank is not None else None
        if (shape is None or not shape) and not function:
            raise Tf2TorchError(f"input {op_name}: unknown rank or a scalar; tf2torch needs inputs with a batch axis")
        key = input_keys[op_name]
        layers[key] = Layer(key, "InputLayer", {"name": key, "tf_name": op_name,
                                                "batch_shape": shape, "dtype": t.dtype.name})
        nodes.append(Node(key, key))  # an input's node is named like its spec, as for Keras InputLayers
        specs.append(InputSpec(key, tuple(shape[1:]) if shape else (), t.dtype.name))
    return layers, nodes, specs


def op_layer(walker: Walker, n: str, key: str, input_keys: dict[str, str],
             values: dict[Tensor, np.ndarray]) -> tuple[Layer, Node, dict[str, Any]]:
    """The IR layer (class ``tf.raw>OpType``) and node of op ``n``, and the loaders of its loop functions'
    weights (a ``While``: its ``cond`` and ``body`` are sub-IRs in its ``loop`` config)."""
    tf = walker.tf
    node = walker.nodes[n]
    loop = None
    if node.op in LOOP_OP_TYPES:
        from .tf_loops import loop_config

        loop = loop_config(walker, n, key, [None if walker.state.get(walker.resolve(t)[0]) == "dyn" else
                                            values[walker.resolve(t)] for t in walker.data_inputs(n)],
                           walk_function)
    operands, refs, weights = op_operands(walker, n, input_keys, values, loop[1] if loop is not None else set())
    op = walker.tf_graph.get_operation_by_name(n)
    config = {
        "op": node.op, "tf_name": n, "operands": operands,
        "attrs": {k: attr_json(tf, v) for k, v in sorted(node.attr.items()) if not k.startswith("_")
                  and k not in ("T", "value")},
        "T": attr_json(tf, node.attr["T"]) if "T" in node.attr else None,
        "output_dtypes": [o.dtype.name for o in op.outputs],
        "output_shapes": [o.shape.as_list() if o.shape.rank is not None else None for o in op.outputs],
    }
    if node.op in CALL_OPS or walker.graph_def.library and any(
            f.signature.name == node.op for f in walker.graph_def.library.function):
        config["function_call"] = True
    loaders: dict[str, Any] = {}
    if loop is not None:
        loop_cfg, _, loop_weights, loaders = loop
        config["loop"] = loop_cfg
        weights.extend(loop_weights)
    return Layer(key, RAW + node.op, config, weights), Node(n, key, refs), loaders


def op_operands(walker: Walker, n: str, input_keys: dict[str, str], values: dict[Tensor, np.ndarray],
                fed: set[int]) -> tuple[list[dict[str, Any]], list[TensorRef], list[Weight]]:
    """Op ``n``'s operands: run-time inputs (``{"input": i}``), constants its loop functions were built with
    (``fed``: ``{"fed": True}``), small integer constants and float scalars inline, other constants weights."""
    operands: list[dict[str, Any]] = []
    refs: list[TensorRef] = []
    weights: list[Weight] = []
    for i, t in enumerate(walker.data_inputs(n)):
        r = walker.resolve(t)
        if walker.state.get(r[0]) == "dyn":
            operands.append({"input": len(refs)})
            refs.append(TensorRef(input_keys.get(r[0], r[0]), r[1]))
            continue
        if i in fed:  # a constant the loop's functions were built with
            operands.append({"fed": True})
            continue
        value = values[r]
        entry: dict[str, Any] = {"dtype": str(value.dtype), "shape": list(value.shape)}
        if (value.size <= INLINE_LIMIT and value.dtype.kind in "biu") or (value.size == 1 and
                                                                            value.dtype.kind == "f"):
            entry["value"] = value.tolist()
        elif value.dtype.kind in "biuf":
            entry["weight"] = len(weights)
            weights.append(Weight(f"operand{i}", tuple(value.shape), str(value.dtype), tensor_name(r)))
        else:
            entry["value"] = [v.decode("utf8", "replace") if isinstance(v, bytes) else str(v)
                              for v in value.reshape(-1).tolist()]
        operands.append(entry)
    return operands, refs, weights


def mark_outputs_used(layers: dict[str, Layer], nodes: list[Node], outputs: list[Tensor]) -> None:
    """Each op's ``outputs_used``: the outputs another node or the graph reads (at least output 0)."""
    used_outputs: dict[str, set[int]] = {}
    for node in nodes:
        for r in node.inputs:
            used_outputs.setdefault(r.node, set()).add(r.index)
    for o in outputs:
        used_outputs.setdefault(o[0], set()).add(o[1])
    for node in nodes:
        if node.layer in layers and layers[node.layer].class_name.startswith(RAW):
            layers[node.layer].config["outputs_used"] = sorted(used_outputs.get(node.id, {0}))


def runnable_graph_def(walker: Walker, graph: KerasGraph) -> Any:
    """The resolved graph the conversion read, as TensorFlow runs it: the IR's ops with their constant operands
    as ``Const`` nodes and their run-time operands wired as in the IR. ``verify`` runs this, so each converted
    op is compared with TensorFlow's own kernel on the same values."""
    tf = walker.tf
    graph_def = tf.compat.v1.GraphDef()
    graph_def.library.CopyFrom(walker.graph_def.library)  # loop bodies and conditions
    consts: dict[Tensor, str] = {}
    for node in graph.nodes:
        layer = graph.layers[node.layer]
        copy = graph_def.node.add()
        if layer.class_name == "InputLayer":  # whatever op it was, the input is fed
            copy.name, copy.op = layer.config["tf_name"], "Placeholder"
            copy.attr["dtype"].type = tf.as_dtype(layer.config["dtype"]).as_datatype_enum
            continue
        copy.CopyFrom(walker.nodes[node.id])
        del copy.input[:]
        for t in walker.data_inputs(node.id):
            r = walker.resolve(t)
            if walker.state.get(r[0]) == "dyn":
                copy.input.append(tensor_name(r))
                continue
            if r not in consts:
                value = walker.evaluate([r])[0]
                const = graph_def.node.add()
                const.name = consts[r] = f"tf2torch_const/{len(consts)}"
                const.op = "Const"
                const.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
                const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            copy.input.append(consts[r])
    return graph_def


def describe_placeholders(tf: Any, source: TFSource) -> list[dict[str, Any]]:
    """Every placeholder with its dtype and shape (and whether it has a default), for ``inspect``."""
    walker = Walker(tf, source, TFOptions())
    rows = []
    for node in walker.graph_def.node:
        if node.op in ("Placeholder", "PlaceholderWithDefault"):
            t = walker.tf_tensor((node.name, 0))
            rows.append({"name": f"{node.name}:0", "dtype": t.dtype.name,
                         "shape": t.shape.as_list() if t.shape.rank is not None else None,
                         "default": node.op == "PlaceholderWithDefault"})
    return rows


def list_placeholders(path: str | os.PathLike, options: dict[str, Any]) -> list[str]:
    """Lines for ``inspect``: the graph's placeholders (name, dtype, shape, default), fed ones marked."""
    tf = import_tensorflow()
    opts = TFOptions.from_dict(options)
    kind = tf_kind(Path(path))  # the command line lists placeholders of the TF formats only
    if kind is None:
        raise Tf2TorchError(f"{path}: not a TensorFlow graph; only graphs have placeholders")
    source = read_source(tf, Path(path), kind, opts)
    lines = []
    if source.inputs:
        lines.append("signature inputs: " + ", ".join(f"{k}={v}" for k, v in zip(source.input_names or [],
                                                                                 source.inputs)))
        lines.append("signature outputs: " + ", ".join(f"{k}={v}" for k, v in zip(source.output_names or [],
                                                                                  source.outputs or [])))
    fed = {tensor_id(n)[0] for n in opts.constants}
    for row in describe_placeholders(tf, source):
        shape = "unknown" if row["shape"] is None else str(row["shape"]).replace("None", "?")
        notes = [n for n, on in (("with a default", row["default"]),
                                 ("fixed by --constant", tensor_id(row["name"])[0] in fed)) if on]
        lines.append(f"placeholder {row['name']}: {row['dtype']} {shape}" + (f" ({', '.join(notes)})" if notes else ""))
    return lines
