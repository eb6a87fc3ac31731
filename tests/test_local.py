"""LocallyConnected1D / LocallyConnected2D (tf_keras only; Keras 3 removed them): every implementation tf_keras
can store that tf2torch converts (1: the Keras 2.0 layout, 2: a masked dense kernel), both data formats,
strides, activations; implementation 3 (a sparse kernel) is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from harness import check_conversion, keras_module

import tf2torch
from tf2torch.converters.local import dense_kernel_to_local
from tf2torch.errors import ConversionError

CASES = {  # name → (layer class, input shape, constructor arguments)
    "1d": ("LocallyConnected1D", (11, 3), dict(filters=4, kernel_size=3)),
    "1d_strided_relu": ("LocallyConnected1D", (12, 2), dict(filters=3, kernel_size=4, strides=3, activation="relu")),
    "1d_impl2_no_bias": ("LocallyConnected1D", (9, 3), dict(filters=2, kernel_size=2, implementation=2,
                                                           use_bias=False)),
    "2d": ("LocallyConnected2D", (7, 6, 3), dict(filters=4, kernel_size=3)),
    "2d_strided_softmax": ("LocallyConnected2D", (9, 8, 2), dict(filters=5, kernel_size=(3, 2), strides=(2, 3),
                                                                 activation="softmax")),
    "2d_impl2": ("LocallyConnected2D", (8, 7, 3), dict(filters=3, kernel_size=(2, 3), strides=(2, 1),
                                                       implementation=2)),
    "2d_channels_first": ("LocallyConnected2D", (3, 7, 6), dict(filters=4, kernel_size=3, strides=2,
                                                                data_format="channels_first")),
    "2d_channels_first_impl2": ("LocallyConnected2D", (2, 6, 7), dict(filters=3, kernel_size=(2, 3),
                                                                      data_format="channels_first", implementation=2)),
}


def model_of(case: str):
    layer, shape, kwargs = CASES[case]

    def build(k):
        x = k.Input(shape)
        return k.Model(x, getattr(k.layers, layer)(**kwargs, bias_initializer="random_normal", name="local")(x))
    return build


@pytest.mark.parametrize("case", CASES)
def test_locally_connected(case, tmp_path):
    check_conversion(model_of(case), "tf_keras", tmp_path)


def test_implementation_3_is_refused(tmp_path):
    k = keras_module("tf_keras")
    x = k.Input((6, 2))
    model = k.Model(x, k.layers.LocallyConnected1D(2, 3, implementation=3, name="local")(x))
    model.save(str(tmp_path / "m.h5"))
    with pytest.raises(ConversionError, match="local .*implementation 3"):
        tf2torch.convert(tmp_path / "m.h5")


def test_dense_kernel_to_local_keeps_each_window():
    """A 1-D implementation-2 kernel (input 5, C 2, output 2, filters 1) with kernel 3, stride 2: position p reads
    inputs 2p..2p+2, flattened (window, C)."""
    dense = np.arange(5 * 2 * 2 * 1, dtype="float32").reshape(5, 2, 2, 1)
    local = dense_kernel_to_local(dense, (3,), (2,), (2,), channels_first=False)
    assert local.shape == (2, 6, 1)
    np.testing.assert_array_equal(local[1, :, 0], dense[2:5, :, 1, 0].reshape(-1))
