"""Converters for the raw ops of TensorFlow inference graphs (the graph walker's IR nodes, class
``tf.raw>OpType``), registered in their own namespace so they never collide with Keras class names.

Each IR node's config holds the op's attributes and its ``operands``: ``{"input": k}`` (the k-th run-time
input), an inline constant (``value``) or a weight (``weight``). A tensor's ``KERAS`` layout is the layout the
TF graph holds it in; ops that can (convolutions, bias, batch norm, pooling, element-wise, reductions over the
spatial axes, concatenation along channels, padding, resizing) run channels-first on NHWC graphs, so a conv
trunk needs no transposes; every other op asks for the TF layout and gets it.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ..contract import NO_EFFECT, Converted, LayerSpec, TrackedConfig, as_parameter, refuse_unread, to_tensor
from ..layout import CHANNELS_FIRST, KERAS, keras_axis_in_layout, normalize, to_channels_first_perm, to_keras_perm
from ..nn.calls import TFCall
from ..nn.normalization import TFLRN
from ..nn.ops import BINARY, UNARY, Op, Slot, TFBinary, TFUnary
from ..nn.padding import same_pad_module, static_same_padding, tf_same_padding
from ..nn.pooling import TFSameAvgPool
from ..nn.shapes import (
    TFBatchToSpace,
    TFDynamicSlice,
    TFShape,
    TFShapeN,
    TFSlice,
    TFSpaceToBatch,
    TFSplit,
    TFSqueeze,
    strided_slice_spec,
)
from ..nn.transposed import ConvBackpropInput
from ..registry import converter
from ..transforms import depthwise_kernel_to_oihw, hwio_to_oihw, transposed_kernel_to_iohw
from .common import GRAPH_DTYPES, Stored
from .registry import SPELLINGS, Spelling, _parse_signature, convert_op

RAW = "tf.raw>"
TORCH_DTYPES = GRAPH_DTYPES


# IR bookkeeping every raw-op node carries (not op semantics), and attributes that only name types.
METADATA_KEYS = ("op", "tf_name", "T", "output_dtypes", "output_shapes", "outputs_used")
TYPE_ATTRS = frozenset({"dtype", "Tidx", "Tshape", "Tpaddings", "Tindices", "Tparams", "Taxis", "Tmultiples",
                        "Tperm", "SrcT", "Tout", "Tcond", "Tin", "N", "num", "Tblock_shape", "Tcrops", "Tlen",
                        "Tsplits", "out_type", "Tdim", "Tnum_splits", "Index", "index_type", "Tlabels", "Targmax", "TI",
                        "Treal", "Tshift", "Tnumsegments", "Tk", "Tindex",
                        "Tcomplex", "Tinput", "Tfilter", "Tbias",
                        # hints for kernels and gradients, no effect on the values
                        "use_cudnn_on_gpu", "grad_a", "grad_b", "grad_x", "grad_y", "num_split"})
TYPE_DEFAULTS = dict.fromkeys(TYPE_ATTRS, NO_EFFECT)


def raw(*ops: str):
    """Register a raw-op converter; afterwards, any attribute of the op the converter did not read (and that does
    not just name a type) refuses the conversion by name: right or refused."""
    def register(fn):
        @functools.wraps(fn)
        def convert(spec: LayerSpec) -> Converted:
            for key in METADATA_KEYS:
                spec.config.get(key)
            spec.attributes_read.clear()
            converted = fn(spec)
            attrs = TrackedConfig(spec.config["attrs"], spec.class_name, is_config=False)
            attrs.read.update(spec.attributes_read)
            refuse_unread(spec, attrs, TYPE_DEFAULTS, "attribute")
            return converted
        return converter(*(RAW + op for op in ops))(convert)
    return register


# -- helpers -------------------------------------------------------------------------------------------------
def operand(spec: LayerSpec, i: int) -> np.ndarray | None:
    """The constant value of operand ``i``, or None when it is a run-time input."""
    entry = spec.config["operands"][i]
    if "input" in entry:
        return None
    if "weight" in entry:
        assert spec._load is not None
        return np.asarray(spec._load(spec.weight_handles[entry["weight"]]))
    if entry["dtype"] in ("object", "str") or entry["dtype"].startswith("<U") or entry["dtype"].startswith("|S"):
        spec.fail("string tensors are not supported")
    return np.asarray(entry["value"], dtype=entry["dtype"]).reshape(entry["shape"])


def const_operand(spec: LayerSpec, i: int, what: str) -> np.ndarray:
    value = operand(spec, i)
    if value is None:
        spec.fail(f"{what} (operand {i}) is computed at run time; tf2torch needs it constant")
    return value


def attr(spec: LayerSpec, name: str, default: Any = None) -> Any:
    spec.attributes_read.add(name)
    return spec.config["attrs"].get(name, default)


def n_operands(spec: LayerSpec) -> int:
    return len(spec.config["operands"])


def only_first_output(spec: LayerSpec) -> None:
    used = spec.config.get("outputs_used", [0])
    if any(i != 0 for i in used):
        spec.fail(f"outputs {used} are used; only output 0 is converted (the others are training statistics)")


def tensor(array: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.array(array, copy=True, order="C"))  # (ascontiguousarray turns 0-d into 1-d)
    return t.float() if t.is_floating_point() and t.dtype != torch.float32 else t


def to_layout(value: np.ndarray, rank: int, layout: Any) -> np.ndarray:
    """A constant broadcast against a tensor of ``rank`` held in ``layout``, moved into that layout."""
    if normalize(layout, rank) != CHANNELS_FIRST:
        return value
    padded = value.reshape((1,) * (rank - value.ndim) + value.shape)
    return padded.transpose(to_channels_first_perm(rank))


def is_channels_first(layout: Any, rank: int) -> bool:
    return normalize(layout, rank) == CHANNELS_FIRST


def nhwc(spec: LayerSpec) -> bool:
    fmt = attr(spec, "data_format", "NHWC")
    if fmt not in ("NHWC", "NCHW", "NDHWC", "NCDHW", "NWC", "NCW"):
        spec.fail(f"data_format {fmt!r} is not supported")
    return not fmt.startswith("NC")


def spatial_attr(spec: LayerSpec, name: str, n: int) -> tuple[int, ...]:
    values = attr(spec, name, [1] * (n + 2))
    return tuple(int(v) for v in (values[1:1 + n] if nhwc(spec) else values[2:2 + n]))


def tf_spatial_sizes(spec: LayerSpec, n: int) -> tuple[int | None, ...]:
    shape = spec.input_shape
    return tuple(shape[1:1 + n]) if nhwc(spec) else tuple(shape[2:2 + n])


def conv_layout(spec: LayerSpec) -> str:
    return CHANNELS_FIRST if nhwc(spec) else KERAS


# -- the front door to operations shared with keras.ops ---------------------------------------------------------
def raw_spelling(raw_op: str, op: str, signature: str, **fixed: Any) -> None:
    """``registry.spelling`` for the raw op ``raw_op``: operation ``op``, its operands in order then its
    attributes by name (``keep_dims:keepdims=False``). The registry entry stays the ``@raw`` converter (it
    checks the attributes and calls ``via_operation``), so the spelling is only where ``convert_op`` finds it."""
    name = RAW + raw_op
    if name in SPELLINGS:
        raise ValueError(f"the op spelling {name} is already registered (operation {SPELLINGS[name].op})")
    params, renames, defaults = _parse_signature(signature)
    varargs = params[0] if signature.strip().startswith("*") else None
    SPELLINGS[name] = Spelling(name, op, params, renames, defaults, fixed, varargs)


def via_operation(spec: LayerSpec, stored: bool = False) -> Converted:
    """A raw op converted by the ``tf2torch.ops`` operation its spelling (``raw_spelling("Sum", "sum",
    "input:x, reduction_indices:axis, keep_dims:keepdims=False")``) names, through the same binding and refusal
    of unread arguments as a ``keras.ops`` call: the operands are the positional arguments (a run-time input as
    a tensor, a constant as its value; with ``stored``, a stored weight as ``Stored``, for the element-wise
    converters that keep it in the state_dict), the attributes the spelling names are keyword arguments."""
    template: list[Any] = []
    for i, entry in enumerate(spec.config["operands"]):
        if "input" in entry:
            template.append({"__tensor__": entry["input"]})
        else:
            template.append(Stored(operand(spec, i)) if stored and "weight" in entry else operand(spec, i).tolist())
    sp = SPELLINGS[spec.class_name]
    keywords = {key: attr(spec, key) for key in spec.config["attrs"] if sp.renames.get(key, key) in sp.params}
    return convert_op(replace(spec, call_kwargs={"__args__": template, "__kwargs__": keywords}))


# -- element-wise --------------------------------------------------------------------------------------------
# raw op → (operation, signature): element-wise ops converted by ``ops/elementwise.py``, as the keras.ops / tf.math
# calls of the same meaning are
SHARED_BINARY = {"Add": "add", "AddV2": "add", "Sub": "subtract", "Mul": "multiply", "FloorDiv": "floor_divide",
                 "FloorMod": "mod", "Maximum": "maximum", "Minimum": "minimum", "Pow": "power",
                 "SquaredDifference": "squared_difference", "DivNoNan": "divide_no_nan", "Greater": "greater",
                 "GreaterEqual": "greater_equal", "Less": "less", "LessEqual": "less_equal", "Equal": "equal",
                 "NotEqual": "not_equal", "LogicalAnd": "logical_and", "LogicalOr": "logical_or"}
SHARED_UNARY = {"Relu": "relu", "Relu6": "relu6", "Elu": "elu", "Selu": "selu", "Sigmoid": "sigmoid", "Tanh": "tanh",
                "Softplus": "softplus", "Softsign": "softsign", "Exp": "exp", "Log": "log", "Log1p": "log1p",
                "Expm1": "expm1", "Sqrt": "sqrt", "Rsqrt": "rsqrt", "Square": "square", "Neg": "negative",
                "Abs": "abs", "Floor": "floor", "Ceil": "ceil", "Round": "round", "Sign": "sign",
                "Reciprocal": "reciprocal", "Inv": "reciprocal", "Erf": "erf", "Sin": "sin", "Cos": "cos",
                "LogicalNot": "logical_not"}
for _raw_op, _op in SHARED_BINARY.items():
    raw_spelling(_raw_op, _op, "x, y")
for _raw_op, _op in SHARED_UNARY.items():
    raw_spelling(_raw_op, _op, "x")
raw_spelling("LeakyRelu", "leaky_relu", "features:x, alpha:negative_slope=0.2")


@raw(*UNARY, *SHARED_UNARY, "LeakyRelu")
def convert_unary(spec: LayerSpec) -> Converted:
    if spec.class_name in SPELLINGS:
        return via_operation(spec)
    return Converted(TFUnary(spec.config["op"]))


@raw(*BINARY, *SHARED_BINARY)
def convert_binary(spec: LayerSpec) -> Converted:
    op = spec.config["op"]
    attr(spec, "incompatible_shape_error")  # Equal / NotEqual: whether TF raises on shapes that do not broadcast
    if op in ("BiasAdd", "BiasAddV1"):  # (TF 1's BiasAddV1: NHWC, no data_format)
        return convert_bias_add(spec)
    if not any("input" in entry for entry in spec.config["operands"]):
        spec.fail("both operands are constant (internal error: should have been folded)")
    if spec.class_name in SPELLINGS:
        return via_operation(spec, stored=True)
    a, b = operand(spec, 0), operand(spec, 1)
    if a is None and b is None:
        shapes = spec.input_shapes
        same = len(shapes[0]) == len(shapes[1]) and spec.input_layouts[0] == spec.input_layouts[1] \
            and isinstance(spec.input_layouts[0], str)
        return Converted(TFBinary(op), input_layouts=None if same else KERAS)
    const, side = (b, 1) if a is None else (a, 0)
    rank = len(spec.input_shape)
    layout = spec.input_layout
    if const.ndim > rank or not isinstance(layout, str):
        layout = KERAS
    return Converted(TFBinary(op, tensor(to_layout(const, rank, layout)), side), input_layouts=layout,
                     output_layouts=layout)


def convert_bias_add(spec: LayerSpec) -> Converted:
    bias = const_operand(spec, 1, "the bias")
    rank = len(spec.input_shape)
    if nhwc(spec):
        layout = spec.input_layout if isinstance(spec.input_layout, str) else KERAS
        value = to_layout(bias, rank, layout)
    else:
        layout = KERAS
        value = bias.reshape(-1, *[1] * (rank - 2))
    return Converted(TFBinary("BiasAdd", tensor(value)), input_layouts=layout, output_layouts=layout)


raw_spelling("Softmax", "softmax", "logits:x")
raw_spelling("LogSoftmax", "log_softmax", "logits:x")


@raw("Softmax", "LogSoftmax")
def convert_softmax(spec: LayerSpec) -> Converted:
    """Over the last axis: the softmax converter of ``ops/elementwise.py``."""
    return via_operation(spec)


raw_spelling("Cast", "cast", "x, DstT:dtype", graph_dtypes=True)


@raw("Cast")
def convert_cast(spec: LayerSpec) -> Converted:
    """The cast converter of ``ops/shapes.py``, to the graph's own dtype (int32 stays int32)."""
    attr(spec, "Truncate")
    return via_operation(spec)


# -- convolutions ---------------------------------------------------------------------------------------------
def _conv_padding(spec: LayerSpec, kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...]) -> tuple[nn.Module | None, tuple[int, ...]]:
    n = len(kernel)
    padding = attr(spec, "padding", "VALID")
    flat = [int(v) for v in attr(spec, "explicit_paddings", [])]
    if padding == "VALID":
        return None, (0,) * n
    if padding == "SAME":
        symmetric = static_same_padding(tf_spatial_sizes(spec, n), kernel, stride, dilation)
        if symmetric is not None:
            return None, symmetric
        return same_pad_module(kernel, stride, dilation), (0,) * n
    if padding == "EXPLICIT":
        pairs = [tuple(flat[2 * i:2 * i + 2]) for i in range(len(flat) // 2)]
        spatial = pairs[1:1 + n] if nhwc(spec) else pairs[2:2 + n]
        if all(a == b for a, b in spatial):
            return None, tuple(a for a, _ in spatial)
        return Op("pad", [Slot(0), torch_pads([(0, 0), (0, 0), *spatial]), "constant", 0.0]), (0,) * n
    spec.fail(f"padding {padding!r} is not supported")


def _conv(spec: LayerSpec, weight: np.ndarray, groups: int) -> Converted:
    n = weight.ndim - 2
    stride = spatial_attr(spec, "strides", n)
    dilation = spatial_attr(spec, "dilations", n)
    kernel = tuple(weight.shape[2:])
    pad, padding = _conv_padding(spec, kernel, stride, dilation)
    conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[n](
        weight.shape[1] * groups, weight.shape[0], kernel, stride=stride, padding=padding, dilation=dilation,
        groups=groups, bias=False)
    conv.weight = as_parameter(weight)
    module = conv if pad is None else nn.Sequential(pad, conv)
    return Converted(module, input_layouts=conv_layout(spec), output_layouts=conv_layout(spec))


@raw("Conv2D", "Conv3D", "Conv1D")
def convert_conv(spec: LayerSpec) -> Converted:
    attr(spec, "use_cudnn_on_gpu")
    kernel = const_operand(spec, 1, "the filter")
    in_channels = spec.input_shape[-1 if nhwc(spec) else 1]
    groups = int(in_channels) // kernel.shape[-2] if in_channels else 1
    return _conv(spec, hwio_to_oihw(kernel), groups)


@raw("DepthwiseConv2dNative")
def convert_depthwise(spec: LayerSpec) -> Converted:
    kernel = const_operand(spec, 1, "the filter")
    return _conv(spec, depthwise_kernel_to_oihw(kernel), kernel.shape[-2])


@raw("Conv2DBackpropInput", "Conv3DBackpropInputV2")
def convert_conv_transpose(spec: LayerSpec) -> Converted:
    if spec.config["operands"][2].get("input") is None:
        spec.fail("the input (operand 2) is constant")
    kernel = const_operand(spec, 1, "the filter")
    n = kernel.ndim - 2
    out_shape = spec.config["output_shapes"][0]
    sizes = operand(spec, 0)
    spatial = (list(sizes[1:1 + n]) if nhwc(spec) else list(sizes[2:2 + n])) if sizes is not None else (
        (out_shape[1:1 + n] if nhwc(spec) else out_shape[2:2 + n]) if out_shape else None)
    at_run_time = spatial is None or any(s is None for s in spatial)
    if at_run_time and sizes is None and "input" not in spec.config["operands"][0]:
        spec.fail("the output size is not static")
    stride = spatial_attr(spec, "strides", n)
    dilation = spatial_attr(spec, "dilations", n)
    k = kernel.shape[:n]
    padding = attr(spec, "padding", "VALID")
    flat = [int(v) for v in attr(spec, "explicit_paddings", [])]
    if padding == "SAME":
        starts = None if at_run_time else [tf_same_padding(int(s), int(kk), st, d)[0]
                                           for s, kk, st, d in zip(spatial, k, stride, dilation)]
    elif padding == "VALID":
        starts = [0] * n
    elif padding == "EXPLICIT":  # the forward conv padded (before, after): the gradient starts at ``before``
        pairs = [flat[2 * i:2 * i + 2] for i in range(len(flat) // 2)]
        starts = [p[0] for p in (pairs[1:1 + n] if nhwc(spec) else pairs[2:2 + n])]
    else:
        spec.fail(f"padding {padding!r} is not supported")
    crop = None if at_run_time else [(start, int(s)) for start, s in zip(starts, spatial)]
    weight = transposed_kernel_to_iohw(kernel)
    conv = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}[n](
        weight.shape[0], weight.shape[1], tuple(k), stride=stride, dilation=dilation, bias=False)
    conv.weight = as_parameter(weight)
    layout = conv_layout(spec)  # (the output size, when an input, is 1-D: no layout to change)
    return Converted(ConvBackpropInput(conv, crop, starts, nhwc(spec)), input_layouts=layout, output_layouts=layout)


# -- matmul, batch norm --------------------------------------------------------------------------------------
@raw("MatMul", "BatchMatMulV2", "BatchMatMul", "BatchMatMulV3")
def convert_matmul(spec: LayerSpec) -> Converted:
    op = spec.config["op"]
    ta = bool(attr(spec, "transpose_a", False) or attr(spec, "adj_x", False))
    tb = bool(attr(spec, "transpose_b", False) or attr(spec, "adj_y", False))
    a, b = operand(spec, 0), operand(spec, 1)
    if op == "MatMul" and a is None and b is not None and not ta:
        weight = b if tb else b.T
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        linear.weight = as_parameter(weight)
        return Converted(linear, input_layouts=KERAS, output_layouts=KERAS)
    slots, consts = _slots(spec)
    return Converted(TFCall("MatMul", slots, consts, adj_x=ta, adj_y=tb), input_layouts=KERAS,
                     output_layouts=KERAS)


@raw("RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "Multinomial",
     "RandomShuffle", "StatelessRandomUniformV2", "StatelessRandomNormalV2", "StatelessTruncatedNormalV2")
def convert_random(spec: LayerSpec) -> Converted:
    """Random numbers on the inference path are almost always dropout or noise left in training mode: a
    ``tf.cond(training)`` whose flag has no value, or a ``placeholder_with_default`` whose default is True."""
    spec.fail("draws random numbers, so the graph is not deterministic (dropout or noise in training mode?); if a "
              "placeholder selects the training mode, fix it with --constant (e.g. training=false)")


@raw("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
def convert_fused_batch_norm(spec: LayerSpec) -> Converted:
    if attr(spec, "is_training", True):
        spec.fail("is_training=True computes batch statistics; the graph is a training graph: fix the "
                  "training flag with --constant (e.g. is_training=false)")
    only_first_output(spec)
    attr(spec, "U")
    attr(spec, "exponential_avg_factor")
    scale, offset, mean, variance = (const_operand(spec, i, w) for i, w in
                                     enumerate(("scale", "offset", "mean", "variance"), start=1))
    rank = len(spec.input_shape)
    norm = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}[rank](
        scale.shape[0], eps=float(attr(spec, "epsilon", 1e-4)))
    norm.weight = as_parameter(scale)
    norm.bias = as_parameter(offset)
    norm.running_mean.copy_(to_tensor(mean))
    norm.running_var.copy_(to_tensor(variance))
    return Converted(norm.eval(), input_layouts=conv_layout(spec), output_layouts=conv_layout(spec))


# -- pooling ---------------------------------------------------------------------------------------------------
@raw("MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D")
def convert_pool(spec: LayerSpec) -> Converted:
    op = spec.config["op"]
    n = 3 if op.endswith("3D") else 2
    kernel = spatial_attr(spec, "ksize", n)
    stride = spatial_attr(spec, "strides", n)
    padding = attr(spec, "padding", "VALID")
    attr(spec, "explicit_paddings")  # only with padding EXPLICIT, refused below
    is_max = op.startswith("Max")
    pool_cls = {2: (nn.MaxPool2d, nn.AvgPool2d), 3: (nn.MaxPool3d, nn.AvgPool3d)}[n][0 if is_max else 1]
    if padding == "VALID":
        module: nn.Module = pool_cls(kernel, stride)
    elif padding == "SAME":
        symmetric = static_same_padding(tf_spatial_sizes(spec, n), kernel, stride, (1,) * n)
        if symmetric is not None and all(p <= k // 2 for p, k in zip(symmetric, kernel)):
            module = pool_cls(kernel, stride, padding=symmetric) if is_max else \
                pool_cls(kernel, stride, padding=symmetric, count_include_pad=False)
        elif is_max:
            module = nn.Sequential(same_pad_module(kernel, stride, value=float("-inf")), pool_cls(kernel, stride))
        else:
            module = TFSameAvgPool(kernel, stride)
    else:
        spec.fail(f"padding {padding!r} is not supported")
    return Converted(module, input_layouts=conv_layout(spec), output_layouts=conv_layout(spec))


# -- reductions -----------------------------------------------------------------------------------------------
REDUCTIONS = {"Mean": "mean", "Sum": "sum", "Max": "max", "Min": "min", "Prod": "prod", "All": "all", "Any": "any"}
for _raw_op, _op in REDUCTIONS.items():
    raw_spelling(_raw_op, _op, "input:x, reduction_indices:axis, keep_dims:keepdims=False")


@raw(*REDUCTIONS)
def convert_reduce(spec: LayerSpec) -> Converted:
    """The reductions converter of ``keras.ops`` / ``tf.math.reduce_*`` (``ops/reductions.py``)."""
    return via_operation(spec)


raw_spelling("ArgMax", "argmax", "input:x, dimension:axis, output_type='int64'", graph_dtypes=True)
raw_spelling("ArgMin", "argmin", "input:x, dimension:axis, output_type='int64'", graph_dtypes=True)


@raw("ArgMax", "ArgMin")
def convert_argmax(spec: LayerSpec) -> Converted:
    """The argmax / argmin converter of ``ops/reductions.py``, indices in the graph's ``output_type``."""
    return via_operation(spec)


# -- shapes ---------------------------------------------------------------------------------------------------
def _slots(spec: LayerSpec, skip: tuple[int, ...] = ()) -> tuple[list[tuple[str, int]], list[torch.Tensor]]:
    slots, consts = [], []
    for i, entry in enumerate(spec.config["operands"]):
        if i in skip:
            continue
        if "input" in entry:
            slots.append(("input", entry["input"]))
        else:
            value = operand(spec, i)
            assert value is not None
            slots.append(("const", len(consts)))
            consts.append(tensor(value))
    return slots, consts


@raw("Reshape")
def convert_reshape(spec: LayerSpec) -> Converted:
    slots, consts = _slots(spec)
    return Converted(TFCall("Reshape", slots, consts), input_layouts=KERAS, output_layouts=KERAS)


@raw("Shape")
def convert_shape(spec: LayerSpec) -> Converted:
    """The TF-layout shape of a tensor in any layout: no transpose just to read a shape."""
    dtype = TORCH_DTYPES.get(attr(spec, "out_type", "int32"), torch.int32)
    rank = len(spec.input_shape)
    layout = spec.input_layout if isinstance(spec.input_layout, str) else KERAS
    order = to_keras_perm(rank) if is_channels_first(layout, rank) else None
    return Converted(TFShape(dtype, order), input_layouts=layout, output_layouts=KERAS)


@raw("Size", "Rank")
def convert_size(spec: LayerSpec) -> Converted:
    """``Size`` / ``Rank`` of a tensor in any layout (neither depends on the axis order)."""
    dtype = TORCH_DTYPES.get(attr(spec, "out_type", "int32"), torch.int32)
    layout = spec.input_layout if isinstance(spec.input_layout, str) else KERAS
    return Converted(TFShape(dtype, what=spec.config["op"]), input_layouts=layout, output_layouts=KERAS)


@raw("ShapeN")
def convert_shape_n(spec: LayerSpec) -> Converted:
    dtype = TORCH_DTYPES.get(attr(spec, "out_type", "int32"), torch.int32)
    return Converted(TFShapeN(dtype), input_layouts=KERAS, output_layouts=KERAS)


@raw("Range")
def convert_range(spec: LayerSpec) -> Converted:
    dtype = TORCH_DTYPES.get(spec.config["output_dtypes"][0])
    if dtype is None:
        spec.fail(f"a range of {spec.config['output_dtypes'][0]} is not supported")
    slots, consts = _slots(spec)
    return Converted(TFCall("Range", slots, consts, dtype=dtype), input_layouts=KERAS, output_layouts=KERAS)


@raw("ReverseV2")
def convert_reverse(spec: LayerSpec) -> Converted:
    rank = len(spec.input_shape)
    axes = [int(a) % rank for a in const_operand(spec, 1, "the axes").reshape(-1)]
    return Converted(TFCall("ReverseV2", [("input", 0)], [], axes=axes), input_layouts=KERAS,
                     output_layouts=KERAS)


raw_spelling("Transpose", "transpose", "x, perm:axes")
raw_spelling("ExpandDims", "expand_dims", "input:x, axis")


@raw("Transpose")
def convert_transpose(spec: LayerSpec) -> Converted:
    """The transpose converter of ``ops/shapes.py``."""
    return via_operation(spec)


@raw("ExpandDims")
def convert_expand_dims(spec: LayerSpec) -> Converted:
    """The expand_dims converter of ``ops/shapes.py``."""
    return via_operation(spec)


@raw("Squeeze")
def convert_squeeze(spec: LayerSpec) -> Converted:
    rank = len(spec.input_shape)
    axes = [int(a) % rank for a in attr(spec, "squeeze_dims", [])]
    return Converted(TFSqueeze(axes), input_layouts=KERAS, output_layouts=KERAS)


@raw("ConcatV2", "Concat")
def convert_concat(spec: LayerSpec) -> Converted:
    """``ConcatV2`` (values, then the axis) and TF 1's ``Concat`` (the axis first)."""
    count = n_operands(spec) - 1
    at = 0 if spec.config["op"] == "Concat" else count
    values = [i for i in range(count + 1) if i != at]
    axis = int(const_operand(spec, at, "the axis"))
    rank = len(spec.input_shape)
    layouts = set(spec.input_layouts)
    layout = KERAS
    all_inputs = all("input" in spec.config["operands"][i] for i in values)
    if all_inputs and len(layouts) == 1 and isinstance(spec.input_layout, str):
        layout = spec.input_layout
    slots, consts = _slots(spec, skip=(at,))
    dim = keras_axis_in_layout(axis % rank, rank, layout)
    return Converted(TFCall("ConcatV2", slots, consts, axis=dim), input_layouts=layout, output_layouts=layout)


@raw("Pack")
def convert_pack(spec: LayerSpec) -> Converted:
    rank = len(spec.input_shapes[0]) if spec.input_shapes else 0
    axis = int(attr(spec, "axis", 0)) % (rank + 1)
    slots, consts = _slots(spec)
    return Converted(TFCall("Pack", slots, consts, axis=axis), input_layouts=KERAS, output_layouts=KERAS)


@raw("Unpack")
def convert_unpack(spec: LayerSpec) -> Converted:
    rank = len(spec.input_shape)
    attr(spec, "num")
    return Converted(TFSplit(None, int(attr(spec, "axis", 0)) % rank, unstack=True), input_layouts=KERAS,
                     output_layouts=KERAS)


@raw("Split", "SplitV")
def convert_split(spec: LayerSpec) -> Converted:
    rank = len(spec.input_shape)
    if spec.config["op"] == "Split":
        axis = int(const_operand(spec, 0, "the axis")) % rank
        num = int(attr(spec, "num_split"))
        size = spec.input_shape[axis]
        sizes = [size // num] * num if size is not None else [-1] * num  # -1s: equal parts at run time
    else:
        sizes = [int(s) for s in const_operand(spec, 1, "the sizes").reshape(-1)]
        axis = int(const_operand(spec, 2, "the axis")) % rank
        if sizes.count(-1) > 1:
            spec.fail(f"sizes {sizes} have more than one -1")
        if -1 in sizes and spec.input_shape[axis] is not None:
            sizes[sizes.index(-1)] = spec.input_shape[axis] - sum(s for s in sizes if s != -1)
    return Converted(TFSplit(sizes, axis), input_layouts=KERAS, output_layouts=KERAS)


@raw("StridedSlice")
def convert_strided_slice(spec: LayerSpec) -> Converted:
    masks = {k: int(attr(spec, k, 0)) for k in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    if any(operand(spec, i) is None for i in (1, 2, 3)):  # bounds computed at run time (``x[:, t]`` in a loop)
        slots, consts = _slots(spec)  # (a constant sliced by run-time bounds: ``table[:tf.shape(x)[1]]``)
        return Converted(TFDynamicSlice(masks, slots, consts), input_layouts=KERAS, output_layouts=KERAS)
    begin, end, strides = (const_operand(spec, i, w).reshape(-1).tolist()
                           for i, w in ((1, "begin"), (2, "end"), (3, "strides")))
    if any(s == 0 for s in strides):
        spec.fail("stride 0")
    return Converted(TFSlice(strided_slice_spec(begin, end, strides, masks)), input_layouts=KERAS,
                     output_layouts=KERAS)


@raw("Slice")
def convert_slice(spec: LayerSpec) -> Converted:
    begin, size = operand(spec, 1), operand(spec, 2)
    if begin is None or size is None:
        slots, consts = _slots(spec)
        return Converted(TFCall("Slice", slots, consts), input_layouts=KERAS, output_layouts=KERAS)
    begin, size = begin.reshape(-1).tolist(), size.reshape(-1).tolist()
    entries = [("slice", int(b), None if s == -1 else int(b) + int(s), 1) for b, s in zip(begin, size)]
    return Converted(TFSlice(entries), input_layouts=KERAS, output_layouts=KERAS)


raw_spelling("Pad", "pad", "input:x, paddings, constant_values=0, mode='CONSTANT'")
raw_spelling("PadV2", "pad", "input:x, paddings, constant_values=0, mode='CONSTANT'")
raw_spelling("MirrorPad", "pad", "input:x, paddings, mode, constant_values=0")


@raw("Pad", "PadV2", "MirrorPad")
def convert_pad(spec: LayerSpec) -> Converted:
    """The pad converter of ``ops/shapes.py``: paddings constant or computed at run time."""
    return via_operation(spec)


def torch_pads(pairs: list[Any]) -> list[int]:
    """(before, after) per axis, in axis order → torch's flat order, last axis first."""
    return [int(v) for pair in reversed(pairs) for v in pair]


@raw("Tile")
def convert_tile(spec: LayerSpec) -> Converted:
    """A constant ``multiples`` is checked before the examples run: a hostile file's tiling would otherwise
    allocate its output while the model is assembled."""
    multiples = operand(spec, 1)
    if multiples is not None:
        spec.check_declared_size(float(np.prod(np.abs(multiples.astype(np.float64)))))
    slots, consts = _slots(spec)
    return Converted(TFCall("Tile", slots, consts), input_layouts=KERAS, output_layouts=KERAS)


@raw("GatherV2", "Gather")
def convert_gather(spec: LayerSpec) -> Converted:
    """``GatherV2`` and TF 1's ``Gather`` (axis 0; ``validate_indices`` only checks)."""
    if int(attr(spec, "batch_dims", 0)) != 0:
        spec.fail("batch_dims != 0 is not supported")
    attr(spec, "validate_indices")
    if spec.config["op"] == "Gather":
        slots, consts = _slots(spec)
        return Converted(TFCall("GatherV2", slots, consts, axis=0), input_layouts=KERAS, output_layouts=KERAS)
    axis = int(const_operand(spec, 2, "the axis"))
    params = spec.config["operands"][0]  # (its shape only: the weight is read once, by _slots)
    rank = len(params["shape"]) if "input" not in params else len(spec.input_shape)
    slots, consts = _slots(spec, skip=(2,))
    return Converted(TFCall("GatherV2", slots, consts, axis=axis % rank), input_layouts=KERAS,
                     output_layouts=KERAS)


raw_spelling("AddN", "add_n", "*inputs:xs")
raw_spelling("SelectV2", "where", "condition, t:x, e:y")
raw_spelling("ClipByValue", "clip", "t:x, clip_value_min:low, clip_value_max:high")
raw_spelling("Einsum", "einsum", "*inputs:operands, equation:subscripts")


@raw("AddN", "SelectV2", "ClipByValue", "Einsum")
def convert_shared_function(spec: LayerSpec) -> Converted:
    """The add_n, where, clip (``ops/elementwise.py``) and einsum (``ops/linalg.py``) converters; a stored
    weight among the operands stays in the state_dict."""
    return via_operation(spec, stored=True)


@raw("Select", "Fill", "BroadcastArgs", "BroadcastTo")
def convert_function(spec: LayerSpec) -> Converted:
    slots, consts = _slots(spec)
    return Converted(TFCall(spec.config["op"], slots, consts), input_layouts=KERAS, output_layouts=KERAS)


# -- images ---------------------------------------------------------------------------------------------------
RESIZES = {"ResizeBilinear": "bilinear", "ResizeNearestNeighbor": "nearest", "ResizeBicubic": "bicubic",
           "ResizeArea": "area"}
for _raw_op, _method in RESIZES.items():
    raw_spelling(_raw_op, "resize", "images:x, size, align_corners=False, half_pixel_centers=False", method=_method)


@raw(*RESIZES)
def convert_resize(spec: LayerSpec) -> Converted:
    """The resize converter of ``ops/image.py``, with TF 1's corner and pixel-centre flags; a size computed at
    run time (``tf.image.resize(x, tf.shape(image)[1:3])``) is read on every call."""
    return via_operation(spec)


@raw("SpaceToBatchND", "BatchToSpaceND")
def convert_space_to_batch(spec: LayerSpec) -> Converted:
    """Each on its own, exact for any block; around a convolution the graph walker has already folded the pair
    into one dilated convolution where that is exact (``readers/tf_rewrite.py``)."""
    block = [int(b) for b in const_operand(spec, 1, "the block shape").reshape(-1)]
    given = operand(spec, 2)  # computed at run time for an input of open size: read on each call
    pairs = given.reshape(-1, 2).tolist() if given is not None else None
    if any(b < 1 for b in block) or any(v < 0 for p in pairs or [] for v in p):
        spec.fail(f"block {block} or paddings/crops {pairs} out of range")
    cls = TFSpaceToBatch if spec.config["op"] == "SpaceToBatchND" else TFBatchToSpace
    return Converted(cls(block, pairs), input_layouts=KERAS, output_layouts=KERAS)


@raw("LRN")
def convert_lrn(spec: LayerSpec) -> Converted:
    module = TFLRN(int(attr(spec, "depth_radius", 5)), float(attr(spec, "bias", 1.0)),
                   float(attr(spec, "alpha", 1.0)), float(attr(spec, "beta", 0.5)))
    return Converted(module, input_layouts=CHANNELS_FIRST, output_layouts=CHANNELS_FIRST)


# -- ops that are one small function of their operands (nn/calls.TFCall) --------------------------------------
def _call(spec: LayerSpec, **params: Any) -> Converted:
    slots, consts = _slots(spec)
    return Converted(TFCall(spec.config["op"], slots, consts, **params), input_layouts=KERAS, output_layouts=KERAS)


@raw("Roll", "InvertPermutation", "MatrixDeterminant", "MatrixDiag", "MatrixDiagPart", "Where",
     "MatrixBandPart")
def convert_call(spec: LayerSpec) -> Converted:
    return _call(spec)


def _default_bad_indices(spec: LayerSpec) -> None:
    """TF 2.16's ``bad_indices_policy``: the default raises (CPU) on an index out of range, as torch does."""
    policy = attr(spec, "bad_indices_policy", "")
    if policy not in ("", "DEFAULT", "ERROR"):
        spec.fail(f"bad_indices_policy={policy!r} is not supported")


@raw("GatherNd", "ScatterNd")
def convert_gather_scatter_nd(spec: LayerSpec) -> Converted:
    _default_bad_indices(spec)
    return _call(spec)


@raw("MatrixDiagV2", "MatrixDiagV3", "MatrixDiagPartV2", "MatrixDiagPartV3")
def convert_matrix_diag(spec: LayerSpec) -> Converted:
    """``tf.linalg.diag`` / ``diag_part`` on the main diagonal (k = 0, square, padding 0); other bands refused."""
    op = spec.config["op"]
    attr(spec, "align")  # (only matters for several diagonals)
    k = const_operand(spec, 1, "the diagonal offset k").reshape(-1).tolist()
    extra = [const_operand(spec, i, "the sizes and padding") for i in range(2, n_operands(spec))]
    sizes_open = op.startswith("MatrixDiagV") and any(int(v) != -1 for v in extra[:2])
    if k != [0] or sizes_open or float(np.asarray(extra[-1]).reshape(-1)[0]) != 0.0:
        spec.fail(f"only the main diagonal with default sizes and padding 0 is converted (k={k})")
    slots, consts = _slots(spec, skip=tuple(range(1, n_operands(spec))))
    name = "MatrixDiag" if op.startswith("MatrixDiagV") else "MatrixDiagPart"
    return Converted(TFCall(name, slots, consts), input_layouts=KERAS, output_layouts=KERAS)


@raw("Cumsum", "Cumprod")
def convert_cumulative(spec: LayerSpec) -> Converted:
    rank = len(spec.input_shape)
    axis = int(const_operand(spec, 1, "the axis")) % rank
    slots, consts = _slots(spec, skip=(1,))
    return Converted(TFCall(spec.config["op"], slots, consts, axis=axis, exclusive=bool(attr(spec, "exclusive")),
                            reverse=bool(attr(spec, "reverse"))), input_layouts=KERAS, output_layouts=KERAS)


@raw("DepthToSpace", "SpaceToDepth")
def convert_depth_to_space(spec: LayerSpec) -> Converted:
    if not nhwc(spec) or len(spec.input_shape) != 4:
        spec.fail("only NHWC 4-D tensors are converted")
    return _call(spec, block=int(attr(spec, "block_size")))


@raw("OneHot")
def convert_one_hot(spec: LayerSpec) -> Converted:
    """A constant ``depth`` is checked before the examples run (the output is ``depth`` times the indices)."""
    depth = operand(spec, 1)
    if depth is not None:
        spec.check_declared_size(float(np.abs(depth.astype(np.float64)).max(initial=1.0)))
    return _call(spec, axis=int(attr(spec, "axis", -1)))


@raw("TensorScatterUpdate", "TensorScatterAdd", "TensorScatterSub", "TensorScatterMax", "TensorScatterMin")
def convert_tensor_scatter(spec: LayerSpec) -> Converted:
    _default_bad_indices(spec)
    how = {"Update": "update", "Add": "add", "Sub": "sub", "Max": "amax", "Min": "amin"}[spec.config["op"][13:]]
    return _call(spec, how=how)


@raw("ReverseSequence")
def convert_reverse_sequence(spec: LayerSpec) -> Converted:
    rank = len(spec.input_shape)
    return _call(spec, seq_axis=int(attr(spec, "seq_dim")) % rank, batch_axis=int(attr(spec, "batch_dim", 0)) % rank)


@raw("SegmentSum", "SegmentMean", "SegmentMax", "SegmentMin", "SegmentProd", "UnsortedSegmentSum",
     "UnsortedSegmentMax", "UnsortedSegmentMin", "UnsortedSegmentProd")
def convert_segments(spec: LayerSpec) -> Converted:
    kind = spec.config["op"].split("Segment")[1]
    return _call(spec, how={"Sum": "sum", "Mean": "mean", "Max": "amax", "Min": "amin", "Prod": "prod"}[kind])


@raw("TopKV2")
def convert_top_k(spec: LayerSpec) -> Converted:
    """Values largest first, each with its index; ties (equal values) may order their indices differently."""
    attr(spec, "sorted")  # TF sorts either way on CPU for the k asked; torch.topk sorts
    index_dtype = TORCH_DTYPES.get(spec.config["output_dtypes"][1], torch.int32)
    return _call(spec, index_dtype=index_dtype)


@raw("NonMaxSuppressionV2", "NonMaxSuppressionV3", "NonMaxSuppressionV4", "NonMaxSuppressionV5")
def convert_nms(spec: LayerSpec) -> Converted:
    """Hard NMS in plain torch (``nn/image.non_max_suppression``); V5's soft NMS (sigma > 0) is refused."""
    op = spec.config["op"]
    attr(spec, "T_threshold")
    if op == "NonMaxSuppressionV5":
        sigma = operand(spec, 5)
        if sigma is None or float(sigma) != 0.0:
            spec.fail("soft NMS (soft_nms_sigma > 0, or computed at run time) is not converted")
        slots, consts = _slots(spec, skip=(5,))
    else:
        slots, consts = _slots(spec)
    pad = bool(attr(spec, "pad_to_max_output_size", False))
    return Converted(TFCall(op, slots, consts, pad=pad), input_layouts=KERAS, output_layouts=KERAS)


@raw("MaxPoolV2")
def convert_max_pool_v2(spec: LayerSpec) -> Converted:
    """``MaxPoolV2``: ``MaxPool`` with its window and strides as operands."""
    for i, name in ((1, "ksize"), (2, "strides")):
        spec.config["attrs"][name] = const_operand(spec, i, f"the {name}").reshape(-1).tolist()
    converted = convert_pool.__wrapped__(spec)
    return converted


@raw("CombinedNonMaxSuppression")
def convert_combined_nms(spec: LayerSpec) -> Converted:
    """Per-class hard NMS then the best across classes, in plain torch (``nn/image.combined_non_max_suppression``)."""
    return _call(spec, pad_per_class=bool(attr(spec, "pad_per_class", False)),
                 clip_boxes=bool(attr(spec, "clip_boxes", True)))


@raw("Unique", "UniqueWithCounts")
def convert_unique(spec: LayerSpec) -> Converted:
    """Values in order of first occurrence, with each element's index into them (and counts)."""
    return _call(spec, index_dtype=TORCH_DTYPES.get(attr(spec, "out_idx", "int32"), torch.int32))


@raw("DynamicStitch", "ParallelDynamicStitch", "AdjustContrastv2")
def convert_stitch(spec: LayerSpec) -> Converted:
    return _call(spec)


@raw("Bincount", "DenseBincount")
def convert_bincount(spec: LayerSpec) -> Converted:
    return _call(spec, binary=bool(attr(spec, "binary_output", False)))


@raw("CropAndResize")
def convert_crop_and_resize(spec: LayerSpec) -> Converted:
    method = attr(spec, "method", "bilinear")
    if method not in ("bilinear", "nearest"):
        spec.fail(f"method {method!r} is not supported")
    return _call(spec, method=method, extrapolation=float(attr(spec, "extrapolation_value", 0.0)))


@raw("ExtractImagePatches")
def convert_extract_patches(spec: LayerSpec) -> Converted:
    padding = attr(spec, "padding", "VALID")
    if padding not in ("VALID", "SAME"):
        spec.fail(f"padding {padding!r} is not supported")
    params = {k: [int(v) for v in attr(spec, name)[1:3]] for k, name in
              (("kernel", "ksizes"), ("stride", "strides"), ("rate", "rates"))}
    module = TFCall("ExtractImagePatches", [("input", 0)], [], params={**params, "same": padding == "SAME"})
    return Converted(module, input_layouts=CHANNELS_FIRST, output_layouts=CHANNELS_FIRST)


@raw("DynamicPartition")
def convert_dynamic_partition(spec: LayerSpec) -> Converted:
    return _call(spec, count=int(attr(spec, "num_partitions")))


@raw("MatrixSetDiagV3", "MatrixSetDiagV2", "MatrixSetDiag")
def convert_matrix_set_diag(spec: LayerSpec) -> Converted:
    """The main diagonal (k = 0) replaced; other bands refused."""
    attr(spec, "align")
    if n_operands(spec) > 2 and const_operand(spec, 2, "the diagonal offset k").reshape(-1).tolist() != [0]:
        spec.fail("only the main diagonal (k = 0) is converted")
    slots, consts = _slots(spec, skip=(2,))
    return Converted(TFCall("MatrixSetDiag", slots, consts), input_layouts=KERAS, output_layouts=KERAS)


@raw("MaxPoolWithArgmax")
def convert_max_pool_with_argmax(spec: LayerSpec) -> Converted:
    padding = attr(spec, "padding", "VALID")
    if padding not in ("VALID", "SAME") or len(spec.input_shape) != 4:
        spec.fail(f"padding {padding!r} on rank {len(spec.input_shape)} is not supported")
    return _call(spec, kernel=[int(v) for v in attr(spec, "ksize")[1:3]],
                 stride=[int(v) for v in attr(spec, "strides")[1:3]], same=padding == "SAME",
                 with_batch=bool(attr(spec, "include_batch_in_index", False)),
                 index_dtype=TORCH_DTYPES.get(spec.config["output_dtypes"][1], torch.int64))


@raw("FakeQuantWithMinMaxArgs", "FakeQuantWithMinMaxVars")
def convert_fake_quant(spec: LayerSpec) -> Converted:
    """Quantization-aware training's quantize-dequantize, as TF computes it at inference."""
    params = {"bits": int(attr(spec, "num_bits", 8)), "narrow": bool(attr(spec, "narrow_range", False))}
    if spec.config["op"] == "FakeQuantWithMinMaxArgs":
        params.update(min=float(attr(spec, "min", -6.0)), max=float(attr(spec, "max", 6.0)))
    return _call(spec, **params)
