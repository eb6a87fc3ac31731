"""LSTM, GRU, SimpleRNN, RNN(cell), CuDNNLSTM/CuDNNGRU, Bidirectional and ConvLSTM against Keras 3 and tf_keras,
plus the weight transforms and the choice of torch's own RNN modules.

Every weight is random (biases included). Masks come from Masking or Embedding(mask_zero=True) with padding at
the end and in the middle, which exercises Keras's carry-over of states and outputs at masked steps.
"""

import json

import h5py
import numpy as np
import pytest
import torch
from harness import assert_matches, check_conversion, keras_module, keras_outputs, torch_outputs
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import tf2torch
from tf2torch.converters.recurrent import (
    input_and_recurrent_bias,
    keras_gru_gates_to_torch,
    keras_gru_to_torch,
    keras_lstm_to_torch,
)
from tf2torch.nn.recurrent import (
    KerasGRUCell,
    KerasLSTMCell,
    KerasRNN,
    contiguous_spans,
    masked_step_loop,
    torch_rnn_project,
    torch_rnn_step,
)

STEPS, FEATURES = 6, 3


def randomized(build, scale=0.6):
    """Every weight random (biases included), so a wrong bias, gate order or zero recurrent bias shows."""

    def build_random(k):
        model = build(k)
        rng = np.random.default_rng(1)
        for layer in model.layers:
            layer.set_weights([scale * rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()])
        return model

    return build_random


def seq(k, *layers, shape=(STEPS, FEATURES)):
    return k.Sequential([k.Input(shape), *layers])


def chain(k, *layers, shape=(STEPS, FEATURES)):
    """A functional chain: Sequential models reject multi-output layers such as ``return_state``."""
    x = y = k.Input(shape)
    for layer in layers:
        y = layer(y)
    return k.Model(x, list(y) if isinstance(y, (list, tuple)) else y)


def masked_sequence(steps=STEPS, features=FEATURES, batch=3):
    """Float steps that Masking() masks: zero padding at the end (row 0), in the middle (row 1), at the start
    (row 2)."""
    x = np.random.default_rng(4).standard_normal((batch, steps, features)).astype("float32")
    x[0, -2:] = 0.0
    x[1, 2] = 0.0
    x[2, 0] = 0.0
    return x


def padded_ids(batch=3, steps=8, vocab=20):
    ids = np.random.default_rng(5).integers(1, vocab, size=(batch, steps)).astype("int32")
    ids[0, -3:] = 0  # padding at the end
    ids[1, 3] = 0  # in the middle
    ids[1, 5] = 0
    ids[2, :2] = 0  # at the start
    return ids


# -- weight transforms ---------------------------------------------------------------------------------------
def test_keras_lstm_to_torch():
    kernel, recurrent = np.arange(24.0).reshape(3, 8), np.arange(16.0).reshape(2, 8)
    w_ih, w_hh = keras_lstm_to_torch(kernel, recurrent)
    assert w_ih.shape == (8, 3) and w_hh.shape == (8, 2)
    x = np.array([1.0, -2.0, 0.5])
    np.testing.assert_array_equal(w_ih @ x, x @ kernel)


def test_keras_gru_gates_to_torch():
    u = 2
    z, r, h = np.full((3, u), 1.0), np.full((3, u), 2.0), np.full((3, u), 3.0)
    out = keras_gru_gates_to_torch(np.concatenate([z, r, h], axis=-1))
    np.testing.assert_array_equal(out, np.concatenate([r, z, h], axis=-1))
    np.testing.assert_array_equal(keras_gru_gates_to_torch(np.array([1, 1, 2, 2, 3, 3])), [2, 2, 1, 1, 3, 3])


def test_keras_gru_to_torch():
    kernel = np.arange(18.0).reshape(3, 6)
    w_ih, w_hh = keras_gru_to_torch(kernel, np.arange(12.0).reshape(2, 6))
    assert w_ih.shape == (6, 3) and w_hh.shape == (6, 2)
    np.testing.assert_array_equal(w_ih[:2], kernel[:, 2:4].T)  # torch r first = Keras columns u:2u


def test_input_and_recurrent_bias():
    rows = np.arange(12.0).reshape(2, 6)
    np.testing.assert_array_equal(input_and_recurrent_bias(rows)[1], rows[1])
    flat = np.arange(16.0)  # CuDNNLSTM (8u), u = 2: input half first
    b_ih, b_hh = input_and_recurrent_bias(flat)
    np.testing.assert_array_equal(b_ih, flat[:8])
    np.testing.assert_array_equal(b_hh, flat[8:])


# -- single layers -------------------------------------------------------------------------------------------
CASES = {
    "lstm": lambda k: seq(k, k.layers.LSTM(4)),
    "lstm_sequences": lambda k: seq(k, k.layers.LSTM(4, return_sequences=True)),
    "lstm_state": lambda k: chain(k, k.layers.LSTM(4, return_state=True)),
    "lstm_sequences_state_backwards": lambda k: chain(k, k.layers.LSTM(
        4, return_sequences=True, return_state=True, go_backwards=True)),
    "lstm_no_bias_unit_forget_bias": lambda k: seq(k, k.layers.LSTM(4, use_bias=False, unit_forget_bias=True)),
    "lstm_hard_sigmoid": lambda k: seq(k, k.layers.LSTM(5, recurrent_activation="hard_sigmoid",
                                                         return_sequences=True)),
    "lstm_relu_tanh_gates": lambda k: chain(k, k.layers.LSTM(4, activation="relu", recurrent_activation="tanh",
                                                            return_state=True, go_backwards=True)),
    "lstm_unroll_dropout": lambda k: seq(k, k.layers.LSTM(4, unroll=True, dropout=0.3, recurrent_dropout=0.2)),
    "gru": lambda k: seq(k, k.layers.GRU(4, reset_after=True)),
    "gru_sequences_state_backwards": lambda k: chain(k, k.layers.GRU(
        4, reset_after=True, return_sequences=True, return_state=True, go_backwards=True)),
    "gru_no_bias": lambda k: seq(k, k.layers.GRU(4, use_bias=False, return_sequences=True)),
    "gru_reset_before": lambda k: seq(k, k.layers.GRU(4, reset_after=False, return_sequences=True)),
    "gru_reset_before_state_backwards": lambda k: chain(k, k.layers.GRU(
        4, reset_after=False, return_state=True, go_backwards=True)),
    "gru_reset_before_no_bias": lambda k: seq(k, k.layers.GRU(4, reset_after=False, use_bias=False)),
    "gru_hard_sigmoid_elu": lambda k: seq(k, k.layers.GRU(4, activation="elu", recurrent_activation="hard_sigmoid",
                                                           return_sequences=True)),
    "simple_rnn": lambda k: seq(k, k.layers.SimpleRNN(4)),
    "simple_rnn_relu_sequences_backwards": lambda k: seq(k, k.layers.SimpleRNN(
        4, activation="relu", return_sequences=True, go_backwards=True)),
    "simple_rnn_sigmoid_state": lambda k: chain(k, k.layers.SimpleRNN(
        4, activation="sigmoid", return_state=True, use_bias=False)),
    "simple_rnn_linear": lambda k: seq(k, k.layers.SimpleRNN(4, activation=None, return_sequences=True)),
    "rnn_lstm_cell": lambda k: seq(k, k.layers.RNN(k.layers.LSTMCell(4), return_sequences=True)),
    "rnn_gru_cell_backwards": lambda k: seq(k, k.layers.RNN(k.layers.GRUCell(4), go_backwards=True)),
    "stacked": lambda k: seq(k, k.layers.LSTM(5, return_sequences=True), k.layers.GRU(4, return_sequences=True),
                             k.layers.SimpleRNN(3), k.layers.Dense(2)),
    "odd_length": lambda k: seq(k, k.layers.LSTM(3, return_sequences=True), shape=(7, 2)),
    "rnn_cell_list": lambda k: seq(k, k.layers.RNN([k.layers.LSTMCell(4), k.layers.GRUCell(3)],
                                                  return_sequences=True)),
    "rnn_stacked_cells": lambda k: seq(k, k.layers.RNN(k.layers.StackedRNNCells(
        [k.layers.SimpleRNNCell(4), k.layers.LSTMCell(3, use_bias=False), k.layers.GRUCell(2)]))),
    "dynamic_length": lambda k: seq(k, k.layers.GRU(4, return_sequences=True), shape=(None, FEATURES)),
}


@pytest.mark.parametrize("case", CASES)
def test_recurrent(case, flavour, tmp_path):
    check_conversion(randomized(CASES[case]), flavour, tmp_path)


# -- masks -------------------------------------------------------------------------------------------------
MASK_CASES = {
    "lstm_last": lambda k: seq(k, k.layers.Masking(), k.layers.LSTM(4)),
    "lstm_sequences_state": lambda k: chain(k, k.layers.Masking(), k.layers.LSTM(
        4, return_sequences=True, return_state=True)),
    "lstm_backwards_sequences": lambda k: seq(k, k.layers.Masking(), k.layers.LSTM(
        4, return_sequences=True, go_backwards=True)),
    "lstm_zero_output_for_mask": lambda k: seq(k, k.layers.Masking(), k.layers.LSTM(
        4, return_sequences=True, zero_output_for_mask=True)),
    "lstm_hard_sigmoid_backwards_state": lambda k: chain(k, k.layers.Masking(), k.layers.LSTM(
        4, recurrent_activation="hard_sigmoid", go_backwards=True, return_state=True)),
    "gru_sequences_then_dense": lambda k: seq(k, k.layers.Masking(), k.layers.GRU(4, return_sequences=True),
                                              k.layers.Dense(2), k.layers.GRU(3)),
    "gru_reset_before_backwards": lambda k: seq(k, k.layers.Masking(), k.layers.GRU(
        4, reset_after=False, go_backwards=True, return_sequences=True)),
    "simple_rnn_state": lambda k: chain(k, k.layers.Masking(), k.layers.SimpleRNN(4, return_state=True)),
    "simple_rnn_elu_sequences": lambda k: seq(k, k.layers.Masking(), k.layers.SimpleRNN(
        4, activation="elu", return_sequences=True)),
    "stacked_cells": lambda k: seq(k, k.layers.Masking(), k.layers.RNN(
        [k.layers.GRUCell(4), k.layers.LSTMCell(3)], return_sequences=True)),
}


@pytest.mark.parametrize("case", MASK_CASES)
def test_recurrent_masked(case, flavour, tmp_path):
    if case == "lstm_zero_output_for_mask" and flavour == "tf_keras":
        pytest.skip("tf_keras's LSTM constructor does not take zero_output_for_mask")
    check_conversion(randomized(MASK_CASES[case]), flavour, tmp_path, inputs=[masked_sequence()])


def edge_padded_sequence(steps=STEPS, features=FEATURES):
    """Masks whose unmasked steps form one block per row (padding after, before, both, none, all): the packed
    fast path."""
    x = np.random.default_rng(8).standard_normal((5, steps, features)).astype("float32")
    x[0, -2:] = 0.0
    x[1, :3] = 0.0
    x[2, :1] = 0.0
    x[2, -1:] = 0.0
    x[4] = 0.0
    return x


EDGE_PADDED_CASES = {
    "lstm_sequences": lambda k: seq(k, k.layers.Masking(), k.layers.LSTM(4, return_sequences=True)),
    "lstm_backwards_state": lambda k: chain(k, k.layers.Masking(), k.layers.LSTM(
        4, go_backwards=True, return_state=True, return_sequences=True)),
    "gru_last": lambda k: seq(k, k.layers.Masking(), k.layers.GRU(4)),
    "simple_rnn_backwards": lambda k: seq(k, k.layers.Masking(), k.layers.SimpleRNN(
        4, go_backwards=True, return_sequences=True)),
    "bidirectional_lstm_sequences": lambda k: seq(k, k.layers.Masking(), k.layers.Bidirectional(
        k.layers.LSTM(4, return_sequences=True)), k.layers.GRU(3, return_sequences=True)),
}


@pytest.mark.parametrize("case", EDGE_PADDED_CASES)
def test_recurrent_edge_padded(case, flavour, tmp_path):
    check_conversion(randomized(EDGE_PADDED_CASES[case]), flavour, tmp_path, inputs=[edge_padded_sequence()])


@st.composite
def block_masks(draw):
    batch, steps = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    mask = np.zeros((batch, steps), dtype=bool)
    for row in range(batch):
        start = draw(st.integers(0, steps))
        mask[row, start:draw(st.integers(start, steps))] = True
    return mask


@settings(max_examples=25, deadline=None)
@given(mask=block_masks(), kind=st.sampled_from(["LSTM", "GRU", "RNN"]), go_backwards=st.booleans(),
       zero_output=st.booleans())
def test_packed_path_equals_step_loop(mask, kind, go_backwards, zero_output):
    """Masks with one block of unmasked steps per row run packed through torch's kernel; the result equals
    Keras's step loop, empty rows (initial states kept, zero outputs) included."""
    torch.manual_seed(0)
    rnn = getattr(nn, kind)(3, 4, batch_first=True)
    layer = KerasRNN(rnn, return_sequences=True, return_state=True, go_backwards=go_backwards,
                     zero_output_for_mask=zero_output)
    x = torch.randn(*mask.shape, 3)
    states = [torch.randn(mask.shape[0], 4) for _ in range(2 if kind == "LSTM" else 1)]
    m = torch.from_numpy(mask)
    assert contiguous_spans(m) is not None
    with torch.no_grad():
        got = layer(x, *states, mask=m)
        xs, ms = (x.flip(1), m.flip(1)) if go_backwards else (x, m)
        outputs, final = masked_step_loop(torch_rnn_step(rnn), torch_rnn_project(rnn, xs), states, ms.t(), zero_output)
    for a, b in zip(got, [outputs, *final]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_contiguous_spans():
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0], [0, 1, 1, 0]], dtype=torch.bool)
    start, length = contiguous_spans(mask)
    assert start.tolist() == [0, 1, 0, 1] and length.tolist() == [2, 3, 0, 2]
    assert contiguous_spans(torch.tensor([[1, 0, 1]], dtype=torch.bool)) is None


# -- initial states ----------------------------------------------------------------------------------------
def with_initial_state(k, layer, states):
    x = k.Input((STEPS, FEATURES))
    given = [k.Input((4,)) for _ in range(states)]
    outputs = layer(x, initial_state=given if states > 1 else given[0])
    return k.Model([x, *given], outputs)


INITIAL_STATE_CASES = {
    "lstm": lambda k: with_initial_state(k, k.layers.LSTM(4, return_sequences=True, return_state=True), 2),
    "gru_single_tensor": lambda k: with_initial_state(k, k.layers.GRU(4, go_backwards=True), 1),
    "gru_reset_before": lambda k: with_initial_state(k, k.layers.GRU(4, reset_after=False, return_state=True), 1),
    "simple_rnn": lambda k: with_initial_state(k, k.layers.SimpleRNN(4, return_sequences=True), 1),
    "bidirectional_lstm": lambda k: with_initial_state(k, k.layers.Bidirectional(
        k.layers.LSTM(4, return_sequences=True, return_state=True)), 4),
}


@pytest.mark.parametrize("case", INITIAL_STATE_CASES)
def test_initial_state(case, flavour, tmp_path):
    check_conversion(randomized(INITIAL_STATE_CASES[case]), flavour, tmp_path)


def test_initial_state_with_mask(flavour, tmp_path):
    def build(k):
        x = k.Input((STEPS, FEATURES))
        h, c = k.Input((4,)), k.Input((4,))
        y = k.layers.LSTM(4, return_sequences=True, return_state=True)(k.layers.Masking()(x), initial_state=[h, c])
        return k.Model([x, h, c], y)

    states = np.random.default_rng(6).standard_normal((2, 3, 4)).astype("float32")
    check_conversion(randomized(build), flavour, tmp_path, inputs=[masked_sequence(), states[0], states[1]])


# -- Bidirectional -----------------------------------------------------------------------------------------
def bidirectional(k, layer, merge_mode="concat", masking=False, **kwargs):
    build = chain if merge_mode is None or layer.return_state else seq
    return build(k, *([k.layers.Masking()] if masking else []),
                 k.layers.Bidirectional(layer, merge_mode=merge_mode, **kwargs))


BIDIRECTIONAL_CASES = {
    "lstm_concat_last": lambda k: bidirectional(k, k.layers.LSTM(4)),
    "lstm_concat_sequences": lambda k: bidirectional(k, k.layers.LSTM(4, return_sequences=True)),
    "lstm_sum_sequences": lambda k: bidirectional(k, k.layers.LSTM(4, return_sequences=True), "sum"),
    "gru_ave": lambda k: bidirectional(k, k.layers.GRU(4, return_sequences=True), "ave"),
    "gru_reset_before_mul": lambda k: bidirectional(k, k.layers.GRU(4, reset_after=False, return_sequences=True),
                                                    "mul"),
    "simple_rnn_none": lambda k: bidirectional(k, k.layers.SimpleRNN(4, return_sequences=True), None),
    "lstm_none_last": lambda k: bidirectional(k, k.layers.LSTM(4), None),
    "lstm_state": lambda k: bidirectional(k, k.layers.LSTM(4, return_sequences=True, return_state=True)),
    "gru_none_state": lambda k: bidirectional(k, k.layers.GRU(4, return_state=True), None),
    "custom_backward_layer": lambda k: bidirectional(k, k.layers.LSTM(4, return_sequences=True), backward_layer=(
        k.layers.LSTM(3, return_sequences=True, go_backwards=True, recurrent_activation="hard_sigmoid"))),
}


@pytest.mark.parametrize("case", BIDIRECTIONAL_CASES)
def test_bidirectional(case, flavour, tmp_path):
    check_conversion(randomized(BIDIRECTIONAL_CASES[case]), flavour, tmp_path)


BIDIRECTIONAL_MASK_CASES = {
    "lstm_concat_sequences": lambda k: bidirectional(k, k.layers.LSTM(4, return_sequences=True), masking=True),
    "gru_sum_last": lambda k: bidirectional(k, k.layers.GRU(4), "sum", masking=True),
    "lstm_ave_sequences_state": lambda k: bidirectional(k, k.layers.LSTM(4, return_state=True, return_sequences=True),
                                                        "ave", masking=True),
    "gru_reset_before_sequences_then_lstm": lambda k: seq(k, k.layers.Masking(), k.layers.Bidirectional(
        k.layers.GRU(4, reset_after=False, return_sequences=True)), k.layers.LSTM(3)),
}


@pytest.mark.parametrize("case", BIDIRECTIONAL_MASK_CASES)
def test_bidirectional_masked(case, flavour, tmp_path):
    check_conversion(randomized(BIDIRECTIONAL_MASK_CASES[case]), flavour, tmp_path, inputs=[masked_sequence()])


# -- ConvLSTM ------------------------------------------------------------------------------------------------
CONV_LSTM_CASES = {
    "2d_same_sequences": lambda k: seq(k, k.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True),
                                       shape=(3, 6, 5, 2)),
    "2d_valid_stride2_state": lambda k: chain(k, k.layers.ConvLSTM2D(3, (3, 2), strides=2, return_state=True),
                                            shape=(3, 7, 6, 2)),
    "2d_same_stride2_odd_backwards": lambda k: seq(k, k.layers.ConvLSTM2D(
        2, 3, strides=2, padding="same", go_backwards=True, return_sequences=True), shape=(3, 7, 6, 2)),
    "2d_even_kernel_no_bias": lambda k: seq(k, k.layers.ConvLSTM2D(3, 2, padding="same", use_bias=False),
                                            shape=(3, 5, 5, 2)),
    "2d_then_conv": lambda k: seq(k, k.layers.ConvLSTM2D(3, 3, padding="same"), k.layers.Conv2D(2, 3),
                                  shape=(2, 6, 6, 2)),
    "1d_dilated_sequences": lambda k: seq(k, k.layers.ConvLSTM1D(3, 3, dilation_rate=2, padding="same",
                                                                  return_sequences=True), shape=(4, 9, 2)),
    "1d_valid_hard_sigmoid": lambda k: seq(k, k.layers.ConvLSTM1D(3, 2, recurrent_activation="hard_sigmoid"),
                                           shape=(4, 7, 2)),
    "3d_same_state": lambda k: chain(k, k.layers.ConvLSTM3D(2, 2, padding="same", return_state=True),
                                     shape=(2, 3, 4, 3, 1)),
    "2d_channels_first_data": lambda k: seq(k, k.layers.ConvLSTM2D(
        3, 3, padding="same", data_format="channels_first", return_sequences=True), shape=(3, 2, 6, 5)),
    "2d_initial_state": lambda k: conv_lstm_with_initial_state(k),
}


def conv_lstm_with_initial_state(k):
    x, h, c = k.Input((3, 6, 5, 2)), k.Input((6, 5, 3)), k.Input((6, 5, 3))
    y = k.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True)(x, initial_state=[h, c])
    return k.Model([x, h, c], y)


@pytest.mark.parametrize("case", CONV_LSTM_CASES)
def test_conv_lstm(case, flavour, tmp_path):
    if case == "2d_channels_first_data" and flavour == "keras3":
        pytest.skip("Keras 3 on TensorFlow cannot run a channels_first convolution on CPU")
    check_conversion(randomized(CONV_LSTM_CASES[case], scale=0.3), flavour, tmp_path)


def test_conv_lstm_explicit_mask(flavour, tmp_path):
    """A (B, T) mask passed in the call (no Keras layer makes one for 5-D input): masked steps carry the states."""

    def build(k):
        x, m = k.Input((4, 5, 5, 2)), k.Input((4,), dtype="bool")
        return k.Model([x, m], k.layers.ConvLSTM2D(2, 3, padding="same", return_sequences=True)(x, mask=m))

    x = np.random.default_rng(7).standard_normal((2, 4, 5, 5, 2)).astype("float32")
    mask = np.array([[True, True, False, True], [False, True, True, False]])
    check_conversion(randomized(build, scale=0.3), flavour, tmp_path, inputs=[x, mask])


# -- Keras 2 only: LSTM/GRU v1 and CuDNN layers ------------------------------------------------------------------
def test_v1_layers_hard_sigmoid_reset_before(tmp_path):
    """tf.keras LSTM v1 / GRU v1 defaults: hard_sigmoid (Keras 2's clip(0.2x + 0.5)), GRU reset_after=False."""
    lstm_v1 = pytest.importorskip("tf_keras.src.layers.rnn.lstm_v1")
    gru_v1 = pytest.importorskip("tf_keras.src.layers.rnn.gru_v1")

    def build(k):
        return seq(k, lstm_v1.LSTM(5, return_sequences=True), gru_v1.GRU(4, return_sequences=True), gru_v1.GRU(3))

    check_conversion(randomized(build, scale=1.5), "tf_keras", tmp_path)


def test_hard_sigmoid_follows_the_file_version(flavour, tmp_path):
    """The same config string means clip(0.2x + 0.5) in a Keras 2 file and relu6(x + 3) / 6 in a Keras 3 one;
    large weights put the gates where the two differ."""
    build = randomized(lambda k: seq(k, k.layers.GRU(4, recurrent_activation="hard_sigmoid")), scale=2.0)
    check_conversion(build, flavour, tmp_path)


def cudnn_file(tmp_path, kind, layer_kwargs):
    """A tf_keras LSTM/GRU .h5 rewritten into CuDNNLSTM/CuDNNGRU form (tf_keras 2.21 cannot create those layers):
    class name, no activation keys, bias split into an input and a recurrent half. Returns (path, model)."""
    k = keras_module("tf_keras")
    layer_class = {"lstm": k.layers.LSTM, "gru": k.layers.GRU}[kind]
    model = randomized(lambda k: chain(k, layer_class(4, **layer_kwargs)))(k)
    path = tmp_path / f"cudnn_{kind}.h5"
    model.save(str(path))
    rng = np.random.default_rng(9)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        layer = config["config"]["layers"][-1]
        layer["class_name"] = {"lstm": "CuDNNLSTM", "gru": "CuDNNGRU"}[kind]
        for key in ("activation", "recurrent_activation", "use_bias", "reset_after", "dropout", "recurrent_dropout",
                    "unroll", "implementation", "time_major", "unit_forget_bias"):
            layer["config"].pop(key, None)
        f.attrs["model_config"] = json.dumps(config).encode()
        group = f["model_weights"][layer["config"]["name"]]
        bias_name = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]][-1]
        bias = group[bias_name][()]
        if kind == "lstm":  # Keras b = b_in + b_rec: split it into two random halves
            rec = rng.standard_normal(bias.shape).astype("float32")
            split = np.concatenate([bias - rec, rec])
        else:  # reset_after GRU bias (2, 3u) is already input row, recurrent row
            split = bias.reshape(-1)
        del group[bias_name]
        group[bias_name] = split
    return path, model


@pytest.mark.parametrize("kind,kwargs", [
    ("lstm", {}), ("lstm", {"return_sequences": True, "go_backwards": True}), ("lstm", {"return_state": True}),
    ("gru", {"reset_after": True}), ("gru", {"reset_after": True, "return_sequences": True, "return_state": True}),
])
def test_cudnn_layers(kind, kwargs, tmp_path):
    path, model = cudnn_file(tmp_path, kind, kwargs)
    x = np.random.default_rng(2).standard_normal((2, STEPS, FEATURES)).astype("float32")
    ref = keras_outputs(model, [x])
    for layout in ("channels_first", "keras"):
        module = tf2torch.convert(path, layout=layout)
        core = module.get_submodule(module_names(module, KerasRNN)[0]).rnn
        assert isinstance(core, nn.LSTM if kind == "lstm" else nn.GRU)
        assert_matches(torch_outputs(module, [x], layout), ref, what=f"{path.name} {layout}")


# -- the fast path is torch's own module ---------------------------------------------------------------------
def module_names(module, cls):
    return [name for name, m in module.named_modules() if isinstance(m, cls)]


CORE_CASES = {
    "lstm": (lambda k: k.layers.LSTM(4), nn.LSTM),
    "gru": (lambda k: k.layers.GRU(4), nn.GRU),
    "simple_rnn_relu": (lambda k: k.layers.SimpleRNN(4, activation="relu"), nn.RNN),
    "gru_reset_before": (lambda k: k.layers.GRU(4, reset_after=False), KerasGRUCell),
    "lstm_hard_sigmoid": (lambda k: k.layers.LSTM(4, recurrent_activation="hard_sigmoid"), KerasLSTMCell),
}


@pytest.mark.parametrize("case", CORE_CASES)
def test_torch_module_where_exact(case, tmp_path):
    """Where torch computes what Keras does, the converted layer holds torch's own module (fused kernels)."""
    import keras

    layer, expected = CORE_CASES[case]
    seq(keras, layer(keras)).save(tmp_path / "m.keras")
    module = tf2torch.convert(tmp_path / "m.keras")
    cores = [m.rnn for _, m in module.named_modules() if isinstance(m, KerasRNN)]
    assert len(cores) == 1 and type(cores[0]) is expected


def test_converted_module_survives_save_and_load(tmp_path):
    import keras

    model = randomized(lambda k: seq(k, k.layers.Masking(), k.layers.Bidirectional(
        k.layers.GRU(4, reset_after=False, return_sequences=True)), k.layers.LSTM(3)))(keras)
    model.save(tmp_path / "m.keras")
    x = masked_sequence()
    module = tf2torch.convert(tmp_path / "m.keras")
    tf2torch.save(module, tmp_path / "m.pt")
    again = tf2torch.load(tmp_path / "m.pt")
    with torch.no_grad():
        np.testing.assert_array_equal(again(torch.from_numpy(x)).numpy(), module(torch.from_numpy(x)).numpy())
    assert_matches(torch_outputs(again, [x], "keras"), keras_outputs(model, [x]))


# -- whole models with masks -------------------------------------------------------------------------------
def test_tf_keras_embedding_bidirectional_gru_model(tmp_path):
    """Embedding(mask_zero) → Bidirectional(LSTM, sequences) → GRU(reset_after, sequences) → GRU(reset_before)
    saved by tf_keras as .h5; padding at the end, in the middle and at the start."""

    def build(k):
        return k.Sequential([
            k.Input((8,), dtype="int32"), k.layers.Embedding(20, 5, mask_zero=True),
            k.layers.Bidirectional(k.layers.LSTM(4, return_sequences=True)),
            k.layers.GRU(4, reset_after=True, return_sequences=True),
            k.layers.GRU(3, reset_after=False)])

    check_conversion(randomized(build), "tf_keras", tmp_path, inputs=[padded_ids()])


def test_keras3_embedding_bidirectional_gru_lstm_model(tmp_path):
    """Keras 3 Embedding(mask_zero) → Bidirectional(GRU, sequences) → LSTM saved as .keras."""

    def build(k):
        return k.Sequential([
            k.Input((8,), dtype="int32"), k.layers.Embedding(20, 5, mask_zero=True),
            k.layers.Bidirectional(k.layers.GRU(4, return_sequences=True)), k.layers.LSTM(3)])

    check_conversion(randomized(build), "keras3", tmp_path, inputs=[padded_ids()], formats=["keras"])


# -- what is refused, and how ---------------------------------------------------------------------------------
@pytest.mark.parametrize("build,message", [
    (lambda k: k.Sequential([k.Input(batch_shape=(2, STEPS, FEATURES)), k.layers.LSTM(4, stateful=True)]),
     "stateful=True"),
    (lambda k: seq(k, k.layers.RNN([k.layers.LSTMCell(4), k.layers.GRUCell(3)], go_backwards=True)),
     "stacked cells with go_backwards"),
])
def test_refused_with_a_reason(build, message, tmp_path):
    import keras

    build(keras).save(tmp_path / "m.keras")
    with pytest.raises(tf2torch.errors.ConversionError, match=message):
        tf2torch.convert(tmp_path / "m.keras")
