"""IR + converters → one ``torch.fx.GraphModule`` whose submodules are named after the Keras layers.

Shapes are found by running each converted module once on small example inputs (batch 2) as the graph is
built, so converters see real input shapes without a shape-inference table of our own. When a model input
has dynamic dimensions, a second set of examples with other sizes runs beside the first; a dimension that
differs between the two is dynamic (None) for the converters.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from . import contract, memory_format, registry, training
from . import converters as _converters  # noqa: F401  (every shipped converter registered before the first lookup)
from . import layout as L
from . import ops as _ops  # noqa: F401
from .dtypes import compute_dtype, input_dtype, parse_forced
from .errors import ConversionError, ModelFileError, Tf2TorchError, UnsupportedLayerError
from .glibc import malloc_trim
from .graph import InputSpec, KerasGraph, Layer, Node, TensorRef
from .masks import MaskRules
from .naming import TorchNames, legal_segment
from .nn.inplace import KerasGraphModule
from .nn.reshaping import flat_channels_first_to_keras
from .shapes import predicted_output
from .stand_ins import DYNAMIC_SIZES, EXAMPLE_BATCH, skip_random_init
from .tensor_state import TensorState, example

MAX_EXAMPLE_ELEMENTS = 1 << 26  # per example input (256 MiB of float32): shapes are found by running examples
NO_OP_INPUT = "InputLayer"
TRIM_EVERY_BYTES = 64 << 20  # stored weight bytes converted between two returns of freed heap pages to the OS


def stored_bytes(layer: Layer) -> int:
    """The bytes a layer's stored weights declare (4 a value where the dtype is not numpy's)."""
    total = 0
    for weight in layer.weights:
        try:
            itemsize = np.dtype(weight.dtype).itemsize
        except TypeError:
            itemsize = 4
        total += math.prod(int(d or 0) for d in weight.shape) * itemsize
    return total


class FreedHeap:
    """Gives freed heap pages back to the OS every ``TRIM_EVERY_BYTES`` of converted weights. glibc keeps a freed
    chunk resident until the top of the heap is free, and converting interleaves weights that stay (a Dense's
    transposed kernel) with temporaries of the same sizes (blocks of stored rows, the throw-away weight torch makes
    in ``nn.Linear``), so the holes between kept weights never get back: a 1.3 GB BERT-large-sized ``.h5`` peaked
    at 1.26x its weight bytes above ``import torch`` through ``tf2torch.convert`` (the command line's fixed mmap
    threshold hides it), 1.04x with this. ``malloc_trim(0)`` releases whole free pages anywhere in the heap (glibc
    >= 2.8), without the process-wide side effect of ``mallopt``; elsewhere it does nothing."""

    def __init__(self) -> None:
        self.pending = 0

    def after(self, layer: Layer) -> None:
        self.pending += stored_bytes(layer)
        if self.pending >= TRIM_EVERY_BYTES:
            self.pending = 0
            malloc_trim()


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    current = root
    for part in parents:
        if not hasattr(current, part):
            current.add_module(part, nn.Module())
        current = getattr(current, part)
    current.add_module(leaf, module)


def check_supported(graph: KerasGraph) -> None:
    """Every layer without a converter, reported at once, before anything is built."""
    missing, reasons = [], {}
    for key, layer in graph.layers.items():
        if layer.class_name == NO_OP_INPUT:
            continue
        if layer.class_name == "Lambda":
            missing.append((key, layer.class_name))
            reasons[key] = ("stores Python bytecode, which tf2torch never executes; replace the Lambda with a "
                            "built-in layer or register a converter for it")
        elif registry.lookup(layer.class_name) is None:
            missing.append((key, layer.class_name))
            reason = registry.refusal_reason(layer.class_name)  # a user's class named like a Keras layer
            if reason is not None:
                reasons[key] = reason
    if missing:
        raise UnsupportedLayerError(missing, reasons)


@dataclass
class BuiltCall:
    """One conversion of a layer, for calls whose inputs share ``signature`` (shapes, layouts, dtypes)."""

    signature: tuple[Any, ...]
    path: str
    module: nn.Module
    converted: contract.Converted


class StandInSizeError(Tf2TorchError):
    """A layer refused the stand-in sizes given to the dimensions the model leaves open."""

    def __init__(self, error: Tf2TorchError, sizes: tuple[int, int], inputs: list[str]):
        self.error = error
        super().__init__(f"{error} (while building, the open dimensions of input(s) {', '.join(inputs)} were "
                         f"given the stand-in sizes {sizes[0]} and {sizes[1]}; give the real sizes with "
                         "--input-shape / input_shapes=)")


class ExampleTooLarge(Exception):
    """The next stand-in sizes would make example tensors larger than ``MAX_EXAMPLE_ELEMENTS``."""


def check_example_size(name: str, sizes: Sequence[Sequence[int]]) -> None:
    """Refuse, before allocating, an example input too large to build with (a declared [100000, 100000, 3])."""
    elements = max(math.prod(s) for s in sizes)
    if elements > MAX_EXAMPLE_ELEMENTS:
        raise Tf2TorchError(f"input {name}: shape {list(sizes[0][1:])} is too large to build the model with (an "
                            f"example batch of {elements:,} values, limit {MAX_EXAMPLE_ELEMENTS:,}); give a smaller "
                            "shape with --input-shape (input_shapes=...)")


class Assembler:
    def __init__(self, graph: KerasGraph, layout: str = "channels_first",
                 input_shapes: Sequence[Sequence[int | None]] | None = None,
                 dynamic_sizes: tuple[int, int] = DYNAMIC_SIZES[0], dtype: str | None = None,
                 example_batch: int = EXAMPLE_BATCH):
        if layout not in ("channels_first", "keras"):
            raise Tf2TorchError(f"layout must be 'channels_first' or 'keras', not {layout!r}")
        self.graph = graph
        self.layout = layout
        self.input_shapes = input_shapes
        self.dynamic_sizes = dynamic_sizes
        self.example_batch = example_batch
        self.forced_dtype = parse_forced(dtype)
        self.notices: list[str] = []
        self.fx = fx.Graph()
        self.root = nn.Module()
        self.names = TorchNames(graph.containers)
        self.input_names: list[str] = []
        self.open_inputs: list[str] = []
        self.image_inputs: list[fx.Node] = []  # 4-D channels-first placeholders (memory_format)
        self.states: dict[TensorRef, TensorState] = {}
        self.built: dict[str, list[BuiltCall]] = {}
        self.masks = MaskRules(self.fx, graph.layers, graph.keras_major, self.add_mask_module)
        self.multi_output: dict[str, tuple[fx.Node, list[L.Layout], list[list[torch.Tensor]],
                                           list[TensorState | None]]] = {}

    # -- inputs -----------------------------------------------------------------------------------------
    def _input_shape(self, i: int) -> tuple[int | None, ...]:
        spec = self.graph.input_specs[i]
        if self.input_shapes is not None and i < len(self.input_shapes) and self.input_shapes[i] is not None:
            given = tuple(self.input_shapes[i])
            if not spec.declared:
                return given
            check_layout_of_given_shape(spec.name, given, spec.shape)
            if len(given) != len(spec.shape):
                raise Tf2TorchError(f"input {spec.name}: --input-shape has {len(given)} dimensions, the model "
                                    f"expects {len(spec.shape)} (without the batch axis)")
            return given
        return spec.shape

    @staticmethod
    def _input_spec(specs: dict[str, tuple[int, Any]], layer_name: str) -> tuple[int, Any]:
        """An input layer's spec: by its full name first (Keras 2.2 allowed ``cqt/mag`` as an Input's name), then
        by its last path segment (an input of a nested model is ``inner/image``)."""
        for key in (layer_name, layer_name.split("/")[-1]):
            if key in specs:
                return specs[key]
        raise Tf2TorchError(f"input layer {layer_name}: no input of the model has that name (inputs: "
                            f"{', '.join(specs) or 'none'})")

    def add_inputs(self) -> None:
        specs = {s.name: (i, s) for i, s in enumerate(self.graph.input_specs)}
        for ref in self.graph.inputs:
            layer_name = self.graph.node(ref.node).layer
            i, spec = self._input_spec(specs, layer_name)
            shape = self._input_shape(i)
            dynamic = any(d is None for d in shape)
            if dynamic:
                self.open_inputs.append(spec.name)
            variants = self.dynamic_sizes if dynamic else self.dynamic_sizes[:1]
            dtype = input_dtype(spec.name, spec.dtype, self.forced_dtype, self.notices)
            sizes = [(self.example_batch, *[d if d is not None else v for d in shape]) for v in variants]
            if dynamic and self.dynamic_sizes != DYNAMIC_SIZES[0] and \
                    max(math.prod(s) for s in sizes) > MAX_EXAMPLE_ELEMENTS:
                raise ExampleTooLarge()  # later stand-ins only: the first ones get the clear error below
            check_example_size(spec.name, sizes)
            examples = [torch.zeros(size, dtype=dtype) for size in sizes]
            rank = len(shape) + 1
            layout = L.CHANNELS_FIRST if self.layout == "channels_first" and rank in (4, 5) else L.KERAS
            if layout == L.CHANNELS_FIRST:
                examples = [e.permute(L.to_channels_first_perm(rank)) for e in examples]
            name = self.names.unique("<inputs>", legal_segment(spec.name))
            self.input_names.append(spec.name)
            node = self.fx.placeholder(name)
            if layout == L.CHANNELS_FIRST and rank == 4:
                self.image_inputs.append(node)
            node.meta["tf2torch"] = {"keras_node": ref.node, "layer": layer_name, "class_name": "InputLayer",
                                     "layouts": [layout]}
            self.states[ref] = TensorState(node, L.normalize(layout, rank), examples)

    # -- layout conversions ---------------------------------------------------------------------------------
    def convert_layout(self, state: TensorState, wanted: L.Layout | None) -> TensorState:
        rank = state.examples[0].dim()
        wanted = L.normalize(wanted, rank) if wanted is not None else None
        current = state.layout
        if wanted is None or wanted == current:
            return state
        if isinstance(current, L.FlatChannelsFirst):
            node = self.fx.call_function(flat_channels_first_to_keras,
                                         (state.fx_node, current.channels, current.spatial))
            examples = [flat_channels_first_to_keras(e, current.channels, current.spatial)
                        for e in state.examples]
            return self.convert_layout(TensorState(node, L.KERAS, examples, state.mask), wanted)
        if wanted == L.CHANNELS_FIRST and current == L.KERAS:
            perm = L.to_channels_first_perm(rank)
        elif wanted == L.KERAS and current == L.CHANNELS_FIRST:
            perm = L.to_keras_perm(rank)
        else:
            raise Tf2TorchError(f"internal error: cannot move a tensor from layout {current} to {wanted}")
        node = self.fx.call_method("permute", (state.fx_node, *perm))
        node.meta["tf2torch"] = {"layout_change": True}
        return TensorState(node, wanted, [e.permute(perm) for e in state.examples], state.mask)

    # -- nodes ------------------------------------------------------------------------------------------
    def state_of(self, ref: TensorRef) -> TensorState:
        if ref in self.states:
            return self.states[ref]
        if ref.node in self.multi_output:
            node, layouts, outs, mask = self.multi_output[ref.node]
            if ref.index >= len(layouts):
                raise ModelFileError(f"the model config uses output {ref.index} of {ref.node}, which has "
                                     f"{len(layouts)}; the model config does not parse")
            item = self.fx.call_function(operator.getitem, (node, ref.index))
            state = TensorState(item, layouts[ref.index], [o[ref.index] for o in outs],
                                mask[ref.index] if ref.index < len(mask) else None)
            self.states[ref] = state
            return state
        if TensorRef(ref.node, 0) in self.states:  # a file that asks a one-output layer for its second output
            raise ModelFileError(f"the model config uses output {ref.index} of {ref.node}, which has one; the model "
                                 "config does not parse")
        raise Tf2TorchError(f"internal error: tensor {ref} used before it was computed")

    def add_node(self, node: Node) -> None:
        layer = self.graph.layers[node.layer]
        inputs = [self.state_of(r) for r in node.inputs]
        tensor_kwargs: dict[str, Any] = {
            k: ([self.state_of(x) for x in r] if isinstance(r, list) else self.state_of(r))
            for k, r in node.tensor_kwargs.items()}
        dtype = compute_dtype(node.layer, layer.class_name, layer.config.get("dtype"), self.forced_dtype,
                              self.notices)
        if dtype is not None:  # Keras casts floating inputs to the layer's compute dtype (autocast)
            inputs = [self.cast(s, dtype) for s in inputs]
            tensor_kwargs = {k: ([self.cast(x, dtype) for x in v] if isinstance(v, list) else self.cast(v, dtype))
                             for k, v in tensor_kwargs.items()}
        input_masks = [s.mask for s in inputs]
        call = self.built_call(node, inputs, dtype)
        module, converted, path = call.module, call.converted, call.path
        wanted = converted.input_layouts
        if wanted is None or isinstance(wanted, (str, L.FlatChannelsFirst)):
            wanted = [wanted] * len(inputs)
        inputs = [self.convert_layout(s, w) for s, w in zip(inputs, wanted)]
        tensor_kwargs.update(self.masks.call_kwargs(converted, input_masks, tensor_kwargs))
        tensor_kwargs = {k: ([self.convert_layout(x, L.KERAS) if x is not None else None for x in v]
                             if isinstance(v, list) else self.convert_layout(v, L.KERAS))
                         for k, v in tensor_kwargs.items()}  # keyword inputs always arrive in Keras layout
        fx_kwargs = {k: ([m.fx_node if m is not None else None for m in s] if isinstance(s, list) else s.fx_node)
                     for k, s in tensor_kwargs.items()}
        fx_node = self.fx.call_module(path, tuple(s.fx_node for s in inputs), fx_kwargs)
        outs = self.run_examples(node, layer.class_name, module, inputs, tensor_kwargs)
        multi = isinstance(outs[0], (tuple, list))
        n_out = len(outs[0]) if multi else 1
        layouts = converted.output_layouts
        default = inputs[0].layout if inputs else L.KERAS
        if layouts is None:
            layouts = [default] * n_out
        elif isinstance(layouts, (str, L.FlatChannelsFirst)):
            layouts = [layouts] * n_out
        per_output = [list(o) if multi else [o] for o in outs]
        layouts = [L.normalize(lay, per_output[0][i].dim()) for i, lay in enumerate(layouts)]
        fx_node.meta["tf2torch"] = {"keras_node": node.id, "layer": node.layer, "class_name": layer.class_name,
                                    "layouts": layouts, "ranks": [o.dim() for o in per_output[0]]}
        masks = self.masks.output_masks(node, layer.class_name, converted, inputs, input_masks, tensor_kwargs)
        if converted.clears_input_masks and self.graph.keras_major >= 3:
            for ref in node.all_inputs():
                if ref in self.states:
                    self.states[ref].mask = None
        if multi:
            self.multi_output[node.id] = (fx_node, layouts, per_output, masks)
        else:
            self.states[TensorRef(node.id, 0)] = TensorState(fx_node, layouts[0], [p[0] for p in per_output],
                                                             masks[0])

    def run_examples(self, node: Node, class_name: str, module: nn.Module, inputs: list[TensorState],
                     tensor_kwargs: dict[str, Any]) -> list[Any]:
        """The converted module's outputs on the example values of its inputs, one per stand-in size."""
        variants = len(inputs[0].examples) if inputs else 1
        outs = []
        with torch.no_grad():
            for v in range(variants):
                args = [example(s, v) for s in inputs]
                kwargs = {k: ([example(m, v) if m is not None else None for m in s] if isinstance(s, list)
                              else example(s, v)) for k, s in tensor_kwargs.items()}
                try:
                    out = predicted_output(module, args, kwargs)  # torch's own conv/elementwise: no need to run
                    out = module(*args, **kwargs) if out is None else out
                except Exception as exc:  # a converter bug or a config we misread: name the layer
                    raise ConversionError(node.layer, class_name,
                                          f"the converted module failed on inputs of shape "
                                          f"{[tuple(a.shape) for a in args]}: {exc}") from exc
                outs.append(out)
        return outs

    def cast(self, state: TensorState, dtype: torch.dtype) -> TensorState:
        """``state`` in ``dtype`` when it is a floating tensor of another float dtype (Keras's autocast)."""
        current = state.examples[0].dtype
        if not current.is_floating_point or current == dtype:
            return state
        node = self.fx.call_method("to", (state.fx_node, dtype))
        node.meta["tf2torch"] = {"cast": True}
        return TensorState(node, state.layout, [e.to(dtype) for e in state.examples], state.mask)

    def built_call(self, node: Node, inputs: list[TensorState], dtype: torch.dtype | None) -> BuiltCall:
        """The conversion of ``node``'s layer for inputs like these. A layer shared by calls of other shapes,
        layouts or dtypes is converted again for them (SAME padding, a Flatten order... depend on the input);
        parameters equal to the first conversion's are shared with it, so the layer's weights stay one."""
        signature = (tuple(s.keras_shape for s in inputs), tuple(s.layout for s in inputs),
                     tuple(s.examples[0].dtype for s in inputs), dtype)
        calls = self.built.setdefault(node.layer, [])
        for call in calls:
            if call.signature == signature:
                return call
        layer = self.graph.layers[node.layer]
        loads: Counter[int] = Counter()

        def load(weight: Any, lazy: bool = False) -> Any:
            loads[id(weight)] += 1
            return self.graph.load_weight(weight, lazy=lazy)

        spec = contract.LayerSpec(
            name=node.layer, class_name=layer.class_name, config=layer.config,
            input_shapes=[s.keras_shape for s in inputs], input_layouts=[s.layout for s in inputs],
            input_dtypes=[s.examples[0].dtype for s in inputs], keras_version=self.graph.keras_version,
            weight_handles=layer.weights, call_kwargs=node.kwargs,
            tensor_kwarg_names=list(node.tensor_kwargs), _load=load, input_examples=[s.examples for s in inputs],
            assemble_subgraph=assemble_subgraph)
        fn = registry.lookup(layer.class_name)
        assert fn is not None
        with skip_random_init(), contract.weight_dtype(dtype or torch.float32), \
                contract.conv_weights_channels_last(bool(self.image_inputs)):
            try:
                converted = registry.convert(fn, spec)
            except Tf2TorchError:
                raise
            except Exception as exc:  # a config or weight the converter cannot take: name the layer
                raise ConversionError(node.layer, layer.class_name,
                                      f"cannot convert ({type(exc).__name__}: {exc})") from exc
        for weight in layer.weights:
            if loads[id(weight)] != 1:
                spec.fail(f"stored weight {weight.name} {tuple(weight.shape)} was read {loads[id(weight)]} times by "
                          "the converter, not once (a converter bug, or a weight it does not understand)")
        module = converted.module.eval()
        if dtype == torch.float64:
            module = module.double()
        if calls:
            share_equal_tensors(calls[0].module, module)
            path = self.names.extra(node.layer, f"call{len(calls)}")
        else:
            path = self.names.path(node.layer)
        _set_submodule(self.root, path, module)
        call = BuiltCall(signature, path, module, converted)
        calls.append(call)
        return call

    def add_mask_module(self, layer: str, module: nn.Module) -> str:
        """A module computing a layer's output mask, beside the layer's own (``<layer>_mask``); its path."""
        path = self.names.extra(layer, "mask")
        _set_submodule(self.root, path, module)
        return path

    def expand_outputs(self, refs: list[TensorRef]) -> list[TensorRef]:
        """Index -1 (a Sequential's last layer) stands for every output of the node."""
        expanded = []
        for ref in refs:
            if ref.index == -1:
                count = len(self.multi_output[ref.node][1]) if ref.node in self.multi_output else 1
                expanded.extend(TensorRef(ref.node, i) for i in range(count))
            else:
                expanded.append(ref)
        return expanded

    def release(self, node_id: str) -> None:
        """Drop the example activations of a node nothing else reads, so peak memory stays near the weights."""
        count = len(self.multi_output[node_id][1]) if node_id in self.multi_output else 1
        for state in filter(None, (self.states.get(TensorRef(node_id, i)) for i in range(count))):
            state.examples = [e.new_empty((0, *e.shape[1:])) for e in state.examples]
        if node_id in self.multi_output:
            fx_node, layouts, outs, mask = self.multi_output[node_id]
            self.multi_output[node_id] = (fx_node, layouts, [[o.new_empty((0, *o.shape[1:])) for o in out]
                                                             for out in outs], mask)

    # -- whole graph --------------------------------------------------------------------------------------
    def build(self) -> fx.GraphModule:
        check_supported(self.graph)
        self.add_inputs()
        uses = Counter(ref.node for node in self.graph.nodes for ref in node.all_inputs())
        uses.update(ref.node for ref in self.graph.outputs)
        freed = FreedHeap()
        for node in self.graph.nodes:
            if self.graph.layers[node.layer].class_name == NO_OP_INPUT:
                continue
            try:
                self.add_node(node)
            except ConversionError as exc:
                if self.open_inputs:
                    raise StandInSizeError(exc, self.dynamic_sizes, self.open_inputs) from exc
                raise
            freed.after(self.graph.layers[node.layer])
            for ref in node.all_inputs():
                uses[ref.node] -= 1
                if uses[ref.node] == 0:
                    self.release(ref.node)
        results, image_outputs = [], []
        for ref in self.expand_outputs(self.graph.outputs):
            state = self.state_of(ref)
            rank = state.examples[0].dim()
            wanted = L.CHANNELS_FIRST if self.layout == "channels_first" and rank in (4, 5) else L.KERAS
            results.append(self.convert_layout(state, wanted).fx_node)
            if wanted == L.CHANNELS_FIRST and rank == 4:
                image_outputs.append(len(results) - 1)
        if self.image_inputs and memory_format.has_conv2d(self.root):
            made = memory_format.run_channels_last(self.fx, self.image_inputs, [results[i] for i in image_outputs])
            memory_format.conv_weights_channels_last(self.root)
            for i, node in zip(image_outputs, made):
                results[i] = node
        self.fx.output(results[0] if len(results) == 1 else tuple(results))
        self.fx.lint()
        self.check_one_node_per_call()
        class_name = re.sub(r"\W", "_", self.graph.name) or "KerasModel"
        module = KerasGraphModule(self.root, self.fx, class_name=class_name)
        module.input_names = list(self.input_names)
        names = list(self.graph.output_names)
        module.output_names = names if len(names) == len(results) else [f"output_{i}" for i in range(len(results))]
        module.tf2torch_notices = list(self.notices)
        # the stand-in sizes open dimensions were built with: ``tf2torch verify`` runs Keras at the first of them
        module.tf2torch_stand_in_sizes = tuple(self.dynamic_sizes) if self.open_inputs else None
        training.attach(module, self.graph)
        return module.eval()

    def check_one_node_per_call(self) -> None:
        """The invariant every conversion ends with: each Keras layer call became exactly one module call."""
        calls = Counter(n.meta["tf2torch"]["keras_node"] for n in self.fx.nodes
                        if n.op == "call_module" and "keras_node" in n.meta.get("tf2torch", {}))
        for node in self.graph.nodes:
            if self.graph.layers[node.layer].class_name == NO_OP_INPUT:
                continue
            if calls[node.id] != 1:
                raise ConversionError(node.layer, self.graph.layers[node.layer].class_name,
                                      f"internal error: call {node.id} became {calls[node.id]} torch calls, not 1")


def share_equal_tensors(first: nn.Module, other: nn.Module) -> None:
    """Make ``other`` use ``first``'s parameters and buffers wherever they hold the same values, so a shared layer
    converted twice keeps one set of weights (and trains as one)."""
    for mine, theirs, is_buffer in ((list(first.parameters()), list(other.named_parameters()), False),
                                    (list(first.buffers()), list(other.named_buffers()), True)):
        for name, tensor in theirs:
            same = next((t for t in mine if t.shape == tensor.shape and t.dtype == tensor.dtype
                         and torch.equal(t, tensor)), None)
            if same is None:
                continue
            owner_name, _, leaf = name.rpartition(".")
            owner = other.get_submodule(owner_name) if owner_name else other
            if is_buffer:
                owner.register_buffer(leaf, same)
            else:
                setattr(owner, leaf, same)


def declare_input_shapes(graph: KerasGraph, input_shapes: Sequence[Sequence[int | None]] | None) -> None:
    """Inputs whose config names no shape (a Keras 2.2 Sequential built on its first call) take theirs from
    ``input_shapes``, so the graph kept in the module's metadata states it; without one, the error says so."""
    for i, spec in enumerate(graph.input_specs):
        if spec.declared:
            continue
        if input_shapes is None or i >= len(input_shapes) or input_shapes[i] is None:
            raise ModelFileError(f"input {spec.name}: the Sequential model was saved without an input shape; give "
                                 "the shape of one sample without the batch axis with --input-shape (e.g. "
                                 "--input-shape 50,2), or rebuild it with keras.Input and save again")
        graph.input_specs[i] = InputSpec(spec.name, tuple(input_shapes[i]), spec.dtype)


def check_layout_of_given_shape(name: str, given: tuple[int | None, ...], declared: tuple[int | None, ...]) -> None:
    """``--input-shape 3,32,32`` for a model declaring 32,32,3 is PyTorch's channels-first habit; left alone it
    surfaced as "the config and the weights disagree" at the first convolution. Refused naming Keras's layout;
    a shape that keeps the channels (64,32,3 for 32,64,3) is a deliberate override and passes."""
    if len(given) != len(declared) or len(given) < 2 or None in given or given[-1] == declared[-1] or \
            declared[-1] is None:
        return
    fits = [g == d or d is None for g, d in zip(given, declared)]
    if all(fits):
        return
    rolled = given[1:] + given[:1]
    is_rolled = all(g == d or d is None for g, d in zip(rolled, declared))
    is_permutation = None not in declared and sorted(given) == sorted(declared)  # type: ignore[type-var]
    if is_rolled or is_permutation:
        wanted = ",".join("?" if d is None else str(d) for d in (rolled if is_rolled else declared))
        raise Tf2TorchError(f"input {name}: --input-shape {','.join(map(str, given))} is a permutation of the "
                            f"model's shape {','.join('?' if d is None else str(d) for d in declared)}; the flag "
                            f"takes Keras's layout (channels last, e.g. H,W,C), not PyTorch's: --input-shape {wanted}")


class SubgraphAssembler(Assembler):
    """A sub-graph's assembler: its inputs are the values given (per input, one per stand-in size, in TF's
    layout), not example tensors made from input specs; everything else is the model's own assembly."""

    def __init__(self, graph: KerasGraph, examples: list[list[torch.Tensor]]):
        super().__init__(graph, "keras")
        self.examples = examples

    def add_inputs(self) -> None:
        count = max((len(e) for e in self.examples), default=1)  # every input at every stand-in size
        for ref, values in zip(self.graph.inputs, self.examples):
            value = list(values) + [values[-1]] * (count - len(values))
            layer = self.graph.node(ref.node).layer
            self.input_names.append(layer)
            node = self.fx.placeholder(self.names.unique("<inputs>", legal_segment(layer)))
            node.meta["tf2torch"] = {"keras_node": ref.node, "layer": layer, "class_name": "InputLayer",
                                     "layouts": [L.KERAS]}
            self.states[ref] = TensorState(node, L.KERAS, list(value))


def assemble_subgraph(graph: KerasGraph, examples: list[list[torch.Tensor]]) -> fx.GraphModule:
    """An IR sub-graph (a TF loop's ``cond`` or ``body``, a Keras layer's traced call function) built on the
    values its inputs take (``examples``: per input, its value at each stand-in size, in TF's layout; a
    dimension that differs is open for its converters too). Converters reach it as
    ``LayerSpec.assemble_subgraph``, so they never import the assembler (issue #21)."""
    return SubgraphAssembler(graph, examples).build()


def assemble(graph: KerasGraph, layout: str = "channels_first",
             input_shapes: Sequence[Sequence[int | None]] | None = None, dtype: str | None = None) -> fx.GraphModule:
    """Build the module (examples of batch ``EXAMPLE_BATCH``); when a layer fails on them and every input fixes
    another batch size (``declared_batch``), build it at that batch: the module then takes that batch only, as
    the file does (``module.tf2torch_batch``, with a notice)."""
    declare_input_shapes(graph, input_shapes)
    try:
        return assemble_at(graph, layout, input_shapes, dtype, EXAMPLE_BATCH)
    except (ConversionError, StandInSizeError) as exc:
        batch = declared_batch(graph)
        if batch is None or batch == EXAMPLE_BATCH:
            raise
        try:
            module = assemble_at(graph, layout, input_shapes, dtype, batch)
        except Tf2TorchError:
            raise exc from None
        failed = exc.error if isinstance(exc, StandInSizeError) else exc
    layer = f"layer {failed.layer} ({failed.class_name})" if isinstance(failed, ConversionError) else "a layer"
    module.tf2torch_batch = batch
    module.tf2torch_notices.append(
        f"the model fixes its batch size at {batch} (its inputs declare it, and at batch {EXAMPLE_BATCH} {layer} "
        f"failed): the converted module takes batches of {batch} only, as the model does")
    return module


def declared_batch(graph: KerasGraph) -> int | None:
    """The batch size every input of ``graph`` fixes, or None where one leaves it open. The trap: a TFLite file
    from a phone, or a TF 1 graph whose placeholder is ``[1, 224, 224, 3]``, writes its batch into constants
    (MobileNet's ``RESHAPE`` to ``[1, 1000]``, a ``tf.reshape(x, [1, 48])``), which the examples of batch
    ``EXAMPLE_BATCH`` cannot pass. Read from each ``InputLayer``'s ``batch_shape`` (Keras 3, and what the TFLite
    and TF graph readers record) or ``batch_input_shape`` (tf_keras)."""
    sizes = set()
    for ref in graph.inputs:
        config = graph.layers[graph.node(ref.node).layer].config
        shape = config.get("batch_shape") or config.get("batch_input_shape")
        first = shape[0] if isinstance(shape, (list, tuple)) and shape else None
        if not isinstance(first, int) or isinstance(first, bool) or first < 1:
            return None
        sizes.add(first)
    return sizes.pop() if len(sizes) == 1 else None


def assemble_at(graph: KerasGraph, layout: str, input_shapes: Sequence[Sequence[int | None]] | None,
                dtype: str | None, batch: int) -> fx.GraphModule:
    """Build the module on examples of ``batch``; when a layer refuses the stand-in sizes of open dimensions,
    try the next ones."""
    errors: list[StandInSizeError] = []
    for sizes in DYNAMIC_SIZES:
        try:
            return Assembler(graph, layout, input_shapes, sizes, dtype, batch).build()
        except StandInSizeError as exc:
            errors.append(exc)
        except ExampleTooLarge:
            break
    if not errors:
        raise Tf2TorchError("the model's open dimensions could not be given stand-in sizes small enough to build "
                            "it; give the real sizes with --input-shape / input_shapes=")
    if all(str(e.error) == str(errors[0].error) for e in errors):
        raise errors[0].error  # the same at every size: not about the sizes
    raise errors[0]

