"""Random image augmentation layers (RandomFlip, RandomRotation, RandomZoom, ... and Keras 3's colour, blur,
mixing and RandAugment layers): what they compute at inference.

Trap: they augment only when ``training`` is true ([K3] ``base_image_preprocessing_layer.py`` ``call`` and each
``transform_images``: ``if training:``; [TFK] ``image_preprocessing.py``, each ``call``), so at inference they
return their input cast to the compute dtype, whatever their factors, seeds, fill modes or value ranges: every
config key is then read and nothing is dropped. ``RandomCrop`` differs by version: tf_keras resizes to
(height, width) at inference with ``smart_resize`` (centred crop to the aspect ratio, then bilinear), Keras 3
returns its input unchanged (the crop happens only in training, although its output shape says
(height, width)). Deterministic image layers that act at inference too (Keras 3 ``AutoContrast``,
``Equalization``) are not augmentation and have no converter here.

Proved against both Keras versions by ``tests/test_augmentation.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..dtypes import policy_name
from ..nn.augmentation import AugmentationAtInference
from ..nn.image import TFResize
from ..nn.preprocessing import CropToAspect
from .preprocessing import image_expansion, image_layout
from .registry import Converted, LayerSpec, converter

# identities at inference in both Keras versions ([TFK] has the first eight; the rest are Keras 3's)
IDENTITY_AT_INFERENCE = (
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
    "RandomHeight", "RandomWidth",
    "RandomHue", "RandomSaturation", "RandomSharpness", "RandomShear", "RandomPosterization",
    "RandomColorDegeneration", "RandomColorJitter", "RandomGaussianBlur", "RandomErasing", "RandomPerspective",
    "RandomElasticTransform", "RandomGrayscale", "RandomInvert", "Solarization", "AugMix", "CutMix", "MixUp",
    "RandAugment",
)


def compute_dtype(spec: LayerSpec) -> torch.dtype:
    """The float dtype an integer input is cast to (the layer's policy: float64 or else float32)."""
    return torch.float64 if policy_name(spec.config.get("dtype")) == "float64" else torch.float32


def read_every_key(spec: LayerSpec) -> None:
    """At inference no option of these layers has an effect: each is read, so none is reported as dropped."""
    for key in list(spec.config):
        spec.config.get(key)


# a Random* layer computes something else when called with training=True; the mixing layers are not refused for it
@converter(*(n for n in IDENTITY_AT_INFERENCE if n.startswith("Random")), training_sensitive=True)
@converter(*(n for n in IDENTITY_AT_INFERENCE if not n.startswith("Random")))
def convert_augmentation(spec: LayerSpec) -> Converted:
    read_every_key(spec)
    return Converted(AugmentationAtInference(spec.class_name, compute_dtype(spec)))


@converter("RandomCrop", training_sensitive=True)
def convert_random_crop(spec: LayerSpec) -> Converted:
    """tf_keras: ``smart_resize`` to (height, width) at inference; Keras 3: the input unchanged."""
    dtype = compute_dtype(spec)
    if spec.keras_major >= 3:
        read_every_key(spec)
        return Converted(AugmentationAtInference(spec.class_name, dtype))
    height, width = int(spec.config["height"]), int(spec.config["width"])
    wanted = image_layout(spec)
    spec.check_declared_size(image_expansion(spec, height, width))
    read_every_key(spec)  # seed: training only
    resize = nn.Sequential(CropToAspect(height, width, float32=True, at_least_one=False),
                           TFResize(height, width, "bilinear", False))
    return Converted(AugmentationAtInference(spec.class_name, dtype, resize), input_layouts=wanted)
