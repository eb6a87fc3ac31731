"""Discretization and CategoryEncoding inside models, against both Keras versions: values on the boundaries
(Bucketize counts the boundaries <= x), one-hot, multi-hot and count vectors of (batch,), (batch, 1) and
(batch, n) tokens; out-of-range tokens raise; what is not converted is refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import FLAVOURS, check_conversion, keras_module

import tf2torch
from tf2torch.errors import ConversionError

BOUNDARIES = [-1.0, 0.0, 0.5, 2.0]
ON_AND_AROUND = np.array([[-1.0, 0.0, 0.5, 2.0], [-3.0, 0.25, 1.0, 9.0], [-1.0001, -0.0, 0.4999, 2.5]], "float32")
TOKENS = np.array([[0, 3, 3], [4, 1, 0], [2, 2, 2]], "int32")


def discretized(mode: str | None, width: int = 4):
    def build(k):
        x = k.Input((width,))
        h = k.layers.Discretization(bin_boundaries=BOUNDARIES, name="bins")(x)
        if mode is not None:
            h = k.layers.CategoryEncoding(num_tokens=5, output_mode=mode, name="encode")(h)
        return k.Model(x, h)
    return build


def encoded(mode: str, shape: tuple[int, ...]):
    def build(k):
        x = k.Input(shape, dtype="int32")
        h = k.layers.CategoryEncoding(num_tokens=5, output_mode=mode, name="encode")(x)
        return k.Model(x, k.layers.Dense(2, name="head")(h) if len(h.shape) == 2 else h)
    return build


CASES = {  # name → (build, inputs)
    "discretization": (discretized(None), [ON_AND_AROUND]),
    "discretization_one_hot": (discretized("one_hot", 1), [ON_AND_AROUND[:, :1]]),
    "discretization_multi_hot": (discretized("multi_hot"), [ON_AND_AROUND]),
    "discretization_count": (discretized("count"), [ON_AND_AROUND]),
    "count_dense": (encoded("count", (3,)), [TOKENS]),
    "multi_hot_dense": (encoded("multi_hot", (3,)), [TOKENS]),
    "one_hot_single_token": (encoded("one_hot", (1,)), [TOKENS[:, :1]]),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_categorical(flavour, case, tmp_path):
    build, inputs = CASES[case]
    check_conversion(build, flavour, tmp_path, inputs=inputs, layouts=("keras",))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_out_of_range_tokens_raise(flavour, tmp_path):
    model = encoded("count", (3,))(keras_module(flavour))
    model.save(str(tmp_path / "m.h5"))
    module = tf2torch.convert(tmp_path / "m.h5", layout="keras")
    for bad in (5, -1):
        with pytest.raises(ValueError, match=r"token values must be in \[0, 5\)"):
            module(torch.tensor([[0, bad, 1]]))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_refused_by_name(flavour, tmp_path):
    k = keras_module(flavour)
    x = k.Input((1,))
    model = k.Model(x, k.layers.Discretization(bin_boundaries=BOUNDARIES, output_mode="one_hot", name="bins")(x))
    model.save(str(tmp_path / "m.h5"))
    with pytest.raises(ConversionError, match="bins .*output_mode 'one_hot'"):
        tf2torch.convert(tmp_path / "m.h5")
