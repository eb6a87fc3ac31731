"""A source layer, and what tells its kind and roles from weight names alone: shared by the Keras weight files
(``source``) and the TF checkpoints (``source_tf``), which import it from here rather than from each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..graph import StoredArray, Weight

ATTENTION_PARTS = {"query": "query", "query_dense": "query", "key": "key", "key_dense": "key", "value": "value",
                   "value_dense": "value", "attention_output": "output", "output_dense": "output",
                   "_query_dense": "query", "_key_dense": "key", "_value_dense": "value", "_output_dense": "output"}


def attention_roles(names: list[str]) -> list[str] | None:
    """MultiHeadAttention weights by their sub-layer: ``query/kernel`` (Keras 2), ``query_dense/vars/0`` (Keras
    3, whose ``.keras`` lists them alphabetically, not in ``layer.weights`` order) → ``query_kernel``..."""
    roles = []
    for name in names:
        parts = name.split(":")[0].split("/")
        part = next((ATTENTION_PARTS[p] for p in parts if p in ATTENTION_PARTS), None)
        what = {"kernel": "kernel", "0": "kernel", "bias": "bias", "1": "bias"}.get(parts[-1])
        if part is None or what is None:
            return None
        roles.append(f"{part}_{what}")
    return roles if len(set(roles)) == len(roles) else None


@dataclass
class SourceLayer:
    """One source layer: ``kind`` (None: nothing tf2torch can transfer), its weights by role (``kernel``,
    ``moving_mean``...), and whether a Flatten of channels-last features feeds it (None: not known)."""

    name: str
    kind: str | None
    class_name: str
    weights: dict[str, StoredArray] = field(default_factory=dict)
    flattened_channels_last: bool | None = None
    config: dict[str, Any] = field(default_factory=dict)

    def weight_names(self) -> list[str]:
        return [f"{self.name}/{role}" for role in self.weights]


def named_kind(weights: dict[str, Weight]) -> str | None:
    """A layer's kind told by its weights' names and shapes (a ``save_weights`` file names no classes). A
    rank-3+ ``kernel`` is taken for a convolution: a transposed one stores the same rank and is told by class
    only, so a Keras 2 weights-only file's transposed convolutions need a mapping."""
    names = set(weights)
    if "depthwise_kernel" in names and "pointwise_kernel" not in names:
        return "depthwise"
    if {"kernel", "recurrent_kernel"} <= names:
        gates = weights["kernel"].shape[-1] // max(1, weights["recurrent_kernel"].shape[0])
        return {4: "lstm", 3: "gru"}.get(gates)
    if "moving_mean" in names:
        return "batchnorm"
    if names == {"embeddings"}:
        return "embedding"
    if names <= {"gamma", "beta"}:
        return "layernorm"
    if "kernel" in names and names <= {"kernel", "bias"}:
        return "dense" if len(weights["kernel"].shape) == 2 else "conv"
    return None


def natural(key: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))
