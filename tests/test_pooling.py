"""Max/Average pooling 1D/2D/3D and their Global variants against Keras 3 and tf_keras.

Traps proven here (semantics doc §4): ``strides=None`` means ``pool_size``; TF ``SAME`` pads one more pixel after
than before when the total is odd, padded values never win a max (all-negative inputs) and are never counted
in an average; with dynamic sizes the padding is computed at run time; ``keepdims``; ``channels_first``;
the masked mean of ``GlobalAveragePooling1D``.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import torch
from harness import check_conversion, keras_module
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tf2torch.converters.pooling import ceil_mode_padding, convert_pooling, same_pool
from tf2torch.converters.registry import LayerSpec
from tf2torch.layout import CHANNELS_FIRST
from tf2torch.nn.pooling import GlobalAvgPool, TFSameAvgPool2d


def pool(cls, shape, **kwargs):
    """A one-layer model: ``Input(shape)`` then ``layers.<cls>(**kwargs)``."""
    return lambda k: k.Sequential([k.Input(shape), getattr(k.layers, cls)(**kwargs)])


CASES = {
    # strides=None → pool_size; valid on odd and even sizes
    "max2d_default": pool("MaxPooling2D", (7, 6, 3)),
    "max2d_strides_none": pool("MaxPooling2D", (7, 6, 3), pool_size=3, strides=None),
    "avg2d_strides_none": pool("AveragePooling2D", (7, 6, 3), pool_size=2, strides=None),
    "max2d_valid_s1": pool("MaxPooling2D", (7, 6, 3), pool_size=3, strides=1),
    "avg2d_valid_rect": pool("AveragePooling2D", (9, 8, 2), pool_size=(3, 2), strides=(2, 3)),
    "max2d_stride_over_pool": pool("MaxPooling2D", (9, 8, 2), pool_size=2, strides=3),
    # same, stride 2: symmetric on odd sizes (7), asymmetric on even (8) and mixed
    "max2d_same_odd": pool("MaxPooling2D", (7, 7, 3), pool_size=3, strides=2, padding="same"),
    "max2d_same_even": pool("MaxPooling2D", (8, 8, 3), pool_size=3, strides=2, padding="same"),
    "max2d_same_mixed": pool("MaxPooling2D", (7, 8, 3), pool_size=3, strides=2, padding="same"),
    "max2d_same_k2_odd": pool("MaxPooling2D", (5, 7, 3), pool_size=2, padding="same"),
    "avg2d_same_odd": pool("AveragePooling2D", (7, 7, 3), pool_size=3, strides=2, padding="same"),
    "avg2d_same_even": pool("AveragePooling2D", (8, 8, 3), pool_size=3, strides=2, padding="same"),
    "avg2d_same_mixed": pool("AveragePooling2D", (7, 8, 3), pool_size=3, strides=2, padding="same"),
    "avg2d_same_k2_odd": pool("AveragePooling2D", (5, 7, 3), pool_size=2, padding="same"),
    "avg2d_same_stride_over_pool": pool("AveragePooling2D", (9, 8, 2), pool_size=2, strides=3, padding="same"),
    # same, stride 1, even pool: asymmetric for every size → run-time padding
    "max2d_same_s1_even_pool": pool("MaxPooling2D", (5, 6, 3), pool_size=2, strides=1, padding="same"),
    "avg2d_same_s1_even_pool": pool("AveragePooling2D", (5, 6, 3), pool_size=(2, 4), strides=1, padding="same"),
    "avg2d_same_s1_odd_pool": pool("AveragePooling2D", (5, 6, 3), pool_size=3, strides=1, padding="same"),
    # 1-D and 3-D
    "max1d_default": pool("MaxPooling1D", (9, 4)),
    "avg1d_same_s2_even": pool("AveragePooling1D", (10, 4), pool_size=3, strides=2, padding="same"),
    "max1d_same_s2_even": pool("MaxPooling1D", (10, 4), pool_size=3, strides=2, padding="same"),
    "avg1d_same_s1": pool("AveragePooling1D", (9, 4), pool_size=2, strides=1, padding="same"),
    "max3d_same": pool("MaxPooling3D", (5, 6, 7, 2), pool_size=2, padding="same"),
    "avg3d_same": pool("AveragePooling3D", (5, 6, 7, 2), pool_size=(3, 2, 3), strides=2, padding="same"),
    "avg3d_valid": pool("AveragePooling3D", (5, 6, 7, 2), pool_size=2, strides=(1, 2, 3)),
    "avg3d_same_s1": pool("AveragePooling3D", (4, 5, 6, 2), pool_size=2, strides=1, padding="same"),
    # aliases (the file stores the canonical class name)
    "alias_maxpool1d": pool("MaxPool1D", (9, 4), pool_size=2, padding="same"),
    "alias_avgpool2d": pool("AvgPool2D", (7, 6, 3), pool_size=3, strides=2, padding="same"),
    "alias_maxpool3d": pool("MaxPool3D", (4, 5, 6, 2)),
    "alias_avgpool3d": pool("AvgPool3D", (4, 5, 6, 2), pool_size=2, padding="same"),
    # data_format='channels_first'
    "max1d_channels_first": pool("MaxPooling1D", (4, 10), pool_size=3, strides=2, padding="same",
                                 data_format="channels_first"),
    "avg2d_channels_first": pool("AveragePooling2D", (3, 8, 7), pool_size=3, strides=2, padding="same",
                                 data_format="channels_first"),
    "max3d_channels_first": pool("MaxPooling3D", (2, 4, 5, 6), pool_size=2, padding="same",
                                 data_format="channels_first"),
    # inside a conv trunk
    "conv_pool_conv": lambda k: k.Sequential([
        k.Input((10, 9, 3)), k.layers.Conv2D(4, 3, padding="same"), k.layers.MaxPooling2D(3, 2, padding="same"),
        k.layers.Conv2D(5, 3), k.layers.AveragePooling2D(2, padding="same")]),
    "conv1d_pool_flatten_dense": lambda k: k.Sequential([
        k.Input((11, 3)), k.layers.Conv1D(4, 3), k.layers.MaxPooling1D(2, padding="same"), k.layers.Flatten(),
        k.layers.Dense(3)]),
}

GLOBAL_CASES = {
    "gap2d": pool("GlobalAveragePooling2D", (7, 6, 3)),
    "gmp2d": pool("GlobalMaxPooling2D", (7, 6, 3)),
    "gap2d_keepdims": pool("GlobalAveragePooling2D", (7, 6, 3), keepdims=True),
    "gmp2d_keepdims": pool("GlobalMaxPooling2D", (7, 6, 3), keepdims=True),
    "gap1d": pool("GlobalAveragePooling1D", (9, 4)),
    "gmp1d_keepdims": pool("GlobalMaxPooling1D", (9, 4), keepdims=True),
    "gap1d_keepdims": pool("GlobalAveragePooling1D", (9, 4), keepdims=True),
    "gap3d": pool("GlobalAveragePooling3D", (4, 5, 6, 2)),
    "gmp3d_keepdims": pool("GlobalMaxPooling3D", (4, 5, 6, 2), keepdims=True),
    "alias_gap2d": pool("GlobalAvgPool2D", (5, 6, 3)),
    "alias_gmp1d": pool("GlobalMaxPool1D", (5, 3)),
    "gap2d_channels_first": pool("GlobalAveragePooling2D", (3, 7, 6), data_format="channels_first"),
    "gmp2d_channels_first_keepdims": pool("GlobalMaxPooling2D", (3, 7, 6), data_format="channels_first",
                                          keepdims=True),
    "gap1d_channels_first": pool("GlobalAveragePooling1D", (4, 9), data_format="channels_first"),
    "gmp3d_channels_first": pool("GlobalMaxPooling3D", (2, 4, 5, 6), data_format="channels_first"),
    # input held in Keras's layout (after a Dense): reduced where it stands, no permute
    "gap2d_after_dense": lambda k: k.Sequential([
        k.Input((5, 6, 3)), k.layers.Dense(4), k.layers.GlobalAveragePooling2D()]),
    "gmp2d_after_dense_keepdims": lambda k: k.Sequential([
        k.Input((5, 6, 3)), k.layers.Dense(4), k.layers.GlobalMaxPooling2D(keepdims=True)]),
    # input held channels-first (after a Conv1D)
    "gap1d_after_conv1d": lambda k: k.Sequential([
        k.Input((9, 3)), k.layers.Conv1D(4, 3), k.layers.GlobalAveragePooling1D()]),
    "gmp1d_after_conv1d": lambda k: k.Sequential([
        k.Input((9, 3)), k.layers.Conv1D(4, 3), k.layers.GlobalMaxPooling1D()]),
    # squeeze-and-excitation shape: keepdims output feeds a 1x1 conv, still channels-first
    "gap2d_keepdims_conv": lambda k: k.Sequential([
        k.Input((6, 7, 3)), k.layers.Conv2D(4, 3), k.layers.GlobalAveragePooling2D(keepdims=True),
        k.layers.Conv2D(2, 1)]),
    "conv_gap_dense": lambda k: k.Sequential([
        k.Input((8, 8, 3)), k.layers.Conv2D(4, 3, strides=2, padding="same"), k.layers.GlobalAveragePooling2D(),
        k.layers.Dense(3)]),
}


ADAPTIVE_CASES = {  # Keras 3 only; sizes that do and do not divide, bins of two widths, output larger than input
    "aap1d": pool("AdaptiveAveragePooling1D", (10, 3), output_size=4),
    "amp1d": pool("AdaptiveMaxPooling1D", (7, 2), output_size=3),
    "aap2d": pool("AdaptiveAveragePooling2D", (9, 7, 3), output_size=(4, 3)),
    "amp2d": pool("AdaptiveMaxPooling2D", (8, 11, 2), output_size=5),
    "aap2d_upsampling": pool("AdaptiveAveragePooling2D", (3, 4, 2), output_size=(5, 6)),
    "amp3d": pool("AdaptiveMaxPooling3D", (5, 6, 7, 2), output_size=(2, 4, 3)),
    "aap3d": pool("AdaptiveAveragePooling3D", (4, 5, 6, 2), output_size=3),
    "aap2d_channels_first": pool("AdaptiveAveragePooling2D", (3, 9, 7), output_size=(2, 4),
                                 data_format="channels_first"),
    "amp1d_channels_first": pool("AdaptiveMaxPooling1D", (3, 10), output_size=4, data_format="channels_first"),
    "conv_aap_dense": lambda k: k.Sequential([
        k.Input((13, 13, 3)), k.layers.Conv2D(4, 3), k.layers.AdaptiveAveragePooling2D(3), k.layers.Flatten(),
        k.layers.Dense(2)]),
}

TF_CPU_NEEDS_NHWC = {"avg2d_channels_first"}


@pytest.mark.parametrize("case", CASES)
def test_pooling(case, flavour, tmp_path):
    if flavour == "tf_keras" and case in TF_CPU_NEEDS_NHWC:
        pytest.skip("tf_keras runs 2-D pooling channels_first only on GPU (TF's CPU kernels need NHWC)")
    check_conversion(CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", GLOBAL_CASES)
def test_global_pooling(case, flavour, tmp_path):
    check_conversion(GLOBAL_CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", ADAPTIVE_CASES)
def test_adaptive_pooling(case, tmp_path):
    """Keras 3's AdaptiveAverage/MaxPooling1D-3D (tf_keras has none)."""
    check_conversion(ADAPTIVE_CASES[case], "keras3", tmp_path)


# -- padded values never win a max: all-negative inputs, one case per way of padding ---------------------------
NEGATIVE_CASES = {  # id: (model, input size)
    "symmetric": (pool("MaxPooling2D", (7, 7, 3), pool_size=3, strides=2, padding="same"), (7, 7)),
    "ceil_mode": (pool("MaxPooling2D", (8, 6, 3), pool_size=3, strides=2, padding="same"), (8, 6)),
    "run_time": (pool("MaxPooling2D", (5, 6, 3), pool_size=2, strides=1, padding="same"), (5, 6)),
    "run_time_dynamic": (pool("MaxPooling2D", (None, None, 3), pool_size=3, strides=2, padding="same"), (8, 6)),
    "avg_divisor": (pool("AveragePooling2D", (8, 6, 3), pool_size=3, strides=2, padding="same"), (8, 6)),
}


@pytest.mark.parametrize("case", NEGATIVE_CASES)
def test_max_pool_padding_never_wins(case, flavour, tmp_path):
    build, size = NEGATIVE_CASES[case]
    x = -1.0 - np.abs(np.random.default_rng(1).standard_normal((2, *size, 3))).astype("float32")
    check_conversion(build, flavour, tmp_path, inputs=[x])


# -- dynamic spatial sizes: padding computed at run time, checked on odd and even sizes ------------------------
DYNAMIC_CASES = {
    "max2d_same_s2": pool("MaxPooling2D", (None, None, 3), pool_size=3, strides=2, padding="same"),
    "avg2d_same_s2": pool("AveragePooling2D", (None, None, 3), pool_size=3, strides=2, padding="same"),
    "avg2d_same_s1_even_pool": pool("AveragePooling2D", (None, None, 3), pool_size=2, strides=1, padding="same"),
    "max2d_same_s1_odd_pool": pool("MaxPooling2D", (None, None, 3), pool_size=3, strides=1, padding="same"),
    "max2d_valid": pool("MaxPooling2D", (None, None, 3), pool_size=3, strides=2),
    "avg1d_same_s2": pool("AveragePooling1D", (None, 4), pool_size=2, strides=2, padding="same"),
    "max3d_same": pool("MaxPooling3D", (None, None, None, 2), pool_size=2, padding="same"),
    "gap2d": pool("GlobalAveragePooling2D", (None, None, 3)),
    "gmp1d": pool("GlobalMaxPooling1D", (None, 3)),
    "avg2d_channels_first": pool("AveragePooling2D", (3, None, None), pool_size=3, strides=2, padding="same",
                                 data_format="channels_first"),
}
DYNAMIC_SIZES = ((7, 8), (8, 9), (9, 9), (6, 6))
# a pooling layer whose INPUT size is dynamic only because an earlier layer's was
DYNAMIC_CHAINS = {
    "max_then_avg_same_s2": lambda k: k.Sequential([
        k.Input((None, None, 3)), k.layers.MaxPooling2D(3, 2, padding="same"),
        k.layers.AveragePooling2D(3, 2, padding="same")]),
    "conv_then_max_same_s2": lambda k: k.Sequential([
        k.Input((None, 3)), k.layers.Conv1D(4, 3), k.layers.MaxPooling1D(3, 2, padding="same")]),
}


@pytest.mark.parametrize("case", DYNAMIC_CASES)
def test_dynamic_sizes(case, flavour, tmp_path):
    if flavour == "tf_keras" and case in TF_CPU_NEEDS_NHWC:
        pytest.skip("tf_keras runs 2-D pooling channels_first only on GPU (TF's CPU kernels need NHWC)")
    check_dynamic(DYNAMIC_CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", DYNAMIC_CHAINS)
def test_dynamic_sizes_after_another_layer(case, flavour, tmp_path):
    check_dynamic(DYNAMIC_CHAINS[case], flavour, tmp_path)


def check_dynamic(build, flavour, tmp_path):
    model = build(keras_module(flavour))
    shape = [d for d in model.inputs[0].shape[1:]]
    rng = np.random.default_rng(2)
    for sizes in DYNAMIC_SIZES:
        dims = iter(sizes + sizes)
        concrete = [d if d is not None else next(dims) for d in shape]
        x = rng.standard_normal((2, *concrete)).astype("float32")
        check_conversion(build, flavour, tmp_path, inputs=[x])


# -- GlobalAveragePooling1D honours a Keras mask --------------------------------------------------------------
def test_global_average_1d_masked_mean(flavour):
    k = keras_module(flavour)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 6, 4)).astype("float32")
    mask = rng.random((3, 6)) > 0.4
    mask[:, 0] = True
    ref = np.asarray(k.layers.GlobalAveragePooling1D()(x, mask=tf.constant(mask)))
    keras_layout = GlobalAvgPool(dims=(1,), mask_dim=2)(torch.from_numpy(x), mask=torch.from_numpy(mask))
    channels_first = GlobalAvgPool(dims=(2,), mask_dim=1)(torch.from_numpy(x).transpose(1, 2),
                                                        mask=torch.from_numpy(mask))
    np.testing.assert_allclose(keras_layout.numpy(), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(channels_first.numpy(), ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ref, x.mean(1), atol=1e-3)  # the mask matters in this example


def test_global_average_1d_after_embedding_mask(flavour, tmp_path):
    x = np.random.default_rng(4).integers(0, 4, size=(3, 7))
    x[:, 0] = 1

    def build(k):
        return k.Sequential([k.Input((7,), dtype="int32"), k.layers.Embedding(5, 4, mask_zero=True),
                             k.layers.GlobalAveragePooling1D(), k.layers.Dense(2)])

    check_conversion(build, flavour, tmp_path, inputs=[x.astype("int32")])


# -- the padding arithmetic, against TF's own pooling ops (no model files: fast, many examples) ----------------
def tf_pool(mode, x_channels_last, kernel, stride):
    op = tf.nn.max_pool if mode == "max" else tf.nn.avg_pool
    return np.asarray(op(x_channels_last, kernel, stride, "SAME"))


def eigen_3d_shift(sizes, kernel, stride):
    """TF's Eigen CPU kernels for 3-D pooling (run when oneDNN is off, as in this suite's conftest) do not clamp
    a negative SAME padding (pool < stride): they shift the windows. TF's own formula, its oneDNN and GPU
    kernels and Keras's JAX/torch backends clamp it to 0; tf2torch follows them (see the oneDNN test below)."""
    return len(sizes) == 3 and any((-(-n // s) - 1) * s + k < n for n, k, s in zip(sizes, kernel, stride))


@settings(max_examples=80, deadline=None)
@given(mode=st.sampled_from(["max", "average"]), rank=st.integers(1, 3), data=st.data(),
       dynamic=st.booleans())
def test_same_pool_matches_tf(mode, rank, data, dynamic):
    sizes = tuple(data.draw(st.lists(st.integers(1, 11), min_size=rank, max_size=rank), label="sizes"))
    kernel = tuple(data.draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank), label="kernel"))
    stride = tuple(data.draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank), label="stride"))
    assume(not eigen_3d_shift(sizes, kernel, stride))
    x = np.random.default_rng(5).standard_normal((2, *sizes, 3)).astype("float32") - 2.0
    module = same_pool(mode, kernel, stride, (None,) * rank if dynamic else sizes)
    got = module(torch.from_numpy(x).movedim(-1, 1)).movedim(1, -1).numpy()
    ref = tf_pool(mode, x, kernel, stride)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


ONEDNN_SCRIPT = """
import sys
import keras
sys.path.insert(0, sys.argv[2])
from harness import check_conversion
def build(k):
    x = k.Input((7, 6, 5, 2))
    return k.Model(x, [k.layers.MaxPooling3D(1, strides=3, padding="same")(x),
                       k.layers.AveragePooling3D((2, 1, 1), strides=(4, 3, 2), padding="same")(x)])
check_conversion(build, "keras3", __import__("pathlib").Path(sys.argv[1]))
"""


def test_3d_pool_smaller_than_stride_with_onednn(tmp_path):
    """With TF's default oneDNN kernels, 3-D SAME pooling with pool < stride clamps the padding as TF's formula
    says, and the conversion matches Keras."""
    assert eigen_3d_shift((7, 6, 5), (1, 1, 1), (3, 3, 3))
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"}
    tests = Path(__file__).parent
    subprocess.run([sys.executable, "-c", ONEDNN_SCRIPT, str(tmp_path), str(tests)], env=env, cwd=tests.parent,
                   check=True, timeout=120)


def test_same_pool_module_choice():
    """Torch's own padding where it equals TF; ceil_mode for asymmetric stride > 1; run-time padding else."""
    symmetric = same_pool("max", (3, 3), (2, 2), (7, 9))
    assert isinstance(symmetric, torch.nn.MaxPool2d) and symmetric.padding == (1, 1) and not symmetric.ceil_mode
    ceil = same_pool("average", (3, 3), (2, 2), (8, 7))
    assert isinstance(ceil, torch.nn.AvgPool2d) and ceil.padding == (0, 1) and ceil.ceil_mode
    assert not ceil.count_include_pad
    assert isinstance(same_pool("average", (3, 3), (2, 2), (None, None)), TFSameAvgPool2d)
    assert isinstance(same_pool("average", (2, 2), (1, 1), (5, 5)), TFSameAvgPool2d)
    assert isinstance(same_pool("max", (3, 3), (1, 1), (None, None)), torch.nn.MaxPool2d)
    assert ceil_mode_padding((8, 7), (3, 3), (2, 2)) == (0, 1)
    assert ceil_mode_padding((6,), (2,), (1,)) is None
    assert ceil_mode_padding((None,), (3,), (2,)) is None


def test_strides_none_in_config_means_pool_size():
    """Keras stores the resolved strides; a config that still says None (hand-written, older writers) must
    pool with stride = pool_size too."""
    spec = LayerSpec(name="pool", class_name="MaxPooling2D", config={"pool_size": [3, 2], "strides": None,
                                                                     "padding": "valid"},
                     input_shapes=[(None, 9, 8, 2)], input_layouts=[CHANNELS_FIRST], input_dtypes=[torch.float32],
                     keras_version="3.0")
    module = convert_pooling(spec).module
    assert isinstance(module, torch.nn.MaxPool2d) and module.stride == (3, 2)


# -- end to end over random configurations ---------------------------------------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cls=st.sampled_from(["MaxPooling2D", "AveragePooling2D"]), height=st.integers(3, 10),
       width=st.integers(3, 10), pool_size=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       strides=st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))),
       padding=st.sampled_from(["valid", "same"]))
def test_pooling_2d_random(cls, height, width, pool_size, strides, padding, flavour, tmp_path):
    check_conversion(pool(cls, (height, width, 2), pool_size=pool_size, strides=strides, padding=padding),
                     flavour, tmp_path)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cls=st.sampled_from(["MaxPooling1D", "AveragePooling1D"]), length=st.integers(4, 12),
       pool_size=st.integers(1, 4), strides=st.one_of(st.none(), st.integers(1, 3)),
       padding=st.sampled_from(["valid", "same"]))
def test_pooling_1d_random(cls, length, pool_size, strides, padding, flavour, tmp_path):
    check_conversion(pool(cls, (length, 3), pool_size=pool_size, strides=strides, padding=padding),
                     flavour, tmp_path)
