"""The PyTorch side: run the converted module once and hand over every Keras layer call's output in Keras's
layout.

Each ``call_module`` node of a tf2torch ``GraphModule`` carries ``meta["tf2torch"]`` with the Keras node it
computes (``keras_node``) and the layout of each output; an ``fx.Interpreter`` sees every node's value as the
forward pass goes, so one pass captures them all, and values are freed as soon as nothing needs them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from .. import layout as L
from ..nn.reshaping import flat_channels_first_to_keras

OnOutput = Callable[[str, list[torch.Tensor]], None]


def to_keras_layout(tensor: torch.Tensor, layout: L.Layout) -> torch.Tensor:
    """A tensor held in ``layout`` as Keras holds it (a view where a permute suffices)."""
    if isinstance(layout, L.FlatChannelsFirst):
        return flat_channels_first_to_keras(tensor, layout.channels, tuple(layout.spatial))
    if L.normalize(layout, tensor.dim()) == L.CHANNELS_FIRST:
        return tensor.permute(L.to_keras_perm(tensor.dim()))
    return tensor


def from_keras_layout(array: np.ndarray, layout: L.Layout, dtype: torch.dtype) -> torch.Tensor:
    """A Keras-layout input array as the module's placeholder wants it."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor.to(dtype) if tensor.is_floating_point() else tensor.to(torch.int64)
    if L.normalize(layout, tensor.dim()) == L.CHANNELS_FIRST:
        tensor = tensor.permute(L.to_channels_first_perm(tensor.dim())).contiguous()
    return tensor


class CaptureInterpreter(fx.Interpreter):
    """Runs the graph and passes each Keras layer call's outputs, in Keras layout, to ``on_output``."""

    def __init__(self, module: fx.GraphModule, on_output: OnOutput):
        super().__init__(module)
        self.on_output = on_output

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        meta = n.meta.get("tf2torch") or {}
        if n.op == "call_module" and "keras_node" in meta:
            outputs = list(result) if isinstance(result, (tuple, list)) else [result]
            layouts = meta.get("layouts") or [L.KERAS] * len(outputs)
            self.on_output(meta["keras_node"], [to_keras_layout(o, lay) for o, lay in zip(outputs, layouts)])
        return result


def placeholders(module: fx.GraphModule) -> list[fx.Node]:
    return [n for n in module.graph.nodes if n.op == "placeholder"]


def keras_node_of(placeholder: fx.Node) -> str:
    return (placeholder.meta.get("tf2torch") or {}).get("keras_node", placeholder.name)


def run_module(module: fx.GraphModule, inputs: dict[str, np.ndarray], on_output: OnOutput,
               dtype: torch.dtype = torch.float32) -> None:
    """One forward pass on ``inputs`` (by Keras input node id, Keras layout)."""
    args = []
    for node in placeholders(module):
        layout = ((node.meta.get("tf2torch") or {}).get("layouts") or [L.KERAS])[0]
        args.append(from_keras_layout(inputs[keras_node_of(node)], layout, dtype))
    with torch.inference_mode():
        CaptureInterpreter(module, on_output).run(*args)


def in_dtype(module: fx.GraphModule, dtype: torch.dtype) -> fx.GraphModule:
    """The module in ``dtype``; a copy when that changes anything, so the caller's module stays as it was."""
    floats = [t for t in (*module.parameters(), *module.buffers()) if t.is_floating_point()]
    if all(t.dtype == dtype for t in floats):
        return module
    moved = copy.deepcopy(module).to(dtype)
    casts = [n for n in moved.graph.nodes if (n.meta.get("tf2torch") or {}).get("cast")]
    for node in casts:  # Keras's autocasts between layers of different float dtypes: all in ``dtype`` now
        node.args = (node.args[0], dtype)
    if casts:
        moved.recompile()
    return moved


def count_calls(module: fx.GraphModule) -> int:
    return sum(1 for n in module.graph.nodes
               if n.op == "call_module" and "keras_node" in (n.meta.get("tf2torch") or {}))


