"""The reference side of ``verify`` for ``.tflite`` files: TensorFlow's own TFLite interpreter (imported here,
lazily), run with ``experimental_preserve_all_tensors`` so every operator's output can be read after one
``invoke``; rows are the IR's operators, each compared on the tensors it writes (``output_tensors``)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import Tf2TorchError

DEQUANTIZED_NOTE = ("a quantized model converted with --dequantize: compared with the interpreter's quantized "
                    "computation (its int8/uint8 tensors dequantized), judged at rtol {rtol:g} instead of 1e-5; the "
                    "float model differs from the quantized one by the quantization's rounding, its max relative "
                    "error above says by how much (--rtol judges it tighter or looser)")


def is_tflite_graph(graph: Mapping[str, Any]) -> bool:
    return any(str(layer["class_name"]).startswith("tflite>") for layer in graph["layers"].values())


def run_interpreter(source: str | os.PathLike, graph: Mapping[str, Any], inputs: Mapping[str, np.ndarray],
                    dtype: str = "float32") -> tuple[str, dict[str, list[np.ndarray]]]:
    """(interpreter version, node id → the tensors its operator wrote) for ``inputs`` keyed by input name. An
    input whose batch differs from the file's is resized first (``resize_tensor_input``)."""
    if dtype != "float32":
        raise Tf2TorchError("the TFLite interpreter computes in float32 only; verify a .tflite file in float32")
    from ..readers import import_tensorflow

    tf = import_tensorflow()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice (LiteRT)
        interpreter = tf.lite.Interpreter(model_path=str(source), experimental_preserve_all_tensors=True)
    by_tensor_name = {layer["config"]["tf_name"]: key for key, layer in graph["layers"].items()
                      if layer["class_name"] == "InputLayer"}
    details = interpreter.get_input_details()
    try:
        for detail in details:
            array = inputs[by_tensor_name[detail["name"]]]
            if tuple(detail["shape"]) != array.shape:
                interpreter.resize_tensor_input(detail["index"], array.shape, strict=False)
        interpreter.allocate_tensors()
        for detail in details:
            interpreter.set_tensor(detail["index"], inputs[by_tensor_name[detail["name"]]])
        interpreter.invoke()
    except (RuntimeError, ValueError) as exc:  # a batch the file fixes (an LSTM's state is sized for it)
        shapes = ", ".join(f"{d['name']} {[int(v) for v in d['shape']]}" for d in details)
        raise Tf2TorchError(f"the TFLite interpreter cannot run these inputs ({' '.join(str(exc).split())[:160]}); "
                            f"the file's inputs are {shapes}: give inputs of those shapes (--batch-size, "
                            "--inputs)") from None
    quantization = {d["index"]: d["quantization_parameters"] for d in interpreter.get_tensor_details()}
    out = {}
    for node in graph["nodes"]:
        layer = graph["layers"][node["layer"]]
        if str(layer["class_name"]).startswith("tflite>"):
            out[node["id"]] = [dequantized(np.asarray(interpreter.get_tensor(i)), quantization.get(i))
                               for i in layer["config"]["output_tensors"]]
    return f"tflite interpreter (tensorflow {tf.__version__})", out


def dequantized(array: np.ndarray, parameters: Mapping[str, Any] | None) -> np.ndarray:
    """An integer tensor with scales (a quantized model's activations) as the float values it stands for,
    ``(q - zero_point) * scale`` (per axis when there are several scales); any other tensor as it is. What a
    model converted with ``dequantize=True`` computes in float is compared with these."""
    scales = np.asarray((parameters or {}).get("scales", []), np.float32)
    if array.dtype.kind not in "iu" or not scales.size:
        return array
    zero_points = np.asarray(parameters["zero_points"], np.float32).reshape(-1)
    shape = [1] * array.ndim
    if scales.size > 1:
        shape[int(parameters["quantized_dimension"])] = -1
    zero_points = zero_points if zero_points.size == scales.size else np.zeros_like(scales)
    return ((array.astype(np.float32) - zero_points.reshape(shape)) * scales.reshape(shape)).astype(np.float32)
