"""BatchNormalization, LayerNormalization, GroupNormalization, UnitNormalization and RMSNormalization against
Keras 3 and tf_keras.

Traps proven here (semantics doc §3): epsilons from the config (1e-3 / 1e-6, not torch's 1e-5); no epsilon floor
in Keras 3 nor in tf_keras 2.21 (tiny moving variances with epsilon 1e-7 on conv inputs would expose one); the
Keras axis on channels-first and Keras-layout tensors, axis lists, center/scale off, BN after Flatten, renorm and
frozen layers at inference, LayerNormalization(rms_scaling=True) (not RMSNorm), contiguous groups and
``groups=-1``, UnitNormalization's different norm floors. All weights are random so a wrong mapping shows.
"""

import numpy as np
import pytest
import torch
from harness import check_conversion, keras_module
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tf2torch.converters.normalization import (
    batch_norm_epsilon,
    broadcast_to_layout,
    hwc_vector_to_chw,
    keras_bn_to_torch_params,
    keras_param_to_broadcast,
    keras_version_tuple,
)
from tf2torch.converters.registry import LayerSpec, converter_for
from tf2torch.graph import Weight
from tf2torch.layout import CHANNELS_FIRST, KERAS, FlatChannelsFirst, to_channels_first_perm, to_keras_perm
from tf2torch.nn.normalization import L2Normalize, LayerNormOnDims


def randomized(model, variance=(0.5, 2.0), seed=0):
    """Every weight random: variances/stddevs uniform in ``variance``, everything else normal."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        arrays = []
        for w in layer.weights:
            shape = tuple(w.shape)
            if "variance" in w.name or "stddev" in w.name:
                arrays.append(rng.uniform(*variance, size=shape).astype("float32"))
            else:
                arrays.append((rng.standard_normal(shape) * 0.7 + (1.0 if "gamma" in w.name else 0.0))
                              .astype("float32"))
        if arrays:
            layer.set_weights(arrays)
    return model


def model_of(shape, *layers, variance=(0.5, 2.0)):
    """``Input(shape)`` then ``layers`` (each ``lambda k: k.layers.X(...)``), weights randomized."""
    return lambda k: randomized(k.Sequential([k.Input(shape), *[make(k) for make in layers]]), variance)


def conv2d(k):
    return k.layers.Conv2D(4, 3)


def conv1d(k):
    return k.layers.Conv1D(4, 3)


def flatten(k):
    return k.layers.Flatten()


def dense(k):
    return k.layers.Dense(3)


def bn(**kwargs):
    return lambda k: k.layers.BatchNormalization(**kwargs)


def ln(**kwargs):
    return lambda k: k.layers.LayerNormalization(**kwargs)


def gn(**kwargs):
    return lambda k: k.layers.GroupNormalization(**kwargs)


def unit(**kwargs):
    return lambda k: k.layers.UnitNormalization(**kwargs)


TINY_VARIANCE = (1e-6, 3e-6)  # with epsilon 1e-7 a floor of 1.001e-5 would change the output by ~3x

BN_CASES = {
    "dense_input": model_of((7,), bn()),
    "after_conv2d_odd": model_of((7, 6, 3), conv2d, bn()),
    "after_conv2d_momentum": model_of((8, 8, 3), lambda k: k.layers.Conv2D(4, 3, strides=2), bn(momentum=0.9)),
    "after_conv1d": model_of((9, 3), conv1d, bn()),
    "sequence_btf": model_of((5, 4), bn()),
    "dynamic_sequence": model_of((None, 4), bn()),
    "rank4_input": model_of((5, 6, 3), bn(epsilon=1e-2)),
    "rank5_input": model_of((3, 4, 5, 2), bn()),
    "rank6_input": model_of((2, 3, 2, 3, 4), bn()),
    "axis1_nhwc": model_of((4, 5, 3), bn(axis=1)),
    "axis2_nhwc": model_of((4, 5, 3), bn(axis=2)),
    "axis1_sequence": model_of((5, 4), bn(axis=1)),
    "axis_minus3_conv3d": model_of((3, 4, 5, 2), bn(axis=-3)),
    "no_center": model_of((5, 6, 3), bn(center=False)),
    "no_scale": model_of((5, 6, 3), bn(scale=False)),
    "no_affine": model_of((5, 6, 3), bn(center=False, scale=False)),
    "after_flatten": model_of((5, 4, 3), conv2d, flatten, bn(), dense),
    "after_flatten_conv1d": model_of((7, 3), conv1d, flatten, bn(), dense),
    "frozen": model_of((5, 6, 3), lambda k: k.layers.BatchNormalization(trainable=False)),
    "renorm": model_of((5, 6, 3), bn(renorm=True)),
    # trap (a): tiny epsilon on 4-D/5-D inputs — tf_keras 2.21 and Keras 3 both use it unclamped
    "eps_1e7_conv2d": model_of((5, 6, 3), bn(epsilon=1e-7), variance=TINY_VARIANCE),
    "eps_1e6_conv3d": model_of((3, 4, 5, 2), bn(epsilon=1e-6), variance=TINY_VARIANCE),
    "eps_1e7_axis1": model_of((3, 5, 6), bn(axis=1, epsilon=1e-7), variance=TINY_VARIANCE),
    "eps_1e7_dense": model_of((6,), bn(epsilon=1e-7), variance=TINY_VARIANCE),
}

TF_KERAS_BN_CASES = {  # tf.keras accepts axis lists and virtual batches; Keras 3 does not
    "axis_list_hc": model_of((4, 5, 3), bn(axis=[1, 3])),
    "axis_list_hw": model_of((4, 5, 3), bn(axis=[1, 2], epsilon=1e-4)),
    "axis_list_after_conv": model_of((6, 7, 3), conv2d, bn(axis=[2, 3], center=False)),
    "virtual_batch": model_of((5, 6, 3), bn(virtual_batch_size=2)),
    "sync": model_of((5, 6, 3), lambda k: k.layers.experimental.SyncBatchNormalization(epsilon=1e-7),
                     variance=TINY_VARIANCE),
}

LN_CASES = {
    "dense_input": model_of((7,), ln()),
    "sequence": model_of((5, 6), ln()),
    "dynamic_sequence": model_of((None, 6), ln()),
    "dynamic_image": model_of((None, None, 3), ln(axis=-1)),
    "after_conv2d": model_of((6, 7, 3), conv2d, ln()),
    "after_conv1d": model_of((9, 3), conv1d, ln(epsilon=1e-6)),
    "axes_123": model_of((4, 5, 3), ln(axis=[1, 2, 3])),
    "axes_123_after_conv": model_of((6, 7, 3), conv2d, ln(axis=[1, 2, 3], epsilon=1e-5)),
    "axes_12": model_of((4, 5, 3), ln(axis=[1, 2])),
    "axes_unsorted_31": model_of((4, 5, 3), ln(axis=[3, 1])),
    "axis1_sequence": model_of((5, 6), ln(axis=1)),
    "axes_negative": model_of((4, 5, 3), ln(axis=[-2, -1])),
    "no_center": model_of((6, 7, 3), conv2d, ln(center=False)),
    "no_scale": model_of((6, 7, 3), conv2d, ln(scale=False)),
    "no_scale_keras_layout": model_of((5, 6), ln(scale=False)),
    "no_affine": model_of((5, 6), ln(center=False, scale=False)),
    "after_flatten": model_of((5, 4, 3), conv2d, flatten, ln(), dense),
    "conv3d_axes": model_of((3, 4, 5, 2), ln(axis=[2, 3, 4], epsilon=1e-7)),
}

KERAS3_LN_CASES = {  # deprecated Keras 3 flag: x * rsqrt(var + eps) * gamma
    "rms_scaling": model_of((5, 6), ln(rms_scaling=True)),
    "rms_scaling_after_conv": model_of((6, 7, 3), conv2d, ln(rms_scaling=True)),
    "rms_scaling_no_scale": model_of((5, 6), ln(rms_scaling=True, scale=False, center=False)),
    "rms_scaling_axes": model_of((4, 5, 3), ln(axis=[1, 2, 3], rms_scaling=True)),
}

GN_CASES = {
    "after_conv2d": model_of((6, 7, 3), lambda k: k.layers.Conv2D(8, 3), gn(groups=4)),
    "groups_minus1": model_of((6, 7, 3), conv2d, gn(groups=-1)),
    "one_group": model_of((6, 7, 3), conv2d, gn(groups=1, epsilon=1e-5)),
    "after_conv1d": model_of((9, 3), lambda k: k.layers.Conv1D(6, 3), gn(groups=3)),
    "sequence": model_of((5, 6), gn(groups=2)),
    "dynamic_image": model_of((None, None, 6), gn(groups=3)),
    "dense_input": model_of((8,), gn(groups=4)),
    "axis1_nhwc": model_of((4, 5, 3), gn(groups=2, axis=1)),
    "rank5": model_of((3, 4, 5, 4), gn(groups=2)),
    "no_center": model_of((6, 7, 3), conv2d, gn(groups=2, center=False)),
    "no_scale": model_of((6, 7, 3), conv2d, gn(groups=2, scale=False)),
    "no_affine": model_of((6, 7, 3), conv2d, gn(groups=2, scale=False, center=False)),
    "after_flatten": model_of((5, 4, 3), conv2d, flatten, gn(groups=4), dense),
}

UNIT_CASES = {
    "dense_input": model_of((7,), unit()),
    "after_conv2d": model_of((6, 7, 3), conv2d, unit()),
    "axes_12": model_of((4, 5, 3), unit(axis=[1, 2])),
    "axes_123_after_conv": model_of((6, 7, 3), conv2d, unit(axis=[1, 2, 3])),
    "axis1_sequence": model_of((5, 6), unit(axis=1)),
    "after_flatten": model_of((5, 4, 3), conv2d, flatten, unit(), dense),
}

RMS_CASES = {  # Keras 3 only
    "dense_input": model_of((7,), lambda k: k.layers.RMSNormalization()),
    "sequence": model_of((5, 6), lambda k: k.layers.RMSNormalization(epsilon=1e-3)),
    "after_conv2d": model_of((6, 7, 3), conv2d, lambda k: k.layers.RMSNormalization()),
    "axes_123": model_of((4, 5, 3), lambda k: k.layers.RMSNormalization(axis=[1, 2, 3])),
    "axes_23_after_conv": model_of((6, 7, 3), conv2d, lambda k: k.layers.RMSNormalization(axis=[2, 3])),
    "after_flatten": model_of((5, 4, 3), conv2d, flatten, lambda k: k.layers.RMSNormalization(), dense),
}


@pytest.mark.parametrize("case", BN_CASES)
def test_batch_normalization(case, flavour, tmp_path):
    check_conversion(BN_CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", TF_KERAS_BN_CASES)
def test_batch_normalization_tf_keras_only(case, tmp_path):
    check_conversion(TF_KERAS_BN_CASES[case], "tf_keras", tmp_path)


@pytest.mark.parametrize("case", LN_CASES)
def test_layer_normalization(case, flavour, tmp_path):
    check_conversion(LN_CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", KERAS3_LN_CASES)
def test_layer_normalization_rms_scaling(case, tmp_path):
    with pytest.warns(UserWarning, match="rms_scaling"):
        check_conversion(KERAS3_LN_CASES[case], "keras3", tmp_path)


@pytest.mark.parametrize("case", GN_CASES)
def test_group_normalization(case, flavour, tmp_path):
    check_conversion(GN_CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", UNIT_CASES)
def test_unit_normalization(case, flavour, tmp_path):
    check_conversion(UNIT_CASES[case], flavour, tmp_path)


@pytest.mark.parametrize("case", RMS_CASES)
def test_rms_normalization(case, tmp_path):
    check_conversion(RMS_CASES[case], "keras3", tmp_path)


def test_unit_normalization_floor_near_zero(flavour, tmp_path):
    """Rows of norm ~1e-8: Keras 3 still makes unit vectors (floor 1e-12), tf.keras divides by 1e-6."""
    x = np.random.default_rng(1).standard_normal((3, 4, 5)).astype("float32")
    x[0, :2] *= 1e-8
    x[1, 3] = 0.0
    worst = check_conversion(model_of((4, 5), unit()), flavour, tmp_path, inputs=[x])
    assert worst < 1e-5


def test_rms_scaling_is_not_rms_norm():
    """The deprecated ``rms_scaling`` keeps the input uncentred but centres the variance."""
    x = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    module = LayerNormOnDims([1], (1, 4), eps=0.0, center=False, rms_scaling=True)
    expected = x / x.std(dim=1, unbiased=False, keepdim=True)
    torch.testing.assert_close(module(x), expected)


# -- weight transforms and config rules, on their own ------------------------------------------------------------
def test_hwc_vector_to_chw():
    h, w, c = 2, 3, 4
    hwc = np.arange(h * w * c)
    expected = np.arange(h * w * c).reshape(h, w, c).transpose(2, 0, 1).reshape(-1)
    np.testing.assert_array_equal(hwc_vector_to_chw(hwc, c, (h, w)), expected)


def test_keras_param_to_broadcast_is_c_order():
    gamma = np.arange(12).reshape(3, 4)  # tf.keras axis=[3, 1] on (B, 4, 5, 3) stores (C, H) = (3, 4)
    placed = keras_param_to_broadcast(gamma, (1, 4, 1, 3))
    np.testing.assert_array_equal(placed.reshape(-1), gamma.reshape(-1))
    assert placed.shape == (1, 4, 1, 3)


def test_broadcast_to_layout():
    array = np.arange(24).reshape(1, 2, 3, 4)
    np.testing.assert_array_equal(broadcast_to_layout(array, CHANNELS_FIRST), array.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(broadcast_to_layout(array, KERAS), array)
    flat = np.arange(24).reshape(1, 24)
    np.testing.assert_array_equal(broadcast_to_layout(flat, FlatChannelsFirst(4, (2, 3))),
                                  flat.reshape(2, 3, 4).transpose(2, 0, 1).reshape(1, 24))


@pytest.mark.parametrize("scale,center", [(True, True), (False, True), (True, False), (False, False)])
def test_keras_bn_to_torch_params(scale, center):
    rng = np.random.default_rng(0)
    gamma, beta, mean, var = (rng.standard_normal(5) for _ in range(4))
    arrays = [a for a, keep in ((gamma, scale), (beta, center), (mean, True), (var, True)) if keep]
    params = keras_bn_to_torch_params(arrays, scale=scale, center=center)
    np.testing.assert_array_equal(params["running_mean"], mean)
    np.testing.assert_array_equal(params["running_var"], var)
    if scale or center:
        np.testing.assert_array_equal(params["weight"], gamma if scale else np.ones(5))
        np.testing.assert_array_equal(params["bias"], beta if center else np.zeros(5))
    else:
        assert "weight" not in params and "bias" not in params


def bn_spec(version, rank=4, **config):
    shape = (None, *[3] * (rank - 1))
    return LayerSpec(name="bn", class_name="BatchNormalization", config={"epsilon": 1e-7, **config},
                     input_shapes=[shape], input_layouts=[KERAS], input_dtypes=[torch.float32],
                     keras_version=version)


@pytest.mark.parametrize("version,rank,axes,config,clamped", [
    ("2.15.0", 4, [3], {}, True),          # tf.keras 2.x fused kernel: channels last
    ("2.4.0", 4, [1], {}, True),           # channels first
    ("2.2.4-tf", 5, [4], {}, True),
    ("2.15.0", 5, [2], {}, False),         # rank 5, middle axis: not fused
    ("2.15.0", 3, [2], {}, False),         # rank 3: not fused
    ("2.15.0", 2, [1], {}, False),
    ("2.15.0", 4, [1, 3], {}, False),      # axis list
    ("2.15.0", 4, [3], {"renorm": True}, False),
    ("2.15.0", 4, [3], {"virtual_batch_size": 2}, False),
    ("2.15.0", 4, [3], {"dtype": "float64"}, False),
    ("2.21.0", 4, [3], {}, False),         # tf_keras 2.21: proven unclamped by the table above
    ("3.15.1", 4, [3], {}, False),         # Keras 3 never clamps
])
def test_batch_norm_epsilon_floor(version, rank, axes, config, clamped):
    eps = batch_norm_epsilon(bn_spec(version, rank, **config), axes, rank)
    assert eps == (1.001e-5 if clamped else 1e-7)


def test_keras_version_tuple():
    assert keras_version_tuple("2.2.4-tf") == (2, 2)
    assert keras_version_tuple("2.15.0") == (2, 15)
    assert keras_version_tuple("3") == (3, 0)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 3), st.floats(1e-9, 1e-3), st.integers(-6, 0))
def test_l2_normalize_matches_both_keras_floors(n_axes, scale, log_norm):
    """``L2Normalize`` against both Keras formulas written in numpy, across norms near the floors."""
    rng = np.random.default_rng(n_axes)
    x = (rng.standard_normal((2, 3, 4, 5)) * scale * 10.0 ** log_norm).astype(np.float32)
    dims = list(range(4 - n_axes, 4))
    sq = np.sum(x.astype(np.float64) ** 2, axis=tuple(dims), keepdims=True)
    keras3 = x * np.minimum(1 / np.sqrt(sq), 1e12)
    tf_keras = x / np.sqrt(np.maximum(sq, 1e-12))
    for eps, ref in ((1e-12, keras3), (1e-6, tf_keras)):
        got = L2Normalize(dims, eps)(torch.from_numpy(x)).double().numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_modules_are_plain_torch_where_possible(tmp_path):
    """A conv trunk gets ``nn.BatchNorm2d`` (a subclass that trains as Keras 3 does)/``nn.GroupNorm``/
    ``nn.LayerNorm`` and no permutes; torch's BatchNorm momentum is ``1 - keras_momentum`` (it only matters when
    training the converted model, ``tests/test_training.py``)."""
    import tf2torch

    k = keras_module("keras3")
    model = randomized(k.Sequential([k.Input((6, 7, 3)), k.layers.Conv2D(4, 3),
                                     k.layers.BatchNormalization(momentum=0.9),
                                     k.layers.GroupNormalization(groups=2), k.layers.Conv2D(4, 1),
                                     k.layers.LayerNormalization(axis=[1, 2, 3])]))
    path = tmp_path / "trunk.keras"
    model.save(path)
    module = tf2torch.convert(path, layout="channels_first")
    kinds = {type(m) for m in module.modules()}
    assert {nn.GroupNorm, nn.LayerNorm} <= kinds
    assert not any(n.op == "call_method" and n.target == "permute" for n in module.graph.nodes)
    (batch_norm,) = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    assert batch_norm.momentum == pytest.approx(0.1) and batch_norm.eps == pytest.approx(1e-3)


# -- any axis set, any layout: the converter straight against a Keras layer (no file) ---------------------------
def convert_layer(layer, flavour, shape, layout):
    """Run the registered converter on a built Keras layer, its weights handed over in ``layer.weights`` order."""
    arrays = [np.asarray(w) for w in layer.weights]
    spec = LayerSpec(name=layer.name, class_name=type(layer).__name__, config=layer.get_config(),
                     input_shapes=[(None, *shape)], input_layouts=[layout], input_dtypes=[torch.float32],
                     keras_version="3.15.1" if flavour == "keras3" else "2.21.0",
                     weight_handles=[Weight(str(i), a.shape, "float32") for i, a in enumerate(arrays)],
                     _load=lambda w: arrays[int(w.name)])
    return converter_for(spec.class_name)(spec).module.eval()


def check_layer(layer, flavour, shape, layout):
    x = np.random.default_rng(2).standard_normal((2, *shape)).astype("float32")
    ref = np.asarray(layer(x))
    module = convert_layer(layer, flavour, shape, layout)
    t = torch.from_numpy(x)
    if layout == CHANNELS_FIRST:
        t = t.permute(to_channels_first_perm(t.dim()))
    with torch.no_grad():
        out = module(t)
    if layout == CHANNELS_FIRST:
        out = out.permute(to_keras_perm(out.dim()))
    err = np.abs(out.numpy() - ref).max() / np.abs(ref).max()
    assert err <= 1e-5, f"max relative error {err:.3g}"


axis_sets = st.lists(st.integers(1, 3), min_size=1, max_size=3, unique=True)


@settings(max_examples=15, deadline=None)
@given(axes=axis_sets, layout=st.sampled_from([KERAS, CHANNELS_FIRST]), flavour=st.sampled_from(["keras3", "tf_keras"]),
       center=st.booleans(), scale=st.booleans())
def test_layer_normalization_any_axes(axes, layout, flavour, center, scale):
    k = keras_module(flavour)
    shape = (3, 4, 5)
    layer = k.layers.LayerNormalization(axis=axes, center=center, scale=scale)
    layer.build((None, *shape))
    randomized(k.Sequential([k.Input(shape), layer]))
    check_layer(layer, flavour, shape, layout)


@settings(max_examples=15, deadline=None)
@given(axis=st.integers(-3, 3).filter(bool), groups=st.sampled_from([1, 2, -1]),
       layout=st.sampled_from([KERAS, CHANNELS_FIRST]), flavour=st.sampled_from(["keras3", "tf_keras"]))
def test_group_normalization_any_axis(axis, groups, layout, flavour):
    k = keras_module(flavour)
    shape = (4, 2, 6)
    layer = k.layers.GroupNormalization(groups=groups, axis=axis)
    layer.build((None, *shape))
    randomized(k.Sequential([k.Input(shape), layer]))
    check_layer(layer, flavour, shape, layout)


# -- the eval-mode fast path of the Keras batch norms (x * scale + shift, cached) ------------------------------
BATCH_NORM_CASES = [  # (class, input shape, affine, channels-last input)
    ("KerasBatchNorm1d", (4, 6), True, False),
    ("KerasBatchNorm1d", (4, 6, 5), False, False),
    ("KerasBatchNorm2d", (3, 6, 5, 7), True, False),
    ("KerasBatchNorm2d", (3, 6, 5, 7), True, True),
    ("KerasBatchNorm3d", (2, 6, 3, 4, 5), True, False),
]


def random_batch_norm(cls_name: str, affine: bool) -> nn.Module:
    from tf2torch.nn import normalization

    bn = getattr(normalization, cls_name)(6, eps=1e-3, affine=affine, biased_moving_variance=True).eval()
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
        if affine:
            bn.weight.normal_()
            bn.bias.normal_()
    return bn


@pytest.mark.numerics
@pytest.mark.parametrize("cls_name, shape, affine, channels_last", BATCH_NORM_CASES)
def test_batch_norm_inference_path_equals_torchs_and_follows_its_parameters(cls_name, shape, affine, channels_last):
    """Under ``no_grad`` eval runs ``x * scale + shift`` with both cached; the cache follows in-place updates
    (``_version``) and replaced parameters, and a call that autograd records runs torch's own batch norm. Two
    formulas, so not bit for bit: FMA or not and the vector width move each value by an ulp or two; rtol and atol
    1e-6 allow ~8 ulps of values near 1, on any CPU."""
    import torch.nn.functional as F

    bn = random_batch_norm(cls_name, affine)
    x = torch.randn(shape)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def reference():
        return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)

    with torch.no_grad():
        fast = bn(x)
        torch.testing.assert_close(fast, reference(), rtol=1e-6, atol=1e-6)
        assert fast.is_contiguous(memory_format=torch.channels_last) == channels_last
        bn.running_var.mul_(3.0)  # in place: the cached scale must not be reused
        torch.testing.assert_close(bn(x), reference(), rtol=1e-6, atol=1e-6)
        if affine:
            bn.weight = nn.Parameter(torch.randn(6))  # replaced: a new tensor, version 0 again
            torch.testing.assert_close(bn(x), reference(), rtol=1e-6, atol=1e-6)
    if affine:
        out = bn(x)  # autograd records this call: torch's own path, gradients reach gamma
        out.sum().backward()
        assert bn.weight.grad is not None and bn.weight.grad.abs().sum() > 0
