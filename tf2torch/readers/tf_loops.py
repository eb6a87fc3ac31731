"""TF 2 while loops (``While`` / ``StatelessWhile``: ``tf.while_loop``, a Keras RNN traced into a graph) for
the graph walker: the loop's ``cond`` and ``body`` functions, read from the graph's function library, are each
walked like a graph of their own into a sub-IR that the ``While`` node's config carries
(``tf2torch/ops/tf_control.py`` assembles them, ``nn/control.TFWhile`` runs them in a Python loop).

Loop variables: a ``While``'s inputs are its loop variables and the body returns their next values in the same
order ([TF] ``ops/while_v2.py``). A variable the body returns unchanged (its argument, through identities) is
*invariant*: the tensors the loop captured (weights, the input sequence, the step count). An invariant variable
whose value is constant where the loop starts is fed to both functions as a constant, so a kernel read in the
body is folded into its ``MatMul`` like any other weight; the other variables are the functions' run-time
inputs. Ops of a body without a converter are listed with the rest, as ``<while>/body/<op>``, by the pass
after reading (``tf2torch/support.py``).

A SavedModel signature is frozen without lowering its control flow (``lower_control_flow=False``), which keeps
``While`` ops and their functions; TF 1 loop frames (``Enter`` / ``Exit`` / ``NextIteration``, from
``tf.compat.v1`` graphs with control flow v1) are rebuilt as ``While`` ops with functions before the walk
(``readers/tf_frames.py``), and read here like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ModelFileError
from ..graph import KerasGraph, Weight

LOOP_OP_TYPES = ("While", "StatelessWhile")
PASS_THROUGH = frozenset({"Identity", "IdentityN", "StopGradient", "Snapshot"})
WalkFunction = Callable[[Any, Any, Any], KerasGraph]  # (tf, TFSource, TFOptions) → the function's sub-IR


def function_def(walker: Any, name: str) -> Any:
    fdef = next((f for f in walker.graph_def.library.function if f.signature.name == name), None)
    if fdef is None:
        raise ModelFileError(f"function {name} is missing from the graph's library")
    return fdef


def loop_functions(walker: Any, op_name: str) -> tuple[Any, Any]:
    node = walker.nodes[op_name]
    return function_def(walker, node.attr["cond"].func.name), function_def(walker, node.attr["body"].func.name)


def function_graph(walker: Any, fdef: Any) -> tuple[Any, list[str], list[str]]:
    """The function as a GraphDef (its arguments are placeholders named after them; the graph's library copied
    in, for nested loops), its argument names and its results as tensor names, in signature order."""
    from tensorflow.python.framework import function_def_to_graph

    graph_def, flat = function_def_to_graph.function_def_to_graph_def(fdef)
    graph_def.library.CopyFrom(walker.graph_def.library)
    args = [a.name for a in fdef.signature.input_arg]
    results = [flat.get(fdef.ret[o.name], fdef.ret[o.name]) for o in fdef.signature.output_arg]
    return graph_def, args, results


def invariant_variables(walker: Any, op_name: str) -> set[int]:
    """Indices of the loop variables the body returns unchanged."""
    from .tf_sources import tensor_id

    _, body = loop_functions(walker, op_name)
    graph_def, args, results = function_graph(walker, body)
    nodes = {n.name: n for n in graph_def.node}
    invariant = set()
    for i, result in enumerate(results):
        t = tensor_id(result)
        while t[0] in nodes and nodes[t[0]].op in PASS_THROUGH:
            data = [x for x in nodes[t[0]].input if not x.startswith("^")]
            if not data:
                break
            t = tensor_id(data[t[1]] if nodes[t[0]].op == "IdentityN" else data[0])
        if i < len(args) and t == (args[i], 0):
            invariant.add(i)
    return invariant


def function_ir(walker: Any, fdef: Any, fed: dict[int, np.ndarray], outputs: list[int] | None,
                walk_function: WalkFunction) -> KerasGraph:
    """``fdef`` walked into an IR by ``walk_function`` (``tf_graph.walk_function``): arguments in ``fed`` are
    constants, the others its inputs (in order); ``outputs`` picks results (None: all)."""
    from .tf_sources import TFOptions, TFSource

    graph_def, args, results = function_graph(walker, fdef)
    picked = list(range(len(results))) if outputs is None else outputs
    source = TFSource(graph_def, fdef.signature.name, "function",
                      inputs=[f"{a}:0" for i, a in enumerate(args) if i not in fed],
                      input_names=[a for i, a in enumerate(args) if i not in fed],
                      outputs=[results[i] for i in picked], output_names=[f"output_{i}" for i in picked])
    options = TFOptions(constants={f"{args[i]}:0": value for i, value in fed.items()})
    return walk_function(walker.tf, source, options)


def loop_config(walker: Any, op_name: str, key: str, operand_values: list[np.ndarray | None],
                walk_function: WalkFunction) -> tuple[
        dict[str, Any], set[int], list[Weight], dict[str, Callable[[], np.ndarray]]]:
    """What the ``While`` node ``op_name`` (IR key ``key``) carries: its ``loop`` config (cond and body sub-IRs,
    the fed and the changing loop variables), the operands fed into the functions (no run-time value needed) and
    the functions' weights as the node's own (with loaders). Their ops without a converter are named after
    reading, as ``<key>/body/<op>`` (``tf2torch/support.py``)."""
    cond_def, body_def = loop_functions(walker, op_name)
    invariant = invariant_variables(walker, op_name)
    fed = {i: v for i, v in enumerate(operand_values) if i in invariant and v is not None}
    changing = [i for i in range(len(operand_values)) if i not in invariant]
    cond = function_ir(walker, cond_def, fed, None, walk_function)
    body = function_ir(walker, body_def, fed, changing, walk_function)
    weights: list[Weight] = []
    loaders: dict[str, Callable[[], np.ndarray]] = {}
    for part, graph in (("cond", cond), ("body", body)):
        for layer_key, layer in graph.layers.items():
            for w in layer.weights:
                name = f"{part}/{layer_key}/{w.name}"
                weights.append(Weight(name, tuple(w.shape), w.dtype, f"{op_name}::{name}"))
                loaders[f"{op_name}::{name}"] = (lambda g=graph, w=w: g.load_weight(w))
    config = {"cond": cond.to_json(), "body": body.to_json(), "fed": sorted(fed), "changing": changing}
    return config, set(fed), weights, loaders
