"""Keras 3 STFTSpectrogram: every output mode, both paddings (TF's SAME with a step that does not divide),
both data formats, expand_dims, several channels, windows and scalings (baked into the stored kernels), and
kernels changed after building (Keras can train them): compared with Keras 3 in both formats."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_conversion

from tf2torch.converters.spectrogram import dft_kernel_to_conv

CASES = {  # name → (input shape, layer arguments)
    "log": ((200, 1), dict(frame_length=32)),
    "magnitude_same": ((203, 2), dict(mode="magnitude", frame_length=30, frame_step=7, padding="same")),
    "psd_hamming": ((160, 1), dict(mode="psd", frame_length=24, frame_step=8, window="hamming", fft_length=64)),
    "real_periodic": ((150, 1), dict(mode="real", frame_length=16, periodic=True, scaling="spectrum")),
    "imag_no_scaling": ((150, 3), dict(mode="imag", frame_length=16, frame_step=5, scaling=None)),
    "angle": ((128, 1), dict(mode="angle", frame_length=16)),
    "stft_expand_dims": ((130, 2), dict(mode="stft", frame_length=20, frame_step=6, expand_dims=True)),
    "log_channels_first": ((2, 140), dict(frame_length=16, data_format="channels_first")),
    "magnitude_channels_first_expand": ((3, 99), dict(mode="magnitude", frame_length=12, padding="same",
                                                       data_format="channels_first", expand_dims=True)),
}


def spectrogram(case: str):
    shape, kwargs = CASES[case]

    def build(k):
        x = k.Input(shape)
        layer = k.layers.STFTSpectrogram(**kwargs, name="stft")
        model = k.Model(x, layer(x))
        rng = np.random.default_rng(4)  # trained kernels: the stored values decide, not the window
        layer.set_weights([w * rng.uniform(0.8, 1.2, w.shape).astype("float32") for w in layer.get_weights()])
        return model
    return build


@pytest.mark.parametrize("case", CASES)
def test_stft_spectrogram(case, tmp_path):
    if "channels_first" in case:
        pytest.skip("TF's CPU kernel cannot run this, so Keras itself cannot produce a reference (its NCW conv); "
                    "test_channels_first_is_the_channels_last_spectrogram_rearranged stands in")
    shape = CASES[case][0]
    x = np.random.default_rng(0).standard_normal((2, *shape)).astype("float32")
    check_conversion(spectrogram(case), "keras3", tmp_path, inputs=[x], layouts=("keras",))


@pytest.mark.parametrize("expand_dims", [False, True])
def test_channels_first_is_the_channels_last_spectrogram_rearranged(expand_dims, tmp_path):
    """Keras's own channels_last result on the same signal (channels last), with Keras's documented output
    shapes: (B, C*F, T') for (B, T', C*F); (B, C, T', F) for (B, T', F, C) with ``expand_dims``."""
    import torch
    from harness import keras_module

    import tf2torch

    k = keras_module("keras3")
    kwargs = dict(mode="magnitude", frame_length=12, frame_step=5, padding="same", expand_dims=expand_dims)
    x_last = k.Input((99, 3))
    last = k.layers.STFTSpectrogram(**kwargs, name="stft")
    reference = k.Model(x_last, last(x_last))
    x_first = k.Input((3, 99))
    first = k.layers.STFTSpectrogram(**kwargs, data_format="channels_first", name="stft")
    model = k.Model(x_first, first(x_first))
    first.set_weights(last.get_weights())
    model.save(str(tmp_path / "m.keras"))
    signal = np.random.default_rng(0).standard_normal((2, 99, 3)).astype("float32")
    want = np.asarray(reference(signal))
    want = want.transpose(0, 3, 1, 2) if expand_dims else want.transpose(0, 2, 1)
    module = tf2torch.convert(tmp_path / "m.keras", layout="keras")
    got = module(torch.from_numpy(signal.transpose(0, 2, 1).copy())).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_dft_kernel_to_conv():
    kernel = np.arange(5 * 3, dtype="float32").reshape(5, 1, 3)
    weight = dft_kernel_to_conv(kernel)
    assert weight.shape == (3, 1, 5)
    np.testing.assert_array_equal(weight[2, 0], kernel[:, 0, 2])
