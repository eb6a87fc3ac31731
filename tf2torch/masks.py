"""Keras masks through the assembled graph: which mask a layer's call receives, and which its outputs carry.

A Keras mask is a boolean tensor of its own in the fx graph (``TensorState.mask``), computed beside the values:
- a layer whose ``call`` takes ``mask`` receives its first input's (``<name>_mask`` for tensor keyword inputs;
  an explicit ``mask=`` in the call wins), or every input's when its converter asks for them ``per_input``;
- its outputs carry its first input's mask when the layer supports masking (``mask="propagate"`` declared with
  its converter), the merge of its inputs' masks for merge layers (``"merge"``, ``"merge_axis"``:
  ``merged_mask``), or what its converter returns (``Converted.output_mask``: a
  policy, a module computing the mask, or one policy per output); every other layer drops it.
Build time: the assembler asks, these rules answer with fx nodes and example values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from . import layout as L
from . import registry
from .contract import Converted
from .graph import Layer, Node
from .nn.merge import join_masks
from .tensor_state import TensorState, example


class MaskRules:
    """The mask rules of one assembly. ``add_module(layer, module)`` registers a mask-computing module for a
    layer and returns its path; ``layers`` are the graph's layers (a merge's axis is in its config)."""

    def __init__(self, fx_graph: fx.Graph, layers: dict[str, Layer], keras_major: int,
                 add_module: Callable[[str, nn.Module], str]):
        self.fx, self.layers, self.keras_major, self.add_module = fx_graph, layers, keras_major, add_module
        self.mask_modules: dict[str, str] = {}

    def call_kwargs(self, converted: Converted, input_masks: list[TensorState | None],
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

    def output_masks(self, node: Node, class_name: str, converted: Converted, inputs: list[TensorState],
                     input_masks: list[TensorState | None],
                     tensor_kwargs: dict[str, Any]) -> list[TensorState | None]:
        """The masks of a call's outputs: per output from a converter's list (``"propagate"`` passes the first
        input's mask on), else one, from the layer's policy."""
        if isinstance(converted.output_mask, list):
            first = input_masks[0] if input_masks else None
            return [first if policy == "propagate" else None for policy in converted.output_mask]
        return [self.output_mask(node, class_name, converted, inputs, input_masks, tensor_kwargs)]

    def output_mask(self, node: Node, class_name: str, converted: Converted, inputs: list[TensorState],
                    input_masks: list[TensorState | None], tensor_kwargs: dict[str, Any]) -> TensorState | None:
        policy = converted.output_mask
        if policy is None:  # the Keras class's own policy, declared with its converter
            policy = registry.facts(class_name).mask or "none"
        explicit = tensor_kwargs.get("mask")
        if policy == "propagate":
            return explicit if isinstance(explicit, TensorState) else (input_masks[0] if input_masks else None)
        if policy in ("merge", "merge_axis"):
            return self.merged_mask(node, inputs, input_masks, along_axis=policy == "merge_axis")
        if isinstance(policy, nn.Module):
            if node.layer not in self.mask_modules:
                self.mask_modules[node.layer] = self.add_module(node.layer, policy.eval())
            path = self.mask_modules[node.layer]
            fx_mask = self.fx.call_module(path, tuple(s.fx_node for s in inputs))
            fx_mask.meta["tf2torch"] = {"mask_of": node.id}
            with torch.no_grad():
                examples = [policy(*[example(s, v) for s in inputs]) for v in range(len(inputs[0].examples))]
            return TensorState(fx_mask, L.KERAS, examples)
        return None

    def merged_mask(self, node: Node, inputs: list[TensorState], input_masks: list[TensorState | None],
                    along_axis: bool = False) -> TensorState | None:
        """The mask of a merge layer. [K3] ``merging/base_merge.py``: no mask if any input lacks one, else the
        OR; [TFK]: the AND of the masks present. Concatenate along a non-feature axis joins the masks along that
        axis, an unmasked input counting as all True ([K3]/[TFK] ``merging/concatenate.py``)."""
        if all(m is None for m in input_masks):
            return None
        layer = self.layers[node.layer]
        rank = inputs[0].examples[0].dim()
        axis = int(layer.config.get("axis", -1)) % rank if along_axis else rank - 1
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
        if self.keras_major >= 3:
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
