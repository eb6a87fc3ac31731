"""Linear algebra: matmul (with TF's transpose flags), einsum and tensordot, on KERAS-layout tensors; a constant
operand (``x @ W`` with a numpy ``W``) becomes a buffer."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..contract import Converted
from ..nn.ops import Op, Slot
from .common import Stored, constant_dtype, op_result
from .registry import OpCall, TensorArg, operation, spelling

spelling("keras.ops.Matmul", "matmul", "x1:a, x2:b")
spelling("tf.linalg.matmul", "matmul",
         "a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False, a_is_sparse=False, "
         "b_is_sparse=False, output_type=None, grad_a=False, grad_b=False, name=None")
spelling("tf.matmul", "matmul",
         "a, b, transpose_a=False, transpose_b=False, adjoint_a=False, adjoint_b=False, a_is_sparse=False, "
         "b_is_sparse=False, output_type=None, grad_a=False, grad_b=False, name=None")
spelling("keras.ops.Einsum", "einsum", "*operands, subscripts")
spelling("keras.ops.Tensordot", "tensordot", "x1:a, x2:b, axes=2")
spelling("tf.tensordot", "tensordot", "a, b, axes, name=None")


def operands(call: OpCall, values: list[Any]) -> tuple[list[Any], dict[str, torch.Tensor], list[str]]:
    """Slots for the operands, constants as buffers, and the names of those that are stored weights."""
    tensors = [v for v in values if isinstance(v, TensorArg)]
    if not tensors:
        call.fail("no tensor among the operands")
    like = call.dtype(tensors[0])
    args, buffers, stored = [], {}, []
    for v in values:
        if isinstance(v, TensorArg):
            args.append(Slot(v.index))
        else:
            name = f"c{len(buffers)}"
            if isinstance(v, Stored):
                v = v.value
                stored.append(name)
            buffers[name] = torch.as_tensor(np.asarray(v), dtype=constant_dtype(v, like, call.keras_major))
            args.append(Slot(name))
    return args, buffers, stored


@operation("matmul")
def convert_matmul(call: OpCall) -> Converted:
    a, b = call.arg("a"), call.arg("b")
    for flag in ("adjoint_a", "adjoint_b", "a_is_sparse", "b_is_sparse", "grad_a", "grad_b"):
        if call.constant(flag, False):
            call.fail(f"matmul with {flag}=True is not supported")
    if call.constant("output_type", None) is not None:
        call.fail("matmul with an output_type is not supported")
    args, buffers, stored = operands(call, [a, b])
    letters = "abcdefghij"
    ta, tb = bool(call.constant("transpose_a", False)), bool(call.constant("transpose_b", False))
    if not (ta or tb):
        module = Op("matmul", args, constants=buffers, label=call.spelling.name, stored=stored)
        return op_result(call, module)
    ranks = [call.rank(v) if isinstance(v, TensorArg) else np.ndim(v) for v in (a, b)]
    if ranks[0] != ranks[1]:
        call.fail("matmul with transposes needs operands of equal rank")
    batch = letters[: ranks[0] - 2]
    left = batch + ("ji" if ta else "ij")
    right = batch + ("kj" if tb else "jk")
    equation = f"{left},{right}->{batch}ik"
    return op_result(call, Op("einsum", [equation, *args], constants=buffers, label=call.spelling.name,
                              stored=stored))


@operation("einsum")
def convert_einsum(call: OpCall) -> Converted:
    values = call.arg("operands")
    args, buffers, stored = operands(call, values if isinstance(values, list) else [values])
    equation = str(call.constant("subscripts"))
    return op_result(call, Op("einsum", [equation, *args], constants=buffers, label=call.spelling.name,
                              stored=stored))


@operation("tensordot")
def convert_tensordot(call: OpCall) -> Converted:
    args, buffers, stored = operands(call, [call.arg("a"), call.arg("b")])
    axes = call.constant("axes")
    if isinstance(axes, list):
        axes = [[int(v) for v in a] if isinstance(a, list) else [int(a)] for a in axes]
    else:
        axes = int(axes)
    return op_result(call, Op("tensordot", args, {"dims": axes}, constants=buffers, label=call.spelling.name,
                              stored=stored))
