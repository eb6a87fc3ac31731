"""Pairing source layers with target modules, and the transforms that make each source weight a target tensor.

Within each kind (conv, dense, batchnorm...), targets in execution order meet sources in the source's order; a
pair is taken only when every transformed shape fits exactly. Where several sources fit one target, the name
tokens settle it (``block1_conv2`` ↔ ``features.block1.conv2``) or the target is refused as ambiguous with its
candidates listed. The transforms are the converters' own (``tf2torch.transforms``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import transforms as tx
from .layers import SourceLayer
from .target import TargetModule


@dataclass
class Assignment:
    """One target tensor from one source weight: ``compute()`` reads and transforms it."""

    target: str
    source: str
    transform: str
    shape: tuple[int, ...]
    compute: Callable[[], np.ndarray]


def _shape(target: TargetModule, name: str) -> tuple[int, ...] | None:
    tensor = target.tensors.get(name)
    return None if tensor is None else tuple(tensor.shape)


def plan(target: TargetModule, source: SourceLayer) -> list[Assignment] | None:
    """The assignments that load ``target`` from ``source``, or None when anything does not fit exactly: every
    target tensor filled, every source weight used, each shape equal after its transform."""
    if target.kind != source.kind or target.kind is None:
        return None
    planner = PLANNERS[target.kind]
    pieces = planner(target, source)
    if pieces is None:
        return None
    used = {role for p in pieces for role in p[1].split("+")}
    if set(target.tensors) != {p[0] for p in pieces} or used != set(source.weights):
        return None
    out = []
    for name, role, transform, shape, compute in pieces:
        if _shape(target, name) != tuple(shape):
            return None
        out.append(Assignment(f"{target.path}.{name}" if target.path else name, f"{source.name}/{role}",
                              transform, tuple(shape), compute))
    return out


Piece = tuple[str, str, str, tuple[int, ...], Callable[[], np.ndarray]]


def _array(source: SourceLayer, role: str) -> Callable[[], np.ndarray]:
    return lambda: np.asarray(source.weights[role])


def _copy(name: str, source: SourceLayer, role: str) -> Piece:
    return (name, role, "identity", tuple(source.weights[role].shape), _array(source, role))


def _kernel(name: str, source: SourceLayer, role: str, fn: Callable[[np.ndarray], np.ndarray]) -> Piece:
    shape = tuple(source.weights[role].shape)
    new_shape = fn(np.broadcast_to(np.uint8(0), shape)).shape  # the transform tells the shape; nothing is read
    return (name, role, fn.__name__, tuple(new_shape), lambda: fn(np.asarray(source.weights[role])))


def _bias(source: SourceLayer) -> list[Piece]:
    return [_copy("bias", source, "bias")] if "bias" in source.weights else []


def plan_conv(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    fn = {"conv": tx.hwio_to_oihw, "depthwise": tx.depthwise_kernel_to_oihw,
          "conv_transpose": tx.transposed_kernel_to_iohw}[target.kind]
    role = "depthwise_kernel" if target.kind == "depthwise" else "kernel"
    if role not in source.weights or len(source.weights[role].shape) < 3:
        return None
    return [_kernel("weight", source, role, fn), *_bias(source)]


def plan_dense(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    """Dense → Linear; after a flatten of (C, *spatial) features that Keras flattened channels-last, the rows
    are reordered to C,H,W (``kernel_to_linear``)."""
    kernel = source.weights.get("kernel")
    if kernel is None or len(kernel.shape) != 2:
        return None
    rows, units = kernel.shape
    channels, spatial, transform = rows, (), "kernel_to_linear"
    if target.flatten_from is not None and source.flattened_channels_last is not False:
        channels, spatial = target.flatten_from
        if channels * int(np.prod(spatial)) != rows:
            return None
        if np.prod(spatial) > 1:
            transform = f"kernel_to_linear(flatten H,W,C -> C,H,W; channels={channels})"
    piece = ("weight", "kernel", transform, (units, rows), lambda: tx.kernel_to_linear(kernel, channels, spatial))
    return [piece, *_bias(source)]


def plan_batchnorm(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    if not {"moving_mean", "moving_variance"} <= set(source.weights):
        return None
    return [(names[role], role, "identity (keras_bn_to_torch_params)", tuple(source.weights[role].shape),
             _array(source, role)) for role in source.weights]


def plan_layernorm(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    names = {"gamma": "weight", "beta": "bias"}
    return [(names[role], role, "identity", tuple(w.shape), _array(source, role))
            for role, w in source.weights.items()]


def plan_embedding(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    return [_copy("weight", source, "embeddings")] if "embeddings" in source.weights else None


def plan_rnn(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    """One Keras LSTM/GRU → a one-layer, one-direction torch LSTM/GRU: kernels transposed (GRU gates z, r, h →
    r, z, n); Keras's one LSTM bias → ``bias_ih`` with ``bias_hh`` zero; a GRU's (2, 3u) ``reset_after`` bias →
    both. A GRU with ``reset_after=False`` (one 3u bias) is not torch's GRU: it does not fit."""
    module = target.module
    if module.num_layers != 1 or module.bidirectional or getattr(module, "proj_size", 0):
        return None
    if not {"kernel", "recurrent_kernel"} <= set(source.weights):
        return None
    lstm = target.kind == "lstm"
    gates = tx.keras_gru_gates_to_torch if not lstm else (lambda m: m)
    kernel, recurrent = source.weights["kernel"], source.weights["recurrent_kernel"]
    pieces: list[Piece] = [
        ("weight_ih_l0", "kernel", "transpose" if lstm else "keras_gru_to_torch", tuple(kernel.shape[::-1]),
         lambda: gates(np.asarray(kernel)).T),
        ("weight_hh_l0", "recurrent_kernel", "transpose" if lstm else "keras_gru_to_torch",
         tuple(recurrent.shape[::-1]), lambda: gates(np.asarray(recurrent)).T)]
    bias = source.weights.get("bias")
    if bias is None:
        return pieces
    if lstm and len(bias.shape) == 1:
        return [*pieces, ("bias_ih_l0", "bias", "identity", tuple(bias.shape), lambda: np.asarray(bias)),
                ("bias_hh_l0", "bias", "zeros (Keras has one bias)", tuple(bias.shape),
                 lambda: np.zeros(bias.shape, np.asarray(bias).dtype))]
    if not lstm and len(bias.shape) == 2 and bias.shape[0] == 2:
        def part(i: int) -> Callable[[], np.ndarray]:
            return lambda: gates(tx.input_and_recurrent_bias(np.asarray(bias))[i])
        return [*pieces, ("bias_ih_l0", "bias", "input_and_recurrent_bias[0], gates z,r,h -> r,z,n",
                          (bias.shape[1],), part(0)),
                ("bias_hh_l0", "bias", "input_and_recurrent_bias[1], gates z,r,h -> r,z,n", (bias.shape[1],),
                 part(1))]
    return None


def plan_attention(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    """Keras MultiHeadAttention → ``nn.MultiheadAttention``: per-head kernels (D, H, dk) flattened head-major
    (``einsum_heads_to_linear``), q, k, v stacked into ``in_proj_weight`` (or kept apart when key/value sizes
    differ), the output kernel (H, dv, E) → ``out_proj``. Exact only when torch's heads are Keras's (so head_dim
    = dk and both scale by 1/sqrt(dk)): a different head count fits every shape and computes something else."""
    w, module = source.weights, target.module
    if "query_kernel" not in w or w["query_kernel"].shape[1] != module.num_heads:
        return None
    parts = ("query", "key", "value")
    kernels = [f"{p}_kernel" for p in parts]
    pieces: list[Piece] = []
    if module._qkv_same_embed_dim:
        rows = sum(int(np.prod(w[k].shape[1:])) for k in kernels)
        pieces.append(("in_proj_weight", "+".join(kernels), "einsum_heads_to_linear, q/k/v stacked",
                       (rows, w["query_kernel"].shape[0]),
                       lambda: np.concatenate([tx.einsum_heads_to_linear(np.asarray(w[k])) for k in kernels])))
    else:
        pieces += [_kernel(f"{p[0]}_proj_weight", source, k, tx.einsum_heads_to_linear) for p, k in zip(parts, kernels)]
    pieces.append(_kernel("out_proj.weight", source, "output_kernel", tx.output_heads_to_linear))
    if "query_bias" in w:
        biases = [f"{p}_bias" for p in parts]
        pieces.append(("in_proj_bias", "+".join(biases), "per-head biases flattened, q/k/v stacked",
                       (sum(int(np.prod(w[b].shape)) for b in biases),),
                       lambda: np.concatenate([np.asarray(w[b]).reshape(-1) for b in biases])))
        pieces.append(_copy("out_proj.bias", source, "output_bias"))
    return pieces


PLANNERS = {"attention": plan_attention, "conv": plan_conv, "depthwise": plan_conv, "conv_transpose": plan_conv,
            "dense": plan_dense, "batchnorm": plan_batchnorm, "layernorm": plan_layernorm, "embedding": plan_embedding,
            "lstm": plan_rnn, "gru": plan_rnn}


def tokens(path: str) -> set[str]:
    """Name tokens of a source or target path: ``encoder/layer_._0/query/kernel:0`` → {encoder, layer, 0, query}."""
    words = re.split(r"[^a-z0-9]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", path.lower())
    return {w for w in words if w and w not in ("kernel", "weight", "bias", "0", "vars")}


def similarity(a: str, b: str) -> float:
    ta, tb = tokens(a), tokens(b)
    return len(ta & tb) / len(ta | tb) if ta | tb else 0.0
