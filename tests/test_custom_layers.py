"""Converters for your own layers: the README's worked example runs as written; lookup by Keras 3's
``registered_name``; ``inspect`` names each layer's converter; a ``.pt`` made with a custom converter says at load
time which converter to register."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tf2torch
from tf2torch.cli import main
from tf2torch.converters import registry
from tf2torch.errors import UnsupportedLayerError

README = Path(__file__).resolve().parents[1] / "docs" / "conversion.md"  # the worked example, moved from README.md


def readme_example() -> str:
    section = README.read_text().split("## Your own layers", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """Run the README example once (it registers ``my_package>Scale``) in a folder of its own."""
    folder = tmp_path_factory.mktemp("readme")
    import os

    cwd = os.getcwd()
    os.chdir(folder)
    try:
        namespace: dict = {"__name__": "readme_example"}
        exec(compile(readme_example(), "README.md", "exec"), namespace)  # the assert inside checks parity
    finally:
        os.chdir(cwd)
    return folder, namespace


def test_readme_example_matches_keras(example):
    folder, namespace = example
    assert (folder / "scaled.pt").is_file()
    module = tf2torch.convert(folder / "scaled.keras", layout="keras")
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 3)).astype("float32")
    import torch

    got = module(torch.from_numpy(x)).detach().numpy()
    expected = np.asarray(namespace["model"](x))
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


def test_inspect_names_each_converter(example):
    folder, _ = example
    result = CliRunner().invoke(main, ["inspect", str(folder / "scaled.keras")])
    assert result.exit_code == 0, result.output
    assert "custom readme_example.convert_scale" in result.output
    assert "conv.convert_conv" in result.output


def test_load_without_custom_converter_names_it(example):
    folder, _ = example
    saved = registry.CONVERTERS.pop("my_package>Scale")
    try:
        with pytest.raises(UnsupportedLayerError, match=r"my_package>Scale.*convert_scale"):
            tf2torch.load(folder / "scaled.pt")
    finally:
        registry.CONVERTERS["my_package>Scale"] = saved
    assert tf2torch.load(folder / "scaled.pt") is not None


def test_registered_name_shadowing_a_builtin_is_not_sent_to_it(tmp_path):
    """A custom class called ``Dense`` in package ``shadow`` is ``shadow>Dense``: no built-in converter."""
    import keras

    @keras.saving.register_keras_serializable(package="shadow")
    class Dense(keras.layers.Layer):
        def __init__(self, units=2, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], self.units))

        def call(self, x):
            return keras.ops.matmul(x, self.kernel) * 2.0

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    x = keras.Input((3,))
    path = tmp_path / "shadow.keras"
    keras.Model(x, Dense()(x)).save(path)
    with pytest.raises(UnsupportedLayerError, match=r"shadow>Dense"):
        tf2torch.convert(path)


def test_user_converter_for_an_op_spelling(tmp_path):
    """An operation tf2torch lacks can get a converter of yours under its spelling (``tf.math.cumsum``)."""
    import tensorflow as tf
    import tf_keras as k
    import torch

    x = k.Input((4, 3))
    model = k.Model(x, tf.math.cumsum(x, axis=1))
    path = tmp_path / "cumsum.h5"
    model.save(path)

    class CumSum(torch.nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            self.dim = dim

        def forward(self, x):
            return torch.cumsum(x, self.dim)

    def convert_cumsum(spec: tf2torch.LayerSpec) -> tf2torch.Converted:
        return tf2torch.Converted(CumSum(int(spec.call_kwargs["__kwargs__"]["axis"])), input_layouts="keras")

    tf2torch.register("tf.math.cumsum")(convert_cumsum)
    try:
        module = tf2torch.convert(path)
    finally:
        registry.CONVERTERS.pop("tf.math.cumsum")
    data = np.random.default_rng(0).standard_normal((2, 4, 3)).astype("float32")
    np.testing.assert_allclose(module(torch.from_numpy(data)).numpy(), np.asarray(model(data)), rtol=1e-5, atol=1e-6)
