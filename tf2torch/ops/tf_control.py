"""Converters for TensorFlow functions: TF 2 loops and the TensorLists they carry (``tf.raw>While``,
``tf.raw>TensorList*``), and Keras layers converted from their traced call function (``tf.traced>KerasLayer``).

A ``While`` node's config holds its ``cond`` and ``body`` functions as sub-IRs (``readers/tf_loops.py``); they
are assembled here like any graph, in TensorFlow's layout, on the values the loop variables take when the loop
starts, into the two submodules of a ``TFWhile``. Their weights are the ``While`` node's own, each read once.
"""

from __future__ import annotations

from typing import Any

import torch

from ..contract import Converted, LayerSpec
from ..graph import TRACED_LAYER, KerasGraph, WeightFunction
from ..layout import CHANNELS_FIRST, KERAS, normalize, to_keras_perm
from ..nn.control import TFTensorList, TFTensorListIndexed, TFWhile
from ..registry import converter
from .tf_raw import TORCH_DTYPES, _slots, attr, operand, raw, tensor


def function_module(spec: LayerSpec, part: str, examples: list[list[torch.Tensor]],
                    graph_json: dict[str, Any] | None = None) -> torch.nn.Module:
    """A function's sub-IR (the loop's ``part``, ``cond`` or ``body``, unless ``graph_json`` is given) assembled
    on ``examples`` (per input, its values at each stand-in size, in TF's layout: a dimension that differs is
    open for the function's converters too); its weights are the node's ``<part>/<op>/<name>``."""
    graph = KerasGraph.from_json(graph_json if graph_json is not None else spec.config["loop"][part])
    handles = {w.name: w for w in spec.weight_handles}
    owner = {id(w): handles[f"{part}/{key}/{w.name}"] for key, layer in graph.layers.items() for w in layer.weights}
    graph.weight_source = WeightFunction(lambda w: spec._load(owner[id(w)]))
    assert spec.assemble_subgraph is not None
    return spec.assemble_subgraph(graph, examples)


def loop_example(spec: LayerSpec, k: int) -> list[torch.Tensor]:
    """Run-time input ``k`` as the function sees it (in TF's layout), at each stand-in size."""
    layout = spec.input_layouts[k]
    if not isinstance(layout, str):
        spec.fail("an input arrives flattened channels-first; tf2torch cannot run a TF function on it")
    return [v.permute(to_keras_perm(v.dim())) if normalize(layout, v.dim()) == CHANNELS_FIRST else v
            for v in spec.input_examples[k]]


@raw("While", "StatelessWhile")
def convert_while(spec: LayerSpec) -> Converted:
    for name in ("body", "cond", "output_shapes", "parallel_iterations", "shape"):
        attr(spec, name)  # the functions are carried in "loop"; shapes and parallelism do not change values
    loop = spec.config["loop"]
    slots: list[tuple[str, int]] = []
    consts: list[torch.Tensor] = []
    examples: list[Any] = []
    for i, entry in enumerate(spec.config["operands"]):
        if entry.get("fed"):
            slots.append(("fed", 0))
            continue
        if "input" in entry:
            slots.append(("input", entry["input"]))
            examples.append(loop_example(spec, entry["input"]))
            continue
        value = tensor(operand(spec, i))
        slots.append(("const", len(consts)))
        consts.append(value)
        examples.append([value])
    cond = function_module(spec, "cond", examples)
    body = function_module(spec, "body", examples)
    return Converted(TFWhile(cond, body, slots, consts, loop["changing"]), input_layouts=KERAS,
                     output_layouts=KERAS)


@raw("TensorListReserve", "TensorListFromTensor", "TensorListGetItem", "TensorListSetItem", "TensorListStack",
     "TensorListLength")
def convert_tensor_list(spec: LayerSpec) -> Converted:
    op = spec.config["op"]
    dtype = attr(spec, "element_dtype", "float32")
    if dtype not in TORCH_DTYPES:
        spec.fail(f"element dtype {dtype} is not supported")
    attr(spec, "shape_type")
    if op == "TensorListStack":
        attr(spec, "num_elements")  # a check TF makes; the stacked tensor is the list itself
    slots, consts = _slots(spec)
    if op == "TensorListSetItem" and attr(spec, "resize_if_index_out_of_bounds", False):  # a list that grows
        return Converted(TFTensorListIndexed("TensorListSetItemResize", slots, consts, TORCH_DTYPES[dtype]),
                         input_layouts=KERAS, output_layouts=KERAS)
    if op == "TensorListReserve" and operand(spec, 0) is None:
        spec.fail("the element shape is computed at run time")
    return Converted(TFTensorList(op, slots, consts, TORCH_DTYPES[dtype]), input_layouts=KERAS,
                     output_layouts=KERAS)


@raw("TensorListGather", "TensorListScatterIntoExistingList")
def convert_tensor_list_indexed(spec: LayerSpec) -> Converted:
    """The list ops a TF 1 ``TensorArray``'s ``stack``/``gather`` and ``unstack``/``scatter`` become
    (``readers/tf_frames.py``); the element shape operand of a gather is a check TF makes."""
    dtype = attr(spec, "element_dtype", "float32")
    if dtype not in TORCH_DTYPES:
        spec.fail(f"element dtype {dtype} is not supported")
    slots, consts = _slots(spec)
    return Converted(TFTensorListIndexed(spec.config["op"], slots, consts, TORCH_DTYPES[dtype]),
                     input_layouts=KERAS, output_layouts=KERAS)


@converter(TRACED_LAYER)
def convert_traced_layer(spec: LayerSpec) -> Converted:
    """A Keras layer converted from its traced call function (``readers/savedmodel_traced.py``): the function's
    graph, in TensorFlow's layout, as one submodule named after the layer."""
    spec.config.get("keras_class_name")
    graph = spec.config["function"]
    if len(graph["inputs"]) != len(spec.input_examples):
        spec.fail(f"the traced call takes {len(graph['inputs'])} tensors, the layer is called with "
                  f"{len(spec.input_examples)}")
    examples = [loop_example(spec, k) for k in range(len(spec.input_examples))]
    for ref, values in zip(graph["inputs"], examples):  # a trace holds for the shapes it was traced with
        traced = graph["layers"][ref["node"]]["config"]["batch_shape"]
        for value in values:
            if traced is not None and (len(traced) != value.dim() or any(
                    t is not None and i > 0 and t != d for i, (t, d) in enumerate(zip(traced, value.shape)))):
                spec.fail(f"the layer's saved call function was traced for inputs of shape {traced}, the layer is "
                          f"called on {[None, *value.shape[1:]]}; TensorFlow cannot run it on that shape either")
    return Converted(function_module(spec, "call", examples, graph), input_layouts=KERAS, output_layouts=KERAS)
