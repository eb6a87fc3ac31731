"""Converters, one module per layer family. Importing this package registers them all."""

from . import (  # noqa: F401
    activations,
    applications,
    attention,
    augmentation,
    categorical,
    conv,
    dense,
    embedding,
    local,
    merge,
    normalization,
    pooling,
    preprocessing,
    recurrent,
    regularization,
    reshaping,
    spectrogram,
    wrappers,
)
from .registry import CONVERTERS, Converted, LayerSpec, converter

__all__ = ["CONVERTERS", "Converted", "LayerSpec", "converter"]
