"""Conv, DepthwiseConv, SeparableConv and transposed Conv against Keras 3 and tf_keras, plus the kernel transforms.

Every case runs with random weights (biases included), odd and even input sizes, stride > 1 where it matters.
Keras itself cannot run some configurations on CPU; those cases are skipped for that Keras with the reason.
"""

import numpy as np
import pytest
import torch
from harness import check_conversion
from torch import nn

import tf2torch
from tf2torch.converters.conv import depthwise_kernel_to_oihw, hwio_to_oihw, transposed_kernel_to_iohw
from tf2torch.nn.padding import TFSamePad
from tf2torch.nn.transposed import TFConvTranspose


def randomized(build):
    """Wrap a builder so every weight (biases included) is random: a wrong bias or crop cannot hide."""

    def build_random(k):
        model = build(k)
        rng = np.random.default_rng(1)
        for layer in model.layers:
            layer.set_weights([rng.standard_normal(w.shape).astype("float32") for w in layer.get_weights()])
        return model

    return build_random


def seq(k, shape, *layers):
    return k.Sequential([k.Input(shape), *layers])


CONV = {
    "conv1d_valid": lambda k: seq(k, (9, 3), k.layers.Conv1D(4, 3)),
    "conv1d_same_s2_odd": lambda k: seq(k, (9, 3), k.layers.Conv1D(4, 3, strides=2, padding="same")),
    "conv1d_same_s2_even": lambda k: seq(k, (10, 3), k.layers.Conv1D(4, 3, strides=2, padding="same")),
    "conv1d_same_k4": lambda k: seq(k, (9, 3), k.layers.Conv1D(4, 4, padding="same")),
    "conv1d_causal_dilated": lambda k: seq(k, (9, 3), k.layers.Conv1D(4, 3, padding="causal", dilation_rate=2)),
    "conv1d_groups_relu": lambda k: seq(k, (9, 6), k.layers.Conv1D(4, 3, groups=2, activation="relu")),
    "conv2d_valid_s2": lambda k: seq(k, (9, 8, 3), k.layers.Conv2D(5, 3, strides=2)),
    "conv2d_same_s2_odd_even": lambda k: seq(k, (9, 8, 3), k.layers.Conv2D(5, 3, strides=2, padding="same")),
    "conv2d_same_s2_symmetric": lambda k: seq(k, (9, 7, 3), k.layers.Conv2D(5, 3, strides=2, padding="same")),
    "conv2d_same_k4_s1": lambda k: seq(k, (7, 6, 3), k.layers.Conv2D(4, 4, padding="same")),
    "conv2d_same_k5_s3": lambda k: seq(k, (10, 11, 3), k.layers.Conv2D(4, 5, strides=3, padding="same")),
    "conv2d_same_dilated": lambda k: seq(k, (9, 8, 3), k.layers.Conv2D(4, 3, dilation_rate=2, padding="same")),
    "conv2d_rect_kernel": lambda k: seq(k, (9, 8, 3), k.layers.Conv2D(4, (3, 2), strides=(2, 1), padding="same")),
    "conv2d_valid_dilated_rect": lambda k: seq(k, (9, 8, 3), k.layers.Conv2D(4, (2, 3), dilation_rate=(3, 2))),
    "conv2d_groups": lambda k: seq(k, (8, 7, 6), k.layers.Conv2D(9, 3, groups=3, padding="same")),
    "conv2d_no_bias_tanh": lambda k: seq(k, (8, 7, 3), k.layers.Conv2D(4, 3, use_bias=False, activation="tanh")),
    "conv2d_softmax": lambda k: seq(k, (8, 7, 3), k.layers.Conv2D(4, 3, activation="softmax")),
    "conv3d_same_s2": lambda k: seq(k, (5, 6, 7, 2), k.layers.Conv3D(3, 3, strides=2, padding="same")),
    "conv3d_groups_valid": lambda k: seq(k, (5, 6, 7, 4), k.layers.Conv3D(4, (2, 3, 2), groups=2)),
    "conv_trunk": lambda k: seq(k, (11, 10, 3), k.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu"),
                                k.layers.Conv2D(6, 3, groups=2, padding="same"), k.layers.Conv2D(4, 1)),
    # data_format='channels_first': the torch conv then runs on the Keras tensor as is
    "conv1d_cf_groups_s2": lambda k: seq(k, (6, 10), k.layers.Conv1D(
        4, 3, groups=2, strides=2, padding="same", data_format="channels_first")),
    "conv1d_cf_groups_causal": lambda k: seq(k, (6, 9), k.layers.Conv1D(
        4, 3, groups=2, padding="causal", data_format="channels_first")),
    # channels_first: filters != last output size, else Keras 3 adds the bias along the last axis ([K3]
    # backend/tensorflow/numpy.py ``add`` takes a (1, C, 1, 1) bias for NHWC when the last size is C)
    "conv2d_cf_groups_softmax": lambda k: seq(k, (6, 9, 8), k.layers.Conv2D(
        6, 3, groups=2, strides=2, padding="same", activation="softmax", data_format="channels_first")),
    "conv2d_cf": lambda k: seq(k, (3, 9, 8), k.layers.Conv2D(4, 3, data_format="channels_first")),
    "conv1d_cf": lambda k: seq(k, (3, 9), k.layers.Conv1D(4, 3, data_format="channels_first")),
    "conv3d_cf_same_s2": lambda k: seq(k, (2, 5, 6, 7), k.layers.Conv3D(
        3, 3, strides=2, padding="same", data_format="channels_first")),
}

DEPTHWISE = {
    "dw2d_dm2_same_s2": lambda k: seq(k, (9, 8, 3), k.layers.DepthwiseConv2D(
        3, depth_multiplier=2, strides=2, padding="same")),
    "dw2d_dilated_relu": lambda k: seq(k, (9, 8, 3), k.layers.DepthwiseConv2D(
        3, dilation_rate=2, padding="same", activation="relu")),
    "dw2d_rect_no_bias": lambda k: seq(k, (8, 9, 4), k.layers.DepthwiseConv2D((3, 2), strides=2, use_bias=False)),
    "dw2d_k4_same": lambda k: seq(k, (8, 7, 2), k.layers.DepthwiseConv2D(4, depth_multiplier=3, padding="same")),
    "dw2d_s2_dilated": lambda k: seq(k, (10, 9, 3), k.layers.DepthwiseConv2D(
        3, strides=2, dilation_rate=2, padding="same")),
    "dw2d_cf": lambda k: seq(k, (3, 9, 8), k.layers.DepthwiseConv2D(
        3, depth_multiplier=3, strides=2, padding="same", data_format="channels_first")),
    "dw1d_dm3_s2": lambda k: seq(k, (10, 3), k.layers.DepthwiseConv1D(
        3, depth_multiplier=3, strides=2, padding="same")),
    "dw1d_dilated_valid": lambda k: seq(k, (11, 3), k.layers.DepthwiseConv1D(2, dilation_rate=3)),
    "dw1d_cf": lambda k: seq(k, (3, 9), k.layers.DepthwiseConv1D(
        3, depth_multiplier=2, padding="same", data_format="channels_first")),
    "dw1d_s2_dilated": lambda k: seq(k, (11, 3), k.layers.DepthwiseConv1D(
        3, strides=2, dilation_rate=2, padding="same")),
}

SEPARABLE = {
    "sep2d_dm2_same_s2": lambda k: seq(k, (9, 8, 3), k.layers.SeparableConv2D(
        5, 3, depth_multiplier=2, strides=2, padding="same")),
    "sep2d_dilated_relu": lambda k: seq(k, (9, 8, 3), k.layers.SeparableConv2D(
        4, 3, dilation_rate=2, activation="relu")),
    "sep2d_no_bias": lambda k: seq(k, (8, 7, 3), k.layers.SeparableConv2D(4, (3, 2), use_bias=False, padding="same")),
    "sep2d_s2_dilated": lambda k: seq(k, (10, 9, 3), k.layers.SeparableConv2D(
        4, 3, strides=2, dilation_rate=2, padding="same")),
    "sep2d_cf": lambda k: seq(k, (3, 9, 8), k.layers.SeparableConv2D(
        5, 3, strides=2, padding="same", data_format="channels_first")),
    "sep1d_dm2_same_s2": lambda k: seq(k, (10, 3), k.layers.SeparableConv1D(
        5, 3, depth_multiplier=2, strides=2, padding="same")),
    "sep1d_causal": lambda k: seq(k, (9, 3), k.layers.SeparableConv1D(4, 3, padding="causal", dilation_rate=2)),
    "sep1d_cf": lambda k: seq(k, (3, 9), k.layers.SeparableConv1D(4, 3, data_format="channels_first")),
}

TRANSPOSED = {
    "tr2d_k3_s2_same": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(4, 3, strides=2, padding="same")),
    "tr2d_k4_s2_same": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(4, 4, strides=2, padding="same")),
    "tr2d_k3_s2_valid": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(4, 3, strides=2)),
    "tr2d_k1_s3_valid": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(4, 1, strides=3)),
    "tr2d_k2_s3_same": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(4, 2, strides=3, padding="same")),
    "tr2d_k3_s2_same_op0": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(
        4, 3, strides=2, padding="same", output_padding=0)),
    "tr2d_k3_s2_same_op1": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(
        4, 3, strides=2, padding="same", output_padding=1)),
    "tr2d_k4_s3_same_op2": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(
        4, 4, strides=3, padding="same", output_padding=2)),
    "tr2d_k3_s3_valid_op2": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(
        4, 3, strides=3, output_padding=2)),
    "tr2d_rect_same": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(
        4, (5, 2), strides=(3, 2), padding="same")),
    "tr2d_no_bias_relu": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(
        4, 3, strides=2, padding="same", use_bias=False, activation="relu")),
    "tr2d_dilated_same": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(4, 3, dilation_rate=2, padding="same")),
    "tr2d_dilated_k2_same": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(
        4, 2, dilation_rate=3, padding="same")),
    "tr2d_dilated_valid": lambda k: seq(k, (5, 4, 3), k.layers.Conv2DTranspose(4, 3, dilation_rate=2)),
    "tr2d_cf_k3_s2_same": lambda k: seq(k, (3, 5, 4), k.layers.Conv2DTranspose(
        4, 3, strides=2, padding="same", data_format="channels_first")),
    "tr2d_groups_ignored": lambda k: seq(k, (5, 4, 4), k.layers.Conv2DTranspose(4, 3, groups=2)),
    "tr1d_k3_s2_same": lambda k: seq(k, (6, 3), k.layers.Conv1DTranspose(5, 3, strides=2, padding="same")),
    "tr1d_k4_s2_valid_op1": lambda k: seq(k, (5, 3), k.layers.Conv1DTranspose(5, 4, strides=2, output_padding=1)),
    "tr1d_k3_s2_same_op1": lambda k: seq(k, (5, 3), k.layers.Conv1DTranspose(
        5, 3, strides=2, padding="same", output_padding=1)),
    "tr3d_k3_s2_same": lambda k: seq(k, (3, 4, 5, 2), k.layers.Conv3DTranspose(3, 3, strides=2, padding="same")),
    "tr3d_k2_s2_valid": lambda k: seq(k, (3, 4, 5, 2), k.layers.Conv3DTranspose(3, 2, strides=(2, 1, 2))),
    "tr3d_dilated_same": lambda k: seq(k, (3, 4, 5, 2), k.layers.Conv3DTranspose(
        3, 3, dilation_rate=2, padding="same")),
    "decoder": lambda k: seq(k, (4, 5, 3), k.layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu"),
                             k.layers.Conv2DTranspose(4, 4, strides=2, padding="same"), k.layers.Conv2D(2, 3)),
}

CASES = {**CONV, **DEPTHWISE, **SEPARABLE, **TRANSPOSED}

NO_CPU_KERNEL = "TF's CPU kernel cannot run this, so Keras itself cannot produce a reference"
KERAS_CANNOT = {
    ("conv2d_cf", "keras3"): NO_CPU_KERNEL + " (Conv2D NCHW)",
    ("conv2d_cf", "tf_keras"): NO_CPU_KERNEL + " (Conv2D NCHW)",
    ("conv1d_cf", "keras3"): NO_CPU_KERNEL + " (Conv1D NCW)",
    ("conv1d_cf", "tf_keras"): NO_CPU_KERNEL + " (Conv1D NCW)",
    ("conv3d_cf_same_s2", "tf_keras"): NO_CPU_KERNEL + " (Conv3D NCDHW; Keras 3 compiles it with XLA)",
    ("dw2d_s2_dilated", "tf_keras"): "tf_keras rejects strides > 1 with dilation_rate > 1",
    ("dw1d_s2_dilated", "tf_keras"): "tf_keras rejects strides > 1 with dilation_rate > 1",
    ("sep2d_s2_dilated", "tf_keras"): "tf_keras rejects strides > 1 with dilation_rate > 1",
    ("dw1d_cf", "tf_keras"): NO_CPU_KERNEL + " (depthwise NCW; Keras 3 transposes to NWC)",
    ("sep2d_cf", "tf_keras"): NO_CPU_KERNEL + " (separable NCHW; Keras 3 transposes to NHWC)",
    ("sep1d_cf", "tf_keras"): NO_CPU_KERNEL + " (separable NCW; Keras 3 transposes to NWC)",
    ("sep1d_causal", "keras3"): "Keras 3 SeparableConv1D has no causal padding",
    ("tr2d_dilated_same", "keras3"): NO_CPU_KERNEL + " (Keras 3 dilated conv_transpose)",
    ("tr2d_dilated_k2_same", "keras3"): NO_CPU_KERNEL + " (Keras 3 dilated conv_transpose)",
    ("tr2d_dilated_valid", "keras3"): NO_CPU_KERNEL + " (Keras 3 dilated conv_transpose)",
    ("tr3d_dilated_same", "keras3"): NO_CPU_KERNEL + " (Keras 3 dilated conv_transpose)",
    ("tr2d_cf_k3_s2_same", "keras3"): NO_CPU_KERNEL + " (Keras 3 conv_transpose NCHW)",
    ("tr2d_groups_ignored", "keras3"): "Keras 3 Conv2DTranspose has no groups argument",
}


@pytest.mark.parametrize("case", CASES)
def test_conv(case, flavour, tmp_path):
    if (case, flavour) in KERAS_CANNOT:
        pytest.skip(KERAS_CANNOT[(case, flavour)])
    check_conversion(randomized(CASES[case]), flavour, tmp_path)


# Dynamic spatial sizes: SAME padding with stride > 1 depends on the size, so it must be computed at run time.
DYNAMIC = {
    "conv2d_same_s2": lambda k: seq(k, (None, None, 3), k.layers.Conv2D(4, 3, strides=2, padding="same")),
    "conv2d_same_s1_folded": lambda k: seq(k, (None, None, 3), k.layers.Conv2D(4, 3, padding="same")),
    "conv1d_same_k4_s3": lambda k: seq(k, (None, 3), k.layers.Conv1D(4, 4, strides=3, padding="same")),
    "dw2d_same_s2": lambda k: seq(k, (None, None, 3), k.layers.DepthwiseConv2D(3, strides=2, padding="same")),
    "sep2d_same_s2": lambda k: seq(k, (None, None, 3), k.layers.SeparableConv2D(4, 3, strides=2, padding="same")),
    "tr2d_k3_s2_same": lambda k: seq(k, (None, None, 3), k.layers.Conv2DTranspose(4, 3, strides=2, padding="same")),
}
DYNAMIC_SIZES = ((9, 8), (10, 7), (4, 5))


@pytest.mark.parametrize("case", DYNAMIC)
@pytest.mark.parametrize("size", DYNAMIC_SIZES, ids=lambda s: "x".join(map(str, s)))
def test_conv_dynamic_size(case, size, flavour, tmp_path):
    spatial = size[:1] if case.startswith("conv1d") else size
    x = np.random.default_rng(0).standard_normal((2, *spatial, 3)).astype("float32")
    check_conversion(randomized(DYNAMIC[case]), flavour, tmp_path, inputs=[x])


def test_same_padding_folds_or_pads(tmp_path):
    """Symmetric SAME padding folds into the conv; asymmetric or size-dependent SAME runs as ``TFSamePad``."""
    import keras

    def converted(shape, **kw):
        path = tmp_path / "m.keras"
        seq(keras, shape, keras.layers.Conv2D(2, 3, padding="same", **kw)).save(path)
        return dict(tf2torch.convert(path).named_modules())

    folded = converted((9, 7, 3), strides=2)
    assert any(isinstance(m, nn.Conv2d) and m.padding == (1, 1) for m in folded.values())
    assert not any(isinstance(m, TFSamePad) for m in folded.values())
    assert any(isinstance(m, TFSamePad) for m in converted((9, 8, 3), strides=2).values())
    assert any(isinstance(m, TFSamePad) for m in converted((None, None, 3), strides=2).values())


@pytest.mark.parametrize("kernel, strides, expected", [
    (4, 2, nn.ConvTranspose2d),  # crop (1, 1): torch padding=1
    (1, 2, nn.ConvTranspose2d),  # crop (0, -1): torch output_padding=1
    (3, 2, TFConvTranspose),  # crop (0, 1): no torch padding cuts it
])
def test_transpose_module_choice(kernel, strides, expected, tmp_path):
    """A plain ``nn.ConvTranspose2d`` where its padding/output_padding cut Keras's window, else the crop module."""
    import keras

    path = tmp_path / "m.keras"
    seq(keras, (5, 4, 3), keras.layers.Conv2DTranspose(2, kernel, strides=strides, padding="same")).save(path)
    modules = [m for m in tf2torch.convert(path).modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(modules) == 1 and isinstance(modules[0], expected)
    assert isinstance(modules[0], TFConvTranspose) == (expected is TFConvTranspose)


# -- weight transforms against their obvious definitions --------------------------------------------------------
def test_hwio_to_oihw():
    kernel = np.random.default_rng(0).standard_normal((3, 2, 4, 5))
    weight = hwio_to_oihw(kernel)
    assert weight.shape == (5, 4, 3, 2)
    for o, i, a, b in np.ndindex(weight.shape):
        assert weight[o, i, a, b] == kernel[a, b, i, o]


def test_depthwise_kernel_to_oihw():
    kernel = np.random.default_rng(0).standard_normal((3, 2, 4, 3))  # (kh, kw, in, depth_multiplier)
    weight = depthwise_kernel_to_oihw(kernel)
    assert weight.shape == (12, 1, 3, 2)
    for c, m, a, b in np.ndindex(4, 3, 3, 2):
        assert weight[c * 3 + m, 0, a, b] == kernel[a, b, c, m]


def test_depthwise_kernel_to_oihw_1d():
    kernel = np.random.default_rng(0).standard_normal((5, 2, 3))
    weight = depthwise_kernel_to_oihw(kernel)
    assert weight.shape == (6, 1, 5)
    for c, m, a in np.ndindex(2, 3, 5):
        assert weight[c * 3 + m, 0, a] == kernel[a, c, m]


def test_transposed_kernel_to_iohw():
    kernel = np.random.default_rng(0).standard_normal((3, 2, 4, 5))  # (kh, kw, out, in)
    weight = transposed_kernel_to_iohw(kernel)
    assert weight.shape == (5, 4, 3, 2)
    for i, o, a, b in np.ndindex(weight.shape):
        assert weight[i, o, a, b] == kernel[a, b, o, i]


@pytest.mark.numerics
def test_transposed_kernel_is_not_flipped():
    """A one-hot kernel tap at (0, 0) must land at the top-left of each stride cell, as in TF. Equal bit for bit on
    any CPU: each output is one input times 1 plus zeros, which no summation order rounds."""
    import tensorflow as tf

    kernel = np.zeros((3, 3, 1, 1), "float32")
    kernel[0, 1] = 1.0
    x = np.random.default_rng(0).standard_normal((1, 4, 4, 1)).astype("float32")
    ref = tf.nn.conv2d_transpose(x, kernel, (1, 9, 9, 1), 2, padding="VALID").numpy()
    got = torch.nn.functional.conv_transpose2d(torch.from_numpy(x).permute(0, 3, 1, 2),
                                               torch.from_numpy(transposed_kernel_to_iohw(kernel)), stride=2)
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), ref)


@pytest.mark.numerics
def test_conv_weights_run_channels_last_with_equal_values(flavour, tmp_path):
    """A module that runs its conv trunk channels-last keeps every 2-D conv weight (plain, depthwise, separable)
    in channels-last memory, with the values of a contiguous weight: the outputs equal the same module's with
    contiguous weights bit for bit, the state_dict loads into another conversion of the file, and
    a training step runs. Bit for bit on any CPU: the input is channels-last in both calls, so oneDNN runs the same
    primitive on the same reordered weight; only where the reorder reads from differs."""
    from harness import keras_module

    k = keras_module(flavour)
    model = randomized(lambda k: seq(k, (12, 10, 3), k.layers.Conv2D(6, 3, padding="same"),
                                     k.layers.DepthwiseConv2D(3, strides=2, padding="same"),
                                     k.layers.SeparableConv2D(5, 3), k.layers.Conv2D(4, 1)))(k)
    path = tmp_path / "m.h5"
    model.save(path)
    module = tf2torch.convert(path)
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    assert any(not m.weight.is_contiguous() for m in convs)  # the 3x3 ones really are laid out otherwise
    x = torch.randn(2, 3, 12, 10)
    with torch.no_grad():
        channels_last = module(x)
        for m in convs:
            m.weight.data = m.weight.data.contiguous()
        contiguous = module(x)
    assert torch.equal(channels_last, contiguous)
    copy = tf2torch.convert(path)
    copy.load_state_dict(module.state_dict())
    with torch.no_grad():
        assert torch.equal(copy(x), contiguous)
    copy.train()
    copy(x).square().mean().backward()
    assert all(m.weight.grad is not None and m.weight.grad.shape == m.weight.shape
               for m in copy.modules() if isinstance(m, nn.Conv2d))


# tf2torch/nn/conv.py's Conv2d: (kernel, stride, padding, groups, bias, channels-last input) → runs as F.linear
CONV2D_ROUTES = [
    ((1, 1), 1, 0, 1, True, True, True),
    ((1, 1), 1, 0, 1, False, True, True),
    ((1, 1), 1, 0, 1, True, False, True),  # a contiguous input: the same product, only slower
    ((1, 1), 1, "same", 1, True, True, True),
    ((1, 1), 1, "valid", 1, False, False, True),
    ((1, 1), 2, 0, 1, True, True, False),  # strided: torch's own
    ((1, 1), 1, 1, 1, True, True, False),  # padded
    ((1, 1), 1, 0, 2, True, True, False),  # grouped
    ((3, 3), 1, 1, 1, True, True, False),
    ((1, 3), 1, 0, 1, True, True, False),
]


@pytest.mark.numerics
@pytest.mark.parametrize("kernel,stride,padding,groups,bias,channels_last,as_linear", CONV2D_ROUTES)
def test_conv2d_pointwise_calls_are_a_matrix_product(kernel, stride, padding, groups, bias, channels_last,
                                                     as_linear):
    """Values and gradients of torch's ``nn.Conv2d`` with the same parameters (to float32 round-off when the call
    runs as ``F.linear``, bit for bit when it is torch's own); a channels-last input gives a channels-last output;
    which route ran is read off the autograd graph. The matrix product and oneDNN's convolution sum 8 products in
    orders that differ with the vector width: a few float32 ulps on any CPU, well inside rtol 1e-5, atol 1e-6."""
    from tf2torch.nn.conv import Conv2d

    torch.manual_seed(0)
    ours = Conv2d(8, 6, kernel, stride=stride, padding=padding, groups=groups, bias=bias)
    torchs = nn.Conv2d(8, 6, kernel, stride=stride, padding=padding, groups=groups, bias=bias)
    torchs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 8, 5, 7)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, want = ours(x1), torchs(x2)
    assert (type(got.grad_fn).__name__ == "PermuteBackward0") is as_linear
    assert got.shape == want.shape
    if as_linear:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    else:
        assert torch.equal(got, want)
    if channels_last:
        assert got.is_contiguous(memory_format=torch.channels_last)
    grad = torch.randn_like(want)
    got.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.weight.grad, torchs.weight.grad, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), torchs(x), rtol=1e-5, atol=1e-6)


def test_conv2d_traces_and_exports_as_torchs_conv():
    """Under ``fx.symbolic_trace`` (proxies, not tensors), ``torch.jit.trace`` and ``torch.export`` the module
    records torch's own convolution, the node downstream tools expect."""
    from tf2torch.nn.conv import Conv2d

    conv = Conv2d(4, 3, 1)
    x = torch.randn(1, 4, 3, 3).contiguous(memory_format=torch.channels_last)
    traced = torch.fx.symbolic_trace(nn.Sequential(conv))
    assert [n.target for n in traced.graph.nodes if n.op == "call_function"] == [torch.conv2d]
    assert torch.equal(traced(x), torch.nn.functional.conv2d(x, conv.weight, conv.bias))
    jitted = torch.jit.trace(conv, x)
    assert "aten::_convolution" in str(jitted.graph) and "linear" not in str(jitted.graph)
    exported = torch.export.export(conv, (x,))
    ops = {str(n.target) for n in exported.graph.nodes if n.op == "call_function"}
    assert any("conv" in op for op in ops) and not any("linear" in op for op in ops)
