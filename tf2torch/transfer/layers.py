"""A source layer, and what tells its kind and roles from weight names alone: shared by the Keras weight files
(``source``) and the TF checkpoints (``source_tf``), which import it from here rather than from each other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
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
    direction: str | None = None  # an RNN: "forward"/"backward" half of a Bidirectional; None: a plain layer
    names: dict[str, str] = field(default_factory=dict)  # role → the weight's name in the file, where not name/role
    output_of: str | None = None  # the Keras layer whose output this one's equals (None: its own; "": none)

    @property
    def output_layer(self) -> str:
        return self.name if self.output_of is None else self.output_of

    def weight_name(self, role: str) -> str:
        return self.names.get(role, f"{self.name}/{role}")

    def weight_names(self) -> list[str]:
        return [self.weight_name(role) for role in self.weights]


def named_kind(weights: dict[str, Weight]) -> str | None:
    """A layer's kind told by its weights' names and shapes (a ``save_weights`` file names no classes). A
    rank-3+ ``kernel`` is taken for a convolution: a transposed one stores the same rank and is told by class
    only, so a Keras 2 weights-only file's transposed convolutions need a mapping."""
    names = set(weights)
    if "depthwise_kernel" in names:
        return "separable" if "pointwise_kernel" in names else "depthwise"
    if {"kernel", "recurrent_kernel"} <= names:
        gates = weights["kernel"].shape[-1] // max(1, weights["recurrent_kernel"].shape[0])
        return {4: "lstm", 3: "gru"}.get(gates)
    if "moving_mean" in names:
        return "batchnorm"
    if names == {"embeddings"}:
        return "embedding"
    if names == {"alpha"}:
        return "prelu"
    if names <= {"gamma", "beta"}:
        return "layernorm"
    if "kernel" in names and names <= {"kernel", "bias"}:
        return "dense" if len(weights["kernel"].shape) == 2 else "conv"
    return None


def natural(key: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key))


RNN_ROLES = ["kernel", "recurrent_kernel", "bias"]  # an LSTM's and a GRU's cell, in build order (both flavours)


def hf_roles(layer: SourceLayer) -> SourceLayer:
    """Hugging Face TF names: a ``TFConv1D``/``TFSharedEmbeddings`` stores ``weight`` (GPT-2's ``c_attn/weight``,
    (in, out) as a Dense kernel; BERT's ``word_embeddings/weight``), not ``kernel``/``embeddings``
    ([HF] ``modeling_tf_utils.py``). Renamed to the Keras role it is; the report keeps the file's name."""
    if layer.kind is not None or "weight" not in layer.weights or len(layer.weights["weight"].shape) != 2:
        return layer
    if set(layer.weights) == {"weight", "bias"}:
        role = "kernel"
    elif set(layer.weights) == {"weight"}:
        role = "embeddings"
    else:
        return layer
    weights = {role if r == "weight" else r: w for r, w in layer.weights.items()}
    kind = "dense" if role == "kernel" else "embedding"
    return replace(layer, kind=kind, weights=weights, names={role: f"{layer.name}/weight"})


def normalize(layer: SourceLayer) -> SourceLayer:
    """A layer as the matching wants it: Hugging Face roles renamed (``hf_roles``); an RNN named as a
    Bidirectional's half (``bidirectional/backward_lstm``, ``layer_with_weights-1/backward_layer``) marked with
    its direction, so that it never loads into a one-direction torch RNN."""
    layer = hf_roles(layer)
    last = layer.name.rsplit("/", 1)[-1]
    if layer.kind in ("lstm", "gru") and layer.direction is None and last.startswith(("forward_", "backward_")):
        layer = replace(layer, direction="backward" if last.startswith("backward_") else "forward")
    return layer


def split_layer(layer: SourceLayer) -> list[SourceLayer]:
    """One Keras layer that torch writes as two modules, split: a SeparableConv (``depthwise_kernel``,
    ``pointwise_kernel``, ``bias``) → a depthwise part and a 1x1 conv part (``name/depthwise``,
    ``name/pointwise``); a Bidirectional RNN (roles ``forward_lstm/lstm_cell/kernel``, ``forward_layer/cell/vars/0``
    ...) → its two halves, each with its ``direction``, which a bidirectional torch RNN takes as one pair."""
    if layer.kind == "separable" and {"depthwise_kernel", "pointwise_kernel"} <= set(layer.weights):
        w = layer.weights
        pointwise = {"kernel": w["pointwise_kernel"], **({"bias": w["bias"]} if "bias" in w else {})}
        return [replace(layer, name=f"{layer.name}/depthwise", kind="depthwise", output_of="",
                        weights={"depthwise_kernel": w["depthwise_kernel"]},
                        names={"depthwise_kernel": layer.weight_name("depthwise_kernel")}),
                replace(layer, name=f"{layer.name}/pointwise", kind="conv", weights=pointwise, output_of=layer.name,
                        names={r: layer.weight_name("pointwise_kernel" if r == "kernel" else r) for r in pointwise})]
    halves: dict[str, dict[str, Any]] = {}
    for role, weight in layer.weights.items():
        head = role.split("/")[0]
        if "/" not in role or not head.startswith(("forward", "backward")):
            return [layer]
        halves.setdefault(head, {})[role] = weight
    if len(halves) != 2:
        return [layer]
    return [half for head, weights in halves.items() for half in [_rnn_half(layer, head, weights)]]


def _rnn_half(layer: SourceLayer, head: str, weights: dict[str, Any]) -> SourceLayer:
    named = {role.rsplit("/", 1)[-1]: (role, w) for role, w in weights.items()}
    if all(key.isdigit() for key in named) and len(named) <= len(RNN_ROLES):
        named = {RNN_ROLES[int(key)]: value for key, value in named.items()}
    roles = {role: w for role, (_, w) in named.items()}
    direction = "backward" if head.startswith("backward") else "forward"
    return SourceLayer(f"{layer.name}/{head}", named_kind(roles), layer.class_name, roles, None, layer.config,
                       direction, {role: f"{layer.name}/{original}" for role, (original, _) in named.items()},
                       layer.name)


def loose_weights(layer: SourceLayer) -> list[SourceLayer]:
    """A layer of no kind tf2torch knows (a weight made with ``add_weight``: Hugging Face's ``TFViTEmbeddings``
    holds ``cls_token`` and ``position_embeddings`` so, [HF] ``models/vit/modeling_tf_vit.py``), each weight a
    ``tensor`` source of its own, named ``layer/role``; it loads as is into a torch tensor of the same shape that
    a module of no known kind holds (``ViTEmbeddings.cls_token``)."""
    if layer.kind is not None:
        return []
    return [SourceLayer(f"{layer.name}/{role}", "tensor", layer.class_name, {role: w}, None, layer.config, None,
                        {role: layer.weight_name(role)}, "") for role, w in layer.weights.items()]


class Derived:
    """A stored weight seen through a function (a reshape, a transpose), with the shape it gives; read when
    asked for."""

    def __init__(self, stored: Any, shape: tuple[int, ...], fn: Any):
        self.stored, self.shape, self.dtype, self.fn = stored, tuple(shape), stored.dtype, fn

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, rows: slice) -> Any:
        return self.__array__()[rows]

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        import numpy as np

        array = np.ascontiguousarray(self.fn(np.asarray(self.stored)))
        return array if dtype is None else array.astype(dtype, copy=False)


def pointwise_as_dense(layer: SourceLayer) -> SourceLayer | None:
    """A convolution with a 1x1 kernel as the Dense it computes per position (keras.applications' MobileNetV3
    ends in ``Conv2D(classes, 1)`` on a (N, 1, 1, C) tensor where timm has a ``Linear``); None for any other."""
    kernel = layer.weights.get("kernel")
    if layer.kind != "conv" or kernel is None or any(d != 1 for d in kernel.shape[:-2]):
        return None
    shape = tuple(kernel.shape[-2:])
    weights = {**layer.weights, "kernel": Derived(kernel, shape, lambda a: a.reshape(shape))}
    return replace(layer, kind="dense", weights=weights, names={r: layer.weight_name(r) for r in weights})


def grouped_as_depthwise(layer: SourceLayer) -> SourceLayer | None:
    """A convolution whose kernel takes one input channel per group (kh, kw, 1, N) as the depthwise convolution it
    is when ``groups`` equals its input channels (Hugging Face's TF ConvNeXt writes its 7x7 depthwise conv as
    ``Conv2D(groups=dim)``): Keras's output channel o belongs to group o // multiplier, as in a depthwise kernel
    (kh, kw, N, 1) seen through ``depthwise_kernel_to_oihw``. None for any other."""
    kernel = layer.weights.get("kernel")
    if layer.kind != "conv" or kernel is None or len(kernel.shape) < 3 or kernel.shape[-2] != 1:
        return None
    shape = (*kernel.shape[:-2], kernel.shape[-1], 1)
    weights = {("depthwise_kernel" if r == "kernel" else r): (Derived(w, shape, lambda a: a.reshape(shape))
                                                             if r == "kernel" else w) for r, w in layer.weights.items()}
    names = {("depthwise_kernel" if r == "kernel" else r): layer.weight_name(r) for r in layer.weights}
    return replace(layer, kind="depthwise", weights=weights, names=names)


def stack_layers(layers: list[SourceLayer], directions: int) -> SourceLayer | None:
    """Several RNN layers as one multi-layer (and/or bidirectional) torch RNN's source, roles named by torch's
    suffixes (``l1_reverse.kernel``); None unless each torch layer gets a plain layer or a forward and a backward
    half (in either order: a checkpoint lists ``backward_layer`` first)."""
    if len(layers) % directions or len({s.kind for s in layers}) != 1:
        return None
    weights, names = {}, {}
    for depth in range(len(layers) // directions):
        group = layers[depth * directions:(depth + 1) * directions]
        if directions == 2:
            group = sorted(group, key=lambda s: s.direction != "forward")
            if [s.direction for s in group] != ["forward", "backward"] or \
                    group[0].name.rpartition("/")[0] != group[1].name.rpartition("/")[0]:
                return None  # two halves of one Bidirectional, never of two
        elif group[0].direction is not None:
            return None
        for suffix, part in zip(("", "_reverse"), group):
            for role, w in part.weights.items():
                weights[f"l{depth}{suffix}.{role}"] = w
                names[f"l{depth}{suffix}.{role}"] = part.weight_name(role)
    first, last = layers[0], layers[-1]
    output = last.output_layer if directions == 1 or last.output_of else ""  # a checkpoint's halves: no graph
    return SourceLayer("+".join(s.name for s in layers), first.kind, first.class_name, weights, None, last.config,
                       None, names, output)
