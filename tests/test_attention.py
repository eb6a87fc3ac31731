"""EinsumDense, MultiHeadAttention, Attention, AdditiveAttention and a small transformer encoder, against Keras 3
and tf_keras; plus the weight transforms, the einsum equations and the masked softmaxes on their own."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import check_conversion, keras_module, torch_outputs
from hypothesis import given, settings
from hypothesis import strategies as st

import tf2torch
from tf2torch.converters.attention import (
    einsum_heads_to_linear,
    mha_weight_roles,
    output_heads_to_linear,
    repeat_kv_heads,
)
from tf2torch.nn import attention as A

STEPS, SOURCE_STEPS, VOCAB = 7, 6, 12


def randomized(model, scale: float = 0.4, seed: int = 0):
    """Every stored weight random (biases, scales and norms start as constants in Keras)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([(rng.standard_normal(w.shape) * scale).astype(w.dtype) for w in weights])
    return model


def padded_ids(steps: int = STEPS, seed: int = 1) -> np.ndarray:
    """Ids with padding (0) at the end of row 0 and in the middle of row 1."""
    ids = np.random.default_rng(seed).integers(1, VOCAB, size=(2, steps))
    ids[0, -3:] = 0
    ids[1, 2] = 0
    return ids.astype("int32")


def features(*shape: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, *shape)).astype("float32")


# -- EinsumDense ---------------------------------------------------------------------------------------------
def einsum(k, input_shape, equation, output_shape, bias_axes=None, activation=None):
    layer = k.layers.EinsumDense(equation, output_shape=output_shape, bias_axes=bias_axes, activation=activation)
    return randomized(k.Sequential([k.Input(input_shape), layer]))


EINSUM_CASES = {
    "2d_bias": lambda k: einsum(k, (6,), "ab,bc->ac", 4, "c"),
    "2d_no_bias": lambda k: einsum(k, (6,), "ab,bc->ac", 4),
    "sequence_relu": lambda k: einsum(k, (5, 6), "abc,cd->abd", (None, 4), "d", "relu"),
    "heads_bias_de": lambda k: einsum(k, (5, 6), "abc,cde->abde", (None, 3, 4), "de"),
    "heads_bias_d_broadcasts": lambda k: einsum(k, (5, 6), "abc,cde->abde", (None, 3, 4), "d"),
    "left_ellipsis_softmax": lambda k: einsum(k, (3, 5, 6), "...b,bc->...c", 4, "c", "softmax"),
    "right_ellipsis": lambda k: einsum(k, (6, 5), "ab...,bc->ac...", (4, 5), "c"),
    "4d_input_contract_two": lambda k: einsum(k, (3, 4, 5), "abcd,cde->abe", (None, 7), "e"),
}


@pytest.mark.parametrize("case", EINSUM_CASES)
def test_einsum_dense(case, flavour, tmp_path):
    check_conversion(EINSUM_CASES[case], flavour, tmp_path)


# -- MultiHeadAttention --------------------------------------------------------------------------------------
def mha(k, query_shape=(STEPS, 8), value_shape=None, key_shape=None, call=None, **layer_kwargs):
    """A model ``MultiHeadAttention(**layer_kwargs)(query, value[, key], **call)`` on float inputs; value is the
    query (self-attention) when ``value_shape`` is None."""
    query = k.Input(query_shape)
    inputs = [query]
    value = query
    if value_shape is not None:
        value = k.Input(value_shape)
        inputs.append(value)
    kwargs = dict(call or {})
    if key_shape is not None:
        kwargs["key"] = k.Input(key_shape)
        inputs.append(kwargs["key"])
    layer = k.layers.MultiHeadAttention(**{"num_heads": 2, "key_dim": 4, **layer_kwargs})
    out = layer(query, value, **kwargs)
    return randomized(k.Model(inputs, list(out) if isinstance(out, tuple) else out))


def masked_mha(k, cross=False, call=None, **layer_kwargs):
    """Self- (or cross-) attention on Embedding(mask_zero=True) outputs: query and value masks reach the layer."""
    ids = k.Input((STEPS,), dtype="int32")
    embedding = k.layers.Embedding(VOCAB, 8, mask_zero=True)
    query = embedding(ids)
    inputs, value = [ids], query
    if cross:
        source = k.Input((SOURCE_STEPS,), dtype="int32")
        inputs.append(source)
        value = k.layers.Embedding(VOCAB, 6, mask_zero=True)(source)
    out = k.layers.MultiHeadAttention(**{"num_heads": 2, "key_dim": 4, **layer_kwargs})(query, value, **(call or {}))
    return randomized(k.Model(inputs, list(out) if isinstance(out, tuple) else out))


def value_masked_mha(k):
    """Cross-attention where only the value (a keyword input in tf.keras) carries a mask."""
    query, source = k.Input((STEPS, 8)), k.Input((SOURCE_STEPS,), dtype="int32")
    value = k.layers.Embedding(VOCAB, 6, mask_zero=True)(source)
    out = k.layers.MultiHeadAttention(num_heads=2, key_dim=3)(query, value)
    return randomized(k.Model([query, source], out))


def explicit_mask_mha(k, causal=False):
    query, value = k.Input((STEPS, 8)), k.Input((SOURCE_STEPS, 6))
    mask = k.Input((STEPS, SOURCE_STEPS), dtype="bool")
    out = k.layers.MultiHeadAttention(num_heads=2, key_dim=4)(query, value, attention_mask=mask,
                                                               use_causal_mask=causal)
    return randomized(k.Model([query, value, mask], out))


def conv_then_mha(k):
    """Conv1D output (channels-first in the channels_first layout) as query and value."""
    x = k.Input((STEPS, 3))
    h = k.layers.Conv1D(8, 3, padding="same")(x)
    return randomized(k.Model(x, k.layers.MultiHeadAttention(num_heads=2, key_dim=4)(h, h)))


MHA_CASES = {
    "self": lambda k: mha(k),
    "self_odd_steps_value_dim": lambda k: mha(k, (5, 8), key_dim=3, value_dim=5),
    "cross": lambda k: mha(k, (5, 8), (SOURCE_STEPS, 6), num_heads=4, key_dim=2),
    "cross_with_key": lambda k: mha(k, (5, 8), (SOURCE_STEPS, 6), (SOURCE_STEPS, 3)),
    "output_shape": lambda k: mha(k, output_shape=5),
    "output_shape_2d": lambda k: mha(k, output_shape=(2, 3)),
    "no_bias": lambda k: mha(k, use_bias=False),
    "no_bias_value_dim": lambda k: mha(k, use_bias=False, value_dim=3),
    "causal": lambda k: mha(k, call={"use_causal_mask": True}),
    "causal_cross": lambda k: mha(k, (5, 8), (SOURCE_STEPS, 6), call={"use_causal_mask": True}, key_dim=3),
    "scores": lambda k: mha(k, call={"return_attention_scores": True}),
    "scores_causal_value_dim": lambda k: mha(k, call={"return_attention_scores": True, "use_causal_mask": True},
                                             value_dim=2),
    "dropout": lambda k: mha(k, dropout=0.3),
    "attention_axes_4d": lambda k: mha(k, (3, 4, 8), attention_axes=(1, 2)),
    "attention_axis_2_of_4d": lambda k: mha(k, (3, 4, 8), attention_axes=2, output_shape=6),
    "masked_self": lambda k: masked_mha(k),
    "masked_self_custom": lambda k: masked_mha(k, value_dim=3),
    "masked_self_scores": lambda k: masked_mha(k, call={"return_attention_scores": True}),
    "masked_self_dropout": lambda k: masked_mha(k, dropout=0.2),
    "masked_self_causal": lambda k: masked_mha(k, call={"use_causal_mask": True}),
    "masked_cross": lambda k: masked_mha(k, cross=True),
    "masked_value_only": value_masked_mha,
    "attention_mask": lambda k: explicit_mask_mha(k),
    "attention_mask_causal": lambda k: explicit_mask_mha(k, causal=True),
    "after_conv1d": conv_then_mha,
}
KERAS3_ONLY = {
    "gate": lambda k: mha(k, use_gate=True),
    "sliding_window_causal": lambda k: mha(k, call={"use_causal_mask": True}, sliding_window=3),
    "masked_gate_sliding_window": lambda k: masked_mha(k, use_gate=True, sliding_window=2),
}
TF_KERAS_ONLY = {
    "masked_robust_softmax": lambda k: masked_mha(k, softmax_robust_masking=True),
}


def mha_inputs(case: str) -> list[np.ndarray] | None:
    if case == "masked_value_only":
        return [features(STEPS, 8), padded_ids(SOURCE_STEPS, seed=5)]
    if case.startswith("masked"):
        return [padded_ids()] + ([padded_ids(SOURCE_STEPS, seed=5)] if case == "masked_cross" else [])
    if case.startswith("attention_mask"):
        mask = np.random.default_rng(6).random((2, STEPS, SOURCE_STEPS)) > 0.4
        mask[0, 1] = False  # a query row that attends to nothing
        return [features(STEPS, 8), features(SOURCE_STEPS, 6, seed=3), mask]
    return None


@pytest.mark.parametrize("case", MHA_CASES)
def test_multi_head_attention(case, flavour, tmp_path):
    """tf.keras passes ``value``/``key`` as keyword inputs: their masks and layouts travel too."""
    check_conversion(MHA_CASES[case], flavour, tmp_path, inputs=mha_inputs(case))


@pytest.mark.parametrize("case", [*KERAS3_ONLY, *TF_KERAS_ONLY])
def test_multi_head_attention_one_version(case, flavour, tmp_path):
    cases = KERAS3_ONLY if flavour == "keras3" else TF_KERAS_ONLY
    if case not in cases:
        pytest.skip(f"{case}: an option only the other Keras version has")
    check_conversion(cases[case], flavour, tmp_path, inputs=mha_inputs(case))


# -- GroupedQueryAttention (Keras 3) --------------------------------------------------------------------------
def gqa(k, query_shape=(STEPS, 8), value_shape=None, call=None, masked=False, explicit_mask=False, **layer_kwargs):
    """``GroupedQueryAttention(**layer_kwargs)(query, value, **call)``: self-attention unless ``value_shape``;
    ``masked``: on Embedding(mask_zero=True) outputs; ``explicit_mask``: an ``attention_mask`` input."""
    if masked:
        ids = k.Input((STEPS,), dtype="int32")
        query = value = k.layers.Embedding(VOCAB, 8, mask_zero=True)(ids)
        inputs = [ids]
    else:
        query = value = k.Input(query_shape)
        inputs = [query]
    if value_shape is not None:
        value = k.Input(value_shape)
        inputs.append(value)
    kwargs = dict(call or {})
    if explicit_mask:
        kwargs["attention_mask"] = k.Input((query_shape[0], (value_shape or query_shape)[0]), dtype="bool")
        inputs.append(kwargs["attention_mask"])
    layer = k.layers.GroupQueryAttention(**{"head_dim": 3, "num_query_heads": 4, "num_key_value_heads": 2,
                                              **layer_kwargs})
    out = layer(query, value, **kwargs)
    return randomized(k.Model(inputs, list(out) if isinstance(out, tuple) else out))


GQA_CASES = {
    "self": lambda k: gqa(k),
    "one_kv_head_cross": lambda k: gqa(k, (5, 8), (SOURCE_STEPS, 8), num_key_value_heads=1),
    "as_many_kv_heads": lambda k: gqa(k, num_key_value_heads=4),
    "no_bias": lambda k: gqa(k, use_bias=False),
    "causal": lambda k: gqa(k, call={"use_causal_mask": True}),
    "scores": lambda k: gqa(k, call={"return_attention_scores": True}),
    "dropout": lambda k: gqa(k, dropout=0.3),
    "gate": lambda k: gqa(k, use_gate=True),
    "sliding_window_causal": lambda k: gqa(k, call={"use_causal_mask": True}, sliding_window=3),
    "masked": lambda k: gqa(k, masked=True),
    "attention_mask": lambda k: gqa(k, (STEPS, 8), (SOURCE_STEPS, 8), explicit_mask=True),
}


@pytest.mark.parametrize("case", GQA_CASES)
def test_grouped_query_attention(case, tmp_path):
    """Keras 3 only (tf_keras has no GroupedQueryAttention)."""
    inputs = None
    if case == "masked":
        inputs = [padded_ids()]
    elif case == "attention_mask":
        mask = np.random.default_rng(6).random((2, STEPS, SOURCE_STEPS)) > 0.4
        mask[0, 1] = False  # a query row that attends to nothing
        inputs = [features(STEPS, 8), features(SOURCE_STEPS, 8, seed=3), mask]
    check_conversion(GQA_CASES[case], "keras3", tmp_path, inputs=inputs)


def test_repeat_kv_heads_repeats_each_head_in_place():
    kernel = np.arange(2 * 2 * 3, dtype="float32").reshape(2, 2, 3)  # (D, G=2, dk)
    repeated = repeat_kv_heads(kernel, 3, head_axis=1)
    assert repeated.shape == (2, 6, 3)
    for h in range(6):
        np.testing.assert_array_equal(repeated[:, h], kernel[:, h // 3])


# -- Attention, AdditiveAttention ----------------------------------------------------------------------------
def dense_attention(k, layer, with_key=False, call=None, masked=False):
    """``layer([query, value(, key)], **call)``; with ``masked``, query and value come from Embedding(mask_zero)."""
    if masked:
        q_ids, v_ids = k.Input((STEPS,), dtype="int32"), k.Input((SOURCE_STEPS,), dtype="int32")
        inputs = [q_ids, v_ids]
        query = k.layers.Embedding(VOCAB, 4, mask_zero=True)(q_ids)
        value = k.layers.Embedding(VOCAB, 4, mask_zero=True)(v_ids)
    else:
        query, value = k.Input((STEPS, 4)), k.Input((SOURCE_STEPS, 4))
        inputs = [query, value]
    args = [query, value]
    if with_key:
        key = k.Input((SOURCE_STEPS, 4))
        inputs.append(key)
        args.append(key)
    out = layer(args, **(call or {}))
    return randomized(k.Model(inputs, list(out) if isinstance(out, tuple) else out))


ATTENTION_CASES = {
    "dot": lambda k: dense_attention(k, k.layers.Attention()),
    "dot_key": lambda k: dense_attention(k, k.layers.Attention(), with_key=True),
    "scale": lambda k: dense_attention(k, k.layers.Attention(use_scale=True)),
    "concat": lambda k: dense_attention(k, k.layers.Attention(score_mode="concat")),
    "concat_scale_key": lambda k: dense_attention(k, k.layers.Attention(use_scale=True, score_mode="concat"), True),
    "causal": lambda k: dense_attention(k, k.layers.Attention(), call={"use_causal_mask": True}),
    "scores_dropout": lambda k: dense_attention(k, k.layers.Attention(dropout=0.3),
                                                call={"return_attention_scores": True}),
    "masked": lambda k: dense_attention(k, k.layers.Attention(use_scale=True), masked=True),
    "masked_causal_scores": lambda k: dense_attention(k, k.layers.Attention(), masked=True,
                                                      call={"use_causal_mask": True, "return_attention_scores": True}),
    "additive": lambda k: dense_attention(k, k.layers.AdditiveAttention()),
    "additive_no_scale_key": lambda k: dense_attention(k, k.layers.AdditiveAttention(use_scale=False), True),
    "additive_masked_causal": lambda k: dense_attention(k, k.layers.AdditiveAttention(), masked=True,
                                                        call={"use_causal_mask": True}),
    "additive_scores": lambda k: dense_attention(k, k.layers.AdditiveAttention(dropout=0.2),
                                                 call={"return_attention_scores": True}),
}


@pytest.mark.parametrize("case", ATTENTION_CASES)
def test_dense_attention(case, flavour, tmp_path):
    inputs = [padded_ids(), padded_ids(SOURCE_STEPS, seed=5)] if "masked" in case else None
    check_conversion(ATTENTION_CASES[case], flavour, tmp_path, inputs=inputs)


# -- a transformer encoder -----------------------------------------------------------------------------------
def transformer_encoder(k, dropout: float = 0.1, heads: int = 2, dim: int = 8):
    """Token Embedding(mask_zero) + learned positions, post-norm encoder block, masked mean pooling. Position ids
    are 0 at padding and masked too: [K3] ``Add`` drops the mask when any input has none and ORs the masks
    otherwise ([K3] ``merging/base_merge.py``), [TFK] ANDs them; equal masks survive both."""
    ids, positions = k.Input((STEPS,), dtype="int32"), k.Input((STEPS,), dtype="int32")
    tokens = k.layers.Embedding(VOCAB, dim, mask_zero=True)(ids)
    x = k.layers.Add()([tokens, k.layers.Embedding(STEPS + 1, dim, mask_zero=True)(positions)])
    attended = k.layers.MultiHeadAttention(heads, dim // heads, dropout=dropout)(x, x)
    x = k.layers.LayerNormalization(epsilon=1e-6)(k.layers.Add()([x, k.layers.Dropout(dropout)(attended)]))
    ffn = k.layers.Dense(dim)(k.layers.Dense(2 * dim, activation="relu")(x))
    x = k.layers.LayerNormalization(epsilon=1e-6)(k.layers.Add()([x, k.layers.Dropout(dropout)(ffn)]))
    pooled = k.layers.GlobalAveragePooling1D()(x)
    return randomized(k.Model([ids, positions], [x, k.layers.Dense(3)(pooled)]))


def projected_encoder(k):
    """Float features → Masking → Dense projection → pre-norm encoder block with a causal mask."""
    inputs = k.Input((STEPS, 5))
    x = k.layers.Dense(8)(k.layers.Masking()(inputs))
    h = k.layers.LayerNormalization()(x)
    x = k.layers.Add()([x, k.layers.MultiHeadAttention(4, 2)(h, h, use_causal_mask=True)])
    h = k.layers.LayerNormalization()(x)
    x = k.layers.Add()([x, k.layers.Dense(8)(k.layers.Dense(16, activation="gelu")(h))])
    return randomized(k.Model(inputs, x))


ENCODER_CASES = {
    "embedding_positions_dropout": lambda k: transformer_encoder(k),
    "embedding_positions_no_dropout": lambda k: transformer_encoder(k, dropout=0.0),
    "dense_projection_masking_causal": projected_encoder,
}


def encoder_inputs(case: str) -> list[np.ndarray]:
    if case == "dense_projection_masking_causal":
        x = features(STEPS, 5, seed=7)
        x[0, 1:3] = 0.0  # padding before later steps, so the causal rows see it
        return [x]
    ids = padded_ids()
    return [ids, np.where(ids != 0, np.arange(1, STEPS + 1), 0).astype("int32")]


@pytest.mark.parametrize("case", ENCODER_CASES)
def test_transformer_encoder(case, flavour, tmp_path):
    check_conversion(ENCODER_CASES[case], flavour, tmp_path, inputs=encoder_inputs(case))


# -- pieces on their own -------------------------------------------------------------------------------------
def test_mha_weight_roles():
    keras_file = ["key_dense/vars/0", "key_dense/vars/1", "output_dense/vars/0", "output_dense/vars/1",
                  "query_dense/vars/0", "query_dense/vars/1", "value_dense/vars/0", "value_dense/vars/1"]
    h5_file = ["query/kernel", "query/bias", "key/kernel", "key/bias", "value/kernel", "value/bias",
               "attention_output/kernel", "attention_output/bias"]
    assert mha_weight_roles(keras_file) == {"key_kernel": 0, "key_bias": 1, "output_kernel": 2, "output_bias": 3,
                                            "query_kernel": 4, "query_bias": 5, "value_kernel": 6, "value_bias": 7}
    assert mha_weight_roles(h5_file) == {"query_kernel": 0, "query_bias": 1, "key_kernel": 2, "key_bias": 3,
                                         "value_kernel": 4, "value_bias": 5, "output_kernel": 6, "output_bias": 7}
    assert mha_weight_roles(["gate_dense/vars/0", "gate/bias"]) == {"gate_kernel": 0, "gate_bias": 1}


def test_einsum_heads_to_linear():
    kernel = np.random.default_rng(0).standard_normal((5, 3, 4))  # (D, H, dk)
    weight = einsum_heads_to_linear(kernel)
    assert weight.shape == (12, 5)
    for d in range(5):
        for h in range(3):
            for j in range(4):
                assert weight[h * 4 + j, d] == kernel[d, h, j]


def test_output_heads_to_linear():
    kernel = np.random.default_rng(0).standard_normal((3, 4, 6))  # (H, dv, Do)
    weight = output_heads_to_linear(kernel)
    assert weight.shape == (6, 12)
    for h in range(3):
        for j in range(4):
            for o in range(6):
                assert weight[o, h * 4 + j] == kernel[h, j, o]


@pytest.mark.parametrize("flavour_module", ["keras.src", "tf_keras.src"])
def test_equations_match_keras(flavour_module):
    import importlib

    keras_mha = importlib.import_module(f"{flavour_module}.layers.attention.multi_head_attention")
    for free, bound, out in [(2, 1, 2), (3, 1, 2), (2, 2, 1), (2, 2, 2), (1, 1, 1)]:
        equation, bias_axes, _ = keras_mha._build_proj_equation(free, bound, out)
        assert A.projection_equation(free, bound, out) == (equation, bias_axes)
    for rank, axes in [(4, (1,)), (5, (1, 2)), (5, (2,)), (6, (1, 3))]:
        dot, combine, _ = keras_mha._build_attention_equation(rank, axes)
        assert A.attention_equations(rank, axes) == (dot, combine)


def scores_with_masked_rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    scores = (rng.standard_normal((2, 2, 5, 6)) * 3).astype("float32")
    keep = rng.random((2, 1, 5, 6)) > 0.5
    keep[0, 0, 2] = False  # a fully masked row
    keep[1, 0, :, 0] = True
    return scores, keep


@pytest.mark.numerics
@pytest.mark.parametrize("style", A.SOFTMAX_STYLES)
def test_masked_softmax_matches_keras(style):
    """rtol 1e-6, atol 1e-7: ATen's ``exp`` (SLEEF, 8 or 16 lanes with the CPU's vector width) and Eigen's differ
    by an ulp or two of probabilities at most 1, ~8 ulps inside the tolerance on any CPU."""
    scores, keep = scores_with_masked_rows()
    if style == A.KERAS3_DOT_PRODUCT:
        import tensorflow as tf
        from keras.src.backend.tensorflow.nn import _apply_masks

        expected = tf.nn.softmax(_apply_masks(tf.constant(scores), tf.constant(keep), False), axis=-1).numpy()
    elif style == A.KERAS3_SOFTMAX:
        expected = np.asarray(keras_module("keras3").layers.Softmax()(scores, mask=keep))
    else:
        import tensorflow as tf

        robust = style == A.TF_KERAS_ROBUST_SOFTMAX
        softmax = keras_module("tf_keras").layers.Softmax(robust_masking=robust)
        expected = np.asarray(softmax(scores, mask=tf.constant(keep)))
    got = A.masked_softmax(torch.from_numpy(scores), torch.from_numpy(keep), style).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    if style == A.KERAS3_SOFTMAX:
        assert np.all(got[0, 0, 2] == 0)  # a fully masked row gives zeros here, a uniform row elsewhere
    else:
        np.testing.assert_allclose(got[0, 0, 2], 1 / 6, rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(t=st.integers(1, 5), s=st.integers(1, 5), present=st.lists(st.booleans(), min_size=4, max_size=4),
       causal=st.booleans(), seed=st.integers(0, 2**16))
def test_attention_mask_matches_keras(t, s, present, causal, seed):
    """Query/value/key masks, ``attention_mask`` and the causal mask combine as in Keras 3 and tf.keras."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    query, value = rng.standard_normal((2, t, 3)).astype("float32"), rng.standard_normal((2, s, 3)).astype("float32")
    shapes = [(2, t), (2, s), (2, s), (2, t, s)]
    q_mask, v_mask, k_mask, explicit = [rng.random(shape) > 0.3 if on else None for on, shape in zip(present, shapes)]
    masks = [None if m is None else torch.from_numpy(m) for m in (q_mask, v_mask, k_mask, explicit)]
    keep = A.keras_attention_mask(torch.from_numpy(query), torch.from_numpy(value), *masks, causal=causal,
                                  sliding_window=None, cast_explicit=True)
    layer = keras_module("keras3").layers.MultiHeadAttention(2, 3)
    expected = layer._compute_attention_mask(query, value, query_mask=q_mask, value_mask=v_mask, key_mask=k_mask,
                                             attention_mask=explicit, use_causal_mask=causal)
    tfk_tensors = [tf.constant(query), tf.constant(value), tf.identity(value)]
    for tensor, mask in zip(tfk_tensors, (q_mask, v_mask, k_mask)):
        tensor._keras_mask = None if mask is None else tf.constant(mask)
    tfk_layer = keras_module("tf_keras").layers.MultiHeadAttention(2, 3)
    tfk_expected = tfk_layer._compute_attention_mask(*tfk_tensors[:2], key=tfk_tensors[2],
                                                     attention_mask=explicit, use_causal_mask=causal)
    if keep is None:
        assert expected is None and tfk_expected is None
        return
    full = np.broadcast_to(keep.numpy(), (2, t, s))
    np.testing.assert_array_equal(full, np.broadcast_to(np.asarray(expected), (2, t, s)))
    np.testing.assert_array_equal(full, np.broadcast_to(np.asarray(tfk_expected), (2, t, s)))


def test_save_and_load_keep_attention(tmp_path):
    """Both MultiHeadAttention forms and Attention rebuild from the IR and load their state_dict."""
    k = keras_module("keras3")
    for name, build in {"torch_mha": ENCODER_CASES["embedding_positions_no_dropout"],
                        "keras_mha": ENCODER_CASES["embedding_positions_dropout"],
                        "attention": ATTENTION_CASES["concat_scale_key"]}.items():
        path = tmp_path / f"{name}.keras"
        build(k).save(path)
        converted = tf2torch.convert(path)
        tf2torch.save(converted, tmp_path / f"{name}.pt")
        loaded = tf2torch.load(tmp_path / f"{name}.pt")
        inputs = encoder_inputs(name) if "mha" in name else [features(STEPS, 4), features(SOURCE_STEPS, 4),
                                                              features(SOURCE_STEPS, 4)]
        for a, b in zip(torch_outputs(converted, inputs, "keras"), torch_outputs(loaded, inputs, "keras")):
            np.testing.assert_array_equal(a, b)
