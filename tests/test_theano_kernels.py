"""Models trained with Keras's Theano backend (the ``.h5`` attribute ``backend = "theano"``).

Theano's convolution flips the kernel; Keras 2.0-2.3 flipped the spatial axes of the kernels of Conv1D/2D/3D,
Conv2DTranspose and ConvLSTM2D (also its recurrent kernel) when loading such a file into TensorFlow (keras 2.3.1
``keras/engine/saving.py``, ``_need_convert_kernel``); tf_keras and Keras 3 do not. By default the conversion
matches today's Keras and says so; ``flip_theano_kernels=True`` matches the model as Keras 2.3 loaded it, which
these tests rebuild by flipping the kernels of today's Keras model themselves (``np.flip`` on every axis but the
two channel axes, layer by layer as Keras 2.3 did) and comparing."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from harness import FLAVOURS, RTOL, assert_matches, keras_module, keras_outputs, random_inputs, torch_outputs

import tf2torch
from tf2torch.errors import ConversionNotice, Tf2TorchError
from tf2torch.theano_kernels import flip_kernel


def conv_stack(k):
    x = k.Input((9, 9, 3))
    h = k.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    h = k.layers.DepthwiseConv2D(3, name="depthwise")(h)  # not flipped by Keras 2.3
    h = k.layers.Conv2DTranspose(2, 3, strides=2, name="deconv")(h)
    return k.Model(x, k.layers.Dense(3, name="head")(k.layers.Flatten()(h)))


def conv1d(k):
    x = k.Input((12, 2))
    return k.Model(x, k.layers.Conv1D(3, 4, dilation_rate=2, name="conv")(x))


def conv3d(k):
    x = k.Input((5, 6, 6, 2))
    return k.Model(x, k.layers.Conv3D(3, (2, 3, 3), name="conv")(x))


def time_distributed(k):
    x = k.Input((3, 6, 6, 2))
    return k.Model(x, k.layers.TimeDistributed(k.layers.Conv2D(2, 3), name="td")(x))


def conv_lstm(k):
    x = k.Input((3, 6, 6, 2))
    return k.Model(x, k.layers.ConvLSTM2D(2, 3, padding="same", name="convlstm")(x))


CASES = {"conv_stack": (conv_stack, 2), "conv1d": (conv1d, 1), "conv3d": (conv3d, 1),
         "time_distributed": (time_distributed, 1), "conv_lstm": (conv_lstm, 2)}  # builder, kernels flipped


def flipped_as_keras_2_3_loaded_it(model) -> None:
    """Keras 2.3's load-time flip, done here on today's Keras model: kernel (weights[0]) of the listed classes,
    and ConvLSTM2D's recurrent kernel (weights[1])."""
    for layer in model.layers:
        inner = layer.layer if type(layer).__name__ == "TimeDistributed" else layer
        kind = type(inner).__name__
        if kind not in ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "ConvLSTM2D"):
            continue
        weights = layer.get_weights()
        for i in (0, 1) if kind == "ConvLSTM2D" else (0,):
            w = weights[i]
            weights[i] = w[tuple(slice(None, None, -1) for _ in range(w.ndim - 2))]
        layer.set_weights(weights)


def save_as_theano_trained(model, path) -> None:
    model.save(str(path))
    with h5py.File(path, "r+") as f:
        f.attrs["backend"] = "theano"


def test_flip_kernel_reverses_the_spatial_axes_only():
    kernel = np.arange(2 * 3 * 4 * 5, dtype="float32").reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(flip_kernel(kernel), kernel[::-1, ::-1])
    np.testing.assert_array_equal(flip_kernel(flip_kernel(kernel)), kernel)
    kernel1d = np.arange(24, dtype="float32").reshape(4, 2, 3)
    np.testing.assert_array_equal(flip_kernel(kernel1d), kernel1d[::-1])


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_theano_trained_h5(flavour, case, tmp_path):
    build, n_flipped = CASES[case]
    model = build(keras_module(flavour))
    x = random_inputs(model)
    path = tmp_path / "theano.h5"
    save_as_theano_trained(model, path)

    with warnings.catch_warnings(record=True) as caught:  # by default: as today's Keras reads the file
        warnings.simplefilter("always", ConversionNotice)
        module = tf2torch.convert(path)
    notices = [str(w.message) for w in caught if issubclass(w.category, ConversionNotice)]
    assert any("Theano" in n and f"{n_flipped} kernel(s)" in n for n in notices), notices
    assert_matches(torch_outputs(module, x, "channels_first"), keras_outputs(model, x), RTOL, f"{case} as read")

    flipped = tf2torch.convert(path, flip_theano_kernels=True)
    reference = keras_outputs(model, x)
    flipped_as_keras_2_3_loaded_it(model)
    as_trained = keras_outputs(model, x)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(as_trained, reference)) > 1e-3  # the flip shows
    assert_matches(torch_outputs(flipped, x, "channels_first"), as_trained, RTOL, f"{case} as trained")
    report = tf2torch.verify(path, flipped)
    assert report.ok, report.summary() if hasattr(report, "summary") else report


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_flipping_a_file_trained_with_tensorflow_is_refused(flavour, tmp_path):
    model = conv1d(keras_module(flavour))
    path = tmp_path / "tf.h5"
    model.save(str(path))
    with h5py.File(path, "r+") as f:
        f.attrs["backend"] = "tensorflow"
    with pytest.raises(Tf2TorchError, match="tensorflow backend.*nothing to flip"):
        tf2torch.convert(path, flip_theano_kernels=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConversionNotice)  # and no notice without the flag
        tf2torch.convert(path)
