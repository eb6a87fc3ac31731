"""Embedding (with mask_zero), Masking and TimeDistributed, against Keras 3 and tf_keras."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_conversion, random_inputs


def ids_with_padding(vocab: int = 20, steps: int = 7) -> np.ndarray:
    rng = np.random.default_rng(3)
    ids = rng.integers(1, vocab, size=(2, steps))
    ids[0, -3:] = 0  # padding at the end
    ids[1, 2] = 0  # and in the middle
    return ids.astype("int32")


EMBEDDING_CASES = {
    "plain": lambda k: k.Sequential([k.Input((7,), dtype="int32"), k.layers.Embedding(20, 5)]),
    "mask_zero_then_dense": lambda k: k.Sequential([
        k.Input((7,), dtype="int32"), k.layers.Embedding(20, 5, mask_zero=True), k.layers.Dense(3)]),
    "float_ids": lambda k: k.Sequential([k.Input((7,)), k.layers.Embedding(20, 4)]),
}


@pytest.mark.parametrize("case", EMBEDDING_CASES)
def test_embedding(case, flavour, tmp_path):
    ids = ids_with_padding()
    inputs = [ids.astype("float32")] if case == "float_ids" else [ids]
    check_conversion(EMBEDDING_CASES[case], flavour, tmp_path, inputs=inputs)


def masked_sequence() -> np.ndarray:
    x = np.random.default_rng(4).standard_normal((2, 6, 3)).astype("float32")
    x[0, 4:] = 0.0
    x[1, 1] = 0.5
    return x


MASKING_CASES = {
    "zeros": lambda k: k.Sequential([k.Input((6, 3)), k.layers.Masking(), k.layers.Dense(2)]),
    "value": lambda k: k.Sequential([k.Input((6, 3)), k.layers.Masking(mask_value=0.5)]),
}


@pytest.mark.parametrize("case", MASKING_CASES)
def test_masking(case, flavour, tmp_path):
    check_conversion(MASKING_CASES[case], flavour, tmp_path, inputs=[masked_sequence()])


TIME_DISTRIBUTED_CASES = {
    "dense": lambda k: k.Sequential([k.Input((5, 4)), k.layers.TimeDistributed(k.layers.Dense(3))]),
    "conv2d": lambda k: k.Sequential([
        k.Input((4, 9, 8, 3)),
        k.layers.TimeDistributed(k.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu")),
        k.layers.TimeDistributed(k.layers.Flatten()),
        k.layers.TimeDistributed(k.layers.Dense(6))]),
    "conv1d": lambda k: k.Sequential([
        k.Input((3, 10, 2)), k.layers.TimeDistributed(k.layers.Conv1D(4, 3, padding="causal", dilation_rate=2))]),
    "nested_model": lambda k: nested_time_distributed(k),
}


def nested_time_distributed(k):
    step_in = k.Input((6, 6, 2))
    step = k.Model(step_in, k.layers.Flatten()(k.layers.Conv2D(3, 3)(step_in)), name="step_model")
    seq_in = k.Input((4, 6, 6, 2))
    return k.Model(seq_in, k.layers.TimeDistributed(step)(seq_in))


@pytest.mark.parametrize("case", TIME_DISTRIBUTED_CASES)
def test_time_distributed(case, flavour, tmp_path):
    check_conversion(TIME_DISTRIBUTED_CASES[case], flavour, tmp_path)


def two_embeddings(k, merge, second_masked: bool):
    a, b = k.Input((7,), dtype="int32"), k.Input((7,), dtype="int32")
    ea = k.layers.Embedding(20, 4, mask_zero=True)(a)
    eb = k.layers.Embedding(20, 4, mask_zero=second_masked)(b)
    return k.Model([a, b], k.layers.GlobalAveragePooling1D()(merge(k)([ea, eb])))


MERGED_MASK_CASES = {
    "add_both_masked": lambda k: two_embeddings(k, lambda k: k.layers.Add(), True),
    "add_one_masked": lambda k: two_embeddings(k, lambda k: k.layers.Add(), False),
    "concat_features": lambda k: two_embeddings(k, lambda k: k.layers.Concatenate(), True),
    "concat_features_one_masked": lambda k: two_embeddings(k, lambda k: k.layers.Concatenate(), False),
    "concat_time": lambda k: two_embeddings(k, lambda k: k.layers.Concatenate(axis=1), True),
    "concat_time_one_masked": lambda k: two_embeddings(k, lambda k: k.layers.Concatenate(axis=1), False),
}


@pytest.mark.parametrize("case", MERGED_MASK_CASES)
def test_merged_masks(case, flavour, tmp_path):
    """Keras 3 ORs merged masks (none if an input is unmasked), tf.keras ANDs them; GlobalAveragePooling1D
    shows which mask arrived."""
    if flavour == "tf_keras" and case == "concat_time_one_masked":
        pytest.skip("tf_keras cannot build this model: its Concatenate.compute_mask fails on (B,T,1) vs (B,T,F)")
    ids = ids_with_padding()
    other = np.roll(ids, 2, axis=1)
    check_conversion(MERGED_MASK_CASES[case], flavour, tmp_path, inputs=[ids, other])


def unmerged_bidirectional(k):
    ids = k.Input((7,), dtype="int32")
    x = k.layers.Embedding(20, 4, mask_zero=True)(ids)
    forward, backward = k.layers.Bidirectional(k.layers.LSTM(3, return_sequences=True), merge_mode=None)(x)
    return k.Model(ids, [k.layers.LSTM(2)(forward), k.layers.LSTM(2)(backward)])


def test_unmerged_bidirectional_masks_both_outputs(flavour, tmp_path):
    """Bidirectional(merge_mode=None) gives its mask to both sequences ([TFK]/[K3] compute_mask)."""
    check_conversion(unmerged_bidirectional, flavour, tmp_path, inputs=[ids_with_padding()])


# -- SpectralNormalization (Keras 3; tf_keras 2.21 cannot build it on a functional input) ---------------------------
SPECTRAL_CASES = {
    "conv_dense": lambda k: k.Model(*(lambda x: (x, k.layers.SpectralNormalization(k.layers.Dense(3))(
        k.layers.Flatten()(k.layers.SpectralNormalization(k.layers.Conv2D(4, 3, activation="relu"))(x)))))(
        k.Input((7, 7, 3)))),
    "embedding": lambda k: k.Model(*(lambda x: (x, k.layers.SpectralNormalization(k.layers.Embedding(9, 4))(x)))(
        k.Input((5,), dtype="int32"))),
}


@pytest.mark.parametrize("case", SPECTRAL_CASES)
def test_spectral_normalization_runs_its_stored_kernel(case, tmp_path):
    def build(k):
        model = SPECTRAL_CASES[case](k)
        x = random_inputs(model)
        model(x if len(x) > 1 else x[0], training=True)  # a training step renormalizes the stored kernels
        return model
    check_conversion(build, "keras3", tmp_path)
