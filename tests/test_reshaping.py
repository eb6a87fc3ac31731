"""Reshaping layers against Keras: Flatten, ZeroPadding, Cropping, UpSampling, Reshape, Permute, RepeatVector and
the inference no-ops; the pure helpers on their own; no runtime permute inside a conv trunk."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from harness import check_conversion, keras_module, random_inputs, torch_outputs
from hypothesis import given, settings
from hypothesis import strategies as st

import tf2torch
from tf2torch.converters.registry import LayerSpec
from tf2torch.converters.reshaping import (
    compose_permutation,
    convert_zero_padding,
    keras_pairs,
    tf1_bilinear,
    torch_pad_order,
)
from tf2torch.errors import ConversionError
from tf2torch.layout import to_channels_first_perm, to_keras_perm
from tf2torch.nn.reshaping import Crop, LegacyBilinearUpsample2d, flat_channels_first_to_keras


def conv2d(k, shape=(7, 5, 3), filters=4, kernel=2):
    """A channels-last input followed by a Conv2D, so what comes next sees a channels-first tensor."""
    inp = k.Input(shape)
    return inp, k.layers.Conv2D(filters, kernel, bias_initializer="random_normal")(inp)


def after_conv(k, *layers, shape=(7, 5, 3), rank=2):
    conv = {1: k.layers.Conv1D, 2: k.layers.Conv2D, 3: k.layers.Conv3D}[rank]
    return k.Sequential([k.Input(shape), conv(4, 2, bias_initializer="random_normal"), *layers])


FLATTEN_CASES = {
    "conv2d_dense": lambda k: after_conv(k, k.layers.Flatten(), k.layers.Dense(6)),
    "conv3d_dense": lambda k: after_conv(k, k.layers.Flatten(), k.layers.Dense(5), shape=(5, 4, 3, 2), rank=3),
    "conv1d_dense": lambda k: after_conv(k, k.layers.Flatten(), k.layers.Dense(6), shape=(9, 3), rank=1),
    "conv2d_activation_dense": lambda k: after_conv(k, k.layers.Flatten(), k.layers.Activation("tanh"),
                                                    k.layers.Dense(6)),
    "conv2d_dropout_dense": lambda k: after_conv(k, k.layers.Flatten(), k.layers.Dropout(0.5), k.layers.Dense(6)),
    "conv2d_reshape_dense": lambda k: after_conv(k, k.layers.Flatten(), k.layers.Reshape((-1, 4)),
                                                 k.layers.Dense(3)),
    "conv2d_output": lambda k: after_conv(k, k.layers.Flatten()),
    "3d_input": lambda k: k.Sequential([k.Input((6, 4)), k.layers.Flatten(), k.layers.Dense(5)]),
    "4d_input": lambda k: k.Sequential([k.Input((3, 5, 4)), k.layers.Flatten(), k.layers.Dense(5)]),
    "channels_first_dense": lambda k: k.Sequential([
        k.Input((3, 7, 5)), k.layers.Flatten(data_format="channels_first"), k.layers.Dense(4)]),
    "channels_first_output": lambda k: k.Sequential([
        k.Input((3, 4, 5)), k.layers.Flatten(data_format="channels_first")]),
    "channels_first_3d_input": lambda k: k.Sequential([
        k.Input((3, 7)), k.layers.Flatten(data_format="channels_first"), k.layers.Dense(4)]),
}

ZERO_PADDING_CASES = {
    "1d_int_sequence": lambda k: k.Sequential([k.Input((5, 3)), k.layers.ZeroPadding1D(2), k.layers.Dense(4)]),
    "1d_asymmetric_sequence": lambda k: k.Sequential([k.Input((5, 3)), k.layers.ZeroPadding1D((0, 3))]),
    "1d_after_conv": lambda k: after_conv(k, k.layers.ZeroPadding1D((1, 3)), k.layers.Conv1D(2, 3),
                                          shape=(8, 3), rank=1),
    "2d_int": lambda k: k.Sequential([k.Input((5, 6, 3)), k.layers.ZeroPadding2D(1), k.layers.Conv2D(2, 3)]),
    "2d_per_axis": lambda k: after_conv(k, k.layers.ZeroPadding2D((1, 2)), k.layers.Conv2D(2, 3)),
    "2d_pairs": lambda k: after_conv(k, k.layers.ZeroPadding2D(((0, 2), (3, 1))), k.layers.Conv2D(2, 3)),
    "2d_output": lambda k: after_conv(k, k.layers.ZeroPadding2D(((2, 0), (0, 1)))),
    "2d_channels_first": lambda k: k.Sequential([
        k.Input((3, 5, 6)), k.layers.ZeroPadding2D(((1, 0), (2, 3)), data_format="channels_first")]),
    "3d_int": lambda k: after_conv(k, k.layers.ZeroPadding3D(1), shape=(3, 4, 5, 2), rank=3),
    "3d_per_axis": lambda k: after_conv(k, k.layers.ZeroPadding3D((0, 1, 2)), k.layers.Conv3D(2, 2),
                                        shape=(3, 4, 5, 2), rank=3),
    "3d_pairs": lambda k: after_conv(k, k.layers.ZeroPadding3D(((1, 0), (0, 2), (2, 1))), k.layers.Conv3D(2, 2),
                                     shape=(3, 4, 5, 2), rank=3),
    "3d_channels_first": lambda k: k.Sequential([
        k.Input((2, 3, 4, 5)), k.layers.ZeroPadding3D(((1, 0), (0, 2), (2, 1)), data_format="channels_first")]),
}

KERAS3_ZERO_PADDING_CASES = {  # ZeroPadding1D has data_format in Keras 3 only
    "1d_channels_first": lambda k: k.Sequential([
        k.Input((3, 5)), k.layers.ZeroPadding1D((1, 2), data_format="channels_first"), k.layers.Dense(2)]),
    "1d_channels_first_after_conv": lambda k: after_conv(
        k, k.layers.ZeroPadding1D((2, 0), data_format="channels_first"), shape=(6, 3), rank=1),
}

CROPPING_CASES = {
    "1d_default_sequence": lambda k: k.Sequential([k.Input((7, 3)), k.layers.Cropping1D(), k.layers.Dense(2)]),
    "1d_after_zero_sequence": lambda k: k.Sequential([k.Input((7, 3)), k.layers.Cropping1D((2, 0))]),
    "1d_before_zero_after_conv": lambda k: after_conv(k, k.layers.Cropping1D((0, 2)), k.layers.Conv1D(2, 2),
                                                      shape=(9, 3), rank=1),
    "2d_int": lambda k: after_conv(k, k.layers.Cropping2D(1), k.layers.Conv2D(2, 2), shape=(8, 7, 3)),
    "2d_per_axis": lambda k: after_conv(k, k.layers.Cropping2D((2, 1)), shape=(8, 7, 3)),
    "2d_zero_after": lambda k: after_conv(k, k.layers.Cropping2D(((1, 0), (2, 0))), k.layers.Conv2D(2, 2)),
    "2d_zero_before": lambda k: after_conv(k, k.layers.Cropping2D(((0, 2), (0, 1))), k.layers.Conv2D(2, 2)),
    "2d_mixed": lambda k: k.Sequential([k.Input((6, 7, 2)), k.layers.Cropping2D(((1, 0), (0, 3)))]),
    "2d_channels_first": lambda k: k.Sequential([
        k.Input((3, 6, 7)), k.layers.Cropping2D(((1, 2), (0, 3)), data_format="channels_first")]),
    "3d_int": lambda k: after_conv(k, k.layers.Cropping3D(1), shape=(5, 6, 4, 2), rank=3),
    "3d_pairs": lambda k: after_conv(k, k.layers.Cropping3D(((1, 0), (0, 2), (2, 1))), k.layers.Conv3D(2, 1),
                                     shape=(5, 6, 5, 2), rank=3),
    "3d_channels_first": lambda k: k.Sequential([
        k.Input((2, 4, 5, 6)), k.layers.Cropping3D(((0, 1), (2, 0), (1, 3)), data_format="channels_first")]),
}

UPSAMPLING_CASES = {
    "1d_default_sequence": lambda k: k.Sequential([k.Input((5, 3)), k.layers.UpSampling1D(), k.layers.Dense(2)]),
    "1d_after_conv": lambda k: after_conv(k, k.layers.UpSampling1D(3), k.layers.Conv1D(2, 2), shape=(6, 3), rank=1),
    "1d_factor_41_after_conv": lambda k: after_conv(k, k.layers.UpSampling1D(41), shape=(4, 3), rank=1),
    "1d_factor_41_sequence": lambda k: k.Sequential([k.Input((3, 2)), k.layers.UpSampling1D(41)]),
    "2d_nearest": lambda k: after_conv(k, k.layers.UpSampling2D((2, 3)), k.layers.Conv2D(2, 2)),
    "2d_nearest_int": lambda k: k.Sequential([k.Input((5, 3, 2)), k.layers.UpSampling2D(3)]),
    "2d_nearest_factor_41": lambda k: after_conv(k, k.layers.UpSampling2D((41, 1)), shape=(3, 4, 2)),
    "2d_bilinear": lambda k: after_conv(k, k.layers.UpSampling2D((3, 2), interpolation="bilinear"),
                                        k.layers.Conv2D(2, 2)),
    "2d_area": lambda k: after_conv(k, k.layers.UpSampling2D((2, 3), interpolation="area")),
    "2d_channels_first_nearest": lambda k: k.Sequential([
        k.Input((3, 5, 4)), k.layers.UpSampling2D((2, 3), data_format="channels_first")]),
    "2d_channels_first_bilinear": lambda k: k.Sequential([
        k.Input((3, 5, 4)), k.layers.UpSampling2D((3, 2), data_format="channels_first", interpolation="bilinear")]),
    "3d": lambda k: after_conv(k, k.layers.UpSampling3D((2, 1, 3)), k.layers.Conv3D(2, 2),
                               shape=(3, 4, 5, 2), rank=3),
    "3d_channels_first": lambda k: k.Sequential([
        k.Input((2, 3, 4, 3)), k.layers.UpSampling3D((1, 2, 3), data_format="channels_first")]),
}

DYNAMIC_CASES = {  # sizes the model leaves open: the converters see None and must not bake sizes in
    "flatten_sequence": lambda k: after_conv(k, k.layers.Flatten(), shape=(None, 3), rank=1),
    "flatten_channels_first": lambda k: k.Sequential([
        k.Input((3, None)), k.layers.Flatten(data_format="channels_first")]),
    "image_pad_crop_upsample": lambda k: after_conv(
        k, k.layers.ZeroPadding2D(((1, 0), (2, 3))), k.layers.Cropping2D(((0, 1), (1, 0))),
        k.layers.UpSampling2D((2, 3), interpolation="bilinear"), k.layers.Permute((2, 1, 3)),
        shape=(None, None, 3)),
    "sequence_pad_crop_upsample": lambda k: k.Sequential([
        k.Input((None, 3)), k.layers.ZeroPadding1D((2, 1)), k.layers.Cropping1D((0, 2)), k.layers.UpSampling1D(3),
        k.layers.Reshape((-1, 9))]),
}

UNSUPPORTED_INTERPOLATIONS = {
    "keras3": ("bicubic", "lanczos3", "lanczos5"),
    "tf_keras": ("bicubic", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"),
}

RESHAPE_CASES = {
    "dense_to_image": lambda k: k.Sequential([
        k.Input((6,)), k.layers.Dense(60), k.layers.Reshape((3, 5, 4)), k.layers.Conv2D(2, 2)]),
    "minus_one": lambda k: k.Sequential([k.Input((6, 4)), k.layers.Reshape((-1, 3)), k.layers.Dense(2)]),
    "after_conv": lambda k: after_conv(k, k.layers.Reshape((-1, 4)), k.layers.Dense(3)),
    "conv_to_conv": lambda k: after_conv(k, k.layers.Reshape((3, 8, 4)), k.layers.Conv2D(2, 2)),
    "to_3d_rank": lambda k: after_conv(k, k.layers.Reshape((6, 16))),
    "to_5d": lambda k: k.Sequential([k.Input((24, 3)), k.layers.Reshape((2, 3, 4, 3)), k.layers.Conv3D(2, 1)]),
}

PERMUTE_CASES = {
    "sequence": lambda k: k.Sequential([k.Input((5, 3)), k.layers.Permute((2, 1)), k.layers.Dense(2)]),
    "conv2d_swap_hw": lambda k: after_conv(k, k.layers.Permute((2, 1, 3)), k.layers.Conv2D(2, 2)),
    "conv2d_channels_to_front": lambda k: after_conv(k, k.layers.Permute((3, 1, 2)), k.layers.Flatten(),
                                                     k.layers.Dense(3)),
    "conv2d_output": lambda k: after_conv(k, k.layers.Permute((3, 2, 1))),
    "conv3d": lambda k: after_conv(k, k.layers.Permute((3, 1, 4, 2)), shape=(5, 4, 3, 2), rank=3),
    "conv1d": lambda k: after_conv(k, k.layers.Permute((2, 1)), k.layers.Dense(2), shape=(6, 3), rank=1),
    "image_input": lambda k: k.Sequential([k.Input((3, 4, 5)), k.layers.Permute((3, 2, 1))]),
    "identity_dims": lambda k: after_conv(k, k.layers.Permute((1, 2, 3)), k.layers.Conv2D(2, 2)),
}

REPEAT_VECTOR_CASES = {
    "vector": lambda k: k.Sequential([k.Input((5,)), k.layers.RepeatVector(3), k.layers.Dense(2)]),
    "after_flatten": lambda k: after_conv(k, k.layers.Flatten(), k.layers.RepeatVector(2)),
}

NO_OP_CASES = {
    "dropout": lambda k: after_conv(k, k.layers.Dropout(0.5), k.layers.Conv2D(2, 2)),
    "spatial_dropout1d": lambda k: after_conv(k, k.layers.SpatialDropout1D(0.5), k.layers.Conv1D(2, 2),
                                              shape=(6, 3), rank=1),
    "spatial_dropout2d": lambda k: after_conv(k, k.layers.SpatialDropout2D(0.5), k.layers.Conv2D(2, 2)),
    "spatial_dropout3d": lambda k: after_conv(k, k.layers.SpatialDropout3D(0.5), shape=(3, 4, 5, 2), rank=3),
    "gaussian_noise": lambda k: after_conv(k, k.layers.GaussianNoise(1.0), k.layers.Conv2D(2, 2)),
    "gaussian_dropout": lambda k: after_conv(k, k.layers.GaussianDropout(0.5), k.layers.Flatten(), k.layers.Dense(3)),
    "alpha_dropout": lambda k: k.Sequential([k.Input((5,)), k.layers.Dense(4), k.layers.AlphaDropout(0.5)]),
    "activity_regularization": lambda k: after_conv(k, k.layers.ActivityRegularization(l1=0.1, l2=0.2)),
    "identity": lambda k: after_conv(k, k.layers.Identity(), k.layers.Conv2D(2, 2)),
}

TABLES = {
    "flatten": FLATTEN_CASES, "zero_padding": ZERO_PADDING_CASES, "cropping": CROPPING_CASES,
    "upsampling": UPSAMPLING_CASES, "reshape": RESHAPE_CASES, "permute": PERMUTE_CASES,
    "repeat_vector": REPEAT_VECTOR_CASES, "no_op": NO_OP_CASES,
}
ALL_CASES = [(table, case) for table, cases in TABLES.items() for case in cases]


@pytest.mark.parametrize("table,case", ALL_CASES, ids=[f"{t}-{c}" for t, c in ALL_CASES])
def test_reshaping(table, case, flavour, tmp_path):
    check_conversion(TABLES[table][case], flavour, tmp_path)


@pytest.mark.parametrize("case", DYNAMIC_CASES)
def test_reshaping_dynamic_sizes(case, flavour, tmp_path):
    check_conversion(DYNAMIC_CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", KERAS3_ZERO_PADDING_CASES)
def test_zero_padding_keras3_only(case, tmp_path):
    check_conversion(KERAS3_ZERO_PADDING_CASES[case], "keras3", tmp_path)


# -- failures ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour_name,interpolation",
                         [(f, i) for f, names in UNSUPPORTED_INTERPOLATIONS.items() for i in names])
def test_upsampling_interpolation_without_torch_equivalent(flavour_name, interpolation, tmp_path):
    k = keras_module(flavour_name)
    model = k.Sequential([k.Input((4, 5, 2)), k.layers.UpSampling2D(2, interpolation=interpolation, name="up")])
    path = tmp_path / "model.h5"
    model.save(str(path))
    with pytest.raises(ConversionError, match=rf"layer up \(UpSampling2D\): interpolation '{interpolation}' has "
                                              r"no exact torch equivalent.*only 'nearest', 'bilinear' and 'area'"):
        tf2torch.convert(path)


@pytest.mark.parametrize("flavour_name", UNSUPPORTED_INTERPOLATIONS)
def test_torch_bicubic_is_not_keras_bicubic(flavour_name):
    """Why bicubic is refused: TF's Keys kernel (a = -0.5) against torch's a = -0.75, both half-pixel."""
    k = keras_module(flavour_name)
    model = k.Sequential([k.Input((6, 5, 2)), k.layers.UpSampling2D(2, interpolation="bicubic")])
    x = random_inputs(model)[0]
    ref = np.asarray(model(x))
    got = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), scale_factor=2, mode="bicubic",
                                          align_corners=False).permute(0, 2, 3, 1).numpy()
    assert np.abs(got - ref).max() > 1e-2 * np.abs(ref).max()


# -- no runtime permute inside a conv trunk ------------------------------------------------------------------------
def layout_moves(module: torch.nn.Module) -> int:
    """How many permutes/reorders the assembler inserted (not counting a Permute layer's own module)."""
    return sum(1 for n in module.graph.nodes
               if n.meta.get("tf2torch", {}).get("layout_change") or n.target is flat_channels_first_to_keras)


TRUNK_CASES = {  # model, layout moves expected in the channels-first conversion
    "conv_flatten_dense": (lambda k: after_conv(k, k.layers.Flatten(), k.layers.Dense(3)), 0),
    "conv_flatten_flatten_dense": (lambda k: after_conv(k, k.layers.Flatten(), k.layers.Flatten(),
                                                        k.layers.Dense(3)), 0),
    "conv_flatten_dropout_activation_dense": (lambda k: after_conv(
        k, k.layers.Flatten(), k.layers.Dropout(0.1), k.layers.Activation("relu"), k.layers.Dense(3)), 0),
    "conv_pad_crop_up_conv": (lambda k: after_conv(
        k, k.layers.ZeroPadding2D(((1, 0), (2, 1))), k.layers.Cropping2D(((0, 1), (1, 0))),
        k.layers.UpSampling2D(2, interpolation="bilinear"), k.layers.SpatialDropout2D(0.2), k.layers.Conv2D(2, 3),
        k.layers.GaussianNoise(0.1)), 0),
    "conv1d_pad_crop_up_conv1d": (lambda k: after_conv(
        k, k.layers.ZeroPadding1D((1, 2)), k.layers.Cropping1D((0, 1)), k.layers.UpSampling1D(2),
        k.layers.Conv1D(2, 3), shape=(8, 3), rank=1), 2),  # the (N, L, C) input into Conv1D and the output back
    "sequence_pad_crop_up_dense": (lambda k: k.Sequential([
        k.Input((6, 3)), k.layers.ZeroPadding1D((1, 2)), k.layers.Cropping1D((2, 0)), k.layers.UpSampling1D(3),
        k.layers.Dense(2)]), 0),
    "conv_permute_conv": (lambda k: after_conv(k, k.layers.Permute((2, 1, 3)), k.layers.Conv2D(2, 2)), 0),
    "conv_channels_to_front_flatten_dense": (lambda k: after_conv(
        k, k.layers.Permute((3, 1, 2)), k.layers.Flatten(), k.layers.Dense(3)), 0),
    "conv1d_permute_dense": (lambda k: after_conv(k, k.layers.Permute((2, 1)), k.layers.Dense(2), shape=(6, 3),
                                                  rank=1), 1),  # only the (N, L, C) input into Conv1D
    "channels_first_flatten_dense": (lambda k: k.Sequential([
        k.Input((3, 7, 5)), k.layers.Flatten(data_format="channels_first"), k.layers.Dense(4)]), 1),
}


@pytest.mark.parametrize("case", TRUNK_CASES)
def test_no_runtime_permute_in_trunk(case, tmp_path):
    build, expected = TRUNK_CASES[case]
    k = keras_module("keras3")
    model = build(k)
    path = tmp_path / "model.keras"
    model.save(str(path))
    module = tf2torch.convert(path, layout="channels_first")
    assert layout_moves(module) == expected
    inputs = random_inputs(model)
    ref = np.asarray(model(inputs[0], training=False))
    got = torch_outputs(module, inputs, "channels_first")[0]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


# -- TF1-era bilinear (standalone Keras <= 2.3) ------------------------------------------------------------------
def test_legacy_bilinear_file_uses_tf1_resize(tmp_path):
    """A tf_keras file relabelled as written by standalone Keras 2.2.4 converts to TF1's ``resize_bilinear``
    (no half-pixel centres), checked against TF's own legacy op."""
    import tensorflow as tf

    k = keras_module("tf_keras")
    model = k.Sequential([k.Input((5, 7, 3)), k.layers.UpSampling2D((2, 3), interpolation="bilinear")])
    path = tmp_path / "model.h5"
    model.save(str(path))
    with h5py.File(path, "r+") as f:
        f.attrs["keras_version"] = "2.2.4"
    x = random_inputs(model)[0]
    ref = tf.compat.v1.image.resize_bilinear(x, (10, 21), half_pixel_centers=False).numpy()
    half_pixel = np.asarray(model(x))
    assert np.abs(ref - half_pixel).max() > 0.1  # the two rules differ, so the test can tell them apart
    for layout in ("channels_first", "keras"):
        got = torch_outputs(tf2torch.convert(path, layout=layout), [x], layout)[0]
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * np.abs(ref).max())


def test_keras1_config_is_refused():
    spec = LayerSpec("pad", "ZeroPadding2D", {"padding": [1, 1, 2, 2], "dim_ordering": "th"}, [(None, 3, 4, 4)],
                     ["keras"], [torch.float32], "1.2.2")
    with pytest.raises(ConversionError, match="Keras 1 configs"):
        convert_zero_padding(spec)


@pytest.mark.parametrize("version,legacy", [("2.2.4", True), ("2.3.1", True), ("2.1.6", True), ("2.2.4-tf", False),
                                            ("2.4.0", False), ("2.21.0", False), ("3.15.1", False), ("2", False)])
def test_tf1_bilinear_by_keras_version(version, legacy):
    spec = LayerSpec("up", "UpSampling2D", {}, [(None, 4, 4, 1)], ["keras"], [torch.float32], version)
    assert tf1_bilinear(spec) is legacy


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), sh=st.integers(1, 5), sw=st.integers(1, 5))
def test_legacy_bilinear_module_matches_tf1(h, w, sh, sw):
    import tensorflow as tf

    x = np.random.default_rng(h * 100 + w).standard_normal((2, h, w, 3)).astype("float32")
    ref = tf.compat.v1.image.resize_bilinear(x, (h * sh, w * sw), half_pixel_centers=False).numpy()
    got = LegacyBilinearUpsample2d((sh, sw))(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5 * max(np.abs(ref).max(), 1e-6))


# -- pure helpers --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,n,expected", [
    (2, 1, ((2, 2),)), ([1, 3], 1, ((1, 3),)), (1, 2, ((1, 1), (1, 1))), ([1, 2], 2, ((1, 1), (2, 2))),
    ([[0, 2], [3, 1]], 2, ((0, 2), (3, 1))), (0, 3, ((0, 0),) * 3), ([0, 1, 2], 3, ((0, 0), (1, 1), (2, 2))),
    ([[1, 0], [0, 2], [2, 1]], 3, ((1, 0), (0, 2), (2, 1))),
])
def test_keras_pairs(value, n, expected):
    assert keras_pairs(value, n) == expected


def test_torch_pad_order_matches_numpy_pad():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    pairs = ((1, 2), (3, 0))  # dims 1 and 2, one trailing dim after them
    ref = np.pad(x, ((0, 0), *pairs, (0, 0)))
    got = torch.nn.functional.pad(torch.from_numpy(x), torch_pad_order(pairs, trailing_dims=1)).numpy()
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("keras_perm", [(0, 2, 1), (0, 2, 1, 3), (0, 3, 1, 2), (0, 3, 2, 1), (0, 3, 1, 4, 2),
                                        (0, 1, 2, 3, 4)])
def test_compose_permutation(keras_perm):
    rank = len(keras_perm)
    keras_tensor = np.random.default_rng(0).standard_normal(tuple(range(2, 2 + rank)))
    held = keras_tensor.transpose(to_channels_first_perm(rank))
    expected = keras_tensor.transpose(keras_perm).transpose(to_channels_first_perm(rank))
    np.testing.assert_array_equal(held.transpose(compose_permutation(keras_perm)), expected)
    assert to_keras_perm(rank) == tuple(np.argsort(to_channels_first_perm(rank)))


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 7), min_size=1, max_size=3), data=st.data())
def test_crop_matches_slicing(sizes, data):
    pairs = []
    for size in sizes:
        before = data.draw(st.integers(0, size - 1))
        pairs.append((before, data.draw(st.integers(0, size - 1 - before))))
    x = np.random.default_rng(0).standard_normal((2, 3, *sizes)).astype("float32")
    index = (slice(None), slice(None), *(slice(b, s - a) for (b, a), s in zip(pairs, sizes)))
    np.testing.assert_array_equal(Crop(pairs, first_dim=2)(torch.from_numpy(x)).numpy(), x[index])


@pytest.mark.parametrize("factor", [2, 3, 41, 47, 55])
def test_nearest_exact_is_repeat(factor):
    """Keras nearest upsampling is ``np.repeat``; torch ``'nearest'`` misses it for some factors."""
    x = torch.arange(7, dtype=torch.float32).reshape(1, 1, 7)
    expected = x.repeat_interleave(factor, -1)
    assert torch.equal(torch.nn.Upsample(scale_factor=factor, mode="nearest-exact")(x), expected)
    if factor in (41, 47, 55):
        assert not torch.equal(torch.nn.Upsample(scale_factor=factor, mode="nearest")(x), expected)


def test_save_load_round_trip(tmp_path):
    """The modules carry only config numbers: ``load`` rebuilds them and gives the same outputs."""
    k = keras_module("keras3")
    model = after_conv(k, k.layers.ZeroPadding2D(((1, 0), (2, 1))), k.layers.Cropping2D(((0, 1), (1, 0))),
                       k.layers.UpSampling2D(2, interpolation="bilinear"), k.layers.Permute((2, 1, 3)),
                       k.layers.Dropout(0.3), k.layers.Flatten(), k.layers.Dense(3), k.layers.RepeatVector(2),
                       k.layers.Reshape((3, 2)))
    path = tmp_path / "model.keras"
    model.save(str(path))
    module = tf2torch.convert(path)
    tf2torch.save(module, tmp_path / "model.pt")
    loaded = tf2torch.load(tmp_path / "model.pt")
    inputs = random_inputs(model)
    np.testing.assert_array_equal(torch_outputs(loaded, inputs, "channels_first")[0],
                                  torch_outputs(module, inputs, "channels_first")[0])
