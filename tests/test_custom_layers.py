"""Converters for your own layers: the README's worked example runs as written; lookup by Keras 3's
``registered_name``; ``inspect`` names each layer's converter; a ``.pt`` made with a custom converter says at load
time which converter to register."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
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


# -- a user's own class named like a Keras layer (issue 27) ------------------------------------------------------
GEMMA_MODULE = "keras_hub.src.models.gemma.rms_normalization"


def user_layer_normalization(keras):
    """The issue's layer: the user's own ``LayerNormalization``, ``x * (1 + gamma) + beta``, defined in
    ``__main__`` (Keras writes ``module: null``); its weights have Keras's names and shapes."""

    class LayerNormalization(keras.layers.Layer):
        def build(self, input_shape):
            self.gamma = self.add_weight(shape=(input_shape[-1],), initializer="random_normal", name="gamma")
            self.beta = self.add_weight(shape=(input_shape[-1],), initializer="random_normal", name="beta")

        def call(self, x):
            return x * (1.0 + self.gamma) + self.beta

    LayerNormalization.__module__ = "__main__"
    return LayerNormalization


def gemma_rms_normalization(keras, registered: bool):
    """keras_hub's Gemma ``RMSNormalization`` (``x / sqrt(mean(x²) + eps) * (1 + scale)``; Keras core's computes
    ``* scale``), emulated: keras_hub is not installed. Source: keras-team/keras-hub
    ``keras_hub/src/models/gemma/rms_normalization.py`` (the class, with no ``@keras_hub_export``, so it is not
    registered: Keras writes ``registered_name: "RMSNormalization"`` and its module), and
    ``keras_hub/src/api_export.py`` ``maybe_register_serializable`` (an exported class is registered with
    package ``keras_nlp`` and then ``keras_hub``: Keras writes ``keras_hub>Name``), the ``registered`` case."""

    class RMSNormalization(keras.layers.Layer):
        def __init__(self, epsilon=1e-6, **kwargs):
            super().__init__(**kwargs)
            self.epsilon = epsilon

        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="random_normal")

        def call(self, x):
            var = keras.ops.mean(keras.ops.square(x), axis=-1, keepdims=True)
            return x * keras.ops.reciprocal(keras.ops.sqrt(var + self.epsilon)) * (1 + self.scale)

        def get_config(self):
            return {**super().get_config(), "epsilon": self.epsilon}

    RMSNormalization.__module__ = GEMMA_MODULE
    if registered:
        keras.saving.register_keras_serializable(package="keras_nlp")(RMSNormalization)
        RMSNormalization = keras.saving.register_keras_serializable(package="keras_hub")(RMSNormalization)
    return RMSNormalization


class OnePlusScale(torch.nn.Module):
    """``normalize(x) * (1 + scale) + shift`` over the last axis: the two issue layers in torch."""

    def __init__(self, scale, shift, epsilon: float | None):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.from_numpy(scale))
        self.shift = torch.nn.Parameter(torch.from_numpy(shift))
        self.epsilon = epsilon

    def forward(self, x):
        if self.epsilon is not None:
            x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.epsilon)
        return x * (1 + self.scale) + self.shift


def convert_user_ln(spec: tf2torch.LayerSpec) -> tf2torch.Converted:
    gamma, beta = spec.weights(expected=2)
    return tf2torch.Converted(OnePlusScale(gamma, beta, None), input_layouts="keras")


def convert_gemma_rms(spec: tf2torch.LayerSpec) -> tf2torch.Converted:
    (scale,) = spec.weights(expected=1)
    return tf2torch.Converted(OnePlusScale(scale, np.zeros_like(scale), float(spec.config["epsilon"])),
                              input_layouts="keras")


ISSUE_MODELS = [  # (layer factory, the spelling tf2torch gives the class, its converter)
    (lambda k: user_layer_normalization(k), "__main__.LayerNormalization", convert_user_ln),
    (lambda k: gemma_rms_normalization(k, False), f"{GEMMA_MODULE}.RMSNormalization", convert_gemma_rms),
    (lambda k: gemma_rms_normalization(k, True), "keras_hub>RMSNormalization", convert_gemma_rms),
]


@pytest.mark.parametrize("make, spelled, convert", ISSUE_MODELS, ids=["main_ln", "gemma_rms", "exported_rms"])
def test_user_class_named_like_keras_is_refused_then_converted_by_its_own_converter(make, spelled, convert,
                                                                                   tmp_path):
    """Issue 27: both models were converted with Keras's converter, exit 0, relative error 0.77 and 0.72. Now
    the CLI refuses each by name (exit 2, how to register a converter); the converter registered under the
    spelling it names converts it within 1e-5 of Keras, and ``.pt`` remembers it."""
    import keras

    x = keras.Input((6,))
    model = keras.Model(x, make(keras)(name="norm")(x))
    path = tmp_path / "user.keras"
    model.save(path)
    result = CliRunner().invoke(main, ["convert", str(path), str(tmp_path / "u.pt")])
    assert result.exit_code == 2, result.output
    assert f"norm ({spelled}: the file says this is your own class" in result.output
    assert f"@tf2torch.register({spelled!r})" in result.output
    assert not (tmp_path / "u.pt").exists()

    tf2torch.register(spelled)(convert)
    try:
        module = tf2torch.convert(path, layout="keras")
        data = np.random.default_rng(0).standard_normal((4, 6)).astype("float32")
        got, expected = module(torch.from_numpy(data)).detach().numpy(), np.asarray(model(data))
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
        tf2torch.save(module, tmp_path / "u.pt")
        assert registry.custom_converters([spelled]) == {spelled: f"{__name__}.{convert.__name__}"}
        reloaded = tf2torch.load(tmp_path / "u.pt")
        assert np.array_equal(reloaded(torch.from_numpy(data)).detach().numpy(), got)
    finally:
        registry.CONVERTERS.pop(spelled)


def test_bare_name_registration_still_converts_a_users_class(tmp_path):
    """A converter the user registered under the bare class name (``@tf2torch.register("Shift")``, before
    classes had a spelling of their own) still converts ``__main__.Shift``; a converter tf2torch ships under a
    bare name never does (the table test in test_right_or_refused.py)."""
    import keras

    class Shift(keras.layers.Layer):
        def call(self, x):
            return x + 3.0

    x = keras.Input((2,))
    path = tmp_path / "shift.keras"
    keras.Model(x, Shift()(x)).save(path)

    class AddThree(torch.nn.Module):
        def forward(self, x):
            return x + 3.0

    tf2torch.register("Shift")(lambda spec: tf2torch.Converted(AddThree()))
    try:
        module = tf2torch.convert(path)
        assert registry.describe_converter("__main__.Shift").startswith("custom ")
    finally:
        registry.CONVERTERS.pop("Shift")
    assert torch.equal(module(torch.zeros(1, 2)), torch.full((1, 2), 3.0))


def test_docs_example_converts_gemma_rms_normalization(tmp_path):
    """docs/custom-layers.md's converter for keras_hub's Gemma ``RMSNormalization`` runs as written and matches
    Keras within 1e-5."""
    import keras

    docs = Path(__file__).resolve().parents[1] / "docs" / "custom-layers.md"
    code = re.search(r"```python\n(.*?)```", docs.read_text(), re.S).group(1)
    x = keras.Input((5, 6))
    model = keras.Model(x, gemma_rms_normalization(keras, False)(epsilon=1e-5)(x))
    model.save(tmp_path / "gemma.keras")
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(code, "custom-layers.md", "exec"), namespace)
    try:
        module = tf2torch.convert(tmp_path / "gemma.keras", layout="keras")
    finally:
        registry.CONVERTERS.pop(f"{GEMMA_MODULE}.RMSNormalization")
    data = np.random.default_rng(3).standard_normal((2, 5, 6)).astype("float32")
    got, expected = module(torch.from_numpy(data)).detach().numpy(), np.asarray(model(data))
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
