"""IR + converters → one ``torch.fx.GraphModule`` whose submodules are named after the Keras layers.

Shapes are found by running each converted module once on small example inputs (batch 2) as the graph is
built, so converters see real input shapes without a shape-inference table of our own. When a model input
has dynamic dimensions, a second set of examples with other sizes runs beside the first; a dimension that
differs between the two is dynamic (None) for the converters.
"""

from __future__ import annotations

import contextlib
import operator
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from . import layout as L
from .converters import registry
from .errors import ConversionError, ModelFileError, Tf2TorchError, UnsupportedLayerError
from .graph import KerasGraph, Node, TensorRef

EXAMPLE_BATCH = 2
DYNAMIC_SIZES = (64, 67)  # two sizes of different parity for dimensions the model leaves open
NO_OP_INPUT = "InputLayer"

TORCH_DTYPES = {
    "float16": torch.float32, "bfloat16": torch.float32, "float32": torch.float32, "float64": torch.float32,
    "int8": torch.int64, "int16": torch.int64, "int32": torch.int64, "int64": torch.int64,
    "uint8": torch.int64, "bool": torch.bool,
}


# Layers whose output carries their first input's mask on (``supports_masking = True`` in
# [K3] keras/src/layers and [TFK] tf_keras/src/layers); every other layer drops it unless its converter
# says otherwise (``Converted.output_mask``).
PROPAGATES_MASK = frozenset({
    "Activation", "ActivityRegularization", "AlphaDropout", "BatchNormalization", "Dense", "Dropout",
    "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "ELU", "GaussianDropout", "GaussianNoise",
    "GroupNormalization", "Identity", "LayerNormalization", "LeakyReLU", "Normalization", "PReLU", "ReLU",
    "TimeDistributed",
    "Rescaling", "Softmax", "ThresholdedReLU", "UnitNormalization",
})
MERGES_MASKS = frozenset({"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate"})


@dataclass
class TensorState:
    fx_node: fx.Node
    layout: L.Layout
    examples: list[torch.Tensor]
    mask: "TensorState | None" = None

    @property
    def keras_shape(self) -> tuple[int | None, ...]:
        shapes = [L.keras_shape(tuple(e.shape), self.layout) for e in self.examples]
        dims = [a if all(s[i] == a for s in shapes) else None for i, a in enumerate(shapes[0])]
        return (None, *dims[1:])


def join_masks(tensors: tuple[torch.Tensor, ...], masks: tuple[torch.Tensor | None, ...], axis: int) -> torch.Tensor:
    """Concatenate the masks of tensors joined along ``axis`` (not the feature axis); unmasked ones count as
    all True."""
    parts = [m if m is not None else torch.ones(t.shape[:-1], dtype=torch.bool, device=t.device)
             for t, m in zip(tensors, masks)]
    return torch.cat(parts, dim=axis)


def example(state: TensorState, variant: int) -> torch.Tensor:
    return state.examples[min(variant, len(state.examples) - 1)]


def module_path(layer_key: str) -> str:
    """Keras layer key (``inner/conv1``) → torch submodule path (``inner.conv1``)."""
    parts = [re.sub(r"\W", "_", p) or "_" for p in layer_key.split("/")]
    parts = [("_" + p) if p[0].isdigit() else p for p in parts]
    return ".".join(parts)


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    *parents, leaf = path.split(".")
    current = root
    for part in parents:
        if not hasattr(current, part):
            current.add_module(part, nn.Module())
        current = getattr(current, part)
    current.add_module(leaf, module)


RANDOM_INITS = ("uniform_", "normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
                "trunc_normal_", "orthogonal_")


@contextlib.contextmanager
def skip_random_init() -> Iterator[None]:
    """Torch modules fill new weights with random numbers that every converter overwrites with Keras's weights;
    skipping that saves time and keeps the throw-away pages from ever becoming resident. Constant inits
    (``ones_``, ``zeros_``) still run: a converter may rely on them (BatchNorm without ``scale``)."""
    saved = {name: getattr(nn.init, name) for name in RANDOM_INITS}
    try:
        for name in RANDOM_INITS:
            setattr(nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        for name, fn in saved.items():
            setattr(nn.init, name, fn)


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
        elif registry.converter_for(layer.class_name) is None:
            missing.append((key, layer.class_name))
    if missing:
        raise UnsupportedLayerError(missing, reasons)


MAX_EXAMPLE_ELEMENTS = 1 << 26  # per example input (256 MiB of float32): shapes are found by running examples


def check_example_size(name: str, shape: Sequence[int | None]) -> None:
    """Refuse, before allocating, an example input too large to build with (a declared [100000, 100000, 3])."""
    elements = EXAMPLE_BATCH
    for d in shape:
        elements *= d if d is not None else max(DYNAMIC_SIZES)
    if elements > MAX_EXAMPLE_ELEMENTS:
        raise Tf2TorchError(f"input {name}: shape {list(shape)} is too large to build the model with (an example "
                            f"batch of {elements:,} values, limit {MAX_EXAMPLE_ELEMENTS:,}); give a smaller shape "
                            "with --input-shape (input_shapes=...)")


class Assembler:
    def __init__(self, graph: KerasGraph, layout: str = "channels_first",
                 input_shapes: Sequence[Sequence[int | None]] | None = None):
        if layout not in ("channels_first", "keras"):
            raise Tf2TorchError(f"layout must be 'channels_first' or 'keras', not {layout!r}")
        self.graph = graph
        self.layout = layout
        self.input_shapes = input_shapes
        self.fx = fx.Graph()
        self.root = nn.Module()
        self.states: dict[TensorRef, TensorState] = {}
        self.built: dict[str, tuple[nn.Module, registry.Converted]] = {}
        self.mask_modules: set[str] = set()
        self.multi_output: dict[str, tuple[fx.Node, list[L.Layout], list[list[torch.Tensor]],
                                           list[TensorState | None]]] = {}

    # -- inputs -----------------------------------------------------------------------------------------
    def _input_shape(self, i: int) -> tuple[int | None, ...]:
        spec = self.graph.input_specs[i]
        if self.input_shapes is not None and i < len(self.input_shapes) and self.input_shapes[i] is not None:
            given = tuple(self.input_shapes[i])
            if len(given) != len(spec.shape):
                raise Tf2TorchError(f"input {spec.name}: --input-shape has {len(given)} dimensions, the model "
                                    f"expects {len(spec.shape)} (without the batch axis)")
            return given
        return spec.shape

    def add_inputs(self) -> None:
        specs = {s.name: (i, s) for i, s in enumerate(self.graph.input_specs)}
        for ref in self.graph.inputs:
            layer_name = self.graph.node(ref.node).layer
            i, spec = specs[layer_name.split("/")[-1]] if layer_name.split("/")[-1] in specs else (0, None)
            assert spec is not None
            shape = self._input_shape(i)
            dynamic = any(d is None for d in shape)
            variants = DYNAMIC_SIZES if dynamic else DYNAMIC_SIZES[:1]
            dtype = TORCH_DTYPES.get(str(spec.dtype), torch.float32)
            check_example_size(spec.name, shape)
            examples = [torch.zeros((EXAMPLE_BATCH, *[d if d is not None else v for d in shape]), dtype=dtype)
                        for v in variants]
            rank = len(shape) + 1
            layout = L.CHANNELS_FIRST if self.layout == "channels_first" and rank in (4, 5) else L.KERAS
            if layout == L.CHANNELS_FIRST:
                examples = [e.permute(L.to_channels_first_perm(rank)) for e in examples]
            node = self.fx.placeholder(module_path(spec.name))
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
            node = self.fx.call_function(L.flat_channels_first_to_keras,
                                         (state.fx_node, current.channels, current.spatial))
            examples = [L.flat_channels_first_to_keras(e, current.channels, current.spatial)
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
        input_masks = [s.mask for s in inputs]
        if node.layer in self.built:
            module, converted = self.built[node.layer]
        else:
            spec = registry.LayerSpec(
                name=node.layer, class_name=layer.class_name, config=layer.config,
                input_shapes=[s.keras_shape for s in inputs], input_layouts=[s.layout for s in inputs],
                input_dtypes=[s.examples[0].dtype for s in inputs], keras_version=self.graph.keras_version,
                weight_handles=layer.weights, call_kwargs=node.kwargs,
                tensor_kwarg_names=list(node.tensor_kwargs), _load=self.graph.load_weight)
            fn = registry.converter_for(layer.class_name)
            assert fn is not None
            with skip_random_init():
                try:
                    converted = fn(spec)
                except Tf2TorchError:
                    raise
                except Exception as exc:  # a config or weight the converter cannot take: name the layer
                    raise ConversionError(node.layer, layer.class_name,
                                          f"cannot convert ({type(exc).__name__}: {exc})") from exc
            module = converted.module.eval()
            _set_submodule(self.root, module_path(node.layer), module)
            self.built[node.layer] = (module, converted)
        wanted = converted.input_layouts
        if wanted is None or isinstance(wanted, (str, L.FlatChannelsFirst)):
            wanted = [wanted] * len(inputs)
        inputs = [self.convert_layout(s, w) for s, w in zip(inputs, wanted)]
        tensor_kwargs.update(self.mask_kwargs(converted, input_masks, tensor_kwargs))
        tensor_kwargs = {k: ([self.convert_layout(x, L.KERAS) if x is not None else None for x in v]
                             if isinstance(v, list) else self.convert_layout(v, L.KERAS))
                         for k, v in tensor_kwargs.items()}  # keyword inputs always arrive in Keras layout
        fx_kwargs = {k: ([m.fx_node if m is not None else None for m in s] if isinstance(s, list) else s.fx_node)
                     for k, s in tensor_kwargs.items()}
        fx_node = self.fx.call_module(module_path(node.layer), tuple(s.fx_node for s in inputs), fx_kwargs)
        variants = len(inputs[0].examples) if inputs else 1
        outs = []
        with torch.no_grad():
            for v in range(variants):
                args = [example(s, v) for s in inputs]
                kwargs = {k: ([example(m, v) if m is not None else None for m in s] if isinstance(s, list)
                              else example(s, v)) for k, s in tensor_kwargs.items()}
                try:
                    out = module(*args, **kwargs)
                except Exception as exc:  # a converter bug or a config we misread: name the layer
                    raise ConversionError(node.layer, layer.class_name,
                                          f"the converted module failed on inputs of shape "
                                          f"{[tuple(a.shape) for a in args]}: {exc}") from exc
                outs.append(out)
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
                                    "layouts": layouts}
        if isinstance(converted.output_mask, list):
            first = input_masks[0] if input_masks else None
            masks = [first if policy == "propagate" else None for policy in converted.output_mask]
        else:
            masks = [self.output_mask(node, layer.class_name, converted, inputs, input_masks, tensor_kwargs)]
        if converted.clears_input_masks and self.graph.keras_major >= 3:
            for ref in node.all_inputs():
                if ref in self.states:
                    self.states[ref].mask = None
        if multi:
            self.multi_output[node.id] = (fx_node, layouts, per_output, masks)
        else:
            self.states[TensorRef(node.id, 0)] = TensorState(fx_node, layouts[0], [p[0] for p in per_output],
                                                             masks[0])

    # -- masks ------------------------------------------------------------------------------------------
    def mask_kwargs(self, converted: registry.Converted, input_masks: list[TensorState | None],
                    tensor_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Keras hands a layer whose ``call`` takes ``mask`` the mask of its first input (and ``<name>_mask``
        for tensor keyword inputs); an explicit ``mask=`` in the call wins ([K3] ``layers/layer.py``)."""
        if not converted.takes_mask:
            return {}
        if converted.takes_mask == "per_input":
            extra: dict[str, Any] = {}
            if any(m is not None for m in input_masks):
                extra["masks"] = list(input_masks)
            for name, state in tensor_kwargs.items():
                if isinstance(state, TensorState) and state.mask is not None and f"{name}_mask" not in tensor_kwargs:
                    extra[f"{name}_mask"] = state.mask
            return extra
        if "mask" in tensor_kwargs or not input_masks or input_masks[0] is None:
            return {}
        return {"mask": input_masks[0]}

    def output_mask(self, node: Node, class_name: str, converted: registry.Converted, inputs: list[TensorState],
                    input_masks: list[TensorState | None], tensor_kwargs: dict[str, Any]) -> TensorState | None:
        policy = converted.output_mask
        if policy is None:
            policy = ("propagate" if class_name in PROPAGATES_MASK else
                      "merge" if class_name in MERGES_MASKS else "none")
        explicit = tensor_kwargs.get("mask")
        if policy == "propagate":
            return explicit if isinstance(explicit, TensorState) else (input_masks[0] if input_masks else None)
        if policy == "merge":
            return self.merged_mask(node, inputs, input_masks)
        if isinstance(policy, nn.Module):
            path = module_path(node.layer) + "_mask"
            if node.layer + "_mask" not in self.mask_modules:
                _set_submodule(self.root, path, policy.eval())
                self.mask_modules.add(node.layer + "_mask")
            fx_mask = self.fx.call_module(path, tuple(s.fx_node for s in inputs))
            fx_mask.meta["tf2torch"] = {"mask_of": node.id}
            with torch.no_grad():
                examples = [policy(*[example(s, v) for s in inputs]) for v in range(len(inputs[0].examples))]
            return TensorState(fx_mask, L.KERAS, examples)
        return None

    def merged_mask(self, node: Node, inputs: list[TensorState],
                    input_masks: list[TensorState | None]) -> TensorState | None:
        """The mask of a merge layer. [K3] ``merging/base_merge.py``: no mask if any input lacks one, else the
        OR; [TFK]: the AND of the masks present. Concatenate along a non-feature axis joins the masks along that
        axis, an unmasked input counting as all True ([K3]/[TFK] ``merging/concatenate.py``)."""
        if all(m is None for m in input_masks):
            return None
        layer = self.graph.layers[node.layer]
        rank = inputs[0].examples[0].dim()
        axis = int(layer.config.get("axis", -1)) % rank if layer.class_name == "Concatenate" else rank - 1
        if axis not in (0, rank - 1):
            if any(s.layout != L.KERAS for s in inputs):
                return None
            fx_mask = self.fx.call_function(join_masks, (tuple(s.fx_node for s in inputs),
                                                         tuple(m.fx_node if m else None for m in input_masks),
                                                         axis))
            examples = [join_masks(tuple(example(s, v) for s in inputs),
                                   tuple(example(m, v) if m else None for m in input_masks), axis)
                        for v in range(len(inputs[0].examples))]
            return TensorState(fx_mask, L.KERAS, examples)
        if self.graph.keras_major >= 3:
            if any(m is None for m in input_masks):
                return None
            combine = torch.logical_or
        else:
            combine = torch.logical_and
        present = [m for m in input_masks if m is not None]
        state = present[0]
        for other in present[1:]:
            fx_mask = self.fx.call_function(combine, (state.fx_node, other.fx_node))
            examples = [combine(example(state, v), example(other, v)) for v in range(len(state.examples))]
            state = TensorState(fx_mask, L.KERAS, examples)
        return state

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
        for node in self.graph.nodes:
            if self.graph.layers[node.layer].class_name == NO_OP_INPUT:
                continue
            self.add_node(node)
            for ref in node.all_inputs():
                uses[ref.node] -= 1
                if uses[ref.node] == 0:
                    self.release(ref.node)
        results = []
        for ref in self.expand_outputs(self.graph.outputs):
            state = self.state_of(ref)
            rank = state.examples[0].dim()
            wanted = L.CHANNELS_FIRST if self.layout == "channels_first" and rank in (4, 5) else L.KERAS
            results.append(self.convert_layout(state, wanted).fx_node)
        self.fx.output(results[0] if len(results) == 1 else tuple(results))
        self.fx.lint()
        class_name = re.sub(r"\W", "_", self.graph.name) or "KerasModel"
        module = fx.GraphModule(self.root, self.fx, class_name=class_name)
        return module.eval()


def assemble(graph: KerasGraph, layout: str = "channels_first",
             input_shapes: Sequence[Sequence[int | None]] | None = None) -> fx.GraphModule:
    return Assembler(graph, layout, input_shapes).build()

