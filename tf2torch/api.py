"""The public functions behind ``tf2torch.convert``, ``save`` and ``load``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import torch.fx as fx

from . import converters  # noqa: F401  (registers every converter family)
from .assemble import assemble
from .errors import UnsupportedLayerError
from .graph import KerasGraph
from .io import load_payload, save  # noqa: F401
from .readers import open_model


def convert(path: str | os.PathLike, layout: str = "channels_first",
            input_shapes: Sequence[Sequence[int | None]] | None = None) -> fx.GraphModule:
    """Convert a Keras ``.h5`` or ``.keras`` file into a torch module in eval mode.

    ``layout="channels_first"`` (default): 4-D/5-D inputs and outputs are N,C,H,W / N,C,D,H,W; 2-D and 3-D ones
    keep Keras's layout. ``layout="keras"``: every input and output exactly as in Keras.
    ``input_shapes``: one shape per input without the batch axis, to fix dimensions the model leaves open.
    """
    with open_model(path) as graph:
        module = assemble(graph, layout, input_shapes)
        _attach_meta(module, graph, layout, input_shapes)
    return module


def _attach_meta(module: fx.GraphModule, graph: KerasGraph, layout: str,
                 input_shapes: Sequence[Sequence[int | None]] | None) -> None:
    from .converters.registry import custom_converters

    module.tf2torch_meta = {
        "graph": graph.to_json(),
        "custom_converters": custom_converters([layer.class_name for layer in graph.layers.values()]),
        "layout": layout,
        "input_shapes": [list(s) if s is not None else None for s in input_shapes] if input_shapes else None,
    }


def load(path: str | os.PathLike) -> fx.GraphModule:
    """Load a file written by ``tf2torch.save``; safe (``weights_only=True``), no pickled code."""
    payload = load_payload(path)
    meta = json.loads(payload["meta"])
    graph = KerasGraph.from_json(meta["graph"])
    require_custom_converters(path, meta.get("custom_converters") or {})
    module = assemble(graph, meta["layout"], meta.get("input_shapes"))
    module.load_state_dict(payload["state_dict"], strict=True)
    _attach_meta(module, graph, meta["layout"], meta.get("input_shapes"))
    return module.eval()


def require_custom_converters(path: str | os.PathLike, used: dict[str, str]) -> None:
    """A ``.pt`` converted with the user's own converters is rebuilt with them: say which to register."""
    from .converters.registry import converter_for

    missing = {name: fn for name, fn in used.items() if converter_for(name) is None}
    if missing:
        listed = ", ".join(f"{name} (converted by {fn})" for name, fn in missing.items())
        raise UnsupportedLayerError(
            [(name, name) for name in missing],
            message=f"{path} was converted with custom converters that are not registered now: {listed}. Import "
                    f"the module that registers them (@tf2torch.register({next(iter(missing))!r})) before "
                    "tf2torch.load")
