"""What the assembler knows of one tensor while it builds the graph: its fx node, its layout, the example values
that ran through the converted modules so far (one per stand-in size, ``assemble.DYNAMIC_SIZES``) and its Keras
mask, itself a tensor state. Build time only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.fx as fx

from . import layout as L


@dataclass
class TensorState:
    fx_node: fx.Node
    layout: L.Layout
    examples: list[torch.Tensor]
    mask: TensorState | None = None

    @property
    def keras_shape(self) -> tuple[int | None, ...]:
        shapes = [L.keras_shape(tuple(e.shape), self.layout) for e in self.examples]
        dims = [a if all(s[i] == a for s in shapes) else None for i, a in enumerate(shapes[0])]
        return (None, *dims[1:]) if dims else ()  # (a scalar, in a TF graph, has no batch axis)


def example(state: TensorState, variant: int) -> torch.Tensor:
    return state.examples[min(variant, len(state.examples) - 1)]
