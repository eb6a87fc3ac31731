"""The public functions behind ``tf2torch.convert``, ``save`` and ``load``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch.fx as fx

from . import converters  # noqa: F401  (registers every converter family)
from .assemble import assemble
from .graph import KerasGraph
from .io import load_payload, save  # noqa: F401
from .optimize import optimize as optimize_module
from .readers import open_model


def convert(path: str | os.PathLike, layout: str = "channels_first",
            input_shapes: Sequence[Sequence[int | None]] | None = None, optimize: bool = False) -> fx.GraphModule:
    """Convert a Keras ``.h5`` or ``.keras`` file into a torch module in eval mode.

    ``layout="channels_first"`` (default): 4-D/5-D inputs and outputs are N,C,H,W / N,C,D,H,W; 2-D and 3-D ones
    keep Keras's layout. ``layout="keras"``: every input and output exactly as in Keras.
    ``input_shapes``: one shape per input without the batch axis, to fix dimensions the model leaves open.
    ``optimize=True``: an inference-only module with batch norms and input scaling folded into convolutions,
    no-ops dropped and channels_last weights (``tf2torch.optimize``); the default keeps one module per layer.
    """
    with open_model(path) as graph:
        module = assemble(graph, layout, input_shapes)
        _attach_meta(module, graph, layout, input_shapes)
    if optimize:
        optimize_module(module)
        module.tf2torch_meta["optimize"] = True
    return module


def _attach_meta(module: fx.GraphModule, graph: KerasGraph, layout: str,
                 input_shapes: Sequence[Sequence[int | None]] | None) -> None:
    module.tf2torch_meta = {
        "graph": graph.to_json(),
        "layout": layout,
        "input_shapes": [list(s) if s is not None else None for s in input_shapes] if input_shapes else None,
    }


def load(path: str | os.PathLike) -> fx.GraphModule:
    """Load a file written by ``tf2torch.save``; safe (``weights_only=True``), no pickled code."""
    payload = load_payload(path)
    meta = json.loads(payload["meta"])
    graph = KerasGraph.from_json(meta["graph"])
    module = assemble(graph, meta["layout"], meta.get("input_shapes"))
    if meta.get("optimize"):
        optimize_module(module)  # the same folds (they depend on the structure only), then the folded weights
    module.load_state_dict(payload["state_dict"], strict=True)
    _attach_meta(module, graph, meta["layout"], meta.get("input_shapes"))
    if meta.get("optimize"):
        module.tf2torch_meta["optimize"] = True
    return module.eval()
