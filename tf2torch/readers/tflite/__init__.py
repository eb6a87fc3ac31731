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

__all__ = ["CLASS_PREFIX", "dequantize_graph", "is_tflite", "open_tflite", "read_structure"]

QUANTIZED_INPUTS = frozenset({"int8", "uint8", "int16"})


def dequantize_graph(graph: KerasGraph, path: str) -> int:
    """A quantized model read as a float one (``--dequantize``): its quantized constants already read as float32
    ``(q - zero_point) * scale`` (``reader.load``), run-time ``QUANTIZE`` / ``DEQUANTIZE`` become identities
    (``ops/tflite.py``), and each operator's ``quantized`` tensors move to ``dequantized``, so nothing refuses
    them. Inputs or outputs the file declares int8 / uint8 (``inference_input_type``) are refused: their values
    are quantized numbers, which a float model cannot take. Returns how many operators were quantized."""
    ends = [s.name for s in graph.input_specs if s.dtype in QUANTIZED_INPUTS]
    ends += [name for ref, name in zip(graph.outputs, graph.output_names)
             if graph.layers[ref.node].config["output_dtypes"][ref.index] in QUANTIZED_INPUTS]
    if ends:
        raise UnsupportedLayerError([(n, "quantized input/output") for n in ends], message=(
            f"{path}: the inputs/outputs {', '.join(ends)} are int8/uint8/int16 (quantized numbers); --dequantize "
            "converts quantized models with float inputs and outputs (TFLiteConverter's default "
            "inference_input_type / inference_output_type)"))
    count = 0
    for layer in graph.layers.values():
        quantized = layer.config.get("quantized")
        if quantized:
            layer.config["dequantized"], layer.config["quantized"] = quantized, []
            count += 1
    return count


@contextlib.contextmanager
def open_tflite(path: str | os.PathLike, dequantize: bool = False) -> Iterator[KerasGraph]:
    """The IR of a ``.tflite`` file; its weights are copied out of the (memory-mapped, read-only) file one at a
    time while converting. Operators without a converter, and quantized ones (the reader lists a node's quantized
    tensors in its config), are refused after reading, all at once (``tf2torch/support.py``).
    ``dequantize=True``: quantized operators are kept, their lists moved to ``dequantized`` (``dequantize``)."""
    path = str(path)
    with open(path, "rb") as f:
        try:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError) as exc:
            raise ModelFileError(f"{path}: cannot map the file ({exc})") from None
    try:
        graph, stored = read_structure(path, data)
        graph.weight_source = WeightFunction(lambda w: load(data, stored[w.key]))
        if dequantize:
            dequantize_graph(graph, path)
        yield graph
    finally:
        data.close()

