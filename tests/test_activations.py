"""Activations: every string activation (Activation layer and ``activation=`` of Conv/Dense, on channels-first,
Keras-layout and flattened tensors), the activation layers (ReLU, LeakyReLU, PReLU, ELU, Softmax,
ThresholdedReLU), and the Keras-version trap of ``hard_sigmoid``. Inputs are scaled ×4 so clipping and
thresholds are crossed."""

import numpy as np
import pytest
import tensorflow as tf
import torch
from harness import check_conversion, keras_module, random_inputs
from hypothesis import given, settings
from hypothesis import strategies as st

import tf2torch
from tf2torch.converters.activations import activation_module, keras_alpha_to_layout, relu_module
from tf2torch.errors import ConversionError
from tf2torch.layout import CHANNELS_FIRST, KERAS, FlatChannelsFirst

SCALE = 4.0
SHAPE = (5, 6, 4)

# Names both Keras versions accept ([TFK] activations.py); "linear" maps to no module at all.
BOTH_NAMES = ["relu", "relu6", "sigmoid", "tanh", "softmax", "log_softmax", "elu", "selu", "softplus", "softsign",
              "swish", "silu", "gelu", "exponential", "hard_sigmoid", "mish", "leaky_relu", "linear"]
# Keras 3 only ([K3] activations/__init__.py ALL_OBJECTS_DICT).
KERAS3_NAMES = ["celu", "glu", "hard_silu", "hard_swish", "hard_tanh", "hard_shrink", "soft_shrink", "tanh_shrink",
                "squareplus", "sparse_plus", "sparse_sigmoid", "sparsemax", "log_sigmoid"]


def bias(k):
    return k.initializers.RandomNormal(stddev=0.5, seed=3)


def string_activation_model(name):
    """The activation as a layer and as ``activation=`` of Conv2D (channels axis = dim 1 when channels-first),
    of Dense on a 4-D tensor, and on a flattened tensor (Activation and Dense)."""

    def build(k):
        x = k.Input(SHAPE)
        flat = k.layers.Flatten()(x)
        return k.Model(x, [
            k.layers.Activation(name)(x),
            k.layers.Conv2D(4, 2, activation=name, bias_initializer=bias(k))(x),
            k.layers.Dense(4, activation=name, bias_initializer=bias(k))(x),
            k.layers.Activation(name)(flat),
            k.layers.Dense(6, activation=name, bias_initializer=bias(k))(flat),
        ])

    return build


def single(layer_fn, shape=SHAPE):
    return lambda k: k.Sequential([k.Input(shape), layer_fn(k)])


def relu_cases():
    cases = {}
    for max_value in (None, 6.0, 2.5, 0.0):
        for slope in (0.0, 0.1):
            for threshold in (0.0, 0.7):
                cases[f"relu_max{max_value}_slope{slope}_thr{threshold}"] = single(
                    lambda k, m=max_value, s=slope, t=threshold: k.layers.ReLU(m, s, t))
    return cases


def prelu(k, **kwargs):
    return k.layers.PReLU(alpha_initializer=k.initializers.RandomNormal(stddev=0.5, seed=5), **kwargs)


LAYER_CASES = {
    **relu_cases(),
    "leaky_relu_default": single(lambda k: k.layers.LeakyReLU()),
    "leaky_relu_0.1": single(lambda k: k.layers.LeakyReLU(0.1)),
    "elu_default": single(lambda k: k.layers.ELU()),
    "elu_0.5": single(lambda k: k.layers.ELU(0.5)),
    "elu_2": single(lambda k: k.layers.ELU(2.0)),
    "prelu_per_position": single(lambda k: prelu(k)),
    "prelu_per_channel": single(lambda k: prelu(k, shared_axes=[1, 2])),
    "prelu_shared_rows": single(lambda k: prelu(k, shared_axes=[1])),
    "prelu_shared_spatial_and_channel": single(lambda k: prelu(k, shared_axes=[2, 3])),
    "prelu_single_alpha": single(lambda k: prelu(k, shared_axes=[1, 2, 3])),
    "prelu_2d": lambda k: k.Sequential([k.Input((7,)), k.layers.Dense(5), prelu(k)]),
    "prelu_after_flatten": lambda k: k.Sequential([k.Input(SHAPE), k.layers.Flatten(), prelu(k)]),
    "prelu_conv1d_per_channel": lambda k: k.Sequential([
        k.Input((9, 3)), k.layers.Conv1D(4, 3), prelu(k, shared_axes=[1])]),
    "softmax_default": single(lambda k: k.layers.Softmax()),
    "softmax_axis1": single(lambda k: k.layers.Softmax(axis=1)),
    "softmax_axis2": single(lambda k: k.layers.Softmax(axis=-2)),
    "softmax_axis_list_of_one": single(lambda k: k.layers.Softmax(axis=[-1])),
    "softmax_axes_1_2": single(lambda k: k.layers.Softmax(axis=[1, 2])),
    "softmax_axes_all": single(lambda k: k.layers.Softmax(axis=[1, 2, 3])),
    "softmax_2d": lambda k: k.Sequential([k.Input((7,)), k.layers.Dense(5), k.layers.Softmax()]),
    "softmax_after_flatten": lambda k: k.Sequential([k.Input(SHAPE), k.layers.Flatten(), k.layers.Softmax()]),
    "softmax_conv1d": lambda k: k.Sequential([k.Input((9, 3)), k.layers.Conv1D(4, 3), k.layers.Softmax(axis=1)]),
    "layer_object_activations": lambda k: k.Sequential([
        k.Input(SHAPE),
        k.layers.Conv2D(4, 2, activation=k.layers.ReLU(3.0, 0.1, 0.5), bias_initializer=bias(k)),
        k.layers.Dense(4, activation=k.layers.LeakyReLU(0.1), bias_initializer=bias(k)),
        k.layers.Dense(4, activation=k.layers.ELU(0.5), bias_initializer=bias(k)),
        k.layers.Dense(4, activation=k.layers.Softmax(), bias_initializer=bias(k))]),
}
TF_KERAS_ONLY_CASES = {
    "thresholded_relu_default": single(lambda k: k.layers.ThresholdedReLU()),
    "thresholded_relu_0.3": single(lambda k: k.layers.ThresholdedReLU(0.3)),
    "thresholded_relu_0": single(lambda k: k.layers.ThresholdedReLU(0.0)),
}


def check_scaled(build, flavour, tmp_path):
    """check_conversion with inputs ×SCALE (standard normal inputs would rarely reach clip points)."""
    model = build(keras_module(flavour))
    inputs = [a * np.float32(SCALE) for a in random_inputs(model)]
    return check_conversion(lambda k: model, flavour, tmp_path, inputs=inputs)


@pytest.mark.parametrize("name", BOTH_NAMES + KERAS3_NAMES)
def test_string_activation(name, flavour, tmp_path):
    if flavour == "tf_keras" and name in KERAS3_NAMES:
        pytest.skip(f"tf.keras has no {name!r} activation")
    check_scaled(string_activation_model(name), flavour, tmp_path)


@pytest.mark.parametrize("case", LAYER_CASES)
def test_activation_layer(case, flavour, tmp_path):
    check_scaled(LAYER_CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", TF_KERAS_ONLY_CASES)
def test_tf_keras_only_layer(case, flavour, tmp_path):
    if flavour == "keras3":
        pytest.skip("Keras 3 removed ThresholdedReLU (use ReLU(threshold=...))")
    check_scaled(TF_KERAS_ONLY_CASES[case], flavour, tmp_path)


# -- the modules chosen: plain torch modules where they fit, no permutes in a channels-first trunk ----------

def converted(build, tmp_path, layout="channels_first"):
    import keras

    path = tmp_path / "model.keras"
    build(keras).save(str(path))
    return tf2torch.convert(path, layout=layout)


def test_plain_torch_modules_where_they_fit(tmp_path):
    module = converted(lambda k: k.Sequential([
        k.Input(SHAPE), k.layers.ReLU(name="r"), k.layers.ReLU(6.0, name="r6"), k.layers.LeakyReLU(name="lr"),
        k.layers.ReLU(threshold=0.5, name="thr"), prelu(k, shared_axes=[1, 2], name="pr"),
        k.layers.Softmax(name="sm"), k.layers.Activation("hard_sigmoid", name="hs")]), tmp_path)
    kinds = {n: type(module.get_submodule(n)) for n in ("lr", "thr", "pr", "sm", "hs")}
    assert kinds == {"lr": torch.nn.LeakyReLU, "thr": torch.nn.Threshold, "pr": torch.nn.PReLU,
                     "sm": torch.nn.Softmax, "hs": torch.nn.Hardsigmoid}
    # torch's own, with in-place inference added (tf2torch/nn/inplace.py): the same class name, printed alike
    assert isinstance(module.r, torch.nn.ReLU) and isinstance(module.r6, torch.nn.ReLU6)
    assert (repr(module.r), repr(module.r6)) == ("ReLU()", "ReLU6()")
    assert module.get_submodule("lr").negative_slope == pytest.approx(0.3)
    assert module.get_submodule("sm").dim == 1
    assert "permute" not in module.code


# -- activation modules against the Keras functions themselves, on edge values ----------------------------

EDGES = np.array([-100, -20, -5, -3, -2.5, -1, -0.7, -0.5, -1e-3, 0, 1e-3, 0.5, 0.7, 1, 2.5, 3, 5, 20],
                 dtype=np.float32)


def keras_activation(flavour, name):
    return keras_module(flavour).activations.get(name)


@pytest.mark.numerics
@pytest.mark.parametrize("name", [n for n in BOTH_NAMES + KERAS3_NAMES if n != "linear"])
def test_activation_module_on_edges(name, flavour):
    """rtol 2e-6, atol 1e-6: torch's ``exp``/``tanh``/``erf`` change implementation with the CPU's vector width
    (ATen's capability) and Eigen's are TF's own; they differ by a few ulps, inside the tolerance on any CPU."""
    if flavour == "tf_keras" and name in KERAS3_NAMES:
        pytest.skip(f"tf.keras has no {name!r} activation")
    x = np.stack([EDGES, EDGES[::-1]])
    want = np.asarray(keras_activation(flavour, name)(tf.constant(x)))
    got = activation_module(name, 3 if flavour == "keras3" else 2)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)


def test_threshold_activation_fails_clearly(tmp_path):
    """Keras saves ``Activation('threshold')`` but cannot call it (two required arguments): say so, by name."""
    with pytest.raises(ConversionError, match=r"layer act \(Activation\).*default_value"):
        converted(lambda k: k.Sequential([k.Input((4,)), k.layers.Activation("threshold", name="act")]), tmp_path)


# -- ReLU arithmetic: boundaries x == threshold and x == max_value -----------------------------------------

def around(value):
    """``value`` as float32 and its two float32 neighbours: where ``x > threshold`` and the clip decide."""
    v = np.float32(value)
    return [np.nextafter(v, np.float32(-np.inf)), v, np.nextafter(v, np.float32(np.inf))]


@settings(max_examples=20, deadline=None)
@given(max_value=st.one_of(st.none(), st.just(6.0), st.floats(0, 8)),
       slope=st.one_of(st.just(0.0), st.floats(0, 1)),
       threshold=st.one_of(st.just(0.0), st.floats(0, 4)))
def test_relu_module_matches_keras_relu(max_value, slope, threshold):
    """Config numbers are float64; Keras casts them to the tensor's float32, and so does torch."""
    import keras
    import tf_keras

    edges = around(threshold) + around(-threshold) + around(0.0) + ([] if max_value is None else around(max_value))
    x = np.concatenate([np.linspace(-10, 10, 41), edges]).astype(np.float32)
    got = relu_module(max_value, slope, threshold)(torch.from_numpy(x)).numpy()
    want3 = np.asarray(keras.activations.relu(x, negative_slope=slope, max_value=max_value, threshold=threshold))
    want2 = np.asarray(tf_keras.backend.relu(tf.constant(x), alpha=slope, max_value=max_value, threshold=threshold))
    np.testing.assert_allclose(got, want3, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, want2, rtol=1e-6, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-3, 3, width=32), min_size=1, max_size=9), st.booleans())
def test_sparsemax_matches_keras(values, with_ties):
    import keras

    x = np.array(values + (values[:2] if with_ties else []), dtype=np.float32)[None]
    got = activation_module("sparsemax", 3)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, np.asarray(keras.activations.sparsemax(x)), rtol=1e-5, atol=1e-6)


# -- the PReLU alpha transform ----------------------------------------------------------------------------

def test_keras_alpha_to_layout():
    alpha = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # (H, W, C)
    assert np.array_equal(keras_alpha_to_layout(alpha, KERAS), alpha)
    channels_first = keras_alpha_to_layout(alpha, CHANNELS_FIRST)
    assert channels_first.shape == (4, 2, 3)
    assert channels_first[3, 1, 2] == alpha[1, 2, 3]
    flat = keras_alpha_to_layout(alpha.reshape(-1), FlatChannelsFirst(4, (2, 3)))
    assert flat[(3 * 2 + 1) * 3 + 2] == alpha[1, 2, 3]  # C,H,W order
    vector = np.arange(5, dtype=np.float32)
    assert np.array_equal(keras_alpha_to_layout(vector, CHANNELS_FIRST), vector)  # 2-D tensors: no change


MASKED_SOFTMAX_CASES = {
    "bool_mask": "bool",
    "float_mask": "float32",
}


def masked_softmax_model(k, mask_dtype):
    scores = k.Input((4, 5), name="scores")
    mask = k.Input((4, 5), dtype=mask_dtype, name="mask")
    return k.Model([scores, mask], k.layers.Softmax()(scores, mask=mask))


@pytest.mark.parametrize("case", MASKED_SOFTMAX_CASES)
def test_softmax_with_explicit_mask(case, flavour, tmp_path):
    """Keras 3: where(m, x, -1e9), softmax, zeros where masked; tf.keras: x + (1 - m) * -1e9. A fully masked
    row shows the difference."""
    rng = np.random.default_rng(7)
    keep = rng.random((2, 4, 5)) > 0.4
    keep[0, 1] = False
    mask = keep if case == "bool_mask" else np.where(keep, 0.9, 0.2)
    check_conversion(lambda k: masked_softmax_model(k, MASKED_SOFTMAX_CASES[case]), flavour, tmp_path,
                     inputs=[rng.standard_normal((2, 4, 5)).astype("float32"),
                             mask.astype(MASKED_SOFTMAX_CASES[case])])
