"""Preprocessing layers inside models: Rescaling, Normalization (adapted and config-given), Resizing (every
``tf.image.resize`` method, crop/pad to aspect ratio, antialias) and CenterCrop, on image-like inputs (0..255)."""

import math

import numpy as np
import pytest
import torch
from harness import assert_matches, check_conversion, keras_module
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tf2torch
from tf2torch.converters.preprocessing import broadcast_for, config_array, convert_resizing, to_layout
from tf2torch.converters.registry import LayerSpec
from tf2torch.errors import ConversionError
from tf2torch.layout import CHANNELS_FIRST, KERAS
from tf2torch.nn.image import TFResize, area_weights, bicubic_table, bicubic_weights, scale_and_translate_weights
from tf2torch.nn.preprocessing import aspect_crop_box, aspect_padding, keras_ratio

RNG = np.random.default_rng(0)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_VARIANCE = [0.229**2, 0.224**2, 0.225**2]


def images(shape, dtype="float32", batch=2, seed=0):
    values = np.random.default_rng(seed).uniform(0, 255, size=(batch, *shape))
    return values.astype(dtype) if dtype.startswith("float") else np.round(values).astype(dtype)


def adapted(k, layer, shape):
    """``layer.adapt`` on image-like data, so the stored mean/variance/count are real statistics."""
    layer.adapt(images(shape, batch=16, seed=1) / 255.0 * RNG.uniform(0.5, 2.0, size=shape[-1:]))
    return layer


def efficientnet_stem(k, shape, normalization):
    """[K3] ``applications/efficientnet.py``: Rescaling(1/255) → Normalization → Rescaling(1/sqrt(std))."""
    return [k.layers.Rescaling(1.0 / 255.0), normalization,
            k.layers.Rescaling([1.0 / math.sqrt(s) for s in (0.229, 0.224, 0.225)]),
            k.layers.Conv2D(4, 3, strides=2, padding="same")]


# id → (input shape, layers builder, flavour the case needs or None)
CASES = {
    # Rescaling
    "rescale_scalar": ((7, 6, 3), lambda k, s: [k.layers.Rescaling(1.0 / 255)], None),
    "rescale_offset": ((7, 6, 3), lambda k, s: [k.layers.Rescaling(1.0 / 127.5, offset=-1.0)], None),
    "rescale_per_channel": ((7, 6, 3), lambda k, s: [
        k.layers.Rescaling([0.5, 2.0, -1.5], offset=[1.0, -2.0, 3.0]), k.layers.Conv2D(2, 3)], None),
    "rescale_after_conv1d": ((9, 3), lambda k, s: [
        k.layers.Conv1D(4, 3), k.layers.Rescaling([0.5, 2.0, -1.5, 3.0]), k.layers.Conv1D(2, 2)], None),
    "rescale_after_flatten": ((4, 3, 2), lambda k, s: [
        k.layers.Conv2D(2, 2), k.layers.Flatten(), k.layers.Rescaling(list(np.linspace(-2, 2, 12))),
        k.layers.Dense(3)], None),
    "rescale_numpy_values": ((7, 6, 3), lambda k, s: [
        k.layers.Rescaling(np.float32([0.5, 2.0, 3.0]), offset=np.float32(1.5))], None),
    "rescale_5d": ((3, 4, 5, 2), lambda k, s: [k.layers.Rescaling([0.25, 4.0]), k.layers.Conv3D(2, 2)], None),
    # Normalization
    "norm_adapted_channels": ((7, 6, 3), lambda k, s: [adapted(k, k.layers.Normalization(), s),
                                                       k.layers.Conv2D(2, 3)], None),
    "norm_adapted_hw": ((5, 4, 3), lambda k, s: [adapted(k, k.layers.Normalization(axis=(1, 2)), s)], None),
    "norm_adapted_h_and_c": ((5, 4, 3), lambda k, s: [adapted(k, k.layers.Normalization(axis=(1, -1)), s)], None),
    "norm_adapted_global": ((5, 4, 3), lambda k, s: [adapted(k, k.layers.Normalization(axis=None), s)], None),
    "norm_adapted_invert": ((6, 3), lambda k, s: [adapted(k, k.layers.Normalization(invert=True), s)], None),
    "norm_adapted_vector": ((5,), lambda k, s: [adapted(k, k.layers.Normalization(), s), k.layers.Dense(2)],
                            None),
    "norm_config_channels": ((7, 6, 3), lambda k, s: [
        k.layers.Normalization(mean=[100.0, 120.0, 90.0], variance=[400.0, 0.0, 2500.0]),
        k.layers.Conv2D(2, 3)], None),
    "norm_config_scalar": ((7, 6, 3), lambda k, s: [k.layers.Normalization(mean=127.5, variance=5000.0)], None),
    "norm_config_partial_axes": ((5, 4, 3), lambda k, s: [
        k.layers.Normalization(axis=(1, 2), mean=[10.0, 50.0, 90.0, 130.0], variance=[1.0, 4.0, 9.0, 16.0])],
        None),
    "norm_config_invert": ((7, 6, 3), lambda k, s: [
        k.layers.Normalization(mean=[0.5, 0.4, 0.3], variance=[0.04, 0.09, 0.01], invert=True)], None),
    "efficientnet_stem_adapted": ((9, 8, 3), lambda k, s: efficientnet_stem(
        k, s, adapted(k, k.layers.Normalization(axis=-1), s)), None),
    "efficientnet_stem_config": ((9, 8, 3), lambda k, s: efficientnet_stem(
        k, s, k.layers.Normalization(axis=-1, mean=IMAGENET_MEAN, variance=IMAGENET_VARIANCE)), None),
    # Resizing: odd and non-integer factors, up and down, every method
    "resize_bilinear_down": ((13, 10, 3), lambda k, s: [k.layers.Resizing(5, 7), k.layers.Conv2D(2, 2)], None),
    "resize_bilinear_up": ((5, 7, 3), lambda k, s: [k.layers.Resizing(13, 11)], None),
    "resize_bilinear_x3": ((4, 5, 3), lambda k, s: [k.layers.Resizing(12, 15)], None),
    "resize_bilinear_same": ((4, 5, 3), lambda k, s: [k.layers.Resizing(4, 5)], None),
    "resize_nearest_down": ((13, 10, 3), lambda k, s: [k.layers.Resizing(5, 7, interpolation="nearest")], None),
    "resize_nearest_up": ((5, 7, 3), lambda k, s: [k.layers.Resizing(12, 10, interpolation="nearest")], None),
    "resize_area": ((12, 10, 3), lambda k, s: [k.layers.Resizing(5, 7, interpolation="area")], None),
    "resize_area_up": ((5, 4, 3), lambda k, s: [k.layers.Resizing(7, 12, interpolation="area")], None),
    "resize_bicubic": ((9, 7, 3), lambda k, s: [k.layers.Resizing(13, 5, interpolation="bicubic")], None),
    "resize_lanczos3": ((9, 7, 3), lambda k, s: [k.layers.Resizing(5, 12, interpolation="lanczos3")], None),
    "resize_lanczos5": ((9, 7, 3), lambda k, s: [k.layers.Resizing(14, 4, interpolation="lanczos5")], None),
    "resize_crop_aspect": ((9, 14, 3), lambda k, s: [
        k.layers.Resizing(6, 5, crop_to_aspect_ratio=True), k.layers.Conv2D(2, 2)], None),
    "resize_crop_aspect_nearest": ((15, 7, 3), lambda k, s: [
        k.layers.Resizing(4, 6, interpolation="nearest", crop_to_aspect_ratio=True)], None),
    "resize_after_conv": ((8, 8, 2), lambda k, s: [
        k.layers.Conv2D(3, 3), k.layers.Resizing(9, 4), k.layers.Conv2D(2, 2)], None),
    "resize_gaussian": ((9, 7, 3), lambda k, s: [k.layers.Resizing(5, 11, interpolation="gaussian")], "tf_keras"),
    "resize_mitchellcubic": ((9, 7, 3), lambda k, s: [
        k.layers.Resizing(13, 4, interpolation="mitchellcubic")], "tf_keras"),
    "resize_antialias_bilinear": ((17, 9, 3), lambda k, s: [k.layers.Resizing(5, 4, antialias=True)], "keras3"),
    "resize_antialias_bicubic": ((17, 9, 3), lambda k, s: [
        k.layers.Resizing(6, 13, interpolation="bicubic", antialias=True)], "keras3"),
    "resize_antialias_lanczos3": ((17, 9, 3), lambda k, s: [
        k.layers.Resizing(7, 4, interpolation="lanczos3", antialias=True)], "keras3"),
    "resize_antialias_nearest": ((17, 9, 3), lambda k, s: [
        k.layers.Resizing(7, 4, interpolation="nearest", antialias=True)], "keras3"),
    "resize_pad_aspect": ((9, 14, 3), lambda k, s: [
        k.layers.Resizing(8, 5, pad_to_aspect_ratio=True, fill_value=37.0)], "keras3"),
    "resize_pad_aspect_wide": ((13, 4, 3), lambda k, s: [
        k.layers.Resizing(5, 6, pad_to_aspect_ratio=True)], "keras3"),
    "resize_channels_first_data": ((3, 7, 9), lambda k, s: [
        k.layers.Resizing(4, 13, data_format="channels_first")], "keras3"),
    # CenterCrop
    "center_crop": ((9, 10, 3), lambda k, s: [k.layers.CenterCrop(4, 7), k.layers.Conv2D(2, 2)], None),
    "center_crop_same": ((9, 10, 3), lambda k, s: [k.layers.CenterCrop(9, 10)], None),
    "center_crop_upsize": ((5, 9, 3), lambda k, s: [k.layers.CenterCrop(8, 6)], None),
}


@pytest.mark.parametrize("case", CASES)
def test_preprocessing(case, flavour, tmp_path):
    shape, layers, only = CASES[case]
    if only is not None and only != flavour:
        pytest.skip(f"this option exists only in {only}")
    check_conversion(lambda k: k.Sequential([k.Input(shape), *layers(k, shape)]), flavour, tmp_path,
                     inputs=[images(shape)])


DYNAMIC_CASES = {
    "resize": lambda k: [k.layers.Resizing(5, 7, interpolation="area"), k.layers.Conv2D(2, 2)],
    "resize_crop_aspect": lambda k: [k.layers.Resizing(5, 7, crop_to_aspect_ratio=True)],
    "center_crop": lambda k: [k.layers.CenterCrop(6, 4)],
    "normalization_channels": lambda k: [k.layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 5.0, 6.0])],
}


@pytest.mark.parametrize("size", [(11, 8), (4, 3)])
@pytest.mark.parametrize("case", DYNAMIC_CASES)
def test_dynamic_image_size(case, size, flavour, tmp_path):
    """Inputs declared (None, None, 3): crop boxes and resampling weights follow the actual size at run time."""
    check_conversion(lambda k: k.Sequential([k.Input((None, None, 3)), *DYNAMIC_CASES[case](k)]), flavour,
                     tmp_path, inputs=[images((*size, 3))])


INTEGER_CASES = {
    "uint8_rescaling": lambda k: [k.layers.Rescaling(1.0 / 255)],
    "uint8_normalization": lambda k: [k.layers.Normalization(mean=[100.0, 120.0, 90.0], variance=[1.0, 4.0, 9.0])],
    "uint8_center_crop": lambda k: [k.layers.CenterCrop(3, 4)],
    # 7 → 3 weighs taps in thirds: no result lands on .5, where rounding float round-off would flip a pixel
    "int32_resizing": lambda k: [k.layers.Resizing(3, 3)],
}


@pytest.mark.parametrize("case", INTEGER_CASES)
def test_integer_images(case, flavour, tmp_path):
    """Image models often take integer pixels; Keras casts them (Keras 3 Resizing rounds back to integers)."""
    dtype = "int32" if "int32" in case else "uint8"
    shape = (7, 7, 3)
    check_conversion(lambda k: k.Sequential([k.Input(shape, dtype=dtype), *INTEGER_CASES[case](k)]), flavour,
                     tmp_path, inputs=[images(shape, dtype)])


# -- the arithmetic with edges, against the Keras layer itself -----------------------------------------------
METHODS = {"keras3": ("bilinear", "nearest", "area", "bicubic", "lanczos3"),
           "tf_keras": ("bilinear", "nearest", "area", "bicubic", "gaussian", "mitchellcubic")}


@pytest.mark.parametrize("flavour_name", ["keras3", "tf_keras"])
@settings(max_examples=25, deadline=None)
@given(size=st.tuples(st.integers(1, 23), st.integers(1, 23)), target=st.tuples(st.integers(1, 23),
       st.integers(1, 23)), method_index=st.integers(0, 5), aspect=st.sampled_from(["", "crop", "pad"]),
       antialias=st.booleans())
def test_resizing_sizes(flavour_name, size, target, method_index, aspect, antialias):
    k = keras_module(flavour_name)
    methods = METHODS[flavour_name]
    options = {"interpolation": methods[method_index % len(methods)], "crop_to_aspect_ratio": aspect == "crop"}
    if flavour_name == "keras3":
        options.update(pad_to_aspect_ratio=aspect == "pad", antialias=antialias)
    if flavour_name == "tf_keras" and aspect == "crop":
        assume(min(aspect_crop_box(*size, *target, at_least_one=False)[2:]) > 0)  # tf_keras fails on 0 pixels
    layer = k.layers.Resizing(*target, **options)
    x = images((*size, 2), seed=sum(size))
    reference = np.asarray(layer(x))
    spec = LayerSpec(name="resize", class_name="Resizing", config=layer.get_config(),
                     input_shapes=[(None, *size, 2)], input_layouts=[CHANNELS_FIRST], input_dtypes=[torch.float32],
                     keras_version="3.0" if flavour_name == "keras3" else "2.21")
    module = convert_resizing(spec).module
    got = module(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert_matches([got], [reference], what=f"{options} {size}→{target}")


@pytest.mark.parametrize("flavour_name", ["keras3", "tf_keras"])
@settings(max_examples=20, deadline=None)
@given(size=st.tuples(st.integers(1, 19), st.integers(1, 19)), target=st.tuples(st.integers(1, 19),
       st.integers(1, 19)))
def test_center_crop_sizes(flavour_name, size, target):
    k = keras_module(flavour_name)
    layer = k.layers.CenterCrop(*target)
    if flavour_name == "tf_keras":
        assume(min(aspect_crop_box(*size, *target, at_least_one=False)[2:]) > 0)  # tf_keras fails on 0 pixels
    x = images((*size, 2), seed=sum(size))
    reference = np.asarray(layer(x))
    model = k.Sequential([k.Input((*size, 2)), layer])
    got = check_layer_module(model, x)
    assert_matches([got], [reference], what=f"{size}→{target}")


def check_layer_module(model, x):
    """The converted model's output for ``x`` (channels-first layout), without saving a file."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.h5"
        model.save(str(path))
        module = tf2torch.convert(path)
    out = module(torch.from_numpy(x).permute(0, 3, 1, 2))
    return out.permute(0, 2, 3, 1).detach().numpy()


# -- errors -------------------------------------------------------------------------------------------------
def test_unknown_interpolation_fails_clearly():
    spec = LayerSpec(name="resize_1", class_name="Resizing",
                     config={"height": 4, "width": 4, "interpolation": "lanczos4"}, input_shapes=[(None, 8, 8, 3)],
                     input_layouts=[CHANNELS_FIRST], input_dtypes=[torch.float32], keras_version="3.5.0")
    with pytest.raises(ConversionError, match=r"resize_1 \(Resizing\): interpolation 'lanczos4' has no exact torch "
                                              r"equivalent here \(supported: bilinear, nearest, area"):
        convert_resizing(spec)


def test_reflect_fill_mode_fails_clearly():
    spec = LayerSpec(name="resize_2", class_name="Resizing",
                     config={"height": 4, "width": 4, "pad_to_aspect_ratio": True, "fill_mode": "reflect"},
                     input_shapes=[(None, 8, 8, 3)], input_layouts=[CHANNELS_FIRST], input_dtypes=[torch.float32],
                     keras_version="3.5.0")
    with pytest.raises(ConversionError, match="fill_mode 'reflect' is not supported"):
        convert_resizing(spec)


# -- save and load keep the statistics -----------------------------------------------------------------------
@pytest.mark.parametrize("case", ["efficientnet_stem_adapted", "rescale_per_channel", "norm_config_partial_axes"])
def test_save_load_round_trip(case, tmp_path):
    k = keras_module("keras3")
    shape, layers, _ = CASES[case]
    model = k.Sequential([k.Input(shape), *layers(k, shape)])
    model.save(str(tmp_path / "m.keras"))
    module = tf2torch.convert(tmp_path / "m.keras")
    tf2torch.save(module, tmp_path / "m.pt")
    loaded = tf2torch.load(tmp_path / "m.pt")
    x = torch.from_numpy(images(shape))
    x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x
    torch.testing.assert_close(loaded(x), module(x), rtol=0, atol=0)


# -- the pure functions ---------------------------------------------------------------------------------------
def test_config_array_reads_keras3_numpy_values():
    encoded = {"class_name": "__numpy__", "config": {"value": [1.0, 2.0], "dtype": "float64"}}
    np.testing.assert_array_equal(config_array(encoded), np.float32([1, 2]))
    assert config_array(0.5).shape == ()


def test_constants_rearranged_for_channels_first():
    spec = LayerSpec(name="r", class_name="Rescaling", config={}, input_shapes=[(None, 5, 4, 3)],
                     input_layouts=[CHANNELS_FIRST], input_dtypes=[torch.float32], keras_version="3")
    per_channel = np.float32([1, 2, 3])
    assert broadcast_for(spec, per_channel, CHANNELS_FIRST).shape == (1, 3, 1, 1)
    assert broadcast_for(spec, per_channel, KERAS).shape == (1, 1, 1, 3)
    stats = np.arange(20, dtype=np.float32).reshape(1, 5, 4, 1)
    np.testing.assert_array_equal(to_layout(stats, CHANNELS_FIRST)[0, 0], stats[0, :, :, 0])


def test_keras_ratio_truncates_in_float32():
    assert keras_ratio(7, 2, float32=True) == 3
    assert keras_ratio(16777217, 1, float32=True) == 16777216  # 2**24 + 1 is not a float32
    assert keras_ratio(16777217, 1, float32=False) == 16777217


def test_aspect_crop_box_and_padding():
    assert aspect_crop_box(9, 14, 6, 5) == (0, 3, 9, 7)  # width cropped to 9 * 5 / 6 = 7.5 → 7, start (14-7)/2
    assert aspect_crop_box(1, 9, 5, 1, at_least_one=True)[3] == 1
    assert aspect_crop_box(1, 9, 5, 1, at_least_one=False)[3] == 0
    assert aspect_padding(9, 14, 8, 5) == (6, 0)  # padded height int(14 * 8 / 5) = 22, each side int(13 / 2)
    assert aspect_padding(13, 4, 5, 6) == (0, 5)  # padded width int(13 * 6 / 5) = 15, each side int(11 / 2)


def test_area_weights_average_blocks():
    np.testing.assert_allclose(area_weights(6, 2), np.kron(np.eye(2), np.full((1, 3), 1 / 3)), rtol=1e-6)
    np.testing.assert_allclose(area_weights(4, 3) * 4 / 3, [[1, 1 / 3, 0, 0], [0, 2 / 3, 2 / 3, 0],
                                                            [0, 0, 1 / 3, 1]], rtol=1e-6)


def test_resampling_rows_sum_to_one():
    for matrix in (bicubic_weights(5, 13), scale_and_translate_weights("lanczos3", 17, 4, True),
                   scale_and_translate_weights("gaussian", 4, 9, False), area_weights(7, 3)):
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(scale_and_translate_weights("triangle", 6, 6, False), np.eye(6), atol=1e-7)


def test_bicubic_table_is_keys_a_minus_half():
    near, far = bicubic_table()
    assert (near[0], near[1024], far[0], far[1024]) == (1.0, 0.0, 0.0, 0.0)
    t = 0.25  # Keys: (a + 2)|t|^3 - (a + 3)|t|^2 + 1 near, a|t|^3 - 5a|t|^2 + 8a|t| - 4a far, a = -0.5
    assert near[256] == pytest.approx(1.5 * t**3 - 2.5 * t**2 + 1)
    assert far[256] == pytest.approx(-0.5 * 1.25**3 + 2.5 * 1.25**2 - 4 * 1.25 + 2)


def test_resize_module_accepts_any_input_size():
    module = TFResize(3, 4, "area")
    assert module(torch.zeros(1, 2, 7, 9)).shape == (1, 2, 3, 4)
    assert module(torch.zeros(1, 2, 12, 5)).shape == (1, 2, 3, 4)
