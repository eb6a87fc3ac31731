"""Which tensors of a TensorFlow graph are the model's inputs and outputs, when neither the file (a signature)
nor the user (``--inputs`` / ``--outputs``) says: outputs are the sinks that may be a model's (not a variable's
update, a shape, a loss), inputs the placeholders on the path, and a ``placeholder_with_default`` fed by the
training input pipeline; after the walk, the guessed outputs that no longer depend on the inputs are dropped."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import Tf2TorchError
from .tf_sources import Tensor, tensor_id

if TYPE_CHECKING:
    from .tf_walker import Walker

NON_OUTPUT_OPS = frozenset({"NoOp", "Assert", "Assign", "AssignAdd", "AssignSub", "AssignVariableOp",
                            "AssignAddVariableOp", "AssignSubVariableOp", "SaveV2", "RestoreV2", "MergeV2Checkpoints",
                            "Const", "Placeholder", "PlaceholderWithDefault", "VariableV2", "VarHandleOp",
                            "Print", "PrintV2", "ScalarSummary", "HistogramSummary", "MergeSummary", "ImageSummary"})
TRAINING_SCOPES = ("gradients", "save", "train", "optimizer", "summaries")
SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank"})
# op types of a training input pipeline: tf.data iterators, queues, file readers
PIPELINE_OP_PREFIXES = ("Iterator", "OneShotIterator", "AnonymousIterator", "MultiDeviceIterator", "Queue",
                        "FIFOQueue", "PaddingFIFOQueue", "RandomShuffleQueue", "PriorityQueue", "ReaderRead")


@dataclass
class Ends:
    inputs: list[Tensor]
    input_names: list[str]
    outputs: list[Tensor]
    output_names: list[str]


def choose_outputs(walker: Walker) -> tuple[list[Tensor], list[str]]:
    """The outputs: ``--outputs``, the file's (a signature), or the sinks that may be the model's."""
    if walker.options.outputs:
        outs = [walker.known(n, "--outputs") for n in walker.options.outputs]
        return outs, [re.sub(r"\W", "_", o[0]) for o in outs]
    if walker.source.outputs:
        return [tensor_id(n) for n in walker.source.outputs], list(walker.source.output_names or [])
    consumed = {tensor_id(i)[0] for n in walker.graph_def.node for i in n.input if not i.startswith("^")}
    sinks = []
    for node in walker.graph_def.node:
        if node.name in consumed or node.op in NON_OUTPUT_OPS or node.name.split("/")[0] in TRAINING_SCOPES:
            continue
        op = walker.tf_graph.get_operation_by_name(node.name)
        if not op.outputs or op.outputs[0].shape.rank in (None, 0) or not may_be_an_output(walker, node.op, op):
            continue
        if not depends_on_placeholder(walker, node.name):
            continue
        sinks.append((node.name, 0))
    if not sinks:
        raise Tf2TorchError("cannot tell the graph's outputs (no sink with a batch axis depends on a placeholder);"
                            " name them with --outputs")
    return sinks, [re.sub(r"\W", "_", s[0]) for s in sinks]


def may_be_an_output(walker: Walker, op_type: str, op: Any) -> bool:
    """Not a variable's update (``ApplyAdam`` on a ref variable has an output, and nothing reads it in a
    TF 1.x training graph), nor a shape (a metric's ``Shape`` left unread), nor a string or a handle."""
    dtype = op.outputs[0].dtype
    if dtype._is_ref_dtype or op_type in SHAPE_OPS or walker.stateful(op_type):
        return False
    return dtype.is_floating or dtype.is_integer or dtype.is_complex or dtype.is_bool


def depends_on_placeholder(walker: Walker, name: str) -> bool:
    """Whether ``name`` reads a placeholder's values: one read only through its shape (``Shape``, ``Size``...)
    is shape arithmetic (the zero state of a TF 1 ``dynamic_rnn`` leaves such sinks), not an output."""
    seen, stack = set(), [name]
    while stack:
        n = stack.pop()
        if n in seen or n not in walker.nodes:
            continue
        seen.add(n)
        if walker.nodes[n].op == "Placeholder":
            return True
        if walker.nodes[n].op not in SHAPE_OPS:
            stack.extend(t[0] for t in walker.data_inputs(n))
    return False


def placeholders_on_the_path(walker: Walker, order: list[str],
                             also: set[str] = frozenset()) -> tuple[list[Tensor], list[str], set[str]]:
    """The default inputs: the placeholders in ``order`` not fed a constant (and the ops in ``also`` there), in
    graph order."""
    position = {n.name: i for i, n in enumerate(walker.graph_def.node)}
    phs = sorted((n for n in order if (walker.nodes[n].op == "Placeholder" and n not in walker.fed) or n in also),
                 key=position.get)
    return [(n, 0) for n in phs], [re.sub(r"\W", "_", n) for n in phs], set(phs)


def defaults_from_the_input_pipeline(walker: Walker, order: list[str]) -> set[str]:
    """The ``PlaceholderWithDefault`` ops in ``order`` whose default is read from the training input pipeline (a
    ``tf.data`` iterator, a queue, a file reader): those are the graph's inputs at inference, fed by the caller
    (deepbrain's 2018 frozen graph: ``img`` defaults to ``IteratorGetNext``, itself read from a string handle)."""
    from_pipeline: set[str] = set()
    for name in order:  # topological: a node's inputs come before it
        op = walker.nodes[name].op
        if op.startswith(PIPELINE_OP_PREFIXES) or any(d in from_pipeline for d in walker.deps(name)):
            from_pipeline.add(name)
    return {n for n in order if walker.nodes[n].op == "PlaceholderWithDefault"
            and any(d in from_pipeline for d in walker.deps(n))}


def live_sinks(walker: Walker, outputs: list[Tensor], names: list[str]) -> tuple[list[Tensor], list[str]]:
    """The guessed outputs that still depend on the inputs once the constants are fed: a batch norm's moving-mean
    update behind ``tf.cond(is_training)`` is a sink that resolves to the variable itself with ``is_training``
    false, and is no output of the model."""
    live = [(o, n) for o, n in zip(outputs, names) if walker.state.get(walker.resolve(o)[0]) == "dyn"]
    if not live:
        raise Tf2TorchError("cannot tell the graph's outputs (no sink with a batch axis depends on the inputs once "
                            "the constants are fed); name them with --outputs")
    return [o for o, _ in live], [n for _, n in live]
