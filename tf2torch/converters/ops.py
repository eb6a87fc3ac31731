"""Keras 3 operations recorded in functional graphs (class names from ``keras.src.ops``).

Keras 3 writes the mask arithmetic of ``mask_zero`` models into the saved graph as op nodes:
``not_equal(ids, 0)`` for an Embedding's mask, ``expand_dims``/``zeros_like``/``logical_or``/``concatenate``/
``any`` for merged masks ([K3] ``layers/merging/concatenate.py`` ``compute_mask``), and hands the result to the
consuming layer as ``mask=``. Constant arguments arrive in ``spec.call_kwargs["__args__"]``.
"""

from __future__ import annotations

from typing import Any

import torch

from ..layout import KERAS
from ..nn.ops import COMPARISONS, BinaryOp, Cast, ExpandDims, FilledLike, LogicalNot, Reduce, Squeeze
from .registry import Converted, LayerSpec, converter

TORCH_DTYPES = {"bool": torch.bool, "float32": torch.float32, "float64": torch.float64, "int32": torch.int32,
                "int64": torch.int64, "float16": torch.float16}


def constant_argument(spec: LayerSpec) -> tuple[Any, int | None]:
    """The constant among a binary op's two arguments and its position, if one is a constant."""
    template = spec.call_kwargs.get("__args__")
    if not template:
        return None, None
    for position, value in enumerate(template[:2]):
        if not (isinstance(value, dict) and "__tensor__" in value):
            return value, position
    return None, None


def torch_dtype(spec: LayerSpec, name: Any) -> torch.dtype | None:
    if name is None:
        return None
    if str(name) not in TORCH_DTYPES:
        spec.fail(f"dtype {name!r} is not supported")
    return TORCH_DTYPES[str(name)]


@converter(*COMPARISONS)
def convert_binary_op(spec: LayerSpec) -> Converted:
    constant, position = constant_argument(spec)
    return Converted(BinaryOp(spec.class_name, constant, position), input_layouts=KERAS, output_layouts=KERAS)


@converter("LogicalNot")
def convert_logical_not(spec: LayerSpec) -> Converted:
    return Converted(LogicalNot(), input_layouts=KERAS, output_layouts=KERAS)


@converter("ExpandDims")
def convert_expand_dims(spec: LayerSpec) -> Converted:
    return Converted(ExpandDims(int(spec.config.get("axis", -1))), input_layouts=KERAS, output_layouts=KERAS)


@converter("Squeeze")
def convert_squeeze(spec: LayerSpec) -> Converted:
    return Converted(Squeeze(spec.config.get("axis")), input_layouts=KERAS, output_layouts=KERAS)


@converter("ZerosLike", "OnesLike")
def convert_filled_like(spec: LayerSpec) -> Converted:
    value = 0.0 if spec.class_name == "ZerosLike" else 1.0
    return Converted(FilledLike(value, torch_dtype(spec, spec.config.get("dtype"))), input_layouts=KERAS,
                     output_layouts=KERAS)


@converter("Any", "All")
def convert_reduce(spec: LayerSpec) -> Converted:
    return Converted(Reduce(spec.class_name.lower(), spec.config.get("axis"), bool(spec.config.get("keepdims"))),
                     input_layouts=KERAS, output_layouts=KERAS)


@converter("Cast")
def convert_cast(spec: LayerSpec) -> Converted:
    dtype = torch_dtype(spec, spec.config.get("dtype"))
    if dtype is None:
        spec.fail("Cast without a dtype")
    return Converted(Cast(dtype), input_layouts=KERAS, output_layouts=KERAS)
