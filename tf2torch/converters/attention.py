"""Attention layers: EinsumDense, MultiHeadAttention, Attention (Luong), AdditiveAttention (Bahdanau).

Sequences stay in Keras layout (B, T, F). Traps, with their sources ([K3] ``keras/src/layers/attention/``,
[TFK] ``tf_keras/src/layers/attention/``):
- MultiHeadAttention weights are grouped by sub-layer, named ``query_dense/vars/0`` in ``.keras`` files (children
  in alphabetical order) and ``query/kernel`` in ``.h5`` files: they are picked by name, not position.
- tf.keras passes ``value`` and ``key`` as keyword inputs; Keras 3 passes ``value`` positionally.
- Masks: query (B, T, 1) & value (B, 1, S) & key & causal & ``attention_mask``; a fully masked row ends
  differently in [K3]'s two code paths and in [TFK] (``tf2torch.nn.attention`` docstring).
- ``use_causal_mask`` and ``return_attention_scores`` are constants of the Keras call, not of the config.
- ``Attention`` scores have no 1/√d; dropout is inactive at inference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from ..layout import KERAS
from ..nn.attention import (
    KERAS3_DOT_PRODUCT,
    KERAS3_SOFTMAX,
    TF_KERAS_ROBUST_SOFTMAX,
    TF_KERAS_SOFTMAX,
    AdditiveAttention,
    DotProductAttention,
    EinsumDense,
    KerasMaskedMultiheadAttention,
    MultiHeadAttention,
    projection_equation,
)
from ..transforms import einsum_heads_to_linear, output_heads_to_linear
from .activations import activation_for
from .registry import NO_EFFECT, Converted, LayerSpec, as_parameter, converter


def einsum_dense_module(equation: str, kernel: np.ndarray, bias: np.ndarray | None,
                        activation: nn.Module | None = None) -> EinsumDense:
    module = EinsumDense(equation, kernel.shape, None if bias is None else bias.shape, activation)
    module.kernel = as_parameter(kernel)
    if bias is not None:
        module.bias = as_parameter(bias)
    return module


@converter("EinsumDense", defaults={"lora_rank": None, "lora_alpha": None, "quantization_config": None},
           arithmetic=("equation", "output_shape", "bias_axes", "activation"))
def convert_einsum_dense(spec: LayerSpec) -> Converted:
    """``EinsumDense``: ``torch.einsum`` with the Keras equation on the stored kernel, plus the stored bias (shaped
    by ``bias_axes`` to broadcast on the trailing output axes), then the activation ([K3] ``core/einsum_dense.py``).
    """
    has_bias = spec.config.get("bias_axes") is not None
    arrays = spec.weights(expected=2 if has_bias else 1)
    check_einsum_output_shape(spec, arrays[0])
    module = einsum_dense_module(spec.config["equation"], arrays[0], arrays[1] if has_bias else None,
                                 activation_for(spec))
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS)


def check_einsum_output_shape(spec: LayerSpec, kernel: np.ndarray) -> None:
    """The config's ``output_shape`` (without batch; None where dynamic) must be what the equation makes of the
    stored kernel: each output letter found in the kernel has the kernel's size."""
    declared = spec.config["output_shape"]
    declared = [declared] if isinstance(declared, int) else list(declared or [])
    equation = str(spec.config["equation"]).replace(" ", "")
    inputs, _, output = equation.partition("->")
    kernel_letters = inputs.split(",")[1] if "," in inputs else ""
    sizes = dict(zip(kernel_letters, kernel.shape))
    for letter, size in zip(output[-len(declared):] if declared else "", declared):
        if size is not None and letter in sizes and int(size) != sizes[letter]:
            spec.fail(f"output_shape {declared} disagrees with the stored kernel {tuple(kernel.shape)} "
                      f"(equation {equation})")


def check_mha_config(spec: LayerSpec, weights: dict[str, np.ndarray]) -> None:
    """The stored projections must be what ``num_heads``, ``key_dim``, ``value_dim``, ``output_shape``,
    ``use_bias`` and ``use_gate`` make ([K3]/[TFK] ``multi_head_attention.py`` ``build``)."""
    cfg = spec.config
    heads, key_dim = int(cfg["num_heads"]), int(cfg["key_dim"])
    value_dim = int(cfg.get("value_dim") or key_dim)
    output_shape = cfg.get("output_shape")
    expected = {"query_kernel": (None, heads, key_dim), "key_kernel": (None, heads, key_dim),
                "value_kernel": (None, heads, value_dim)}
    if output_shape is not None:
        tail = (int(output_shape),) if isinstance(output_shape, int) else tuple(int(d) for d in output_shape)
    else:
        tail = (None,)
    expected["output_kernel"] = (heads, value_dim, *tail)
    if bool(cfg.get("use_gate", False)) != ("gate_kernel" in weights):
        spec.fail(f"use_gate={cfg.get('use_gate', False)} disagrees with the stored weights ({', '.join(weights)})")
    if bool(cfg.get("use_bias", True)) != ("query_bias" in weights):
        spec.fail(f"use_bias={cfg.get('use_bias', True)} disagrees with the stored weights ({', '.join(weights)})")
    if "gate_kernel" in weights:
        expected["gate_kernel"] = (None, heads, value_dim)
    names = list(expected)
    spec.check_shapes([weights[n] for n in names], [expected[n] for n in names], names)


# Sub-layer names: ``.keras`` children (``query_dense``; [K3] keeps the gate as ``_gate_dense``) and ``.h5`` weight
# scopes (``query``) → role.
MHA_PARTS = {"query_dense": "query", "query": "query", "key_dense": "key", "key": "key", "value_dense": "value",
             "value": "value", "output_dense": "output", "attention_output": "output", "_gate_dense": "gate",
             "gate_dense": "gate", "gate": "gate",
             # GroupedQueryAttention's ``.keras`` children
             "_query_dense": "query", "_key_dense": "key", "_value_dense": "value", "_output_dense": "output"}
MHA_VARS = {"0": "kernel", "1": "bias"}


def mha_weight_roles(names: list[str]) -> dict[str, int]:
    """Stored weight names → ``{"query_kernel": index, "query_bias": ..., "output_kernel": ...}``.
    ``.keras``: ``query_dense/vars/0`` (kernel), ``vars/1`` (bias); ``.h5``: ``query/kernel``,
    ``attention_output/bias``."""
    roles = {}
    for i, name in enumerate(names):
        parts = name.split(":")[0].split("/")
        if len(parts) >= 3 and parts[-2] == "vars":
            part, kind = parts[-3], MHA_VARS[parts[-1]]
        else:
            part, kind = parts[-2], parts[-1]
        roles[f"{MHA_PARTS[part]}_{kind}"] = i
    return roles


def attention_axes_of(config_axes: list[int] | int | None, input_rank: int) -> tuple[int, ...]:
    """[K3]/[TFK] ``_build_attention``: None → every axis between batch and features; negative axes count on the
    projected rank minus one."""
    rank = input_rank + 1
    if config_axes is None:
        return tuple(range(1, rank - 2))
    axes = [config_axes] if isinstance(config_axes, int) else config_axes
    return tuple(a if a >= 0 else (rank - 1) + a for a in axes)


def mha_softmax_style(spec: LayerSpec, input_rank: int, return_scores: bool) -> str:
    """[K3] uses ``ops.dot_product_attention`` on 3-D inputs when dropout is 0 and no scores are returned, else its
    ``Softmax`` layer; [TFK] its ``Softmax`` (``softmax_robust_masking`` picks the ``where`` form)."""
    if spec.keras_major >= 3:
        fast = input_rank == 3 and float(spec.config.get("dropout", 0.0)) == 0.0 and not return_scores
        return KERAS3_DOT_PRODUCT if fast else KERAS3_SOFTMAX
    return TF_KERAS_ROBUST_SOFTMAX if spec.config.get("softmax_robust_masking") else TF_KERAS_SOFTMAX


def mha_weights(spec: LayerSpec) -> dict[str, np.ndarray]:
    names = [w.name for w in spec.weight_handles]
    try:
        roles = mha_weight_roles(names)
    except (KeyError, IndexError):
        spec.fail(f"unexpected MultiHeadAttention weights: {', '.join(names)}")
    arrays = spec.weights()
    return {role: arrays[i] for role, i in roles.items()}


def fits_torch_mha(weights: dict[str, np.ndarray], input_rank: int, axes: tuple[int, ...], style: str,
                   dropout: float) -> bool:
    """``nn.MultiheadAttention`` is exact when H·dk = E (the query size), dv = dk, the output size is E, the
    inputs are 3-D, there is no gate, the masking adds a constant it can take as a float mask, and there is no
    dropout (torch returns the dropped probabilities, Keras the ones before dropout)."""
    dq, heads, dk = weights["query_kernel"].shape
    return (input_rank == 3 and axes == (1,) and "gate_kernel" not in weights and heads * dk == dq
            and weights["value_kernel"].shape[1:] == (heads, dk) and weights["output_kernel"].shape == (heads, dk, dq)
            and style in (KERAS3_DOT_PRODUCT, TF_KERAS_SOFTMAX) and dropout == 0)


def torch_mha(weights: dict[str, np.ndarray], use_bias: bool) -> nn.MultiheadAttention:
    dq, heads, _ = weights["query_kernel"].shape
    mha = nn.MultiheadAttention(dq, heads, bias=use_bias, batch_first=True,
                                kdim=weights["key_kernel"].shape[0], vdim=weights["value_kernel"].shape[0])
    projections = [einsum_heads_to_linear(weights[f"{p}_kernel"]) for p in ("query", "key", "value")]
    if mha._qkv_same_embed_dim:
        mha.in_proj_weight = as_parameter(np.concatenate(projections))
    else:
        mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight = (as_parameter(p) for p in projections)
    mha.out_proj.weight = as_parameter(output_heads_to_linear(weights["output_kernel"]))
    if use_bias:
        mha.in_proj_bias = as_parameter(np.concatenate([weights[f"{p}_bias"].reshape(-1)
                                                        for p in ("query", "key", "value")]))
        mha.out_proj.bias = as_parameter(weights["output_bias"])
    return mha


def keras_mha(weights: dict[str, np.ndarray], input_rank: int, key_dim: int, axes: tuple[int, ...], style: str,
              options: dict[str, Any]) -> MultiHeadAttention:
    free = input_rank - 1
    projection, _ = projection_equation(free, 1, 2)
    dense = {p: einsum_dense_module(projection, weights[f"{p}_kernel"], weights.get(f"{p}_bias"))
             for p in ("query", "key", "value")}
    gate = None
    if "gate_kernel" in weights:
        gate = einsum_dense_module(projection, weights["gate_kernel"], weights.get("gate_bias"), nn.Sigmoid())
    output_equation, _ = projection_equation(free, 2, weights["output_kernel"].ndim - 2)
    output = einsum_dense_module(output_equation, weights["output_kernel"], weights.get("output_bias"))
    return MultiHeadAttention(dense["query"], dense["key"], dense["value"], output, gate, key_dim, input_rank, axes,
                              style, **options)


@converter("MultiHeadAttention", training_sensitive=True, weight_kind="attention", defaults={
    "query_shape": NO_EFFECT, "key_shape": NO_EFFECT, "value_shape": NO_EFFECT,  # [TFK] build shapes
    "dropout": NO_EFFECT,  # on the attention probabilities, inactive at inference
    "flash_attention": NO_EFFECT,  # [K3] a kernel choice, same result
})
def convert_multi_head_attention(spec: LayerSpec) -> Converted:
    """``MultiHeadAttention``: ``nn.MultiheadAttention`` (with Keras's masks as an additive float mask) where that
    is exact (``fits_torch_mha``), else the Keras computation itself (``tf2torch.nn.attention.MultiHeadAttention``).
    Masks of query/value/key come per input; ``attention_mask`` as a keyword tensor; the output keeps the
    query's mask ([K3] ``call``: ``set_keras_mask(attention_output, query_mask)``)."""
    cfg = spec.config
    input_rank = len(spec.input_shape)
    return_scores = bool(spec.call_kwargs.get("return_attention_scores", False))
    axes = attention_axes_of(cfg.get("attention_axes"), input_rank)
    style = mha_softmax_style(spec, input_rank, return_scores)
    weights = mha_weights(spec)
    check_mha_config(spec, weights)
    return attention_layer(spec, weights, int(cfg["key_dim"]), axes, style, return_scores)


def attention_layer(spec: LayerSpec, weights: dict[str, np.ndarray], key_dim: int, axes: tuple[int, ...], style: str,
                    return_scores: bool) -> Converted:
    """The module of a MultiHeadAttention-like layer from its projection weights (by role)."""
    cfg = spec.config
    input_rank = len(spec.input_shape)
    options = {"causal": bool(spec.call_kwargs.get("use_causal_mask", False)),
               "sliding_window": cfg.get("sliding_window"), "return_scores": return_scores}
    dropout = float(cfg.get("dropout", 0.0))
    if fits_torch_mha(weights, input_rank, axes, style, dropout):
        module: nn.Module = KerasMaskedMultiheadAttention(torch_mha(weights, bool(cfg.get("use_bias", True))),
                                                          style, **options)
    else:
        module = keras_mha(weights, input_rank, key_dim, axes, style, {**options, "dropout": dropout})
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS, takes_mask="per_input",
                     output_mask="propagate", clears_input_masks=True)


def repeat_kv_heads(array: np.ndarray, repeats: int, head_axis: int) -> np.ndarray:
    """Grouped-query attention shares each key/value head among ``repeats`` consecutive query heads
    ([K3] ``ops.repeat(key, num_repeats, axis=2)``): the same projection with each head repeated in place."""
    return np.repeat(array, repeats, axis=head_axis)


@converter("GroupedQueryAttention", "GroupQueryAttention", defaults={
    "dropout": NO_EFFECT,  # on the attention probabilities, inactive at inference
    "flash_attention": NO_EFFECT,  # a kernel choice, same result
    "seed": NO_EFFECT,  # dropout's
})
def convert_grouped_query_attention(spec: LayerSpec) -> Converted:
    """Keras 3 ``GroupedQueryAttention``: a MultiHeadAttention whose ``num_key_value_heads`` key/value heads each
    serve ``num_query_heads / num_key_value_heads`` query heads; converted as that MultiHeadAttention, the key
    and value projections' heads repeated in place ([K3] ``grouped_query_attention.py`` ``call``)."""
    cfg = spec.config
    input_rank = len(spec.input_shape)
    if input_rank != 3:
        spec.fail(f"expects (batch, sequence, features) inputs, got rank {input_rank}")
    heads, kv_heads, head_dim = int(cfg["num_query_heads"]), int(cfg["num_key_value_heads"]), int(cfg["head_dim"])
    if kv_heads <= 0 or heads % kv_heads:
        spec.fail(f"num_query_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    return_scores = bool(spec.call_kwargs.get("return_attention_scores", False))
    weights = mha_weights(spec)
    if bool(cfg.get("use_bias", True)) != ("query_bias" in weights):
        spec.fail(f"use_bias={cfg.get('use_bias', True)} disagrees with the stored weights ({', '.join(weights)})")
    if bool(cfg.get("use_gate", False)) != ("gate_kernel" in weights):
        spec.fail(f"use_gate={cfg.get('use_gate', False)} disagrees with the stored weights ({', '.join(weights)})")
    expected = {"query_kernel": (None, heads, head_dim), "key_kernel": (None, kv_heads, head_dim),
                "value_kernel": (None, kv_heads, head_dim), "output_kernel": (heads, head_dim, None)}
    if "gate_kernel" in weights:
        expected["gate_kernel"] = (None, heads, head_dim)
    spec.check_shapes([weights[n] for n in expected], list(expected.values()), list(expected))
    repeats = heads // kv_heads
    for part in ("key", "value"):
        weights[f"{part}_kernel"] = repeat_kv_heads(weights[f"{part}_kernel"], repeats, head_axis=1)
        if f"{part}_bias" in weights:
            weights[f"{part}_bias"] = repeat_kv_heads(weights[f"{part}_bias"], repeats, head_axis=0)
    style = mha_softmax_style(spec, input_rank, return_scores)
    return attention_layer(spec, weights, head_dim, (1,), style, return_scores)


def dense_attention_options(spec: LayerSpec) -> dict[str, Any]:
    """``use_causal_mask`` (a call argument; [TFK] before 2.10: the ``causal`` config),
    ``return_attention_scores`` and ``dropout`` (on the attention weights, train mode only)."""
    causal = bool(spec.call_kwargs.get("use_causal_mask", False) or spec.config.get("causal", False))
    return {"causal": causal, "return_scores": bool(spec.call_kwargs.get("return_attention_scores", False)),
            "dropout": float(spec.config.get("dropout", 0.0))}


@converter("Attention", training_sensitive=True,
           defaults={"dropout": NO_EFFECT})  # on the attention weights, inactive at inference
def convert_attention(spec: LayerSpec) -> Converted:
    """``Attention`` (Luong): ``softmax(q·kᵀ · scale) · v`` with no 1/√d; ``score_mode="concat"`` scores
    ``concat_score_weight · Σ tanh(scale · (q + k))``. Stored weights: ``scale`` then ``concat_score_weight``,
    each present only when used ([K3]/[TFK] ``attention.py`` ``build``)."""
    use_scale = bool(spec.config.get("use_scale", False))
    concat = spec.config.get("score_mode", "dot") == "concat"
    arrays = spec.weights(expected=use_scale + concat)
    module = DotProductAttention(use_scale, concat, **dense_attention_options(spec))
    if use_scale:  # stored as () or (1,): kept as the module's own scalar shape, so it rebuilds from its arguments
        module.scale = nn.Parameter(as_parameter(arrays[0]).detach().reshape(()))
    if concat:
        module.concat_score_weight = nn.Parameter(as_parameter(arrays[-1]).detach().reshape(()))
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS, takes_mask="per_input",
                     output_mask="propagate")


@converter("AdditiveAttention", training_sensitive=True, defaults={"dropout": NO_EFFECT})  # inactive at inference
def convert_additive_attention(spec: LayerSpec) -> Converted:
    """``AdditiveAttention`` (Bahdanau): scores ``Σ scale · tanh(q + k)``; ``scale`` (features,) when
    ``use_scale`` (the default), else 1."""
    use_scale = bool(spec.config.get("use_scale", True))
    arrays = spec.weights(expected=int(use_scale))
    features = arrays[0].shape[0] if use_scale else int(spec.input_shape[-1] or 0)
    module = AdditiveAttention(features, use_scale, **dense_attention_options(spec))
    if use_scale:
        module.scale = as_parameter(arrays[0])
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS, takes_mask="per_input",
                     output_mask="propagate")

