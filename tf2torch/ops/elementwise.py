"""Elementwise operations: arithmetic, comparisons, logic, ``where``, ``clip``, and activations.

Each runs in the layout its inputs arrive in when they share one (constants are padded and permuted to match),
so ``x + 3`` between two channels-first convolutions adds no permute. Axis-taking activations (softmax,
l2_normalize) remap their axes instead.
"""

from __future__ import annotations

import torch

from .. import layout as L
from ..contract import Converted
from ..nn.ops import Op, Slot
from .common import axis_list, elementwise, in_layout, op_result
from .registry import OpCall, TensorArg, operation, spelling

TF_BINARY = "x, y, name=None"
K3_BINARY = "x1:x, x2:y"

# operation → (Keras 3 op class, tf_keras symbols)
BINARY = {
    "add": ("Add", ("math.add", "__operators__.add", "add")),
    "subtract": ("Subtract", ("math.subtract", "subtract")),
    "multiply": ("Multiply", ("math.multiply", "multiply")),
    "divide": ("Divide", ("math.truediv", "math.divide", "divide", "truediv")),
    "floor_divide": ("FloorDivide", ("compat.v1.floor_div", "math.floordiv", "floor_div")),
    "mod": ("Mod", ("math.floormod", "math.mod", "floormod")),
    "power": ("Power", ("math.pow", "pow")),
    "minimum": ("Minimum", ("math.minimum", "minimum")),
    "maximum": ("Maximum", ("math.maximum", "maximum")),
    "squared_difference": (None, ("math.squared_difference",)),
    "divide_no_nan": (None, ("math.divide_no_nan",)),
    "equal": ("Equal", ("math.equal", "equal")),
    "not_equal": ("NotEqual", ("math.not_equal", "not_equal")),
    "greater": ("Greater", ("math.greater", "greater")),
    "greater_equal": ("GreaterEqual", ("math.greater_equal", "greater_equal")),
    "less": ("Less", ("math.less", "less")),
    "less_equal": ("LessEqual", ("math.less_equal", "less_equal")),
    "logical_and": ("LogicalAnd", ("math.logical_and", "logical_and")),
    "logical_or": ("LogicalOr", ("math.logical_or", "logical_or")),
    "logical_xor": ("LogicalXor", ("math.logical_xor", "logical_xor")),
}
BINARY_FUNCTIONS = {"mod": "floor_mod", "divide": "true_divide"}

UNARY = {
    "negative": ("Negative", ("math.negative", "negative"), "x"),
    "abs": ("Absolute", ("math.abs", "abs"), "x"),
    "square": ("Square", ("math.square", "square"), "x"),
    "sqrt": ("Sqrt", ("math.sqrt", "sqrt"), "x"),
    "rsqrt": ("Rsqrt", ("math.rsqrt",), "x"),
    "exp": ("Exp", ("math.exp", "exp"), "x"),
    "expm1": ("Expm1", ("math.expm1",), "x"),
    "log": ("Log", ("math.log",), "x"),
    "log1p": ("Log1p", ("math.log1p",), "x"),
    "sign": ("Sign", ("math.sign", "sign"), "x"),
    "floor": ("Floor", ("math.floor", "floor"), "x"),
    "ceil": ("Ceil", ("math.ceil", "ceil"), "x"),
    "reciprocal": ("Reciprocal", ("math.reciprocal",), "x"),
    "sin": (None, ("math.sin",), "x"),
    "cos": (None, ("math.cos",), "x"),
    "tanh": ("Tanh", ("math.tanh", "nn.tanh", "tanh"), "x"),
    "erf": ("Erf", ("math.erf",), "x"),
    "logical_not": ("LogicalNot", ("math.logical_not", "logical_not"), "x"),
    "identity": (None, ("identity",), "input:x"),
    "relu": ("Relu", ("nn.relu",), "features:x"),
    "relu6": ("Relu6", ("nn.relu6",), "features:x"),
    "sigmoid": ("Sigmoid", ("math.sigmoid", "nn.sigmoid", "sigmoid"), "x"),
    "hard_sigmoid": ("HardSigmoid", (), "x"),
    "hard_swish": ("HardSilu", (), "x"),
    "softplus": ("Softplus", ("math.softplus", "nn.softplus"), "features:x"),
    "softsign": ("Softsign", ("nn.softsign", "math.softsign"), "features:x"),
    "selu": ("Selu", ("nn.selu",), "features:x"),
}


def _register() -> None:
    for op, (k3, tf_names) in BINARY.items():
        if k3:
            spelling(f"keras.ops.{k3}", op, K3_BINARY)
        for name in tf_names:
            spelling(f"tf.{name}", op, TF_BINARY)
        operation(op)(convert_binary)
    for op, (k3, tf_names, arg) in UNARY.items():
        if k3:
            spelling(f"keras.ops.{k3}", op, "x")
        for name in tf_names:
            spelling(f"tf.{name}", op, f"{arg}, name=None")
        operation(op)(convert_unary)
    spelling("keras.ops.TrueDivide", "divide", K3_BINARY)
    spelling("keras.ops.Swish", "silu", "x")
    spelling("keras.ops.HardSwish", "hard_swish", "x")


def convert_binary(call: OpCall) -> Converted:
    x, y = call.arg("x"), call.arg("y")
    fn = BINARY_FUNCTIONS.get(call.op, call.op)
    if call.op == "divide":
        return _divide(call, x, y)
    return elementwise(call, fn, [x, y])


def _divide(call: OpCall, x, y) -> Converted:
    """True division; integer operands divide as float32 in Keras 3 and float64 in TF (``truediv``)."""
    tensors = [t for t in (x, y) if isinstance(t, TensorArg)]
    integer = all(not call.dtype(t).is_floating_point for t in tensors)
    dtype = (torch.float32 if call.keras_major >= 3 else torch.float64) if integer else None
    return elementwise(call, "true_divide", [x, y], {"dtype": dtype} if dtype else None)


def convert_unary(call: OpCall) -> Converted:
    return elementwise(call, call.op, [call.arg("x")])


spelling("tf.math.add_n", "add_n", "inputs:xs, name=None")
spelling("tf.add_n", "add_n", "inputs:xs, name=None")


@operation("add_n")
def convert_add_n(call: OpCall) -> Converted:
    xs = call.arg("xs")
    return elementwise(call, "add_n", xs if isinstance(xs, list) else [xs])


# -- unary with parameters ----------------------------------------------------------------------------------
spelling("keras.ops.Round", "round", "x, decimals=0")
spelling("tf.math.round", "round", "x, name=None")
spelling("tf.round", "round", "x, name=None")


@operation("round")
def convert_round(call: OpCall) -> Converted:
    """Half to even in TF, Keras 3 and torch alike."""
    if call.constant("decimals", 0) != 0:
        call.fail("round with decimals other than 0 is not supported")
    return elementwise(call, "round", [call.arg("x")])


spelling("keras.ops.Clip", "clip", "x, x_min:low, x_max:high")
spelling("tf.clip_by_value", "clip", "t:x, clip_value_min:low, clip_value_max:high, name=None")


@operation("clip")
def convert_clip(call: OpCall) -> Converted:
    return elementwise(call, "clip", [call.arg("x"), call.arg("low"), call.arg("high")])


spelling("keras.ops.Where", "where", "condition, x1:x=None, x2:y=None")
spelling("tf.where", "where", "condition, x=None, y=None, name=None")
spelling("tf.where_v2", "where", "condition, x=None, y=None, name=None")


@operation("where")
def convert_where(call: OpCall) -> Converted:
    x, y = call.arg("x"), call.arg("y")
    if x is None or y is None:
        call.fail("where with only a condition (the indices of true elements) is not supported")
    return elementwise(call, "where", [call.arg("condition"), x, y])


spelling("keras.ops.Gelu", "gelu", "x, approximate=True")
spelling("tf.nn.gelu", "gelu", "features:x, approximate=False, name=None")


@operation("gelu")
def convert_gelu(call: OpCall) -> Converted:
    return elementwise(call, "gelu", [call.arg("x")], {"approximate": bool(call.constant("approximate"))})


spelling("keras.ops.Silu", "silu", "x")
spelling("tf.nn.silu", "silu", "features:x, beta=1.0, name=None")
spelling("tf.nn.swish", "silu", "features:x, beta=1.0, name=None")


@operation("silu")
def convert_silu(call: OpCall) -> Converted:
    if float(call.constant("beta", 1.0)) != 1.0:
        call.fail("silu with beta other than 1 is not supported")
    return elementwise(call, "silu", [call.arg("x")])


spelling("keras.ops.LeakyRelu", "leaky_relu", "x, negative_slope=0.2")
spelling("tf.nn.leaky_relu", "leaky_relu", "features:x, alpha:negative_slope=0.2, name=None")
spelling("keras.ops.Elu", "elu", "x, alpha=1.0")
spelling("tf.nn.elu", "elu", "features:x, name=None")


@operation("leaky_relu")
def convert_leaky_relu(call: OpCall) -> Converted:
    return elementwise(call, "leaky_relu", [call.arg("x")], {"negative_slope": float(call.constant("negative_slope"))})


@operation("elu")
def convert_elu(call: OpCall) -> Converted:
    return elementwise(call, "elu", [call.arg("x")], {"alpha": float(call.constant("alpha", 1.0))})


# -- axis-taking activations ----------------------------------------------------------------------------
spelling("keras.ops.Softmax", "softmax", "x, axis=-1")
spelling("tf.nn.softmax", "softmax", "logits:x, axis=None, name=None")
spelling("tf.math.softmax", "softmax", "logits:x, axis=None, name=None")
spelling("keras.ops.LogSoftmax", "log_softmax", "x, axis=-1")
spelling("tf.nn.log_softmax", "log_softmax", "logits:x, axis=None, name=None")
spelling("tf.math.log_softmax", "log_softmax", "logits:x, axis=None, name=None")


@operation("softmax")
@operation("log_softmax")
def convert_softmax(call: OpCall) -> Converted:
    x = call.tensor("x")
    axes = axis_list(call, "axis", call.rank(x)) or [call.rank(x) - 1]  # TF: None means the last axis
    return _along_axes(call, x, call.op, axes, {})


spelling("keras.ops.Normalize", "l2_normalize", "x, axis=-1, order=2, epsilon=None")
spelling("tf.math.l2_normalize", "l2_normalize", "x, axis=None, epsilon=1e-12, name=None, dim=None")
spelling("tf.nn.l2_normalize", "l2_normalize", "x, axis=None, epsilon=1e-12, name=None, dim=None")


@operation("l2_normalize")
def convert_l2_normalize(call: OpCall) -> Converted:
    """TF: ``x * rsqrt(max(sum(x²), epsilon))``; Keras 3: ``x * min(rsqrt(sum(x²)), 1/epsilon)`` (epsilon 1e-7),
    the same for every x whose norm is above epsilon."""
    x = call.tensor("x")
    if call.constant("order", 2) != 2:
        call.fail("normalize with an order other than 2 is not supported")
    if call.constant("dim", None) is not None:
        call.fail("the deprecated dim argument is not supported; use axis")
    rank = call.rank(x)
    axes = axis_list(call, "axis", rank)
    if axes is None:
        axes = list(range(rank))
    epsilon = call.constant("epsilon")
    if call.spelling.name.startswith("keras.ops."):
        epsilon = 1e-7 if epsilon is None else float(epsilon)
        epsilon = epsilon * epsilon  # min(rsqrt(s), 1/e) == rsqrt(max(s, e²))
    return _along_axes(call, x, "l2_normalize", axes, {"epsilon": float(epsilon)})


def _along_axes(call: OpCall, x, fn: str, axes: list[int], kwargs: dict) -> Converted:
    layout = call.layout(x)
    if not isinstance(layout, str):
        layout = L.KERAS
    dims = in_layout(axes, call.rank(x), layout)
    return op_result(call, Op(fn, [Slot(x.index), dims], kwargs, label=call.spelling.name), layout)


_register()
