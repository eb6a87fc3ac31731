"""The graph walker's state machine (``Walker``): a TF graph's ops resolved between its inputs and outputs
(identities looked through, constant predicates resolved, dead branches dropped, function calls inlined,
constant sub-graphs folded by TensorFlow itself). ``readers/tf_graph.py`` describes the steps, chooses the ends
(``readers/tf_ends.py``) and builds the IR from a walker; this module depends only on the lower ones
(``tf_sources``, ``tf_loops``, ``tf_frames``), so the TF readers import one another one way.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from ..errors import ModelFileError, Tf2TorchError, UnsupportedLayerError
from .tf_frames import has_frames, rewrite_frames
from .tf_loops import LOOP_OP_TYPES
from .tf_sources import Tensor, TFOptions, TFSource, clean_node_defs, first_line, tensor_id, tensor_name

RAW = "tf.raw>"
IDENTITY_OPS = frozenset({"Identity", "StopGradient", "Snapshot", "PreventGradient", "CheckNumerics",
                          "EnsureShape", "PlaceholderWithDefault", "RefIdentity"})
VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})
CALL_OPS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
SHAPE_OPS = frozenset({"Shape", "Size", "Rank"})  # folded when the tensor's shape is static (ShapeN: never)
LOOP_OPS = frozenset({"Enter", "Exit", "NextIteration", "LoopCond", "RefEnter", "RefExit", "RefNextIteration"})
LOOP_REASON = "a TF 1 while loop (Enter/Exit frames of control flow v1) that tf2torch could not rebuild as a While"


# -- the walk ------------------------------------------------------------------------------------------------


class Walker:
    def __init__(self, tf: Any, source: TFSource, options: TFOptions):
        self.tf = tf
        self.source = source
        self.options = options
        self.graph_def = clean_node_defs(source.graph_def)
        self.frame_reasons: dict[str, str] | None = None  # TF 1 while frames left as they are, with the reason
        if has_frames(self.graph_def):
            self.graph_def, self.frame_reasons = rewrite_frames(tf, self.graph_def)
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
        if t[0] not in self.nodes and self.frame_reasons is not None and any(
                n.name == t[0] for n in self.source.graph_def.node):
            raise Tf2TorchError(f"{what} {name!r}: a TF 1 while loop's gradient or bookkeeping op, dropped when the "
                                "loop was rebuilt as a While; name an op the model computes")
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
            reasons = self.frame_reasons or {}
            raise UnsupportedLayerError([(f, RAW + "While") for f in frames or loops[:1]],
                                        {f: reasons.get(f, LOOP_REASON) for f in frames or loops[:1]})
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
