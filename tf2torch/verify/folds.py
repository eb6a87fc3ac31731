"""Which Keras layer calls an ``--optimize``d module no longer computes on their own, and where each went.

``tf2torch.optimize`` folds a BatchNormalization (and the activation after it) into the convolution before it, a
Rescaling into the convolution after it, a ZeroPadding2D into the pooling after it, and drops inference no-ops
(Dropout, noise). The absorbing node keeps its module name, lists the folded layers in
``meta["tf2torch"]["folded"]`` and, when it now computes the last folded layer's output, takes that layer's Keras
node (``optimize.note_fold``). Without this map ``verify`` reported every absorbing layer as "no output on one
side" (issue #20: DenseNet121 ``--optimize --verify`` said 119 of 428 calls differ while its output matched to
2.1e-7). Each folded call is instead shown as ``folded`` with the layer that absorbed it; the absorbing module's
output is compared with the Keras output it now computes, and the model's outputs are always compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch.fx as fx


def folded_calls(module: fx.GraphModule, graph: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(Keras node id → why the optimised module has no output of its own for it, Keras node id compared at an
    absorbing module → which module computes it and what was folded in); both empty for a default module."""
    if not module.tf2torch_meta.get("optimize"):
        return {}, {}
    nodes_of: dict[str, list[str]] = {}
    for node in graph["nodes"]:
        nodes_of.setdefault(node["layer"], []).append(node["id"])
    notes: dict[str, str] = {}
    absorbed: dict[str, str] = {}
    computed: set[str] = set()
    for n in module.graph.nodes:
        meta = n.meta.get("tf2torch") or {}
        if n.op != "call_module" or "keras_node" not in meta:
            continue
        computed.add(meta["keras_node"])
        folded = list(meta.get("folded") or [])
        if not folded:
            continue
        target = meta.get("layer", str(n.target))
        at = meta["keras_node"]
        absorbed[at] = f"computed by {target}'s module, with {', '.join(folded)} folded in by --optimize"
        for node_id in nodes_of.get(target, []):  # the absorbing layer's own call, when it now computes another's
            if node_id != at:
                notes[node_id] = (f"{', '.join(folded)} folded into it by --optimize: its module now computes "
                                  f"{at}'s output, compared there")
        for layer in folded:
            for node_id in nodes_of.get(layer, []):
                if node_id != at:
                    notes[node_id] = f"folded into {target} by --optimize; {target} is compared as {at}"
    for node in graph["nodes"]:
        layer = graph["layers"][node["layer"]]
        if node["id"] not in computed and node["id"] not in notes and layer["class_name"] != "InputLayer":
            notes[node["id"]] = "removed by --optimize: an identity at inference"
    return notes, absorbed


def output_nodes(graph: Mapping[str, Any]) -> set[str]:
    """The Keras nodes whose outputs are the model's: never folded away, always compared."""
    return {ref["node"] for ref in graph["outputs"]}
