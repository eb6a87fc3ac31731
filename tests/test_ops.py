"""Operations inside Keras graphs: each row is one operation written as Keras 3 writes it (``keras.ops`` or a
Python operator, saved as an op node) and as tf_keras writes it (a ``tf.*`` call, saved as a ``TFOpLambda`` /
``SlicingOpLambda``), applied to 4-D inputs so the channels-first layout is exercised, converted in both
layouts and compared with Keras."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_conversion

import tf2torch
from tf2torch.errors import UnsupportedLayerError

SHAPE = (3, 4, 5)  # H, W, C of the 4-D inputs


def tf():
    import tensorflow

    return tensorflow


# name → (Keras 3 fn(ops, x, y), tf_keras fn(tf, x, y), input kind); None: not in that Keras
OPS = {
    "add_constant": (lambda o, x, y: x + 1.5, lambda t, x, y: x + 1.5, "any"),
    "radd_array": (lambda o, x, y: o.add(np.arange(5, dtype="float32"), x),
                   lambda t, x, y: t.add(np.arange(5, dtype="float32"), x), "any"),
    "add": (lambda o, x, y: o.add(x, y), lambda t, x, y: t.add(x, y), "any"),
    "subtract_rconstant": (lambda o, x, y: 1.0 - x, lambda t, x, y: 1.0 - x, "any"),
    "multiply_broadcast": (lambda o, x, y: x * y[:, :1], lambda t, x, y: x * y[:, :1], "any"),
    "multiply_array": (lambda o, x, y: x * np.linspace(0, 1, 20, dtype="float32").reshape(4, 5),
                       lambda t, x, y: x * np.linspace(0, 1, 20, dtype="float32").reshape(4, 5), "any"),
    "divide": (lambda o, x, y: x / y, lambda t, x, y: x / y, "positive"),
    "floor_divide": (lambda o, x, y: o.floor_divide(x * 4.0, y), lambda t, x, y: (x * 4.0) // y, "any"),
    "mod": (lambda o, x, y: o.mod(x * 4.0, y), lambda t, x, y: t.math.floormod(x * 4.0, y), "any"),
    "power": (lambda o, x, y: o.power(x, y), lambda t, x, y: t.pow(x, y), "positive"),
    "power_constant": (lambda o, x, y: x ** 2.0, lambda t, x, y: x ** 2.0, "any"),
    "negative": (lambda o, x, y: -x, lambda t, x, y: -x, "any"),
    "abs": (lambda o, x, y: o.abs(x), lambda t, x, y: t.abs(x), "any"),
    "square": (lambda o, x, y: o.square(x), lambda t, x, y: t.square(x), "any"),
    "sqrt": (lambda o, x, y: o.sqrt(x), lambda t, x, y: t.sqrt(x), "positive"),
    "rsqrt": (lambda o, x, y: o.rsqrt(x), lambda t, x, y: t.math.rsqrt(x), "positive"),
    "exp": (lambda o, x, y: o.exp(x), lambda t, x, y: t.exp(x), "any"),
    "log": (lambda o, x, y: o.log(x), lambda t, x, y: t.math.log(x), "positive"),
    "log1p": (lambda o, x, y: o.log1p(x), lambda t, x, y: t.math.log1p(x), "positive"),
    "minimum": (lambda o, x, y: o.minimum(x, y), lambda t, x, y: t.minimum(x, y), "any"),
    "maximum_constant": (lambda o, x, y: o.maximum(x, 0.25), lambda t, x, y: t.maximum(x, 0.25), "any"),
    "clip": (lambda o, x, y: o.clip(x, -0.5, 0.5), lambda t, x, y: t.clip_by_value(x, -0.5, 0.5), "any"),
    "sign": (lambda o, x, y: o.sign(x), lambda t, x, y: t.sign(x), "any"),
    "round": (lambda o, x, y: o.round(x * 3.0), lambda t, x, y: t.round(x * 3.0), "any"),
    "floor": (lambda o, x, y: o.floor(x), lambda t, x, y: t.floor(x), "any"),
    "ceil": (lambda o, x, y: o.ceil(x), lambda t, x, y: t.math.ceil(x), "any"),
    "compare_where": (lambda o, x, y: o.where(o.greater(x, y), x, 0.0),
                      lambda t, x, y: t.where(x > y, x, 0.0), "any"),
    "logic": (lambda o, x, y: o.cast(o.logical_and(x > 0, o.logical_not(y <= 0.5)), "float32"),
              lambda t, x, y: t.cast(t.math.logical_and(x > 0, t.math.logical_not(y <= 0.5)), "float32"), "any"),
    "equal_or": (lambda o, x, y: o.cast(o.logical_or(o.equal(o.round(x), 0.0), o.not_equal(y, 1.0)), "float32"),
                 lambda t, x, y: t.cast(t.math.logical_or(t.equal(t.round(x), 0.0), t.not_equal(y, 1.0)),
                                        "float32"), "any"),
    "more_unary": (lambda o, x, y: o.tanh(x) + o.erf(y) + o.softsign(x) + o.expm1(y) + o.reciprocal(x),
                   lambda t, x, y: t.tanh(x) + t.math.erf(y) + t.nn.softsign(x) + t.math.expm1(y)
                   + t.math.reciprocal(x), "positive"),
    "tf_only_arithmetic": (None, lambda t, x, y: t.math.squared_difference(x, y) + t.math.add_n([x, y, x])
                           + t.math.divide_no_nan(x, t.nn.relu(y)), "any"),
    # reductions
    "mean_spatial": (lambda o, x, y: o.mean(x, axis=[1, 2]), lambda t, x, y: t.reduce_mean(x, axis=[1, 2]), "any"),
    "sum_channels_keepdims": (lambda o, x, y: o.sum(x, axis=-1, keepdims=True),
                              lambda t, x, y: t.reduce_sum(x, axis=-1, keepdims=True), "any"),
    "max_h": (lambda o, x, y: o.max(x, axis=1), lambda t, x, y: t.reduce_max(x, axis=1), "any"),
    "min_all": (lambda o, x, y: o.min(x, axis=[1, 2, 3]), lambda t, x, y: t.reduce_min(x, axis=[1, 2, 3]), "any"),
    "prod": (lambda o, x, y: o.prod(x, axis=-1), lambda t, x, y: t.reduce_prod(x, axis=-1), "positive"),
    "std": (lambda o, x, y: o.std(x, axis=2), lambda t, x, y: t.math.reduce_std(x, axis=2), "any"),
    "var_keepdims": (lambda o, x, y: o.var(x, axis=-2, keepdims=True),
                     lambda t, x, y: t.math.reduce_variance(x, axis=-2, keepdims=True), "any"),
    "any_all": (lambda o, x, y: o.cast(o.logical_and(o.any(x > 1.0, axis=1), o.all(y > 0.2, axis=1)), "float32"),
                lambda t, x, y: t.cast(t.logical_and(t.reduce_any(x > 1.0, axis=1), t.reduce_all(y > 0.2, axis=1)),
                                       "float32"), "any"),
    "argmax": (lambda o, x, y: o.cast(o.argmax(x, axis=-1), "float32"),
               lambda t, x, y: t.cast(t.argmax(x, axis=-1), "float32"), "any"),
    "argmin": (lambda o, x, y: o.cast(o.argmin(x, axis=2), "float32"),
               lambda t, x, y: t.cast(t.argmin(x, axis=2), "float32"), "any"),
    # linear algebra
    "matmul": (lambda o, x, y: o.matmul(x, o.transpose(y, (0, 1, 3, 2))),
               lambda t, x, y: t.linalg.matmul(x, y, transpose_b=True), "any"),
    "matmul_constant": (lambda o, x, y: o.matmul(x, np.ones((5, 2), "float32")),
                        lambda t, x, y: t.matmul(x, np.ones((5, 2), "float32")), "any"),
    "einsum": (lambda o, x, y: o.einsum("bhwc,bhvc->bhwv", x, y), None, "any"),
    "tensordot": (lambda o, x, y: o.tensordot(x, np.ones((5, 3), "float32"), axes=1),
                  lambda t, x, y: t.tensordot(x, np.ones((5, 3), "float32"), axes=1), "any"),
    # shapes
    "reshape": (lambda o, x, y: o.reshape(x, (-1, 12, 5)), lambda t, x, y: t.reshape(x, (-1, 12, 5)), "any"),
    "transpose": (lambda o, x, y: o.transpose(x, (0, 3, 1, 2)), lambda t, x, y: t.transpose(x, (0, 3, 1, 2)),
                  "any"),
    "expand_squeeze": (lambda o, x, y: o.squeeze(o.expand_dims(x, 1), axis=1) + o.expand_dims(y, -1)[..., 0],
                       lambda t, x, y: t.squeeze(t.expand_dims(x, 1), axis=1) + t.expand_dims(y, -1)[..., 0],
                       "any"),
    "concatenate_channels": (lambda o, x, y: o.concatenate([x, y], axis=-1), lambda t, x, y: t.concat([x, y], -1),
                             "any"),
    "concatenate_h": (lambda o, x, y: o.concatenate([x, y], axis=1), lambda t, x, y: t.concat([x, y], axis=1), "any"),
    "stack": (lambda o, x, y: o.stack([x, y], axis=2), lambda t, x, y: t.stack([x, y], axis=2), "any"),
    "split": (lambda o, x, y: o.split(x, [1, 3], axis=2)[1], lambda t, x, y: t.split(x, [1, 2, 1], axis=2)[1], "any"),
    "unstack": (lambda o, x, y: o.unstack(x, axis=2)[1] - o.unstack(y, axis=-1)[3][..., :1],
                lambda t, x, y: t.unstack(x, axis=2)[1] - t.unstack(y, axis=-1)[3][..., :1], "any"),
    "tile": (lambda o, x, y: o.tile(x, (1, 2, 1, 3)), lambda t, x, y: t.tile(x, (1, 2, 1, 3)), "any"),
    "repeat": (lambda o, x, y: o.repeat(x, 2, axis=2), lambda t, x, y: t.repeat(x, 2, axis=2), "any"),
    "broadcast_to": (lambda o, x, y: o.broadcast_to(x[:1, :1], (2, 3, 4, 5)),
                     lambda t, x, y: t.broadcast_to(x[:1, :1], (2, 3, 4, 5)), "any"),
    "pad": (lambda o, x, y: o.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]], constant_values=0.5),
            lambda t, x, y: t.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]], constant_values=0.5), "any"),
    "pad_reflect": (lambda o, x, y: o.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]], mode="reflect"),
                    lambda t, x, y: t.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]], mode="REFLECT"), "any"),
    "pad_symmetric": (lambda o, x, y: o.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]], mode="symmetric"),
                      lambda t, x, y: t.pad(x, [[0, 0], [1, 2], [2, 1], [0, 0]], mode="SYMMETRIC"), "any"),
    "cast_int": (lambda o, x, y: o.cast(o.cast(x * 3.0, "int32"), "float32"),
                 lambda t, x, y: t.cast(t.cast(x * 3.0, "int32"), "float32"), "any"),
    "getitem": (lambda o, x, y: x[:, 1:, ::-2, None, -1], lambda t, x, y: x[:, 1:, ::-2, t.newaxis, -1], "any"),
    "getitem_ellipsis": (lambda o, x, y: x[..., 1:4:2] + y[:, -2:-1, ...][..., 1:4:2],
                         lambda t, x, y: x[..., 1:4:2] + y[:, -2:-1, ...][..., 1:4:2], "any"),
    "take": (lambda o, x, y: o.take(x, [0, 2, 2], axis=2), lambda t, x, y: t.gather(x, [0, 2, 2], axis=2), "any"),
    "strided_slice": (None, lambda t, x, y: t.strided_slice(x, [0, 1, 0, 4], [0, 3, 4, 0], [1, 1, 2, -1],
                                                          begin_mask=1, end_mask=9, shrink_axis_mask=0), "any"),
    "zeros_ones_like": (lambda o, x, y: o.zeros_like(x) + o.ones_like(y) * 2.0,
                        lambda t, x, y: t.zeros_like(x) + t.ones_like(y) * 2.0, "any"),
    # activations
    "relu": (lambda o, x, y: o.relu(x), lambda t, x, y: t.nn.relu(x), "any"),
    "relu6": (lambda o, x, y: o.relu6(x * 8.0), lambda t, x, y: t.nn.relu6(x * 8.0), "any"),
    "sigmoid": (lambda o, x, y: o.sigmoid(x), lambda t, x, y: t.sigmoid(x), "any"),
    "hard_sigmoid": (lambda o, x, y: o.hard_sigmoid(x * 4.0), None, "any"),
    "hard_swish": (lambda o, x, y: o.hard_silu(x * 4.0), None, "any"),
    "silu": (lambda o, x, y: o.silu(x), lambda t, x, y: t.nn.silu(x), "any"),
    "gelu_exact": (lambda o, x, y: o.gelu(x, approximate=False), lambda t, x, y: t.nn.gelu(x), "any"),
    "gelu_tanh": (lambda o, x, y: o.gelu(x), lambda t, x, y: t.nn.gelu(x, approximate=True), "any"),
    "softmax": (lambda o, x, y: o.softmax(x, axis=1), lambda t, x, y: t.nn.softmax(x, axis=1), "any"),
    "log_softmax": (lambda o, x, y: o.log_softmax(x), lambda t, x, y: t.nn.log_softmax(x), "any"),
    "softplus": (lambda o, x, y: o.softplus(x), lambda t, x, y: t.nn.softplus(x), "any"),
    "elu": (lambda o, x, y: o.elu(x, alpha=0.5), lambda t, x, y: t.nn.elu(x), "any"),
    "selu": (lambda o, x, y: o.selu(x), lambda t, x, y: t.nn.selu(x), "any"),
    "leaky_relu": (lambda o, x, y: o.leaky_relu(x, negative_slope=0.1), lambda t, x, y: t.nn.leaky_relu(x, 0.1),
                   "any"),
    "l2_normalize": (lambda o, x, y: o.normalize(x, axis=-1), lambda t, x, y: t.math.l2_normalize(x, axis=-1), "any"),
    "resize_bilinear": (lambda o, x, y: o.image.resize(x, (6, 7)), lambda t, x, y: t.image.resize(x, (6, 7)), "any"),
    "resize_nearest": (lambda o, x, y: o.image.resize(x, (7, 9), interpolation="nearest"),
                       lambda t, x, y: t.image.resize(x, (7, 9), method="nearest"), "any"),
}


def build_op_model(k, flavour: str, name: str):
    k3_fn, tf_fn, _ = OPS[name]
    x, y = k.Input(SHAPE, name="x"), k.Input(SHAPE, name="y")
    if flavour == "keras3":
        out = k3_fn(k.ops, x, y)
    else:
        out = tf_fn(tf(), x, y)
    return k.Model([x, y], out)


def op_inputs(kind: str) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    if kind == "positive":
        return [rng.uniform(0.5, 2.0, (2, *SHAPE)).astype("float32") for _ in range(2)]
    return [rng.standard_normal((2, *SHAPE)).astype("float32") for _ in range(2)]


@pytest.mark.parametrize("name", OPS)
def test_op(name, flavour, tmp_path):
    k3_fn, tf_fn, kind = OPS[name]
    if (k3_fn if flavour == "keras3" else tf_fn) is None:
        pytest.skip(f"{name}: {flavour} has no spelling of this operation (nothing to convert)")
    check_conversion(lambda k: build_op_model(k, flavour, name), flavour, tmp_path, inputs=op_inputs(kind),
                     formats=("keras",) if flavour == "keras3" else ("h5",))


def tf_keras_mixed(k):
    """A tf.keras functional model written with tf ops between layers, as users write them."""
    t = tf()
    x = k.Input((16, 16, 3))
    h = k.layers.Conv2D(8, 3, padding="same")(x)
    h = t.nn.relu(h * 0.5 + 0.1)
    h = t.concat([h, h[:, :, :, :4] - 1.0], axis=-1)
    h = k.layers.BatchNormalization()(h)
    h = h * t.sigmoid(t.reduce_mean(h, axis=[1, 2], keepdims=True))
    h = t.image.resize(h, (24, 24))
    h = k.layers.DepthwiseConv2D(3, strides=2)(h)
    h = h[:, 1:-1, ::2, :]
    pooled = t.reduce_max(h, axis=[1, 2])
    logits = k.layers.Dense(5)(t.nn.gelu(pooled))
    return k.Model(x, [t.nn.softmax(logits), t.reduce_sum(h, axis=-1)])


def keras3_mixed(k):
    ops = k.ops
    x = k.Input((16, 16, 3))
    h = k.layers.Conv2D(8, 3, padding="same")(x)
    h = ops.relu(h * 0.5 + 0.1)
    h = ops.concatenate([h, h[:, :, :, :4] - 1.0], axis=-1)
    h = k.layers.Add()([h, 2.0 * h])  # a layer called Add next to op nodes called Add
    h = k.layers.BatchNormalization()(h)
    h = h * ops.sigmoid(ops.mean(h, axis=(1, 2), keepdims=True))
    h = ops.image.resize(h, (24, 24))
    h = k.layers.DepthwiseConv2D(3, strides=2)(h)
    h = ops.transpose(h[:, 1:-1, ::2, :], (0, 3, 1, 2))
    pooled = ops.max(h, axis=(2, 3))
    logits = k.layers.Dense(5)(ops.gelu(pooled))
    return k.Model(x, [ops.softmax(logits), ops.sum(h, axis=1)])


def test_mixed_tf_keras_model(tmp_path):
    check_conversion(tf_keras_mixed, "tf_keras", tmp_path)


def test_mixed_keras3_model(tmp_path):
    check_conversion(keras3_mixed, "keras3", tmp_path)


def test_elementwise_ops_add_no_permutes(tmp_path):
    """Channels-first: ``relu6(x + 3) / 6`` between convolutions runs in the convolutions' layout."""
    import keras

    x = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3)(x)
    h = keras.layers.ReLU(6.0)(h + 3.0) * (1.0 / 6.0)
    h = keras.ops.mean(h, axis=(1, 2), keepdims=True) * h
    out = keras.layers.Conv2D(4, 1)(h)
    path = tmp_path / "m.keras"
    keras.Model(x, out).save(path)
    module = tf2torch.convert(path)
    assert [n for n in module.graph.nodes if n.target == "permute"] == []


def test_unsupported_ops_listed_with_layers(tmp_path):
    """Ops without a converter are named by their op, together with unsupported layers, before any output."""
    import tf_keras as k

    t = tf()
    x = k.Input((4, 3))
    h = t.math.cumsum(x, axis=1)
    h = k.layers.Lambda(lambda v: v * 2)(h)
    out = t.math.reduce_logsumexp(h, axis=1)
    path = tmp_path / "m.h5"
    k.Model(x, out).save(path)
    with pytest.raises(UnsupportedLayerError) as info:
        tf2torch.convert(path)
    message = str(info.value)
    assert "tf.math.cumsum" in message and "tf.math.reduce_logsumexp" in message and "Lambda" in message


REFUSED = {  # an argument tf2torch does not implement → refused by name
    "keras3_round_decimals": ("keras3", lambda k, x: k.ops.round(x, decimals=1), "decimals"),
    "keras3_resize_bicubic": ("keras3", lambda k, x: k.ops.image.resize(x, (5, 5), interpolation="bicubic"),
                              "bicubic"),
    "tf_silu_beta": ("tf_keras", lambda k, x: tf().nn.silu(x, beta=2.0), "beta"),
    "tf_resize_antialias": ("tf_keras", lambda k, x: tf().image.resize(x, (2, 2), antialias=True), "antialias"),
    "tf_gather_batch_dims": ("tf_keras", lambda k, x: tf().gather(x, [[0]] * 2, axis=1, batch_dims=1),
                             "batch_dims"),
    "tf_matmul_adjoint": ("tf_keras", lambda k, x: tf().linalg.matmul(x, x, adjoint_b=True), "adjoint_b"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unimplemented_argument_refused(case, tmp_path):
    flavour, fn, word = REFUSED[case]
    from harness import keras_module

    k = keras_module(flavour)
    x = k.Input((4, 4, 3))
    path = tmp_path / ("m.keras" if flavour == "keras3" else "m.h5")
    k.Model(x, fn(k, x)).save(path)
    with pytest.raises(tf2torch.Tf2TorchError, match=word):
        tf2torch.convert(path)


def test_saved_op_model_loads(tmp_path):
    """Op arguments live in the IR (plain JSON), so a saved ``.pt`` rebuilds the same module."""
    import keras
    import torch

    path = tmp_path / "m.keras"
    keras3_mixed(keras).save(path)
    module = tf2torch.convert(path)
    tf2torch.save(module, tmp_path / "m.pt")
    loaded = tf2torch.load(tmp_path / "m.pt")
    x = torch.randn(2, 3, 16, 16)
    for a, b in zip(module(x), loaded(x)):
        assert torch.equal(a, b)
