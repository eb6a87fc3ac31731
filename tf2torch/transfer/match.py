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
from .layers import SourceLayer, stack_layers
from .target import TargetModule


@dataclass
class Assignment:
    """One target tensor from one source weight: ``compute()`` reads and transforms it."""

    target: str
    source: str
    transform: str
    shape: tuple[int, ...]
    compute: Callable[[], np.ndarray]
    used: tuple[str, ...] = ()  # the source weights it reads, by their names in the file
    loose: bool = False  # a tensor of no known module kind, paired by itself (``plan_tensor``)


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
        shown = source.weight_name(role)  # the file's own name where it is layer/name (HF's ``weight``)
        shown = shown if source.kind == "tensor" or shown.rpartition("/")[0] == source.name else f"{source.name}/{role}"
        out.append(Assignment(f"{target.path}.{name}" if target.path else name, shown, transform, tuple(shape), compute,
                              tuple(source.weight_name(r) for r in role.split("+")), source.kind == "tensor"))
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
    """The bias as it is; a Hugging Face ``TFConv1D``'s (1, nf) bias flattened to torch's (nf,)."""
    bias = source.weights.get("bias")
    if bias is None:
        return []
    if len(bias.shape) == 2 and bias.shape[0] == 1:
        return [("bias", "bias", "reshape (1, n) -> (n,)", (bias.shape[1],), lambda: np.asarray(bias).reshape(-1))]
    return [_copy("bias", source, "bias")]


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
    if target.in_out:  # Hugging Face's Conv1D (GPT-2) stores the kernel as Keras does: (in, out)
        if transform == "kernel_to_linear":
            return [("weight", "kernel", "identity ((in, out), as Keras's kernel)", (rows, units),
                     lambda: np.asarray(kernel)), *_bias(source)]
        return [("weight", "kernel", f"{transform}, transposed back to (in, out)", (rows, units),
                 lambda: tx.kernel_to_linear(kernel, channels, spatial).T), *_bias(source)]
    piece = ("weight", "kernel", transform, (units, rows), lambda: tx.kernel_to_linear(kernel, channels, spatial))
    return [piece, *_bias(source)]


def plan_batchnorm(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    """BatchNormalization → ``BatchNorm*d``. A Keras layer with ``scale=False`` (keras.applications' InceptionV3)
    or ``center=False`` stores no gamma or beta: an affine torch module takes ones or zeros there, which
    computes the same."""
    names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
    if not {"moving_mean", "moving_variance"} <= set(source.weights):
        return None
    pieces: list[Piece] = [(names[role], role, "identity (keras_bn_to_torch_params)",
                            tuple(source.weights[role].shape), _array(source, role)) for role in source.weights]
    mean = source.weights["moving_mean"]
    for role, fill, flag in (("gamma", np.ones, "scale"), ("beta", np.zeros, "center")):
        if role not in source.weights and names[role] in target.tensors:
            pieces.append((names[role], "moving_mean", f"{fill.__name__} (Keras {flag}=False)", tuple(mean.shape),
                           lambda fill=fill: fill(mean.shape, np.float32)))
    return pieces


def plan_layernorm(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    names = {"gamma": "weight", "beta": "bias"}
    return [(names[role], role, "identity", tuple(w.shape), _array(source, role))
            for role, w in source.weights.items()]


def plan_embedding(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    return [_copy("weight", source, "embeddings")] if "embeddings" in source.weights else None


def span(target: TargetModule) -> int:
    """How many source layers one target takes: a torch RNN one per layer and direction (a Keras stack of
    LSTMs, a Bidirectional's two halves); every other module one."""
    module = target.module
    if target.kind in ("lstm", "gru"):
        return module.num_layers * (2 if module.bidirectional else 1)
    return 1


def source_for(target: TargetModule, sources: list[SourceLayer]) -> SourceLayer | None:
    """The one source layer a target takes from ``sources`` (its ``span`` of them, stacked)."""
    if span(target) == 1:
        return sources[0] if len(sources) == 1 else None
    return stack_layers(sources, 2 if target.module.bidirectional else 1)


def plan_rnn(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    """Keras LSTM/GRU layers → a torch LSTM/GRU, one layer and direction each (``stack_layers`` names a stack's
    roles ``l1_reverse.kernel``): kernels transposed (GRU gates z, r, h → r, z, n); Keras's one LSTM bias →
    ``bias_ih`` with ``bias_hh`` zero; a GRU's (2, 3u) ``reset_after`` bias → both. A GRU with
    ``reset_after=False`` (one 3u bias) is not torch's GRU: it does not fit; nor does a Bidirectional's half
    into a one-direction RNN."""
    module = target.module
    if getattr(module, "proj_size", 0):
        return None
    if span(target) == 1 and source.direction is not None:
        return None
    suffixes = [f"l{d}{r}" for d in range(module.num_layers) for r in ("", "_reverse")[:1 + module.bidirectional]]
    pieces: list[Piece] = []
    for suffix in suffixes:
        prefix = f"{suffix}." if span(target) > 1 else ""
        roles = {r.removeprefix(prefix): w for r, w in source.weights.items() if r.startswith(prefix)}
        found = _rnn_pieces(target.kind == "lstm", suffix, prefix, roles)
        if found is None:
            return None
        pieces += found
    return pieces


def _rnn_pieces(lstm: bool, suffix: str, prefix: str, w: dict) -> list[Piece] | None:
    if not {"kernel", "recurrent_kernel"} <= set(w):
        return None
    gates = tx.keras_gru_gates_to_torch if not lstm else (lambda m: m)
    kernel, recurrent, bias = w["kernel"], w["recurrent_kernel"], w.get("bias")
    how = "transpose" if lstm else "keras_gru_to_torch"
    pieces: list[Piece] = [
        (f"weight_ih_{suffix}", f"{prefix}kernel", how, tuple(kernel.shape[::-1]), lambda: gates(np.asarray(kernel)).T),
        (f"weight_hh_{suffix}", f"{prefix}recurrent_kernel", how, tuple(recurrent.shape[::-1]),
         lambda: gates(np.asarray(recurrent)).T)]
    if bias is None:
        return pieces
    if lstm and len(bias.shape) == 1:
        return [*pieces,
                (f"bias_ih_{suffix}", f"{prefix}bias", "identity", tuple(bias.shape), lambda: np.asarray(bias)),
                (f"bias_hh_{suffix}", f"{prefix}bias", "zeros (Keras has one bias)", tuple(bias.shape),
                 lambda: np.zeros(bias.shape, np.asarray(bias).dtype))]
    if not lstm and len(bias.shape) == 2 and bias.shape[0] == 2:
        def part(i: int) -> Callable[[], np.ndarray]:
            return lambda: gates(tx.input_and_recurrent_bias(np.asarray(bias))[i])
        return [*pieces, (f"bias_ih_{suffix}", f"{prefix}bias", "input_and_recurrent_bias[0], gates z,r,h -> r,z,n",
                          (bias.shape[1],), part(0)),
                (f"bias_hh_{suffix}", f"{prefix}bias", "input_and_recurrent_bias[1], gates z,r,h -> r,z,n",
                 (bias.shape[1],), part(1))]
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


def plan_prelu(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    """Keras PReLU ``alpha`` → ``nn.PReLU.weight`` (C,): shared over every axis but channels (``shared_axes=[1,
    2]`` stores (1, 1, C)) or over all; an alpha per position has no torch PReLU."""
    alpha = source.weights.get("alpha")
    if alpha is None or any(d != 1 for d in alpha.shape[:-1]):
        return None
    how = "identity" if len(alpha.shape) == 1 else f"reshape {tuple(alpha.shape)} -> ({alpha.shape[-1]},)"
    return [("weight", "alpha", how, (alpha.shape[-1],), lambda: np.asarray(alpha).reshape(-1))]


def plan_tensor(target: TargetModule, source: SourceLayer) -> list[Piece] | None:
    """A loose tensor (``loose_tensors``, ``loose_weights``) as is, or reshaped when the two differ only in axes of
    size 1 (the order of the values is then the same: TF's (1, 1, C) ↔ torch's (C,)); nothing else fits."""
    ((name, tensor),), ((role, weight),) = target.tensors.items(), source.weights.items()
    if {part(name), part(role)} == {"scale", "shift"}:  # a bias never loads into a weight (MobileBERT's NoNorm)
        return None
    have, want = tuple(weight.shape), tuple(tensor.shape)
    if have == want:
        return [(name, role, "identity", want, _array(source, role))]
    if [d for d in have if d != 1] != [d for d in want if d != 1]:
        return None
    return [(name, role, f"reshape {have} -> {want}", want, lambda: np.asarray(weight).reshape(want))]


def part(name: str) -> str | None:
    """What a loose tensor's own name says it is: ``scale`` (weight, gamma, kernel), ``shift`` (bias, beta)."""
    last = name.rsplit("/", 1)[-1].split(":")[0].lower()
    return "scale" if last in ("weight", "gamma", "kernel", "scale") else "shift" if last in ("bias", "beta") else None


PLANNERS = {"attention": plan_attention, "conv": plan_conv, "depthwise": plan_conv, "conv_transpose": plan_conv,
            "dense": plan_dense, "batchnorm": plan_batchnorm, "layernorm": plan_layernorm, "groupnorm": plan_layernorm,
            "embedding": plan_embedding,
            "lstm": plan_rnn, "gru": plan_rnn, "prelu": plan_prelu,
            "tensor": plan_tensor}


def tokens(path: str) -> set[str]:
    """Name tokens of a source or target path: ``encoder/layer_._0/query/kernel:0`` → {encoder, layer, 0, query}."""
    words = re.split(r"[^a-z0-9]+|(?<=[a-z])(?=[0-9])|(?<=[0-9])(?=[a-z])", path.lower())
    return {w for w in words if w and w not in ("kernel", "weight", "bias", "0", "vars")}


def numbers(path: str) -> list[str]:
    """The indices in a path, in order (``block_._0/layer_._1/layer_norm/weight:0`` → [0, 1]; the ``:0`` of a TF
    variable and a Keras 3 ``vars/<i>`` position are no index)."""
    return re.findall(r"\d+", re.sub(r"(:\d+$)|((^|/)vars/\d+)", "", path.lower()))


def similarity(a: str, b: str) -> tuple[float, int]:
    """Shared name tokens (Jaccard), then how many indices agree counted from the end: token sets cannot tell
    ``block.0.layer.1`` from ``block_._1/layer_._0`` (T5's layer norms), the indices in order can."""
    ta, tb = tokens(a), tokens(b)
    na, nb = numbers(a)[::-1], numbers(b)[::-1]
    trailing = next((i for i, (x, y) in enumerate(zip(na, nb)) if int(x) != int(y)), min(len(na), len(nb)))
    return (len(ta & tb) / len(ta | tb) if ta | tb else 0.0), trailing
