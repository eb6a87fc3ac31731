"""Which layer fixed an open dimension, when ``torch.export`` refuses a dynamic one.

torch says only ``Constraints violated (L['tokens'].size()[1])`` (issue #20: an LSTM over an open sequence length,
whose time loop runs once per step). ``constraining_layer`` exports again through an ``fx.Interpreter`` that checks
after every node whether an open size has been given one value (torch's ShapeEnv replaced its symbol by a number),
and stops at the first: that node's Keras layer is the one to name, with ``--input-shape`` as the way out.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.fx as fx
from torch import nn

from .. import layout as L
from .inputs import InputInfo


class Specialized(Exception):
    """Raised at the first node after which open dimension ``axis`` of input ``index`` has a single value."""

    def __init__(self, node: fx.Node, index: int, axis: int) -> None:
        super().__init__(f"{node.name} fixed dimension {axis} of input {index}")
        self.node, self.index, self.axis = node, index, axis


def is_fixed(size: torch.SymInt) -> bool:
    return bool(size.node.shape_env.replace(size.node.expr).is_number)


class FirstSpecialization(fx.Interpreter):
    def __init__(self, module: fx.GraphModule, open_dims: list[tuple[int, int]]) -> None:
        super().__init__(module)
        self.open_dims = open_dims
        self.sizes: list[tuple[int, int, Any]] = []

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.sizes = [(i, axis, args[i].shape[axis]) for i, axis in self.open_dims
                      if isinstance(args[i].shape[axis], torch.SymInt)]  # symbolic as traced, to be watched
        return super().run(*args, **kwargs)

    def run_node(self, n: fx.Node) -> Any:
        out = super().run_node(n)
        for i, axis, size in self.sizes:
            if n.op != "placeholder" and is_fixed(size):
                raise Specialized(n, i, axis)
        return out


class Interpreted(nn.Module):
    def __init__(self, module: fx.GraphModule, open_dims: list[tuple[int, int]]) -> None:
        super().__init__()
        self.module, self.open_dims = module, open_dims

    def forward(self, *args: torch.Tensor) -> Any:
        return FirstSpecialization(self.module, self.open_dims).run(*args)


def constraining_layer(module: fx.GraphModule, inputs: list[InputInfo], examples: tuple[torch.Tensor, ...],
                       dynamic: tuple[dict[int, Any], ...]) -> str | None:
    """One line naming the layer that gives an open dimension a single value, or None if none is found."""
    open_dims = [(i, axis) for i, d in enumerate(dynamic) for axis in d]
    try:
        torch.export.export(Interpreted(module, open_dims).eval(), examples, dynamic_shapes=(dynamic,), strict=False)
    except Specialized as exc:
        return describe(module, exc, inputs[exc.index])
    except Exception:
        return None
    return None


def describe(module: fx.GraphModule, exc: Specialized, info: InputInfo) -> str:
    meta = exc.node.meta.get("tf2torch", {})
    layer = meta.get("layer", exc.node.name)
    layers = module.tf2torch_meta["graph"]["layers"]
    class_name = layers[layer]["class_name"] if layer in layers else "torch"
    if exc.axis == 0:
        return f"layer {layer} ({class_name}) works with one batch size only; the export's batch is dynamic"
    rank = len(info.shape)
    keras_axis = L.to_channels_first_perm(rank)[exc.axis] if info.channels_first else exc.axis
    keras_shape = list(info.shape)
    if info.channels_first:
        keras_shape = [info.shape[L.to_keras_perm(rank)[j]] for j in range(rank)]
    example = ",".join("SIZE" if j == keras_axis else "?" if d is None else str(d)
                       for j, d in enumerate(keras_shape) if j > 0)
    return (f"layer {layer} ({class_name}) needs a fixed size for dimension {keras_axis} of input {info.keras_name} "
            f"(open in the Keras model); convert again with --input-shape {example} (input_shapes= in Python)")
