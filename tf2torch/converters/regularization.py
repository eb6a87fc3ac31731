"""Dropout and noise layers: Dropout, SpatialDropout1D/2D/3D, GaussianNoise, GaussianDropout, AlphaDropout.

Identities in eval mode, Keras's noise in train mode (``nn.noise``; [K3] ``layers/regularization/``, [TFK]
``layers/regularization/``). The tensor stays in the layout it arrives in: Keras's ``noise_shape`` and the
spatial axes of SpatialDropout become the dims of the held tensor that share one noise value. A ``seed`` is read
and documented as not reproduced: the draws are torch's.
"""

from __future__ import annotations

from ..layout import keras_axis_in_layout
from ..nn.noise import AlphaDropout, Dropout, GaussianDropout, GaussianNoise
from .registry import Converted, LayerSpec, converter

SPATIAL_RANK = {"SpatialDropout1D": 3, "SpatialDropout2D": 4, "SpatialDropout3D": 5}


def one_input(spec: LayerSpec) -> None:
    if len(spec.input_shapes) != 1:
        spec.fail(f"expected one input tensor, got {len(spec.input_shapes)}")
    spec.config.get("seed")  # read: torch draws its own random numbers (see the module docstring)


def rate_of(spec: LayerSpec) -> float:
    rate = float(spec.config.get("rate", 0.0))
    if not 0 <= rate <= 1:
        spec.fail(f"rate {rate} is outside [0, 1]")
    return rate


def held_dims(spec: LayerSpec, keras_axes: list[int]) -> list[int]:
    rank = len(spec.input_shape)
    return sorted(keras_axis_in_layout(a, rank, spec.input_layout) for a in keras_axes)


def noise_shape_dims(spec: LayerSpec) -> list[int]:
    """Keras ``noise_shape`` → the held dims whose noise is shared (entries equal to 1; None = the input's)."""
    shape = spec.config.get("noise_shape")
    if shape is None:
        return []
    rank = len(spec.input_shape)
    if len(shape) != rank:
        spec.fail(f"noise_shape {list(shape)} does not have the input's rank {rank}")
    shared = []
    for axis, (size, actual) in enumerate(zip(shape, spec.input_shape)):
        if size is not None and int(size) == 1:
            shared.append(axis)
        elif size is not None and actual is not None and int(size) != actual:
            spec.fail(f"noise_shape {list(shape)} entry {size} is neither None, 1 nor the input size {actual}")
    return held_dims(spec, shared)


@converter("Dropout", "AlphaDropout", training_sensitive=True, mask="propagate")
def convert_dropout(spec: LayerSpec) -> Converted:
    """``Dropout`` / ``AlphaDropout`` with Keras's rate and ``noise_shape``."""
    one_input(spec)
    module_class = Dropout if spec.class_name == "Dropout" else AlphaDropout
    return Converted(module_class(rate_of(spec), noise_shape_dims(spec)))


@converter("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", training_sensitive=True, mask="propagate")
def convert_spatial_dropout(spec: LayerSpec) -> Converted:
    """Dropout of whole channels: one draw per (sample, channel), shared across the spatial axes ([K3]
    ``spatial_dropout.py`` ``_get_noise_shape``; 1D is always channels-last)."""
    one_input(spec)
    rank = SPATIAL_RANK[spec.class_name]
    if len(spec.input_shape) != rank:
        spec.fail(f"expected a {rank}-D input, got shape {spec.input_shape}")
    if spec.config.get("noise_shape") is not None:  # [TFK] configs carry Dropout's key, always None here
        spec.fail(f"noise_shape {spec.config['noise_shape']} is not supported (the layer sets its own)")
    channels_first = spec.config.get("data_format", "channels_last") == "channels_first" and rank > 3
    spatial = list(range(2, rank)) if channels_first else list(range(1, rank - 1))
    return Converted(Dropout(rate_of(spec), held_dims(spec, spatial)))


@converter("GaussianDropout", training_sensitive=True, mask="propagate")
def convert_gaussian_dropout(spec: LayerSpec) -> Converted:
    one_input(spec)
    return Converted(GaussianDropout(rate_of(spec)))


@converter("GaussianNoise", training_sensitive=True, mask="propagate")
def convert_gaussian_noise(spec: LayerSpec) -> Converted:
    one_input(spec)
    stddev = float(spec.config.get("stddev", 0.0))
    if stddev < 0:
        spec.fail(f"stddev {stddev} is negative")
    return Converted(GaussianNoise(stddev))
