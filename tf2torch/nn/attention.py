"""Keras attention layers as torch modules: EinsumDense, MultiHeadAttention, Attention, AdditiveAttention.

Sources: [K3] ``keras/src/layers/core/einsum_dense.py``, ``keras/src/layers/attention/`` and
``keras/src/backend/tensorflow/nn.py`` (Keras 3.15, TensorFlow backend); [TFK] ``tf_keras/src/layers/core/``
and ``tf_keras/src/layers/attention/`` (tf.keras 2.21).

Masks are bool tensors where True means "attend", as in Keras (torch's bool attention masks mean the opposite).
Where a whole row of scores is masked, the Keras versions disagree, and each is reproduced as written:
- [K3] MultiHeadAttention on 3-D inputs without dropout or returned scores runs ``ops.dot_product_attention``:
  masked logits become ``-0.7 * 3.38953e38``, so a fully masked row averages every value uniformly;
- [K3] otherwise (and in [K3] ``Softmax(mask=)``): ``where(mask, x, -1e9)``, softmax, then ``where(mask, p, 0)``:
  a fully masked row gives zeros;
- [TFK] ``Softmax``: ``x + (1 - mask) * -1e9`` (``robust_masking=True``: ``where(mask, x, -1e9)``);
- [K3]/[TFK] ``Attention``/``AdditiveAttention``: ``where(mask, x, x - 1e9)``.
"""

from __future__ import annotations

import string
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .fused import packed_linear

# [K3] backend/tensorflow/nn.py ``_get_large_negative``: the fill of ``ops.dot_product_attention``.
DOT_PRODUCT_ATTENTION_FILL = 3.38953e38 * -0.7
SOFTMAX_MASK_FILL = -1e9  # [K3] layers/activations/softmax.py, [TFK] layers/activation/softmax.py
SCORES_MASK_OFFSET = 1e9  # [K3]/[TFK] Attention ``_apply_scores``

# How MultiHeadAttention turns masked scores into probabilities (see the module docstring).
KERAS3_DOT_PRODUCT = "keras3_dot_product_attention"
KERAS3_SOFTMAX = "keras3_softmax"
TF_KERAS_SOFTMAX = "tf_keras_softmax"
TF_KERAS_ROBUST_SOFTMAX = "tf_keras_robust_softmax"
SOFTMAX_STYLES = (KERAS3_DOT_PRODUCT, KERAS3_SOFTMAX, TF_KERAS_SOFTMAX, TF_KERAS_ROBUST_SOFTMAX)


class EinsumDense(nn.Module):
    """Keras ``EinsumDense``: ``activation(einsum(equation, x, kernel) + bias)``; ``bias`` has the stored shape,
    which Keras builds to broadcast against the trailing output axes ([K3] ``_analyze_split_string``)."""

    def __init__(self, equation: str, kernel_shape: tuple[int, ...], bias_shape: tuple[int, ...] | None = None,
                 activation: nn.Module | None = None):
        super().__init__()
        self.equation = equation
        self.kernel = nn.Parameter(torch.zeros(kernel_shape))
        self.bias = nn.Parameter(torch.zeros(bias_shape)) if bias_shape is not None else None
        self.activation = activation if activation is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum(self.equation, x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)

    def extra_repr(self) -> str:
        return f"equation={self.equation!r}"


def projection_equation(free_dims: int, bound_dims: int, output_dims: int) -> tuple[str, str]:
    """The einsum equation and bias axes of a MultiHeadAttention projection ([K3]/[TFK]
    ``_build_proj_equation``): ``free_dims=2, bound_dims=1, output_dims=2`` → ``("abc,cde->abde", "de")``."""
    letters = string.ascii_lowercase
    free = letters[:free_dims]
    bound = letters[free_dims:free_dims + bound_dims]
    out = letters[free_dims + bound_dims:free_dims + bound_dims + output_dims]
    return f"{free}{bound},{bound}{out}->{free}{out}", out


def attention_equations(rank: int, attention_axes: tuple[int, ...]) -> tuple[str, str]:
    """The query-key and the probabilities-value einsum equations over projected tensors of ``rank``
    (batch, ..., heads, channels) ([K3]/[TFK] ``_build_attention_equation``): rank 4, axes (1,) →
    ``("aecd,abcd->acbe", "acbe,aecd->abcd")``."""
    letters = string.ascii_lowercase
    target = letters[:rank]
    batch_dims = [i for i in range(rank) if i not in attention_axes and i != rank - 1]
    source, offset = "", rank
    for i in range(rank):
        if i in batch_dims or i == rank - 1:
            source += target[i]
        else:
            source += letters[offset]
            offset += 1
    product = "".join([target[i] for i in batch_dims] + [target[i] for i in attention_axes]
                      + [source[i] for i in attention_axes])
    return f"{source},{target}->{product}", f"{product},{source}->{target}"


def causal_mask(query_length: int, value_length: int, device: torch.device) -> torch.Tensor:
    """(1, T, S), True where the key position is not after the query position ([K3] ``_compute_causal_mask``)."""
    rows = torch.arange(query_length, device=device)[:, None]
    cols = torch.arange(value_length, device=device)[None, :]
    return (rows >= cols)[None]


def sliding_window_mask(query_length: int, value_length: int, window: int, device: torch.device) -> torch.Tensor:
    """(1, T, S), True where ``|i - j| < window`` ([K3] ``_compute_sliding_window_mask``)."""
    rows = torch.arange(query_length, device=device)[:, None]
    cols = torch.arange(value_length, device=device)[None, :]
    return ((rows - cols).abs() < window)[None]


def both(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    """``a & b`` where either may be absent."""
    if a is None:
        return b
    return a if b is None else a & b


def keras_attention_mask(query: torch.Tensor, value: torch.Tensor, query_mask: torch.Tensor | None,
                         value_mask: torch.Tensor | None, key_mask: torch.Tensor | None,
                         attention_mask: torch.Tensor | None, causal: bool, sliding_window: int | None,
                         cast_explicit: bool) -> torch.Tensor | None:
    """MultiHeadAttention's ``_compute_attention_mask``: query mask (B, T, 1) & value mask (B, 1, S) & key mask
    & causal (1, T, S) & sliding window, then ``& attention_mask``. [K3] always casts ``attention_mask`` to
    bool; [TFK] only when some other mask is present (``cast_explicit=False`` keeps it as given then)."""
    auto = None
    if query_mask is not None:
        auto = query_mask.bool()[..., None]
    for mask in (value_mask, key_mask):
        if mask is not None:
            auto = both(auto, mask.bool().unsqueeze(-2))
    if causal:
        auto = both(auto, causal_mask(query.shape[1], value.shape[1], query.device))
    if sliding_window is not None:
        auto = both(auto, sliding_window_mask(query.shape[1], value.shape[1], sliding_window, query.device))
    if attention_mask is not None and (cast_explicit or auto is not None):
        attention_mask = attention_mask != 0
    if auto is None:
        return attention_mask
    return auto if attention_mask is None else attention_mask & auto


def expand_mask(mask: torch.Tensor, rank: int, attention_axes: int) -> torch.Tensor:
    """Insert axes before the (query axes, key axes) until ``mask`` has the scores' rank ([K3]/[TFK]
    ``_masked_softmax``: ``expand_dims(mask, -2 * len(attention_axes) - 1)``)."""
    while mask.dim() < rank:
        mask = mask.unsqueeze(mask.dim() - 2 * attention_axes)
    return mask


def softmax_over(scores: torch.Tensor, dims: int) -> torch.Tensor:
    """Softmax over the last ``dims`` axes; several axes as Keras does it: ``exp(x - logsumexp(x))``."""
    if dims == 1:
        return torch.softmax(scores, dim=-1)
    axes = tuple(range(-dims, 0))
    return torch.exp(scores - torch.logsumexp(scores, dim=axes, keepdim=True))


def masked_softmax(scores: torch.Tensor, keep: torch.Tensor | None, style: str, dims: int = 1) -> torch.Tensor:
    """Keras's softmax of attention scores with a mask (True or nonzero = keep), in one of ``SOFTMAX_STYLES``."""
    if keep is None:
        return softmax_over(scores, dims)
    if style == TF_KERAS_SOFTMAX:
        return softmax_over(scores + (1.0 - keep.to(scores.dtype)) * SOFTMAX_MASK_FILL, dims)
    if keep.dtype != torch.bool:
        keep = keep > 0.5  # [K3]/[TFK] Softmax: a float mask keeps values > 0.5
    fill = DOT_PRODUCT_ATTENTION_FILL if style == KERAS3_DOT_PRODUCT else SOFTMAX_MASK_FILL
    probs = softmax_over(torch.where(keep, scores, torch.tensor(fill, dtype=scores.dtype)), dims)
    if style == KERAS3_SOFTMAX:
        probs = torch.where(keep, probs, torch.zeros((), dtype=probs.dtype))
    return probs


def additive_attention_mask(keep: torch.Tensor | None, style: str, shape: tuple[int, int, int, int],
                            dtype: torch.dtype, per_head: bool = True) -> torch.Tensor | None:
    """Keras's (B|1, T, S) keep mask as the float mask ``nn.MultiheadAttention`` adds to its scaled scores,
    (B·H, T, S); with ``per_head=False`` (B|1, 1, T, S), broadcast over the heads without copies
    (``scaled_dot_product_attention``). Exact for [TFK] (which adds ``(1 - mask) * -1e9`` itself) and for [K3]
    ``dot_product_attention`` (its fill absorbs any finite score: ``s + fill == fill`` in float32)."""
    if keep is None:
        return None
    if style == TF_KERAS_SOFTMAX:
        additive = (1.0 - keep.to(dtype)) * SOFTMAX_MASK_FILL
    elif style == KERAS3_DOT_PRODUCT:
        additive = torch.where(keep.bool(), torch.zeros((), dtype=dtype),
                               torch.tensor(DOT_PRODUCT_ATTENTION_FILL, dtype=dtype))
    else:
        raise ValueError(f"nn.MultiheadAttention cannot express the {style} masking")
    if not per_head:
        return additive[:, None]
    batch, heads, t, s = shape
    additive = additive.expand(batch, t, s)
    return additive[:, None].expand(batch, heads, t, s).reshape(batch * heads, t, s)


def split_masks(masks: list[torch.Tensor | None] | None, query_mask: torch.Tensor | None,
                value_mask: torch.Tensor | None, key_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """(query, value, key) masks: ``masks`` is aligned with the positional inputs (query, value, key); inputs
    given by keyword (tf.keras passes ``value`` and ``key`` so) bring ``value_mask``/``key_mask``, which win, as
    an explicit ``value_mask=`` does in [K3] ``Layer.__call__``; [K3] takes the query mask from the query."""
    found = (list(masks or []) + [None] * 3)[:3]
    query = found[0] if found[0] is not None else query_mask
    value = value_mask if value_mask is not None else found[1]
    key = key_mask if key_mask is not None else found[2]
    return query, value, key



def mha_key_and_keep_mask(module: nn.Module, query: torch.Tensor, value: torch.Tensor | None,
                          key: torch.Tensor | None, attention_mask: torch.Tensor | None,
                          masks: list[torch.Tensor | None] | None, query_mask: torch.Tensor | None,
                          value_mask: torch.Tensor | None,
                          key_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """What both MultiHeadAttention modules start with: key defaults to value, and Keras's combined keep mask
    from the query/value/key masks, ``attention_mask``, causality and the sliding window."""
    assert value is not None, "MultiHeadAttention needs a value"
    key = value if key is None else key
    query_mask, value_mask, key_mask = split_masks(masks, query_mask, value_mask, key_mask)
    keep = keras_attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask, module.causal,
                                module.sliding_window, cast_explicit=module.softmax_style.startswith("keras3"))
    return key, keep

class MultiHeadAttention(nn.Module):
    """Keras ``MultiHeadAttention`` written as Keras computes it: EinsumDense projections ``query_dense``,
    ``key_dense``, ``value_dense`` (kernels (D, H, dk)), ``q / √dk``, scores ``einsum(dot_equation, k, q)``
    (B, H, T, S), Keras's masked softmax, ``einsum(combine_equation, p, v)``, optional sigmoid gate ([K3]
    ``use_gate``), ``output_dense`` (kernel (H, dv, Do)). Any rank and ``attention_axes``; returns
    ``(output, scores)`` when the Keras call asked for ``return_attention_scores``."""

    def __init__(self, query_dense: EinsumDense, key_dense: EinsumDense, value_dense: EinsumDense,
                 output_dense: EinsumDense, gate_dense: EinsumDense | None, key_dim: int, input_rank: int,
                 attention_axes: tuple[int, ...], softmax_style: str, causal: bool = False,
                 sliding_window: int | None = None, return_scores: bool = False, dropout: float = 0.0):
        super().__init__()
        self.dropout = dropout  # on the probabilities in train mode; the returned scores are taken before it
        self.query_dense, self.key_dense, self.value_dense = query_dense, key_dense, value_dense
        self.output_dense, self.gate_dense = output_dense, gate_dense
        self.key_dim = key_dim
        self.attention_axes = attention_axes
        # Projected tensors are (batch, ..., heads, channels): one rank more than the inputs.
        self.dot_equation, self.combine_equation = attention_equations(input_rank + 1, attention_axes)
        self.softmax_style = softmax_style
        self.causal, self.sliding_window, self.return_scores = causal, sliding_window, return_scores

    def forward(self, query: torch.Tensor, value: torch.Tensor | None = None, key: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, masks: list[torch.Tensor | None] | None = None,
                query_mask: torch.Tensor | None = None, value_mask: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        key, keep = mha_key_and_keep_mask(self, query, value, key, attention_mask, masks, query_mask, value_mask,
                                          key_mask)
        gate = self.gate_dense(query) if self.gate_dense is not None else None
        q = self.query_dense(query) * (1.0 / float(self.key_dim) ** 0.5)
        k, v = self.key_dense(key), self.value_dense(value)
        scores = torch.einsum(self.dot_equation, k, q)
        if keep is not None:
            keep = expand_mask(keep, scores.dim(), len(self.attention_axes))
        probs = masked_softmax(scores, keep, self.softmax_style, len(self.attention_axes))
        dropped = F.dropout(probs, self.dropout) if self.training and self.dropout > 0 else probs
        out = torch.einsum(self.combine_equation, dropped, v)
        if gate is not None:
            out = out * gate
        out = self.output_dense(out)
        return (out, probs) if self.return_scores else out

    def extra_repr(self) -> str:
        return (f"key_dim={self.key_dim}, attention_axes={self.attention_axes}, softmax={self.softmax_style}, "
                f"causal={self.causal}")


class KerasMaskedMultiheadAttention(nn.Module):
    """``nn.MultiheadAttention`` (batch first) fed Keras's masks: the combined Keras keep mask becomes the float
    mask torch adds to its scores (``additive_attention_mask``). Used only where it is exact: H·dk = E, dv = dk,
    output dim E, 3-D inputs, and [TFK] or [K3] ``dot_product_attention`` masking."""

    def __init__(self, attention: nn.MultiheadAttention, softmax_style: str, causal: bool = False,
                 sliding_window: int | None = None, return_scores: bool = False):
        super().__init__()
        self.attention = attention
        self.softmax_style = softmax_style
        self.causal, self.sliding_window, self.return_scores = causal, sliding_window, return_scores
        self.packed_projections = False  # optimize=True: the projections by oneDNN, weights packed once
        self._packed: dict[str, Any] = {}

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state["_packed"] = {}  # a cache: nothing to copy or pickle
        return state

    def project(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, key: str,
                source: torch.Tensor) -> torch.Tensor:
        if self.packed_projections:
            return packed_linear(x, weight, bias, self._packed, key, source)
        return F.linear(x, weight, bias)

    def forward(self, query: torch.Tensor, value: torch.Tensor | None = None, key: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, masks: list[torch.Tensor | None] | None = None,
                query_mask: torch.Tensor | None = None, value_mask: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        key, keep = mha_key_and_keep_mask(self, query, value, key, attention_mask, masks, query_mask, value_mask,
                                          key_mask)
        mha = self.attention
        if not self.return_scores and mha._qkv_same_embed_dim and mha.bias_k is None and not mha.add_zero_attn:
            return self.fused_attention(query, key, value, keep)
        shape = (query.shape[0], mha.num_heads, query.shape[1], value.shape[1])
        additive = additive_attention_mask(keep, self.softmax_style, shape, query.dtype)
        out, scores = mha(query, key, value, attn_mask=additive, need_weights=self.return_scores,
                          average_attn_weights=False)
        return (out, scores) if self.return_scores else out

    def fused_attention(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        keep: torch.Tensor | None) -> torch.Tensor:
        """What ``nn.MultiheadAttention`` computes, through ``F.scaled_dot_product_attention`` (one fused kernel,
        the mask broadcast over the heads): what Keras 3 runs on its torch backend. Self-attention projects q, k
        and v in one matrix product."""
        mha = self.attention
        embed, heads = mha.embed_dim, mha.num_heads
        if query is key and key is value:
            q, k, v = self.project(query, mha.in_proj_weight, mha.in_proj_bias, "qkv", mha.in_proj_weight).chunk(3, -1)
        else:
            weights = mha.in_proj_weight.chunk(3)
            biases = mha.in_proj_bias.chunk(3) if mha.in_proj_bias is not None else (None, None, None)
            q, k, v = (self.project(x, w, b, name, mha.in_proj_weight)
                       for x, w, b, name in zip((query, key, value), weights, biases, "qkv"))
        batch, t, s = query.shape[0], query.shape[1], key.shape[1]
        q, k, v = (x.unflatten(-1, (heads, embed // heads)).transpose(1, 2) for x in (q, k, v))
        additive = additive_attention_mask(keep, self.softmax_style, (batch, heads, t, s), query.dtype,
                                           per_head=False)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=additive,
                                             dropout_p=mha.dropout if self.training else 0.0)
        return self.project(out.transpose(1, 2).flatten(2), mha.out_proj.weight, mha.out_proj.bias, "out",
                            mha.out_proj.weight)


def dot_attention_scores(query: torch.Tensor, key: torch.Tensor, scale: torch.Tensor | None,
                         concat_score_weight: torch.Tensor | None) -> torch.Tensor:
    """Keras ``Attention`` scores (B, Tq, Tv): ``q·kᵀ (× scale)`` ("dot", no 1/√d), or
    ``concat_score_weight · Σ tanh(scale · (q + k))`` ("concat")."""
    if concat_score_weight is None:
        scores = query @ key.transpose(-2, -1)
        return scores * scale if scale is not None else scores
    summed = query[..., :, None, :] + key[..., None, :, :]
    if scale is not None:
        summed = scale * summed
    return concat_score_weight * torch.tanh(summed).sum(-1)


def apply_attention_scores(scores: torch.Tensor, value: torch.Tensor, query_mask: torch.Tensor | None,
                           value_mask: torch.Tensor | None, causal: bool, dropout: float = 0.0
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keras ``Attention``/``AdditiveAttention`` from scores on: masked scores lowered by 1e9, softmax, dropout
    (train mode; the returned weights are the dropped ones), ``weights @ value``, rows of masked queries zeroed
    ([K3] ``_apply_scores`` and ``call``)."""
    keep = value_mask.bool().unsqueeze(-2) if value_mask is not None else None
    if causal:
        keep = both(keep, causal_mask(scores.shape[-2], scores.shape[-1], scores.device))
    if keep is not None:
        scores = torch.where(keep, scores, scores - SCORES_MASK_OFFSET)
    weights = torch.softmax(scores, dim=-1)
    if dropout > 0:
        weights = F.dropout(weights, dropout)
    out = weights @ value
    if query_mask is not None:
        out = torch.where(query_mask.bool()[..., None], out, torch.zeros((), dtype=out.dtype))
    return out, weights


class DotProductAttention(nn.Module):
    """Keras ``Attention`` (Luong): scores ``q·kᵀ`` times the learned ``scale`` if ``use_scale``, or the
    "concat" score; inputs ``[query, value]`` or ``[query, value, key]``, masks ``[query_mask, value_mask]``."""

    def __init__(self, use_scale: bool, concat: bool, causal: bool = False, return_scores: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.dropout = dropout
        self.scale = nn.Parameter(torch.ones(())) if use_scale else None
        self.concat_score_weight = nn.Parameter(torch.ones(())) if concat else None
        self.causal, self.return_scores = causal, return_scores

    def forward(self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor | None = None,
                masks: list[torch.Tensor | None] | None = None, mask: list[torch.Tensor | None] | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        key = value if key is None else key
        masks = list(mask if mask is not None else masks or []) + [None, None]
        scores = dot_attention_scores(query, key, self.scale, self.concat_score_weight)
        out, weights = apply_attention_scores(scores, value, masks[0], masks[1], self.causal,
                                              self.dropout if self.training else 0.0)
        return (out, weights) if self.return_scores else out


class AdditiveAttention(nn.Module):
    """Keras ``AdditiveAttention`` (Bahdanau): scores ``Σ_d scale_d · tanh(q + k)`` (``scale`` of the feature
    size when ``use_scale``, else 1); the rest as ``DotProductAttention``."""

    def __init__(self, features: int, use_scale: bool, causal: bool = False, return_scores: bool = False,
                 dropout: float = 0.0):
        super().__init__()
        self.dropout = dropout
        self.scale = nn.Parameter(torch.ones(features)) if use_scale else None
        self.causal, self.return_scores = causal, return_scores

    def forward(self, query: torch.Tensor, value: torch.Tensor, key: torch.Tensor | None = None,
                masks: list[torch.Tensor | None] | None = None, mask: list[torch.Tensor | None] | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        key = value if key is None else key
        masks = list(mask if mask is not None else masks or []) + [None, None]
        summed = torch.tanh(query[..., :, None, :] + key[..., None, :, :])
        scores = (summed * self.scale if self.scale is not None else summed).sum(-1)
        out, weights = apply_attention_scores(scores, value, masks[0], masks[1], self.causal,
                                              self.dropout if self.training else 0.0)
        return (out, weights) if self.return_scores else out


class MaskedSoftmax(nn.Module):
    """The Keras ``Softmax`` layer called with ``mask=``: masked positions get a large negative score (and, in
    Keras 3, probability 0). ``style`` is one of ``SOFTMAX_STYLES``."""

    def __init__(self, style: str):
        super().__init__()
        self.style = style

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return masked_softmax(x, mask, self.style)

    def extra_repr(self) -> str:
        return f"style={self.style}"
