"""Random image augmentation layers inside models (Keras's image-classification examples put a
``data_augmentation`` block first): at inference Keras returns the input, except tf_keras's RandomCrop, which
resizes as ``smart_resize`` does. Each layer, with options that would change a training run, is converted and
compared with Keras in both layouts and formats; the converted module refuses train mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import FLAVOURS, check_conversion, formats_for, keras_module

import tf2torch
from tf2torch.converters.augmentation import IDENTITY_AT_INFERENCE

CASES = {  # layer → constructor arguments (options that change a training run, none at inference)
    "RandomFlip": dict(mode="horizontal_and_vertical", seed=3),
    "RandomRotation": dict(factor=0.3, fill_mode="constant", interpolation="nearest"),
    "RandomZoom": dict(height_factor=(-0.3, 0.2), width_factor=0.1, fill_mode="wrap"),
    "RandomTranslation": dict(height_factor=0.2, width_factor=(-0.1, 0.3)),
    "RandomContrast": dict(factor=0.9),
    "RandomBrightness": dict(factor=(-0.5, 0.5), value_range=(0, 255)),
    "RandomHeight": dict(factor=0.3),
    "RandomWidth": dict(factor=(0.1, 0.4)),
    "RandomHue": dict(factor=0.5, value_range=(0, 255)),
    "RandomSaturation": dict(factor=0.7),
    "RandomSharpness": dict(factor=0.5),
    "RandomShear": dict(x_factor=0.3, y_factor=0.2),
    "RandomPosterization": dict(factor=(1, 4), value_range=(0, 255)),
    "RandomColorDegeneration": dict(factor=0.8),
    "RandomColorJitter": dict(brightness_factor=0.2, contrast_factor=0.5, saturation_factor=0.5),
    "RandomGaussianBlur": dict(factor=1.0, sigma=0.8),
    "RandomErasing": dict(factor=1.0, scale=(0.2, 0.4)),
    "RandomPerspective": dict(factor=1.0, scale=0.5),
    "RandomElasticTransform": dict(factor=1.0, scale=0.5),
    "RandomGrayscale": dict(factor=1.0),
    "RandomInvert": dict(factor=1.0),
    "Solarization": dict(addition_factor=0.5, threshold_factor=0.5),
    "AugMix": dict(),
    "CutMix": dict(factor=1.0),
    "MixUp": dict(alpha=0.8),
    "RandAugment": dict(num_ops=3),
    "RandomCrop": dict(height=8, width=6),  # tf_keras: smart_resize at inference; Keras 3: unchanged
}


def augmented(layer: str):
    def build(k):
        x = k.Input((12, 12, 3))
        h = getattr(k.layers, layer)(**CASES[layer], name="augment")(x)
        return k.Model(x, k.layers.Conv2D(2, 3, name="conv")(h))
    return build


def test_every_identity_converter_is_in_the_table():
    assert set(IDENTITY_AT_INFERENCE) | {"RandomCrop"} == set(CASES)


@pytest.mark.parametrize("layer", CASES)
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_augmentation_at_inference(flavour, layer, tmp_path):
    k = keras_module(flavour)
    if not hasattr(k.layers, layer):
        pytest.skip(f"{flavour} has no {layer}")
    inputs = [np.random.default_rng(0).uniform(0, 255, (2, 12, 12, 3)).astype("float32")]
    formats = savable_formats(augmented(layer)(k), flavour, tmp_path)
    check_conversion(augmented(layer), flavour, tmp_path, inputs=inputs, formats=formats)


def savable_formats(model, flavour: str, tmp_path) -> list[str]:
    """The formats Keras itself can write this model in (Keras 3.15 cannot write RandomBrightness, RandomSaturation
    and a few others to .h5: their config holds a module object that ``copy.deepcopy`` refuses)."""
    formats = []
    for fmt in formats_for(flavour):
        try:
            model.save(str(tmp_path / f"probe.{fmt}"))
            formats.append(fmt)
        except TypeError as exc:
            assert "pickle" in str(exc), exc
    assert formats, "Keras could write the model in no format"
    return formats


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_random_crop_is_a_resize_in_tf_keras_only(flavour, tmp_path):
    model = augmented("RandomCrop")(keras_module(flavour))
    path = tmp_path / "m.h5"
    model.save(str(path))
    module = tf2torch.convert(path, layout="keras")
    out = module(torch.zeros(1, 12, 12, 3))
    assert tuple(out.shape) == ((1, 6, 4, 2) if flavour == "tf_keras" else (1, 10, 10, 2))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_train_mode_is_refused(flavour, tmp_path):
    model = augmented("RandomFlip")(keras_module(flavour))
    path = tmp_path / "m.h5"
    model.save(str(path))
    module = tf2torch.convert(path).train()
    with pytest.raises(RuntimeError, match="train mode is not supported: Keras's RandomFlip augments"):
        module(torch.zeros(1, 3, 12, 12))
