"""TF 1 while loops (control flow v1: ``tf.nn.dynamic_rnn``, ``bidirectional_dynamic_rnn``, ``tf.while_loop``
and ``tf.map_fn`` built with control flow v2 off) rewritten, in the GraphDef, into the TF 2 ``While`` the rest of
the walker already reads (``readers/tf_loops.py``): structural, before the walk; it never asks what converts.

A v1 loop is a *frame* ([TF] ``ops/control_flow_ops.py`` ``WhileContext``): each loop variable enters through
``Enter`` (``is_constant=False``) → ``Merge(Enter, NextIteration)`` → ``Switch(Merge, LoopCond)``; ``Switch:0``
leaves through ``Exit``, ``Switch:1`` is the body's argument and the body's result feeds ``NextIteration``.
Tensors the loop captures enter through ``Enter(is_constant=True)``. The rewrite makes
- ``cond``: arguments the ``Merge`` outputs and the captures, result the ``LoopCond``'s input;
- ``body``: arguments the ``Switch:1`` outputs and the captures, results the ``NextIteration`` inputs and the
  captures unchanged (so they are invariant, as ``while_v2`` passes captures);
- one ``While`` node whose outputs the ``Exit`` ops become (``Identity`` of the ``While``, same names).
TensorArrays (``TensorArrayV3`` and its Write/Read/Scatter/Gather/Size/Close) become TensorLists first
([TF] ``list_ops.py``): the *flow* tensor a TensorArray threads through the loop becomes the list, the resource
handle is dropped (``TensorArrayGradV3``, gradients only, is removed with everything that reads it).
A frame whose body holds another frame (nested loops) is not rewritten: it is refused by name with the reason.
Nodes of a rewritten frame that no function reads (gradient stacks) are removed with what reads them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ModelFileError

FRAME_OPS = frozenset({"Enter", "NextIteration", "LoopCond", "Exit", "RefEnter", "RefExit", "RefNextIteration"})
# (a body's Merge and Switch ops are its tf.cond's: the loop's own are the functions' arguments)
TA_OPS = {"TensorArrayWriteV3": "TensorListSetItem", "TensorArrayReadV3": "TensorListGetItem",
          "TensorArrayScatterV3": "TensorListScatterIntoExistingList", "TensorArrayGatherV3": "TensorListGather",
          "TensorArraySizeV3": "TensorListLength"}
HANDLE_PASS = frozenset({"Enter", "RefEnter", "Identity", "Switch", "RefSwitch"})  # a handle passes through
DROPPED_TA_OPS = frozenset({"TensorArrayCloseV3", "TensorArrayGradV3"})  # bookkeeping, gradients
PASS_FLOW = frozenset({"Enter", "Merge", "Switch", "NextIteration", "Exit", "Identity"})
NESTED_REASON = "a nested TF 1 while loop (a frame inside another frame) is not converted"


def has_frames(graph_def: Any) -> bool:
    return any(n.op in ("Enter", "RefEnter") for n in graph_def.node)


def split(name: str) -> tuple[str, int]:
    if name.startswith("^"):
        return name[1:], -1
    op, _, index = name.partition(":")
    return op, int(index) if index else 0


def joined(t: tuple[str, int]) -> str:
    return t[0] if t[1] == 0 else f"{t[0]}:{t[1]}"


def rewrite_frames(tf: Any, graph_def: Any) -> tuple[Any, dict[str, str]]:
    """``graph_def`` (a copy) with its v1 while frames as ``While`` ops and its TensorArrays as TensorLists;
    and the frames left as they are, each with the reason (nested, or not the shape a v1 loop has)."""
    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    if not has_frames(out):
        return out, {}
    import_graph(tf, out)  # a graph TensorFlow cannot import is refused before it is rewritten
    nodes = {n.name: n for n in out.node}
    drop_nodes(out, nodes, tensor_arrays_as_lists(tf, out, nodes))
    graph = import_graph(tf, out)
    frames = frames_of(nodes)
    refused = nested_frames(nodes, frames)
    reasons = {f: NESTED_REASON for f in refused}
    removed: set[str] = set()
    for frame in frames:  # in the graph's order: a loop reading another's results comes after it
        if frame not in refused:
            try:  # (a frame is changed only once its functions are built)
                removed |= rewrite_frame(tf, out, nodes, graph, frame, frames[frame])
            except (ModelFileError, KeyError, ValueError, IndexError) as exc:  # (a gradient loop left half
                # dropped is one: refused by name, should an output read it)
                reasons[frame] = (f"a TF 1 while loop that tf2torch cannot rebuild as a While "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
                continue
            graph = import_graph(tf, out)  # the While's output shapes, for the loops after it
    drop_nodes(out, nodes, removed)
    return out, reasons


def import_graph(tf: Any, graph_def: Any) -> Any:
    """The graph as TensorFlow types it (dtypes and shapes of the frames' tensors)."""
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.graph_util.import_graph_def(graph_def, name="")
    except Exception as exc:
        raise ModelFileError(f"TensorFlow cannot import the graph ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    return graph


def consumers(nodes: dict[str, Any]) -> dict[str, list[tuple[str, int, int]]]:
    """Op → (reader, the reader's input position, the output read) for every data edge."""
    users: dict[str, list[tuple[str, int, int]]] = {}
    for n in nodes.values():
        for pos, i in enumerate(n.input):
            op, index = split(i)
            if index >= 0:
                users.setdefault(op, []).append((n.name, pos, index))
    return users


def drop_nodes(graph_def: Any, nodes: dict[str, Any], removed: set[str]) -> None:
    """Remove ``removed`` and everything that reads them (data edges); control edges on them are cut."""
    users = consumers(nodes)
    stack = list(removed)
    while stack:
        for reader, _, _ in users.get(stack.pop(), []):
            if reader not in removed:
                removed.add(reader)
                stack.append(reader)
    kept = [n for n in graph_def.node if n.name not in removed]
    for n in kept:
        inputs = [i for i in n.input if not (i.startswith("^") and i[1:] in removed)]
        if len(inputs) != len(n.input):
            del n.input[:]
            n.input.extend(inputs)
    del graph_def.node[:]
    graph_def.node.extend(kept)
    for name in removed:
        nodes.pop(name, None)
    nodes.update({n.name: n for n in graph_def.node})


# -- TensorArrays → TensorLists ----------------------------------------------------------------------------------
def tensor_arrays_as_lists(tf: Any, graph_def: Any, nodes: dict[str, Any]) -> set[str]:
    """Each ``TensorArrayV3`` as ``TensorListReserve`` and its ops as list ops on the flow; returns the nodes to
    remove (the handle's ``Enter``/``Identity`` copies, ``Close``, gradients)."""
    users = consumers(nodes)
    removed: set[str] = set()
    variant: list[str] = []
    arrays = [n.name for n in graph_def.node if n.op == "TensorArrayV3"]
    flows = {f"{name}:1": name for name in arrays}
    for name in arrays:
        handles, readers = handle_readers(nodes, users, name)
        if any(nodes[r].op not in TA_OPS and nodes[r].op not in DROPPED_TA_OPS for r in readers):
            flows.pop(f"{name}:1")  # an op with no list form (Concat, Split...): left as is, refused by name
            continue
        for reader in readers:
            if nodes[reader].op in TA_OPS:
                variant.extend(list_op(tf, graph_def, nodes, reader, nodes[name].attr["dynamic_size"].b))
            else:
                removed.add(reader)
        removed |= handles - {name}
        reserve(tf, graph_def, nodes, name)
        variant.append(name)
    for n in graph_def.node:  # the flow output becomes the list, output 0
        if any(i in flows for i in n.input):
            inputs = [flows.get(i, i) for i in n.input]
            del n.input[:]
            n.input.extend(inputs)
    return removed | retype_flow(tf, nodes, consumers(nodes), variant)


def handle_readers(nodes: dict[str, Any], users: dict[str, list[tuple[str, int, int]]],
                   name: str) -> tuple[set[str], list[str]]:
    """The copies of TensorArray ``name``'s handle (through ``Enter``, ``Identity``, a ``tf.cond``'s ``Switch``
    and ``Merge``) and the ops that read it as their handle."""
    handles, readers, stack = {name}, [], [name]
    while stack:
        source = stack.pop()
        for reader, pos, index in users.get(source, []):
            op = nodes[reader].op
            if source == name and index != 0:  # the flow, not the handle
                continue
            if reader not in handles and (op in HANDLE_PASS and pos == 0 or op in ("Merge", "RefMerge")):
                handles.add(reader)
                stack.append(reader)
            elif pos == 0 and reader not in readers:
                readers.append(reader)
    return handles, readers


def shape_const(tf: Any, graph_def: Any, nodes: dict[str, Any], name: str, shape: Any) -> str:
    """A ``Const`` element shape: the TensorArray's, -1 for an unknown dimension, or -1 for an unknown rank."""
    known = shape is not None and shape.rank is not None
    value = tf.make_tensor_proto([-1 if d is None else d for d in shape.as_list()] if known else -1,
                                 dtype=tf.int32)
    const = graph_def.node.add()
    const.name, const.op = f"{name}/tf2torch_element_shape", "Const"
    const.attr["dtype"].type = tf.int32.as_datatype_enum
    const.attr["value"].tensor.CopyFrom(value)
    nodes[const.name] = const
    return const.name


def reserve(tf: Any, graph_def: Any, nodes: dict[str, Any], name: str) -> None:
    node = nodes[name]
    dtype = node.attr["dtype"].type
    shape = tf.TensorShape(node.attr["element_shape"].shape) if "element_shape" in node.attr else None
    element_shape = shape_const(tf, graph_def, nodes, name, shape)
    size = node.input[0]
    node.op = "TensorListReserve"
    node.ClearField("attr")  # (stale _output_shapes with it)
    node.attr["element_dtype"].type = dtype
    node.attr["shape_type"].type = tf.int32.as_datatype_enum
    del node.input[:]
    node.input.extend([element_shape, size])


def list_op(tf: Any, graph_def: Any, nodes: dict[str, Any], name: str, grows: bool) -> Iterable[str]:
    """A TensorArray op as its TensorList op; yields it when its output is the list (Write, Scatter). A write
    to a TensorArray with ``dynamic_size`` grows the list (``resize_if_index_out_of_bounds``, as ``while_v2``
    writes it)."""
    node = nodes[name]
    ins = [i for i in node.input if not i.startswith("^")]
    controls = [i for i in node.input if i.startswith("^")]
    dtype = node.attr["dtype" if "dtype" in node.attr else "T"].type
    op = TA_OPS[node.op]
    shape = tf.TensorShape(node.attr["element_shape"].shape) if "element_shape" in node.attr else None
    if op == "TensorListSetItem":  # (handle, index, value, flow)
        new = [ins[3], ins[1], ins[2]]
    elif op == "TensorListScatterIntoExistingList":  # (handle, indices, value, flow)
        new = [ins[3], ins[2], ins[1]]
    elif op == "TensorListLength":  # (handle, flow)
        new = [ins[1]]
    else:  # Read (handle, index, flow), Gather (handle, indices, flow)
        new = [ins[2], ins[1], shape_const(tf, graph_def, nodes, name, shape)]
    node.op = op
    node.ClearField("attr")  # (stale _output_shapes with it)
    if op != "TensorListLength":
        node.attr["element_dtype"].type = dtype
    if op == "TensorListSetItem" and grows:
        node.attr["resize_if_index_out_of_bounds"].b = True
    del node.input[:]
    node.input.extend(new + controls)
    if op in ("TensorListSetItem", "TensorListScatterIntoExistingList"):
        yield name


def retype_flow(tf: Any, nodes: dict[str, Any], users: dict[str, list[tuple[str, int, int]]],
                lists: list[str]) -> set[str]:
    """The frame ops a list now flows through (once a float flow) carry a variant; returns the other ops that
    read a flow as a float (the gradients' ``StackPushV2`` of it), to remove."""
    stack, seen, readers = list(lists), set(lists), set()
    while stack:
        for reader, _, _ in users.get(stack.pop(), []):
            op = nodes[reader].op
            if op in PASS_FLOW and reader not in seen:
                nodes[reader].attr["T"].type = tf.variant.as_datatype_enum
                if "_output_shapes" in nodes[reader].attr:  # (a flow is a scalar, a list too: still, stale)
                    del nodes[reader].attr["_output_shapes"]
                seen.add(reader)
                stack.append(reader)
            elif op not in PASS_FLOW and not op.startswith("TensorList"):
                readers.add(reader)
    return readers


# -- frames → While ----------------------------------------------------------------------------------------------
def frames_of(nodes: dict[str, Any]) -> dict[str, list[str]]:
    """Frame name → its ``Enter`` ops, in the graph's order."""
    frames: dict[str, list[str]] = {}
    for n in nodes.values():
        if n.op in ("Enter", "RefEnter"):
            frames.setdefault(n.attr["frame_name"].s.decode("utf8", "replace"), []).append(n.name)
    return frames


def nested_frames(nodes: dict[str, Any], frames: dict[str, list[str]]) -> set[str]:
    """Frames that hold another frame's ``Enter`` (walking forward from their own, up to their ``Exit`` ops),
    and the frames they hold."""
    users = consumers(nodes)
    frame_of = {e: f for f, enters in frames.items() for e in enters}
    refused: set[str] = set()
    for frame, enters in frames.items():
        seen, stack = set(enters), list(enters)
        while stack:
            for reader, _, _ in users.get(stack.pop(), []):
                if reader in seen or nodes[reader].op in ("Exit", "RefExit"):
                    continue
                seen.add(reader)
                stack.append(reader)
                if reader in frame_of and frame_of[reader] != frame:
                    refused |= {frame, frame_of[reader]}
    return refused


def frame_parts(nodes: dict[str, Any], frame: str, enters: list[str]) -> dict[str, Any]:
    """The frame's loop variables (Enter, Merge, Switch, NextIteration, Exit or None), captures and predicate."""
    users = consumers(nodes)

    def reader(name: str, op: str, index: int = 0) -> str | None:
        found = [r for r, _, i in users.get(name, []) if i == index and nodes[r].op in (op, "Ref" + op)]
        return found[0] if found else None

    variables, captures, preds = [], [], set()
    for e in enters:
        if nodes[e].attr["is_constant"].b:
            captures.append(e)
            continue
        merge = reader(e, "Merge")
        switch = reader(merge, "Switch") if merge else None
        if switch is None:
            raise ModelFileError(f"while frame {frame}: loop variable {e} has no Merge and Switch")
        nxt = [split(i)[0] for i in nodes[merge].input if nodes[split(i)[0]].op in ("NextIteration",
                                                                                     "RefNextIteration")]
        if len(nxt) != 1:
            raise ModelFileError(f"while frame {frame}: {merge} does not merge one NextIteration")
        variables.append((e, merge, switch, nxt[0], reader(switch, "Exit")))
        preds.add(split(nodes[switch].input[1])[0])
    if len(preds) != 1 or nodes[next(iter(preds))].op != "LoopCond":
        raise ModelFileError(f"while frame {frame}: its Switch ops are not driven by one LoopCond")
    return {"variables": variables, "captures": captures, "pred": split(nodes[next(iter(preds))].input[0])}


def rewrite_frame(tf: Any, graph_def: Any, nodes: dict[str, Any], graph: Any, frame: str,
                  enters: list[str]) -> set[str]:
    """One frame as a ``While`` node (named after the frame's scope) with a cond and a body function; its
    ``Exit`` ops become that node's outputs. Returns the frame's nodes, to remove."""
    parts = frame_parts(nodes, frame, enters)
    variables = parts["variables"]
    everything = {(v[1], 0) for v in variables} | {(v[2], 1) for v in variables} | {(c, 0) for c in
                                                                                    parts["captures"]}
    _, read = function_ops(nodes, everything, [parts["pred"]] + [split(nodes[v[3]].input[0]) for v in variables])
    captures = [c for c in parts["captures"] if (c, 0) in read]  # (gradient stacks enter the frame too)
    name = frame[:-len("/while_context")] if frame.endswith("/while_context") else frame + "/while"
    while name in nodes:
        name += "_v2"
    fn = name.replace("/", "_")
    taken = {f.signature.name for f in graph_def.library.function}
    while f"{fn}_body_tf2torch" in taken or f"{fn}_cond_tf2torch" in taken:
        fn += "_"
    capture_args = [(c, 0) for c in captures]
    inits = [split(first_input(nodes[v[0]])) for v in variables] + [split(first_input(nodes[c])) for c in captures]
    tensors = [graph.get_operation_by_name(t[0]).outputs[t[1]] for t in inits]
    types = [t.dtype for t in tensors]
    body_args = [(v[2], 1) for v in variables] + capture_args
    results = [split(nodes[v[3]].input[0]) for v in variables] + capture_args
    body, body_ops, shapes = loop_shapes(tf, nodes, f"{fn}_body_tf2torch", body_args, types,
                                         [t.shape for t in tensors], results)
    cond, cond_ops, _ = make_function(tf, nodes, f"{fn}_cond_tf2torch", [(v[1], 0) for v in variables] +
                                      capture_args, types, shapes, [parts["pred"]])
    graph_def.library.function.extend([cond, body])
    node = graph_def.node.add()
    node.name, node.op = name, "While"
    node.input.extend(joined(t) for t in inits)
    node.attr["T"].list.type.extend([t.as_datatype_enum for t in types])
    node.attr["cond"].func.name = cond.signature.name
    node.attr["body"].func.name = body.signature.name
    node.attr["output_shapes"].list.shape.extend([s.as_proto() for s in shapes])
    node.attr["parallel_iterations"].i = nodes[enters[0]].attr["parallel_iterations"].i or 10
    nodes[name] = node
    exits_as_outputs(nodes, name, variables)
    loop_cond = split(nodes[variables[0][2]].input[1])[0]
    frame_nodes = {x for v in variables for x in v[:4]} | set(parts["captures"]) | {loop_cond}
    return frame_nodes | {o for o in cond_ops | body_ops if nodes[o].op != "Const"}


def exits_as_outputs(nodes: dict[str, Any], name: str, variables: list[tuple[Any, ...]]) -> None:
    """Each loop variable's ``Exit`` becomes an ``Identity`` of the ``While`` output ``i`` (same name)."""
    for i, v in enumerate(variables):
        if v[4] is not None:
            exit_ = nodes[v[4]]
            dtype = exit_.attr["T"].type
            exit_.op = "Identity"
            exit_.ClearField("attr")
            exit_.attr["T"].type = dtype
            del exit_.input[:]
            exit_.input.append(f"{name}:{i}")


def loop_shapes(tf: Any, nodes: dict[str, Any], name: str, args: list[tuple[str, int]], types: list[Any],
                shapes: list[Any], results: list[tuple[str, int]]) -> tuple[Any, set[str], list[Any]]:
    """The body function and the loop variables' shapes: from their initial values, relaxed where the body
    returns another shape until the body keeps them (the shape invariants ``while_loop`` checked; a graph
    read without its ``_output_shapes`` has lost them)."""
    for _ in range(len(shapes) + 2):
        body, ops, returned = make_function(tf, nodes, name, args, types, shapes, results)
        relaxed = [s.most_specific_compatible_shape(r) for s, r in zip(shapes, returned)]
        if all(a.as_proto() == b.as_proto() for a, b in zip(relaxed, shapes)):
            return body, ops, shapes
        shapes = relaxed
    raise ModelFileError(f"{name}: the loop variables' shapes do not settle")


def first_input(node: Any) -> str:
    return next(i for i in node.input if not i.startswith("^"))


def function_ops(nodes: dict[str, Any], args: set[tuple[str, int]],
                 results: list[tuple[str, int]]) -> tuple[set[str], set[tuple[str, int]]]:
    """The ops between ``args`` and ``results`` (data edges), and the arguments they read."""
    ops, read = set(), {t for t in results if t in args}
    stack = [t[0] for t in results if t not in args]
    while stack:
        n = stack.pop()
        if n in ops:
            continue
        if nodes[n].op in FRAME_OPS:
            raise ModelFileError(f"{n} ({nodes[n].op}) is read inside a while loop's body outside its frame")
        ops.add(n)
        for t in map(split, nodes[n].input):
            if t in args:
                read.add(t)
            elif t[1] >= 0:
                stack.append(t[0])
    return ops, read


def make_function(tf: Any, nodes: dict[str, Any], name: str, args: list[tuple[str, int]], types: list[Any],
                  shapes: list[Any], results: list[tuple[str, int]]) -> tuple[Any, set[str], list[Any]]:
    """The ops between ``args`` and ``results`` (control edges cut) as a FunctionDef whose arguments are
    ``arg<k>`` placeholders of ``types`` and ``shapes``; those ops' names; the results' shapes."""
    from tensorflow.python.framework import graph_to_function_def

    arg_names = {t: f"arg{k}" for k, t in enumerate(args)}
    ops, _ = function_ops(nodes, set(args), results)
    fn_def = tf.compat.v1.GraphDef()
    for t, dtype, shape in zip(args, types, shapes):
        ph = fn_def.node.add()
        ph.name, ph.op = arg_names[t], "Placeholder"
        ph.attr["dtype"].type = dtype.as_datatype_enum
        ph.attr["shape"].shape.CopyFrom(shape.as_proto())
    for n in sorted(ops):
        copy = fn_def.node.add()
        copy.CopyFrom(nodes[n])
        del copy.input[:]
        copy.input.extend(arg_names[t] if t in arg_names else joined(t)
                          for t in map(split, nodes[n].input) if t[1] >= 0)
        for key in ("_output_shapes", "_class"):
            if key in copy.attr:
                del copy.attr[key]
    fn_graph = tf.Graph()
    with fn_graph.as_default():
        tf.graph_util.import_graph_def(fn_def, name="")
    placeholders = [fn_graph.get_tensor_by_name(f"{arg_names[t]}:0") for t in args]
    outs = [fn_graph.get_tensor_by_name(f"{arg_names[t]}:0" if t in arg_names else f"{t[0]}:{t[1]}")
            for t in results]
    fdef = graph_to_function_def.graph_to_function_def(
        fn_graph, fn_graph.get_operations(), placeholders, outs, [f"out{k}" for k in range(len(outs))])
    fdef.signature.name = name
    for k, shape in enumerate(shapes):
        fdef.arg_attr[k].attr["_output_shapes"].list.shape.add().CopyFrom(shape.as_proto())
    return fdef, ops, [o.shape for o in outs]
