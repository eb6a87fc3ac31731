"""The public functions behind ``tf2torch.convert``, ``save`` and ``load``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch.fx as fx

from . import converters  # noqa: F401  (registers every converter family)
from .assemble import assemble
from .graph import KerasGraph
from .io import load_payload, save  # noqa: F401
from .ops import tf_raw  # noqa: F401  (raw TensorFlow graph ops, for SavedModels, checkpoints, frozen graphs)
from .readers import open_model


def convert(path: str | os.PathLike, layout: str = "channels_first",
            input_shapes: Sequence[Sequence[int | None]] | None = None, *, signature: str | None = None,
            inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
            constants: dict[str, Any] | None = None) -> fx.GraphModule:
    """Convert a Keras ``.h5`` or ``.keras`` file into a torch module in eval mode.

    ``layout="channels_first"`` (default): 4-D/5-D inputs and outputs are N,C,H,W / N,C,D,H,W; 2-D and 3-D ones
    keep Keras's layout. ``layout="keras"``: every input and output exactly as in Keras.
    ``input_shapes``: one shape per input without the batch axis, to fix dimensions the model leaves open.
    TensorFlow graphs (SavedModel directory, TF1 checkpoint with its ``.meta``, frozen ``.pb``): ``signature``
    (default ``serving_default``), ``inputs`` / ``outputs`` (tensor names, default the signature's or the
    placeholders and sinks), ``constants`` (placeholder name → value fixed at conversion, e.g.
    ``{"is_training": False}``).
    """
    tf_options = {"signature": signature, "inputs": inputs, "outputs": outputs, "constants": constants}
    with open_model(path, tf_options) as graph:
        module = assemble(graph, layout, input_shapes)
        _attach_meta(module, graph, layout, input_shapes)
    if any(v for v in tf_options.values()):
        module.tf2torch_meta["tf_options"] = {k: (list(v) if isinstance(v, (list, tuple)) else v)
                                              for k, v in tf_options.items() if v}
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
    module.load_state_dict(payload["state_dict"], strict=True)
    _attach_meta(module, graph, meta["layout"], meta.get("input_shapes"))
    if "tf_options" in meta:
        module.tf2torch_meta["tf_options"] = meta["tf_options"]
    return module.eval()
