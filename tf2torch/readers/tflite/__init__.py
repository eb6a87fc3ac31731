"""TensorFlow Lite (``.tflite``) files, read with a checked FlatBuffer accessor and never TensorFlow
(issue #23). ``open_tflite`` yields the IR with a weight loader over the file; ``readers/__init__.py``
routes a file here by its ``TFL3`` identifier."""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Iterator

from ...errors import ModelFileError
from ...graph import KerasGraph, WeightFunction
from .reader import CLASS_PREFIX, is_tflite, load, read_structure

__all__ = ["CLASS_PREFIX", "is_tflite", "open_tflite", "read_structure"]


@contextlib.contextmanager
def open_tflite(path: str | os.PathLike) -> Iterator[KerasGraph]:
    """The IR of a ``.tflite`` file; its weights are copied out of the (memory-mapped, read-only) file one at a
    time while converting. Operators without a converter, and quantized ones (the reader lists a node's quantized
    tensors in its config), are refused after reading, all at once (``tf2torch/support.py``)."""
    path = str(path)
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError) as exc:
            raise ModelFileError(f"{path}: cannot map the file ({exc})") from None
    try:
        graph, stored = read_structure(path, data)
        graph.weight_source = WeightFunction(lambda w: load(data, stored[w.key]))
        yield graph
    finally:
        data.close()

