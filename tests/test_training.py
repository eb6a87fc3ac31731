"""Training like Keras, against Keras 3 and tf_keras.

- One SGD step with the same data and loss (MSE plus ``model.losses``) in Keras and in torch, for a CNN with batch
  norm (momenta far from 0.99, a frozen BN, a BN on features: Keras 3 and tf.keras's non-fused path update the
  moving variance with the biased batch variance, tf.keras's fused kernel with the unbiased one), an LSTM/GRU model
  and a transformer encoder. The torch state after its step is compared with the conversion of the Keras model
  after Keras's step: every updated weight and moving statistic within 1e-5 (max relative error), and the updates
  themselves (after − before) within 1e-4, so a wrong gradient or momentum cannot hide behind a small step.
- Dropout and the noise layers: identity in eval mode, Keras's statistics in train mode (measured on Keras's own
  train-mode output and on torch's).
- ``trainable=False`` → ``requires_grad=False``; ``regularization_loss`` equals ``sum(model.losses)``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import formats_for, keras_module, max_rel_error, to_torch_input

import tf2torch
from tf2torch.converters.normalization import batch_norm_training
from tf2torch.converters.registry import LayerSpec
from tf2torch.errors import ConversionError
from tf2torch.layout import KERAS

LR = 0.5
WEIGHT_RTOL = 1e-5
UPDATE_RTOL = 1e-4


# -- one SGD step --------------------------------------------------------------------------------------------
def cnn(k):
    inputs = k.Input((6, 6, 3))
    x = k.layers.Conv2D(4, 3, padding="same", use_bias=False)(inputs)  # a bias before BN gets no gradient
    x = k.layers.BatchNormalization(momentum=0.5)(x)
    x = k.layers.ReLU()(x)
    x = k.layers.SpatialDropout2D(0.0)(x)
    x = k.layers.Conv2D(5, 3, strides=2, use_bias=False)(x)
    x = k.layers.BatchNormalization(trainable=False)(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(6, use_bias=False, kernel_regularizer=k.regularizers.L2(0.01))(x)
    x = k.layers.BatchNormalization(momentum=0.3, center=False)(x)
    x = k.layers.Dropout(0.0)(x)
    return k.Model(inputs, k.layers.Dense(2)(x))


def lstm(k):
    inputs = k.Input((5, 4))
    x = k.layers.LSTM(6, return_sequences=True, bias_regularizer=k.regularizers.L1(0.01))(inputs)
    x = k.layers.GRU(4)(x)
    return k.Model(inputs, k.layers.Dense(2)(x))


def transformer_encoder(k):
    inputs = k.Input((5, 8))
    attended = k.layers.MultiHeadAttention(num_heads=2, key_dim=4, dropout=0.0)(inputs, inputs)
    x = k.layers.LayerNormalization(epsilon=1e-6)(k.layers.Add()([inputs, k.layers.Dropout(0.0)(attended)]))
    ffn = k.layers.Dense(8)(k.layers.Dense(16, activation="relu")(x))
    x = k.layers.LayerNormalization(epsilon=1e-6)(k.layers.Add()([x, k.layers.Dropout(0.0)(ffn)]))
    return k.Model(inputs, k.layers.Dense(2)(k.layers.GlobalAveragePooling1D()(x)))


def keras_sgd_step(model, x: np.ndarray, target: np.ndarray) -> None:
    import tensorflow as tf

    with tf.GradientTape() as tape:
        out = model(x, training=True)
        loss = tf.reduce_mean(tf.square(out - target)) + tf.add_n([tf.zeros(())] + list(model.losses))
    grads = tape.gradient(loss, model.trainable_weights)
    for variable, grad in zip(model.trainable_weights, grads):
        variable.assign_sub(LR * tf.convert_to_tensor(grad))


def torch_sgd_step(module: torch.nn.Module, x: torch.Tensor, target: torch.Tensor) -> None:
    module.train()
    loss = (module(x) - target).square().mean() + tf2torch.regularization_loss(module)
    loss.backward()
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p -= LR * p.grad


def comparable_state(module: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items() if "num_batches_tracked" not in k}


@pytest.mark.parametrize("build,layout", [(cnn, "channels_first"), (cnn, "keras"), (lstm, "keras"),
                                          (transformer_encoder, "keras")],
                         ids=["cnn-channels_first", "cnn-keras", "lstm", "transformer_encoder"])
def test_one_sgd_step_matches_keras(flavour, tmp_path, build, layout):
    k = keras_module(flavour)
    k.utils.set_random_seed(0)
    model = build(k)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, *model.input_shape[1:])).astype("float32") * 2 + 0.5
    target = rng.standard_normal((4, *model.output_shape[1:])).astype("float32")
    fmt = formats_for(flavour)[0]
    before_path, after_path = tmp_path / f"before.{fmt}", tmp_path / f"after.{fmt}"
    model.save(str(before_path))
    keras_sgd_step(model, x, target)
    model.save(str(after_path))

    module = tf2torch.convert(before_path, layout=layout)
    before = comparable_state(module)
    torch_sgd_step(module, to_torch_input(x, layout), torch.from_numpy(target))
    got = comparable_state(module)
    want = comparable_state(tf2torch.convert(after_path, layout=layout))
    assert got.keys() == want.keys()
    changed = 0
    for name in want:
        assert max_rel_error(got[name], want[name]) <= WEIGHT_RTOL, f"{name} after the step"
        update, keras_update = got[name] - before[name], want[name] - before[name]
        if np.abs(keras_update).max() > 0:
            changed += 1
            assert max_rel_error(update, keras_update) <= UPDATE_RTOL, f"{name}: the update differs"
        else:
            assert np.abs(update).max() == 0, f"{name} changed in torch but not in Keras"
    assert changed >= len(want) // 2  # the step really moved the model


@pytest.mark.parametrize("version,rank,config,biased,refused", [
    ("3.15.1", 4, {}, True, False),             # [K3]: ops.moments, biased
    ("2.21.0", 4, {}, False, False),            # [TFK] fused kernel: Bessel-corrected, as torch
    ("2.21.0", 2, {}, True, False),             # [TFK] non-fused: biased
    ("2.21.0", 4, {"fused": False}, True, False),
    ("2.21.0", 4, {"renorm": True}, True, True),
    ("2.21.0", 4, {"virtual_batch_size": 2}, True, True),
    ("2.2.4", 4, {}, False, True),              # standalone Keras 2.2: its own correction, not reproduced
    ("2.2.4-tf", 4, {}, False, False),
])
def test_batch_norm_training_mode_by_writer(version, rank, config, biased, refused):
    spec = LayerSpec(name="bn", class_name="BatchNormalization", config=config, input_shapes=[(None,) * rank],
                     input_layouts=[KERAS], input_dtypes=[torch.float32], keras_version=version)
    training = batch_norm_training(spec, [rank - 1], rank)
    assert training["biased_moving_variance"] == biased and bool(training["training_refusal"]) == refused


# -- dropout and noise: identity in eval, Keras's statistics in train mode ------------------------------------
def dropped_fraction(x, y):
    return [float(np.mean(y == 0))]


def kept_scale(rate):
    def statistic(x, y):
        kept = y != 0
        return [float(np.mean(y == 0)), float(np.max(np.abs(y[kept] - x[kept] / (1 - rate))))]

    return statistic


def channel_drops(x, y):
    """Fraction of dropped (sample, channel) maps; each map is all dropped or all kept (scaled)."""
    zero = y == 0
    whole = zero.all(axis=(1, 2)) | ~zero.any(axis=(1, 2))
    return [float(zero.all(axis=(1, 2)).mean()), float(whole.mean())]


def channel_drops_1d(x, y):
    zero = y == 0
    return [float(zero.all(axis=1).mean()), float((zero.all(axis=1) | ~zero.any(axis=1)).mean())]


def moments(x, y):
    return [float(np.mean(y - x)), float(np.std(y - x))]


def ratio_moments(x, y):
    return [float(np.mean(y / x)), float(np.std(y / x))]


def output_moments(x, y):
    """Mean, variance and the share of the one value every dropped unit takes."""
    _, counts = np.unique(y, return_counts=True)
    return [float(np.mean(y)), float(np.var(y)), float(counts.max() / y.size)]


def sample_drops(rate):
    """Fraction of dropped samples, fraction of samples dropped or kept whole, worst error of the kept scale."""
    def statistic(x, y):
        axes = tuple(range(1, y.ndim))
        zero = y == 0
        kept = ~zero.any(axis=axes)
        return [float(zero.all(axis=axes).mean()), float((zero.all(axis=axes) | kept).mean()),
                float(np.max(np.abs(y[kept] - x[kept] / (1 - rate))))]

    return statistic


def stochastic_depth(k, rate):
    """The applications' own layer (ConvNeXt), from the Keras version at hand."""
    if k.__name__ == "tf_keras":
        from tf_keras.src.applications.convnext import StochasticDepth
    else:
        from keras.src.applications.convnext import StochasticDepth
    return StochasticDepth(rate)


NOISE_CASES = {
    "dropout": (lambda k: k.layers.Dropout(0.3), (32, 64), kept_scale(0.3)),
    "dropout_noise_shape": (lambda k: k.layers.Dropout(0.4, noise_shape=(None, 1, 1, 64)), (64, 3, 3, 64),
                            channel_drops),
    "spatial_dropout1d": (lambda k: k.layers.SpatialDropout1D(0.4), (64, 4, 64), channel_drops_1d),
    "spatial_dropout2d": (lambda k: k.layers.SpatialDropout2D(0.4), (64, 3, 3, 64), channel_drops),
    "gaussian_noise": (lambda k: k.layers.GaussianNoise(0.5), (32, 8, 8, 4), moments),
    "gaussian_dropout": (lambda k: k.layers.GaussianDropout(0.2), (32, 256), ratio_moments),
    "alpha_dropout": (lambda k: k.layers.AlphaDropout(0.2), (64, 256), output_moments),
    "stochastic_depth": (lambda k: stochastic_depth(k, 0.4), (2048, 2, 2, 3), sample_drops(0.4)),
}


@pytest.mark.parametrize("case", list(NOISE_CASES))
def test_noise_layers_train_like_keras(flavour, tmp_path, case):
    make, shape, statistic = NOISE_CASES[case]
    k = keras_module(flavour)
    model = k.Sequential([k.Input(shape[1:]), make(k)])
    k.utils.set_random_seed(0)  # both draws seeded: the comparison of statistics is deterministic
    x = np.random.default_rng(0).standard_normal(shape).astype("float32")
    x[np.abs(x) < 1e-3] = 1.0  # no exact zeros in the input: a zero output means dropped
    keras_stats = statistic(x, np.asarray(model(x, training=True)))
    path = tmp_path / f"noise.{formats_for(flavour)[0]}"
    model.save(str(path))
    for layout in ("channels_first", "keras"):
        module = tf2torch.convert(path, layout=layout)
        xt = to_torch_input(x, layout)
        assert torch.equal(module(xt), xt), "eval mode is not the identity"
        module.train()
        torch.manual_seed(0)
        y = module(xt)
        y = (y.permute(0, *range(2, y.dim()), 1) if layout == "channels_first" and y.dim() == 4 else y).numpy()
        np.testing.assert_allclose(statistic(x, y), keras_stats, atol=0.04, err_msg=f"{case} layout={layout}")


def test_rnn_dropout_refuses_train_mode(flavour, tmp_path):
    k = keras_module(flavour)
    model = k.Sequential([k.Input((5, 3)), k.layers.LSTM(4, dropout=0.2, name="encoder")])
    path = tmp_path / f"m.{formats_for(flavour)[0]}"
    model.save(str(path))
    module = tf2torch.convert(path)
    x = torch.randn(2, 5, 3)
    module(x)  # eval mode is exact (Keras applies no dropout at inference)
    with pytest.raises(RuntimeError, match="encoder: LSTM with dropout=0.2"):
        module.train()(x)


def test_attention_dropout_is_active_in_train_mode(flavour, tmp_path):
    k = keras_module(flavour)
    inputs = k.Input((6, 8))
    model = k.Model(inputs, k.layers.MultiHeadAttention(2, 4, dropout=0.5)(inputs, inputs))
    path = tmp_path / f"m.{formats_for(flavour)[0]}"
    model.save(str(path))
    module = tf2torch.convert(path)
    x = torch.randn(3, 6, 8)
    assert torch.equal(module(x), module(x))
    module.train()
    assert not torch.equal(module(x), module(x))


# -- trainable=False and regularizers ------------------------------------------------------------------------
def test_trainable_false_freezes_parameters(flavour, tmp_path):
    k = keras_module(flavour)
    model = k.Sequential([k.Input((4,)), k.layers.Dense(3, name="frozen", trainable=False),
                          k.layers.BatchNormalization(name="frozen_bn", trainable=False),
                          k.layers.Dense(2, name="free")])
    path = tmp_path / f"m.{formats_for(flavour)[0]}"
    model.save(str(path))
    tf2torch.save(tf2torch.convert(path), tmp_path / "m.pt")
    module = tf2torch.load(tmp_path / "m.pt")  # what load rebuilds trains as what convert returns
    grads = {name: p.requires_grad for name, p in module.named_parameters()}
    assert grads == {"frozen.weight": False, "frozen.bias": False, "frozen_bn.weight": False,
                     "frozen_bn.bias": False, "free.weight": True, "free.bias": True}
    x = np.random.default_rng(0).standard_normal((8, 4)).astype("float32") * 3
    stats = {k_: v.clone() for k_, v in module.frozen_bn.state_dict().items()}
    got = module.train()(torch.from_numpy(x)).detach().numpy()
    assert max_rel_error(got, np.asarray(model(x, training=True))) <= 1e-5  # the frozen BN in inference mode
    assert all(torch.equal(v, module.frozen_bn.state_dict()[k_]) for k_, v in stats.items())


def regularized(k):
    r = k.regularizers
    inputs = k.Input((6, 6, 3))
    x = k.layers.Conv2D(4, 3, kernel_regularizer=r.L1L2(0.01, 0.02), bias_regularizer=r.L2(0.1))(inputs)
    x = k.layers.BatchNormalization(gamma_regularizer=r.L2(0.3), beta_regularizer=r.L1(0.2))(x)
    x = k.layers.SeparableConv2D(3, 2, depthwise_regularizer=r.L1(0.05), pointwise_regularizer=r.L2(0.05))(x)
    x = k.layers.Reshape((9, 3))(x)
    x = k.layers.LSTM(4, return_sequences=True, kernel_regularizer=r.L2(0.01),
                      recurrent_regularizer=r.L1(0.01), bias_regularizer=r.L1L2(0.02, 0.03),
                      activity_regularizer=r.L2(0.05))(x)
    x = k.layers.ActivityRegularization(l1=0.01, l2=0.02)(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(3, kernel_regularizer=r.L2(0.5), trainable=False)(x)
    return k.Model(inputs, k.layers.Dense(2, activity_regularizer=r.L1(0.25))(x))


def test_regularization_loss_matches_model_losses(flavour, tmp_path):
    """Keras 3 counts trainable weights only (the frozen Dense's L2 is left out), tf.keras all of them."""
    k = keras_module(flavour)
    model = regularized(k)
    for layer in model.layers:  # non-zero betas/biases so that their penalties count
        layer.set_weights([w + 0.1 for w in layer.get_weights()])
    x = np.random.default_rng(0).standard_normal((3, 6, 6, 3)).astype("float32")
    model(x, training=True)
    want = float(sum(np.asarray(loss) for loss in model.losses))
    path = tmp_path / f"m.{formats_for(flavour)[0]}"
    model.save(str(path))
    for layout in ("channels_first", "keras"):
        module = tf2torch.convert(path, layout=layout).train()
        module(to_torch_input(x, layout))
        got = float(tf2torch.regularization_loss(module))
        assert abs(got - want) <= 1e-5 * abs(want), f"layout={layout}: {got} vs Keras {want}"
        module(to_torch_input(x, layout))  # a second call replaces the activity terms, as in Keras
        assert abs(float(tf2torch.regularization_loss(module)) - want) <= 1e-5 * abs(want)


def test_unplaceable_regularizer_is_refused(flavour, tmp_path):
    k = keras_module(flavour)
    model = k.Sequential([k.Input((5, 3)), k.layers.Bidirectional(
        k.layers.LSTM(2, kernel_regularizer=k.regularizers.L2(0.1)), name="bidi")])
    path = tmp_path / f"m.{formats_for(flavour)[0]}"
    model.save(str(path))
    module = tf2torch.convert(path)  # converting still works: regularizers do not change inference
    with pytest.raises(ConversionError, match="bidi .*layer.kernel_regularizer"):
        tf2torch.regularization_loss(module)
