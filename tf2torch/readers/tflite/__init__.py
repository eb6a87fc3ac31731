"""TensorFlow Lite (``.tflite``) files, read with a checked FlatBuffer accessor and never TensorFlow
(issue #23). ``open_tflite`` yields the IR with a weight loader over the file; ``readers/__init__.py``
routes a file here by its ``TFL3`` identifier."""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator

from ...errors import ModelFileError, UnsupportedLayerError
from ...graph import KerasGraph, WeightFunction
from .reader import CLASS_PREFIX, is_tflite, load, read_structure

__all__ = ["is_tflite", "open_tflite", "read_structure"]


@contextlib.contextmanager
def open_tflite(path: str | os.PathLike) -> Iterator[KerasGraph]:
    """The IR of a ``.tflite`` file; its weights are copied out of the (memory-mapped, read-only) file one at a
    time while converting. Operators without a converter, and quantized ones, are refused all at once."""
    path = str(path)
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError) as exc:
            raise ModelFileError(f"{path}: cannot map the file ({exc})") from None
    try:
        graph, stored = read_structure(path, data)
        refuse_unsupported(graph)
        graph.weight_source = WeightFunction(lambda w: load(data, stored[w.key]))
        yield graph
    finally:
        data.close()


def refuse_unsupported(graph: KerasGraph) -> None:
    """Every operator without a converter, custom operators, and operators on quantized (int8 / uint8 / int16)
    tensors, named at once."""
    from ...converters import registry

    missing, reasons = [], {}
    for key, layer in graph.layers.items():
        if not layer.class_name.startswith(CLASS_PREFIX):
            continue
        quantized = layer.config.get("quantized")
        if quantized:
            missing.append((key, layer.class_name))
            reasons[key] = (f"quantized tensors ({', '.join(quantized[:3])}{', ...' if len(quantized) > 3 else ''});"
                            " tf2torch converts float32 and float16-weight .tflite models, not quantized ones")
        elif registry.converter_for(layer.class_name) is None:
            missing.append((key, layer.class_name))
            if layer.class_name.startswith(CLASS_PREFIX + "custom:"):
                reasons[key] = "a custom operator (not a TFLite builtin): tf2torch has no converter for it"
    if missing:
        raise UnsupportedLayerError(missing, reasons)
