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
   TensorLists are never folded (they have no numpy value) but converted.
Control dependencies are ignored: they order side effects (updates, asserts), never values.
"""

from __future__ import annotations

import contextlib
import keyword
import os
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelFileError, Tf2TorchError, UnsupportedLayerError
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
from .tf_paths import import_tensorflow
from .tf_rewrite import fold_dilated_convolutions
from .tf_sources import (
    Tensor,
    TFOptions,
    TFSource,
    clean_node_defs,
    first_line,
    keras_saved_model_or_none,
    read_source,
    tensor_id,
    tensor_name,
)

RAW = "tf.raw>"
INLINE_LIMIT = 64  # integer constants (shapes, axes) up to this size and float scalars live in the op's config;
# every other constant (kernels, biases, batch-norm statistics) is a weight
IDENTITY_OPS = frozenset({"Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics",
                          "EnsureShape", "PlaceholderWithDefault", "RefIdentity"})
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
SHAPE_OPS = frozenset({"Shape", "Size", "Rank"})  # folded when the tensor's shape is static (ShapeN: never)
LOOP_OPS = frozenset({"Enter", "Exit", "NextIteration", "LoopCond", "RefEnter", "RefExit", "RefNextIteration"})
LOOP_REASON = ("a TF 1 while loop (Enter/Exit frames of control flow v1) is not converted; TF 2 While loops are "
               "(tf.compat.v1.enable_control_flow_v2() before building the graph, or a SavedModel)")


# -- opening each format ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def open_tf_model(path: str | os.PathLike, kind: str, options: dict[str, Any]) -> Iterator[KerasGraph]:
    tf = import_tensorflow()
    opts = TFOptions.from_dict(options)
    p = Path(path)
    if kind == "savedmodel" and opts.plain:
        directory = p if p.is_dir() else p.parent
        if (directory / "keras_metadata.pb").exists():
            graph = keras_saved_model_or_none(tf, directory)
            if graph is not None:
                yield graph
                return
    yield walk(tf, read_source(tf, p, kind, opts), opts)


# -- the walk ------------------------------------------------------------------------------------------------


class Walker:
    def __init__(self, tf: Any, source: TFSource, options: TFOptions):
        self.tf = tf
        self.source = source
        self.options = options
        self.graph_def = clean_node_defs(source.graph_def)
        self.nodes = {n.name: n for n in self.graph_def.node}
        self.functions = {f.signature.name: f for f in self.graph_def.library.function}
        self.tf_graph = self._import()
        self.alias: dict[Tensor, Tensor] = {}
        self.state: dict[str, str] = {}  # node → "const" | "dyn" | "dead"
        self.dead_ports: dict[str, set[int]] = {}
        self.values: dict[Tensor, np.ndarray] = {}
        self.fed: dict[str, np.ndarray] = {}
        self.arg_nodes: set[str] = set()  # arguments of inlined If branches (aliases of the If's inputs)

    def _import(self) -> Any:
        graph = self.tf.Graph()
        try:
            with graph.as_default():
                self.tf.graph_util.import_graph_def(self.graph_def, name="")
        except Exception as exc:
            raise ModelFileError(f"TensorFlow cannot import the graph ({type(exc).__name__}: "
                                 f"{first_line(exc)})") from None
        return graph

    # tensors ------------------------------------------------------------------------------------------------
    def tf_tensor(self, t: Tensor) -> Any:
        return self.tf_graph.get_operation_by_name(t[0]).outputs[t[1]]

    def data_inputs(self, name: str) -> list[Tensor]:
        return [tensor_id(i) for i in self.nodes[name].input if not i.startswith("^")]

    def resolve(self, t: Tensor) -> Tensor:
        while t in self.alias:
            t = self.alias[t]
        return t

    def known(self, name: str, what: str) -> Tensor:
        t = tensor_id(name)
        if t[0] not in self.nodes:
            raise Tf2TorchError(f"{what} {name!r}: no such op in the graph")
        if t[1] >= len(self.tf_graph.get_operation_by_name(t[0]).outputs):
            raise Tf2TorchError(f"{what} {name!r}: op {t[0]} has no output {t[1]}")
        return t


    def apply_constants(self) -> None:
        for name, value in self.options.constants.items():
            t = self.known(name, "--constant")
            node = self.nodes[t[0]]
            if node.op not in ("Placeholder", "PlaceholderWithDefault"):
                raise Tf2TorchError(f"--constant {name}: {t[0]} is a {node.op}, not a placeholder")
            dtype = self.tf_tensor(t).dtype
            # (a resource argument of a loop body is fed the variable's value: its read is the value)
            self.fed[t[0]] = np.asarray(value) if dtype == self.tf.resource else np.asarray(value, dtype.as_numpy_dtype)

    # the forward pass over the backward cone -------------------------------------------------------------------
    def cone(self, outputs: list[Tensor], stop: set[str]) -> list[str]:
        """Ops the outputs depend on (data edges only), in topological order; ``stop`` ops end the search."""
        seen: set[str] = set()
        stack = [o[0] for o in outputs]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in stop or n in self.fed:
                continue
            stack.extend(self.deps(n))
        loops = sorted(n for n in seen if self.nodes[n].op in LOOP_OPS)
        if loops:
            frames = sorted({self.nodes[n].attr["frame_name"].s.decode() for n in loops
                             if "frame_name" in self.nodes[n].attr})
            raise UnsupportedLayerError([(f, RAW + "While") for f in frames or loops[:1]],
                                        {f: LOOP_REASON for f in frames or loops[:1]})
        indegree = {n: 0 for n in seen}
        users: dict[str, list[str]] = {n: [] for n in seen}
        for n in seen:
            if n in stop or n in self.fed:
                continue
            for src in set(self.deps(n)):
                indegree[n] += 1
                users[src].append(n)
        order, queue = [], deque(sorted(n for n, d in indegree.items() if d == 0))
        while queue:
            n = queue.popleft()
            order.append(n)
            for u in users[n]:
                indegree[u] -= 1
                if indegree[u] == 0:
                    queue.append(u)
        if len(order) != len(seen):
            raise ModelFileError("the graph has a cycle outside a while loop; it is not a valid TF graph")
        return order

    def deps(self, name: str) -> list[str]:
        """The ops ``name`` reads, through the aliases known so far (an inlined branch's argument reads what the
        If was given; after the walk, a resolved Switch, Merge or If reads its live input)."""
        if name in self.arg_nodes:
            return [self.resolve((name, 0))[0]]
        return [self.resolve(t)[0] for t in self.data_inputs(name)]

    def forward(self, order: list[str], inputs: set[str]) -> None:
        inlined = len(self.arg_nodes)
        self._forward(order, inputs)
        if len(self.arg_nodes) != inlined:
            self.tf_graph = self._import()  # the inlined branches' ops, for their dtypes and shapes

    def _forward(self, order: list[str], inputs: set[str]) -> None:
        for name in order:
            if name in self.state:  # already walked (an inlined branch's cone reaches back into the graph)
                continue
            node = self.nodes[name]
            if name in self.arg_nodes:
                self.state[name] = self.state.get(self.resolve((name, 0))[0], "dyn")
                continue
            if name in inputs:
                self.state[name] = "dyn"
                continue
            if name in self.fed:
                self.state[name] = "const"
                self.values[(name, 0)] = self.fed[name]
                continue
            ins = [self.resolve(t) for t in self.data_inputs(name)]
            dead = [t for t in ins if self._dead(t)]
            if node.op == "Merge":
                self._merge(name, ins, dead)
                continue
            if dead:
                self.state[name] = "dead"
                continue
            if node.op in IDENTITY_OPS and ins:
                self.alias[(name, 0)] = ins[0]
                self.state[name] = self.state[ins[0][0]]
                continue
            if node.op == "IdentityN":
                for i, t in enumerate(ins):
                    self.alias[(name, i)] = t
                self.state[name] = "dyn" if any(self.state[t[0]] == "dyn" for t in ins) else "const"
                continue
            if node.op == "Switch":
                self._switch(name, ins)
                continue
            if self._call(name, ins):
                continue
            if node.op in LOOP_OP_TYPES:
                self._loop(name, ins)
                continue
            if node.op == "Placeholder":
                raise Tf2TorchError(f"placeholder {name} feeds the outputs but is neither an input nor a constant: "
                                    f"add it to --inputs, or fix it with --constant {name}=VALUE")
            if node.op in VARIABLE_OPS:
                self.values[(name, 0)] = self._variable(name)
                self.state[name] = "const"
                continue
            if node.op == "ReadVariableOp" and (self.nodes[ins[0][0]].op in VARIABLE_OPS or ins[0][0] in self.fed):
                self.alias[(name, 0)] = ins[0]
                self.state[name] = "const"
                continue
            if node.op in SHAPE_OPS and self._static_shape(name, ins[0]):
                continue
            if node.op == "Const" or (ins and all(self.state[t[0]] == "const" for t in ins)
                                      and not self.stateful(node.op) and not self._makes_variant(name)):
                self.state[name] = "const"
            else:
                self.state[name] = "dyn"

    def _static_shape(self, name: str, t: Tensor) -> bool:
        """``Shape`` / ``Size`` / ``Rank`` of a run-time tensor whose shape TensorFlow knows in full (every input
        the graph accepts has it): folded to its constant value; otherwise computed at run time."""
        try:
            shape = self.tf_tensor(t).shape
        except KeyError:  # an inlined function's op, not imported yet: left to run time
            return False
        op = self.nodes[name].op
        if shape.rank is None or (op != "Rank" and not shape.is_fully_defined()):
            return False
        attrs = self.nodes[name].attr
        dtype = (self.tf.as_dtype(attrs["out_type"].type) if "out_type" in attrs else self.tf.int32).as_numpy_dtype
        dims = shape.as_list()
        value = dims if op == "Shape" else len(dims) if op == "Rank" else int(np.prod(dims, dtype=np.int64))
        self.values[(name, 0)] = np.asarray(value, dtype=dtype)
        self.state[name] = "const"
        return True

    def _makes_variant(self, name: str) -> bool:
        """A TensorList (or other variant) is never folded: it has no numpy value; its ops are converted."""
        try:
            return any(o.dtype == self.tf.variant for o in self.tf_graph.get_operation_by_name(name).outputs)
        except KeyError:  # an inlined branch's op, not imported yet: its outputs' types from the op's definition
            from tensorflow.python.framework import op_def_registry

            node = self.nodes[name]
            op_def = op_def_registry.get(node.op)
            variant = self.tf.variant.as_datatype_enum
            return op_def is not None and any(
                (arg.type or (node.attr[arg.type_attr].type if arg.type_attr in node.attr else 0)) == variant
                for arg in op_def.output_arg)

    def _loop(self, name: str, ins: list[Tensor]) -> None:
        """A ``While``: the outputs of loop variables the body returns unchanged are its inputs (so a constant
        stays constant after the loop); the loop itself is folded when every input is constant, else converted
        with its functions (readers/tf_loops.py)."""
        from .tf_loops import invariant_variables

        for i in invariant_variables(self, name):
            self.alias[(name, i)] = ins[i]
        constant = all(self.state[t[0]] == "const" for t in ins) and not self._makes_variant(name)
        self.state[name] = "const" if constant else "dyn"

    def _dead(self, t: Tensor) -> bool:
        return self.state.get(t[0]) == "dead" or t[1] in self.dead_ports.get(t[0], set())

    def stateful(self, op: str) -> bool:
        from tensorflow.python.framework import op_def_registry

        op_def = op_def_registry.get(op)
        return op_def is None or op_def.is_stateful

    def _switch(self, name: str, ins: list[Tensor]) -> None:
        data, pred = ins
        if self.state[pred[0]] != "const":
            raise Tf2TorchError(f"{name} (Switch of a tf.cond) depends on a predicate computed at run time "
                                f"({tensor_name(pred)}); fix it with --constant NAME=VALUE (e.g. "
                                "is_training=false)")
        live = 1 if bool(np.asarray(self.evaluate([pred])[0]).reshape(-1)[0]) else 0
        self.alias[(name, live)] = data
        self.dead_ports[name] = {1 - live}
        self.state[name] = self.state[data[0]]

    def _call(self, name: str, ins: list[Tensor]) -> bool:
        """An ``If`` or a function call, inlined; False for any other op."""
        op = self.nodes[name].op
        if op in ("If", "StatelessIf"):
            self._if(name, ins)
        elif op in CALL_OPS or op in self.functions:
            self._inline(name, self.nodes[name].attr["f"].func.name if op in CALL_OPS else op, ins, name)
        else:
            return False
        return True

    def _if(self, name: str, ins: list[Tensor]) -> None:
        """``If`` / ``StatelessIf`` with a constant predicate: the taken branch's function is inlined under
        ``<if>/then`` or ``<if>/else`` and walked like the rest; the other branch is never looked at."""
        pred, args = ins[0], ins[1:]
        if self.state[pred[0]] != "const":
            raise Tf2TorchError(f"{name} ({self.nodes[name].op}, a tf.cond) depends on a predicate computed at run "
                                f"time ({tensor_name(pred)}); fix it with --constant NAME=VALUE (e.g. "
                                "is_training=false)")
        taken = bool(np.asarray(self.evaluate([pred])[0]).reshape(-1)[0])
        branch = self.nodes[name].attr["then_branch" if taken else "else_branch"].func.name
        self._inline(name, branch, args, f"{name}/{'then' if taken else 'else'}")

    def _inline(self, name: str, function: str, args: list[Tensor], prefix: str) -> None:
        """The function ``name`` calls (an If's taken branch, or a ``PartitionedCall`` /
        ``StatefulPartitionedCall`` that freezing leaves in the graph, e.g. Keras 3's grouped convolutions)
        inlined under ``prefix``: its ops join the graph, its arguments alias ``args`` and the call's outputs
        alias its results, so the ops are walked (folded, converted) like the rest."""
        from tensorflow.python.framework import function_def_to_graph

        fdef = self.functions.get(function)
        if fdef is None:
            raise ModelFileError(f"{name}: function {function} is missing from the graph's library")
        if len(args) != len(fdef.signature.input_arg):
            raise ModelFileError(f"{name}: calls {function} with {len(args)} arguments; it takes "
                                 f"{len(fdef.signature.input_arg)}")
        body, flat = function_def_to_graph.function_def_to_graph_def(fdef)
        for node in body.node:
            node.name = f"{prefix}/{node.name}"
            inputs = [("^" if i.startswith("^") else "") + f"{prefix}/{i.lstrip('^')}" for i in node.input]
            del node.input[:]
            node.input.extend(inputs)
            for attr in ("_output_shapes", "_class"):
                if attr in node.attr:
                    del node.attr[attr]
            added = self.graph_def.node.add()
            added.CopyFrom(node)
            self.nodes[node.name] = added
        for i, arg in enumerate(fdef.signature.input_arg):
            self.arg_nodes.add(f"{prefix}/{arg.name}")
            self.alias[(f"{prefix}/{arg.name}", 0)] = args[i]
        outs = [tensor_id(flat[fdef.ret[a.name]]) for a in fdef.signature.output_arg]
        outs = [(f"{prefix}/{o[0]}", o[1]) for o in outs]
        self._forward(self.cone(outs, set()), set())
        for i, o in enumerate(outs):
            self.alias[(name, i)] = o
        self.state[name] = "dyn" if any(self.state.get(self.resolve(o)[0]) == "dyn" for o in outs) else "const"

    def _merge(self, name: str, ins: list[Tensor], dead: list[Tensor]) -> None:
        live = [t for t in ins if t not in dead]
        if len(live) != 1:
            raise Tf2TorchError(f"{name} (Merge of a tf.cond) has {len(live)} live inputs; fix the predicate with "
                                "--constant NAME=VALUE")
        self.alias[(name, 0)] = live[0]
        self.values[(name, 1)] = np.asarray(ins.index(live[0]), dtype=np.int32)
        self.state[name] = self.state[live[0][0]]

    def _variable(self, name: str) -> np.ndarray:
        reader = self.source.variables
        node = self.nodes[name]
        if reader is None:
            raise ModelFileError(f"variable {name} has no value: the graph is not frozen and no checkpoint was given")
        key = name
        if node.op == "VarHandleOp" and node.attr["shared_name"].s:
            key = node.attr["shared_name"].s.decode()
        if reader.has_tensor(key):
            return np.asarray(reader.get_tensor(key))
        if name in self.source.variable_slices:
            full, bounds = self.source.variable_slices[name]
            if reader.has_tensor(full):
                return np.asarray(reader.get_tensor(full))[tuple(slice(a, b) for a, b in bounds)]
        raise ModelFileError(f"variable {name} is not in the checkpoint")

    # constant folding ------------------------------------------------------------------------------------------
    def evaluate(self, tensors: list[Tensor]) -> list[np.ndarray]:
        """Values of constant tensors, computed by TensorFlow on the constant sub-graph (control edges cut,
        resolved switches looked through, variables and fed placeholders as constants)."""
        tensors = [self.resolve(t) for t in tensors]
        wanted = [t for t in tensors if t not in self.values]
        if wanted:
            tf = self.tf
            graph_def = tf.compat.v1.GraphDef()
            graph_def.library.CopyFrom(self.graph_def.library)  # the functions of loops folded here
            added: set[str] = set()
            stack = [t[0] for t in wanted]
            while stack:
                n = stack.pop()
                if n in added:
                    continue
                added.add(n)
                node = graph_def.node.add()
                if (n, 0) in self.values and self.nodes[n].op != "Merge":
                    value = self.values[(n, 0)]
                    node.name, node.op = n, "Const"
                    node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
                    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
                    continue
                node.CopyFrom(self.nodes[n])
                del node.input[:]
                for t in self.data_inputs(n):
                    r = self.resolve(t)
                    node.input.append(tensor_name(r))
                    stack.append(r[0])
            graph = tf.Graph()
            with graph.as_default():
                tf.graph_util.import_graph_def(graph_def, name="")
            with tf.compat.v1.Session(graph=graph) as session:
                results = session.run([tensor_name(t) for t in wanted])
            for t, v in zip(wanted, results):
                self.values[t] = np.asarray(v)
        return [self.values[t] for t in tensors]


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
    cond or body (inputs of any rank; its unsupported ops are returned on the graph, for the loop to list)."""
    tf = walker.tf
    outputs = [walker.resolve(o) for o in outputs]
    input_ops = {t[0] for t in inputs}
    for o, name in zip(outputs, output_names):
        if walker.state.get(o[0]) != "dyn":
            raise Tf2TorchError(f"output {name} ({tensor_name(o)}) does not depend on the inputs")
    # The ops on the path, after resolution: walk back from the outputs through dynamic ops only.
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
    ops = [n for n in needed if n not in input_ops]
    const_operands = sorted({walker.resolve(t) for n in ops for t in walker.data_inputs(n)
                             if walker.state.get(walker.resolve(t)[0]) == "const"})
    values = dict(zip(const_operands, walker.evaluate(const_operands))) if const_operands else {}
    input_keys = {t[0]: re.sub(r"\W", "_", name) for t, name in zip(inputs, input_names)}
    keys = layer_keys(ops)
    keys.update(input_keys)
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
    missing = []
    loaders: dict[str, Any] = {}  # weights of loop functions, by key
    nested: list[tuple[str, str]] = []
    reasons: dict[str, str] = {}
    for n in ops:
        node = walker.nodes[n]
        if node.op in ("PartitionedCall", "StatefulPartitionedCall") or walker.graph_def.library and any(
                f.signature.name == node.op for f in walker.graph_def.library.function):
            missing.append((n, node.op))
        operands, refs, weights = [], [], []
        loop = None
        if node.op in LOOP_OP_TYPES:
            from .tf_loops import loop_config

            loop = loop_config(walker, n, keys[n], [None if walker.state.get(walker.resolve(t)[0]) == "dyn" else
                                                    values[walker.resolve(t)] for t in walker.data_inputs(n)])
        for i, t in enumerate(walker.data_inputs(n)):
            r = walker.resolve(t)
            if walker.state.get(r[0]) == "dyn":
                operands.append({"input": len(refs)})
                refs.append(TensorRef(input_keys.get(r[0], r[0]), r[1]))
                continue
            if loop is not None and i in loop[1]:  # a constant the loop's functions were built with
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
        op = walker.tf_graph.get_operation_by_name(n)
        config = {
            "op": node.op, "tf_name": n, "operands": operands,
            "attrs": {k: attr_json(tf, v) for k, v in sorted(node.attr.items()) if not k.startswith("_")
                      and k not in ("T", "value")},
            "T": attr_json(tf, node.attr["T"]) if "T" in node.attr else None,
            "output_dtypes": [o.dtype.name for o in op.outputs],
            "output_shapes": [o.shape.as_list() if o.shape.rank is not None else None for o in op.outputs],
        }
        if loop is not None:
            loop_cfg, _, loop_weights, loop_loaders, loop_unsupported, loop_reasons = loop
            config["loop"] = loop_cfg
            weights.extend(loop_weights)
            loaders.update(loop_loaders)
            nested.extend(loop_unsupported)
            reasons.update(loop_reasons)
        key = keys[n]
        layers[key] = Layer(key, RAW + node.op, config, weights)
        nodes.append(Node(n, key, refs))
    reasons.update({keys[n]: "a function call left in the graph" for n, _ in missing})
    unsupported = []
    if missing or nested or function:
        from ..converters import registry

        unsupported = [(keys[n], RAW + walker.nodes[n].op) for n in ops
                       if registry.converter_for(RAW + walker.nodes[n].op) is None] + nested
    if unsupported and not function:
        raise UnsupportedLayerError(unsupported, reasons)
    used_outputs: dict[str, set[int]] = {}
    for node in nodes:
        for r in node.inputs:
            used_outputs.setdefault(r.node, set()).add(r.index)
    for o in outputs:
        used_outputs.setdefault(o[0], set()).add(o[1])
    for node in nodes:
        if node.layer in layers and layers[node.layer].class_name.startswith(RAW):
            layers[node.layer].config["outputs_used"] = sorted(used_outputs.get(node.id, {0}))
    graph = KerasGraph(name=walker.source.name, layers=layers, nodes=nodes,
                       inputs=[TensorRef(input_keys[t[0]], 0) for t in inputs],
                       outputs=[TensorRef(input_keys.get(o[0], o[0]), o[1]) for o in outputs], input_specs=specs,
                       keras_version=f"tf-{tf.__version__}", source_format=walker.source.source_format)
    graph.weight_source = Overrides(loaders, WeightFunction(lambda w: values[tensor_id(w.key)]))
    if function:
        graph.unsupported, graph.reasons = unsupported, reasons
    return graph


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
    from . import file_kind

    tf = import_tensorflow()
    opts = TFOptions.from_dict(options)
    source = read_source(tf, Path(path), file_kind(path), opts)
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
