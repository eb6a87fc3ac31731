"""Converters for TensorFlow Lite builtin operators (IR nodes of class ``tflite>BUILTIN`` from
``readers/tflite``), registered in their own namespace. Each is a small named function; where a TFLite builtin
means what a raw TF op means (``MAX_POOL_2D`` is ``MaxPool``, ``ADD`` is ``AddV2``), it is converted by the
``tf.raw`` converter of ``ops/tf_raw.py`` through ``raw_spec``, so the padding, layout and broadcasting rules
live once. TFLite's own conventions are handled here: kernels stored OHWI (``1HWO`` for depthwise, ``OHWI`` for
``TRANSPOSE_CONV``, (out, in) for ``FULLY_CONNECTED``), permuted once at conversion; strides and filter sizes as
options; a ``fused_activation_function`` after most arithmetic operators.

Right or refused: every option a converter does not read, an options table tf2torch does not parse, and an
operand of a type it cannot read refuse the conversion by name.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

import numpy as np
from torch import nn

from ..contract import Converted, LayerSpec, TrackedConfig, as_parameter, refuse_unread, to_tensor
from ..layout import KERAS
from ..nn.ops import Op, Slot
from ..nn.padding import tf_same_padding
from ..nn.tflite import (
    ACTIVATIONS,
    DepthToSpace,
    FullyConnected,
    FusedActivation,
    MaxPoolArgmax,
    MaxUnpool,
    PReLU,
    Reshape,
    SequenceLSTM,
)
from ..nn.transposed import ConvBackpropInput
from ..registry import converter, lookup
from . import tf_raw

PREFIX = "tflite>"
STATEFUL = frozenset({"UNIDIRECTIONAL_SEQUENCE_LSTM"})  # operators whose variable operands are their zero state
METADATA_KEYS = ("op", "tflite_name", "output_tensors", "output_shapes", "output_dtypes", "quantized", "dequantized",
                 "operands")


def tflite_op(*ops: str):
    """Register the converter of TFLite builtins ``ops``: ``fn(spec, options)``, where ``options`` records what
    it reads; an option left unread, or an options table the reader does not parse, refuses the conversion."""
    def register(fn):
        @functools.wraps(fn)
        def convert(spec: LayerSpec) -> Converted:
            for key in METADATA_KEYS:
                spec.config.get(key)
            options = TrackedConfig(spec.config["options"], spec.class_name, is_config=False)
            if "options_type" in options:
                spec.fail(f"its options table (BuiltinOptions type {options['options_type']}) is not read by "
                          "tf2torch")
            for i, entry in enumerate(spec.config["operands"]):
                if "unreadable" in entry:
                    spec.fail(f"operand {i} is a {entry['unreadable']} tensor, which tf2torch does not read")
                if "state" in entry and spec.config["op"] not in STATEFUL:
                    spec.fail(f"operand {i} is a variable tensor (state kept between invocations)")
            converted = fn(spec, options)
            refuse_unread(spec, options, {}, "option")
            return converted
        return converter(*(PREFIX + op for op in ops))(convert)
    return register


# -- helpers -------------------------------------------------------------------------------------------------
def raw_spec(spec: LayerSpec, op: str, attrs: dict[str, Any], operands: list[dict[str, Any]] | None = None
             ) -> LayerSpec:
    """The same node as the raw TF op ``op`` with ``attrs`` (NHWC, as TFLite always is), for a ``tf.raw``
    converter; it reads the weights through this node's loader."""
    config = {"op": op, "attrs": attrs, "operands": spec.config["operands"] if operands is None else operands,
              "output_shapes": spec.config["output_shapes"], "output_dtypes": spec.config.get("output_dtypes"),
              "outputs_used": list(range(len(spec.config["output_shapes"])))}
    return LayerSpec(spec.name, tf_raw.RAW + op, config, spec.input_shapes, spec.input_layouts, spec.input_dtypes,
                     spec.keras_version, spec.weight_handles, _load=spec._load)


def const(spec: LayerSpec, i: int, what: str) -> np.ndarray:
    operands = spec.config["operands"]
    if i >= len(operands) or "absent" in operands[i]:
        spec.fail(f"{what} (operand {i}) is missing")
    return tf_raw.const_operand(spec, i, what)


def optional_const(spec: LayerSpec, i: int, what: str) -> np.ndarray | None:
    operands = spec.config["operands"]
    return None if i >= len(operands) or "absent" in operands[i] else const(spec, i, what)


def fused(spec: LayerSpec, converted: Converted, options: TrackedConfig) -> Converted:
    """``converted`` followed by the node's ``fused_activation_function``."""
    activation = options["fused_activation_function"]
    if activation == "NONE":
        return converted
    if activation not in ACTIVATIONS:
        spec.fail(f"fused activation {activation} is not supported")
    converted.module = FusedActivation(converted.module, activation)
    return converted


def window_attrs(spec: LayerSpec, options: TrackedConfig, dilated: bool = True) -> dict[str, Any]:
    """TFLite's strides, dilations and padding as the attributes of a raw TF op (NHWC)."""
    padding = options["padding"]
    if padding not in ("SAME", "VALID"):
        spec.fail(f"{padding} is not supported")
    attrs = {"padding": padding, "strides": [1, options["stride_h"], options["stride_w"], 1]}
    if dilated:
        attrs["dilations"] = [1, options["dilation_h_factor"], options["dilation_w_factor"], 1]
    if any(s < 1 for s in attrs["strides"] + attrs.get("dilations", [])):
        spec.fail(f"strides {attrs['strides']} / dilations {attrs.get('dilations')} below 1")
    return attrs


def conv_module(converted: Converted) -> nn.Module:
    module = converted.module
    return module[-1] if isinstance(module, nn.Sequential) else module


def with_bias(spec: LayerSpec, converted: Converted, i: int) -> Converted:
    bias = optional_const(spec, i, "the bias")
    if bias is not None:
        conv = conv_module(converted)
        if bias.shape != (conv.out_channels,):
            spec.fail(f"the bias has shape {bias.shape}, the filter makes {conv.out_channels} channels")
        conv.bias = as_parameter(bias)
    return converted


# -- convolutions ---------------------------------------------------------------------------------------------
@tflite_op("CONV_2D")
def convert_conv_2d(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """Filter OHWI → OIHW; a filter with fewer input channels than the input is a grouped convolution."""
    kernel = const(spec, 1, "the filter")
    if kernel.ndim != 4:
        spec.fail(f"the filter has shape {kernel.shape}, expected (out, h, w, in)")
    channels = spec.input_shape[-1]
    if not channels or channels % kernel.shape[3]:
        spec.fail(f"the input has {channels} channels, the filter reads {kernel.shape[3]} per group")
    raw = raw_spec(spec, "Conv2D", window_attrs(spec, options))
    converted = tf_raw._conv(raw, kernel.transpose(0, 3, 1, 2), channels // kernel.shape[3])
    return fused(spec, with_bias(spec, converted, 2), options)


@tflite_op("DEPTHWISE_CONV_2D")
def convert_depthwise_conv_2d(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """Filter 1HWO with O = in * depth_multiplier, output channel ``c * m + j`` reading input channel ``c`` as
    TF's depthwise conv: (O, 1, H, W) with ``groups=in``."""
    kernel = const(spec, 1, "the filter")
    channels = spec.input_shape[-1]
    multiplier = options["depth_multiplier"]
    if kernel.ndim != 4 or kernel.shape[0] != 1 or not channels or kernel.shape[3] % channels \
            or multiplier not in (0, kernel.shape[3] // channels):
        spec.fail(f"the filter has shape {kernel.shape} for {channels} input channels and depth multiplier "
                  f"{multiplier}; expected (1, h, w, channels * multiplier)")
    raw = raw_spec(spec, "DepthwiseConv2dNative", window_attrs(spec, options))
    converted = tf_raw._conv(raw, kernel.transpose(3, 0, 1, 2), channels)
    return fused(spec, with_bias(spec, converted, 2), options)


@tflite_op("TRANSPOSE_CONV")
def convert_transpose_conv(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """Operands (output shape, filter OHWI, input, bias): a ``ConvTranspose2d`` (weight (in, out, h, w)) without
    padding, cropped to the output shape from the forward conv's SAME ``before`` padding (as
    ``Conv2DBackpropInput``, ``ops/tf_raw.py``)."""
    sizes = tf_raw.operand(spec, 0)  # computed at run time when the batch is open: the spatial size is static
    sizes = sizes.reshape(-1).tolist() if sizes is not None else spec.config["output_shapes"][0]
    kernel = const(spec, 1, "the filter")
    if "input" not in spec.config["operands"][2] or kernel.ndim != 4 or len(sizes) != 4 \
            or None in sizes[1:3]:
        spec.fail(f"expected a run-time input, a (out, h, w, in) filter and a 4-D output shape with a static "
                  f"size, found {sizes}")
    attrs = window_attrs(spec, options, dilated=False)
    stride = attrs["strides"][1:3]
    k = kernel.shape[1:3]
    spatial = [int(s) for s in sizes[1:3]]
    if attrs["padding"] == "SAME":
        starts = [tf_same_padding(s, kk, st, 1)[0] for s, kk, st in zip(spatial, k, stride)]
    else:
        starts = [0, 0]
    conv = nn.ConvTranspose2d(kernel.shape[3], kernel.shape[0], tuple(k), stride=tuple(stride), bias=False)
    conv.weight = as_parameter(kernel.transpose(3, 0, 1, 2))
    converted = Converted(ConvBackpropInput(conv, [(a, s) for a, s in zip(starts, spatial)]),
                          input_layouts=tf_raw.CHANNELS_FIRST, output_layouts=tf_raw.CHANNELS_FIRST)
    bias = optional_const(spec, 3, "the bias")
    if bias is not None:
        conv.bias = as_parameter(bias.reshape(-1))
    return fused(spec, converted, options)


@tflite_op("FULLY_CONNECTED")
def convert_fully_connected(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """Weights (out, in) as ``nn.Linear`` stores them; the input flattened to (-1, in) unless ``keep_num_dims``."""
    if options["weights_format"] != 0:
        spec.fail(f"weights_format {options['weights_format']} (a shuffled int8 format) is not supported")
    weight = const(spec, 1, "the weights")
    if weight.ndim != 2 or spec.input_shape[-1] not in (None, weight.shape[1]):
        spec.fail(f"weights of shape {weight.shape} for an input of shape {spec.input_shape}")
    bias = optional_const(spec, 2, "the bias")
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    linear.weight = as_parameter(weight)
    if bias is not None:
        linear.bias = as_parameter(bias.reshape(-1))
    converted = Converted(FullyConnected(linear, options["keep_num_dims"]), input_layouts=KERAS,
                          output_layouts=KERAS)
    return fused(spec, converted, options)


# -- pooling ---------------------------------------------------------------------------------------------------
@tflite_op("MAX_POOL_2D", "AVERAGE_POOL_2D")
def convert_pool_2d(spec: LayerSpec, options: TrackedConfig) -> Converted:
    attrs = window_attrs(spec, options, dilated=False)
    attrs["ksize"] = [1, options["filter_height"], options["filter_width"], 1]
    op = "MaxPool" if spec.config["op"] == "MAX_POOL_2D" else "AvgPool"
    return fused(spec, tf_raw.convert_pool(raw_spec(spec, op, attrs)), options)


# -- element-wise --------------------------------------------------------------------------------------------
BINARY = {"ADD": "AddV2", "SUB": "Sub", "MUL": "Mul", "DIV": "RealDiv", "MAXIMUM": "Maximum", "MINIMUM": "Minimum",
          "SQUARED_DIFFERENCE": "SquaredDifference", "POW": "Pow", "FLOOR_DIV": "FloorDiv", "FLOOR_MOD": "FloorMod",
          "GREATER": "Greater", "GREATER_EQUAL": "GreaterEqual", "LESS": "Less", "LESS_EQUAL": "LessEqual",
          "EQUAL": "Equal", "NOT_EQUAL": "NotEqual", "LOGICAL_AND": "LogicalAnd", "LOGICAL_OR": "LogicalOr"}


@tflite_op(*BINARY)
def convert_binary(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """Broadcasting arithmetic (``ops/tf_raw.py`` ``convert_binary``), then the fused activation (ADD, SUB, MUL,
    DIV carry one)."""
    converted = tf_raw.convert_binary(raw_spec(spec, BINARY[spec.config["op"]], {}))
    return fused(spec, converted, options) if "fused_activation_function" in options else converted


UNARY = {"LOGISTIC": "Sigmoid", "TANH": "Tanh", "RELU": "Relu", "RELU6": "Relu6", "EXP": "Exp", "LOG": "Log",
         "SQRT": "Sqrt", "RSQRT": "Rsqrt", "NEG": "Neg", "ABS": "Abs", "SQUARE": "Square", "FLOOR": "Floor",
         "CEIL": "Ceil", "SIN": "Sin", "COS": "Cos", "ELU": "Elu", "ROUND": "Round", "SIGN": "Sign",
         "LOGICAL_NOT": "LogicalNot"}


@tflite_op(*UNARY)
def convert_unary(spec: LayerSpec, options: TrackedConfig) -> Converted:
    return tf_raw.convert_unary(raw_spec(spec, UNARY[spec.config["op"]], {}))


@tflite_op("QUANTIZE", "DEQUANTIZE")
def convert_quantize(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """In a model read with ``dequantize=True`` the tensors these move between (float ↔ int8 / uint8, or one int8
    scale to another) are all float: an identity. Anywhere else (a ``DEQUANTIZE`` of a run-time float16 tensor, as
    sparse models hold; the folded constant ones never reach here) refused."""
    operands = spec.config["operands"]
    if not spec.config.get("dequantized") or len(operands) != 1 or "input" not in operands[0]:
        spec.fail(f"{spec.config['op']} of a {spec.config['output_dtypes'][0]} run-time tensor outside a quantized "
                  "model read with --dequantize is not supported")
    return Converted(nn.Identity())


@tflite_op("HARD_SWISH")
def convert_hard_swish(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """``x * relu6(x + 3) / 6`` (kernels/activations.cc), which is ``nn.Hardswish``."""
    return Converted(nn.Hardswish())


@tflite_op("PRELU")
def convert_prelu(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """Keras's ``PReLU`` becomes ``PRELU`` with a constant alpha shaped like the input without its batch axis
    (or broadcast to it); it is moved into the input's layout once."""
    alpha = const(spec, 1, "alpha")
    rank = len(spec.input_shape)
    layout = spec.input_layout if isinstance(spec.input_layout, str) else KERAS
    if alpha.ndim > rank:
        spec.fail(f"alpha of shape {alpha.shape} for an input of rank {rank}")
    value = tf_raw.to_layout(alpha, rank, layout)  # channels-first: padded to the rank and transposed
    return Converted(PReLU(tf_raw.tensor(value)), input_layouts=layout, output_layouts=layout)


@tflite_op("SOFTMAX")
def convert_softmax(spec: LayerSpec, options: TrackedConfig) -> Converted:
    if options["beta"] != 1.0:
        spec.fail(f"beta={options['beta']} (softmax of beta * x) is not supported")
    return tf_raw.convert_softmax(raw_spec(spec, "Softmax", {}))


# -- shapes and reductions -----------------------------------------------------------------------------------
@tflite_op("RESHAPE")
def convert_reshape(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """The new shape is operand 1, or (older files) the ``new_shape`` option."""
    operands = list(spec.config["operands"])
    new_shape = options.get("new_shape")
    if len(operands) < 2 or "absent" in operands[1]:
        if new_shape is None:
            spec.fail("neither a shape operand nor a new_shape option")
        operands = [operands[0], {"value": list(new_shape), "dtype": "int32", "shape": [len(new_shape)]}]
    if "input" not in operands[0]:
        spec.fail("reshaping a constant is not supported")
    if "value" in operands[1]:  # a constant target: a static reshape (torch.export, ONNX)
        shape = [int(v) for v in operands[1]["value"]]
        if shape.count(-1) > 1 or any(v < -1 for v in shape):
            spec.fail(f"target shape {shape}")
        return Converted(Reshape(tuple(shape)), input_layouts=KERAS, output_layouts=KERAS)
    return tf_raw.convert_reshape(raw_spec(spec, "Reshape", {}, operands))


@tflite_op("CONCATENATION")
def convert_concatenation(spec: LayerSpec, options: TrackedConfig) -> Converted:
    operands = [*spec.config["operands"], {"value": int(options["axis"]), "dtype": "int32", "shape": []}]
    return fused(spec, tf_raw.convert_concat(raw_spec(spec, "ConcatV2", {}, operands)), options)


@tflite_op("PAD", "PADV2")
def convert_pad(spec: LayerSpec, options: TrackedConfig) -> Converted:
    return tf_raw.convert_pad(raw_spec(spec, "Pad" if spec.config["op"] == "PAD" else "PadV2", {}))


@tflite_op("DEPTH_TO_SPACE", "SPACE_TO_DEPTH")
def convert_depth_to_space(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """NHWC blocks in TF's DCR channel order, run channels-first (``nn/tflite.py`` ``DepthToSpace``)."""
    block = int(options["block_size"])
    shape = spec.input_shape
    inverse = spec.config["op"] == "SPACE_TO_DEPTH"
    if block < 1 or len(shape) != 4 or (not inverse and shape[3] and shape[3] % (block * block)) or \
            (inverse and any(d and d % block for d in shape[1:3])):
        spec.fail(f"block size {block} does not divide the input {shape}")
    return Converted(DepthToSpace(block, inverse), input_layouts=tf_raw.CHANNELS_FIRST,
                     output_layouts=tf_raw.CHANNELS_FIRST)


@tflite_op("TRANSPOSE")
def convert_transpose(spec: LayerSpec, options: TrackedConfig) -> Converted:
    return tf_raw.convert_transpose(raw_spec(spec, "Transpose", {}))


REDUCERS = {"MEAN": "Mean", "SUM": "Sum", "REDUCE_MAX": "Max", "REDUCE_MIN": "Min", "REDUCE_PROD": "Prod",
            "REDUCE_ANY": "Any", "REDUCE_ALL": "All"}


@tflite_op(*REDUCERS)
def convert_reduce(spec: LayerSpec, options: TrackedConfig) -> Converted:
    attrs = {"keep_dims": bool(options["keep_dims"])}
    return tf_raw.convert_reduce(raw_spec(spec, REDUCERS[spec.config["op"]], attrs))


@tflite_op("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
def convert_resize(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """``align_corners`` and ``half_pixel_centers`` as TF's resize ops (``nn/image.py`` ``TFImageResize``)."""
    op = "ResizeBilinear" if spec.config["op"] == "RESIZE_BILINEAR" else "ResizeNearestNeighbor"
    attrs = {"align_corners": options["align_corners"], "half_pixel_centers": options["half_pixel_centers"]}
    return tf_raw.convert_resize(raw_spec(spec, op, attrs))


@tflite_op("SHAPE")
def convert_shape(spec: LayerSpec, options: TrackedConfig) -> Converted:
    return tf_raw.convert_shape(raw_spec(spec, "Shape", {"out_type": options.get("out_type") or "int32"}))


@tflite_op("STRIDED_SLICE")
def convert_strided_slice(spec: LayerSpec, options: TrackedConfig) -> Converted:
    if options["offset"]:
        spec.fail("offset=True (end relative to begin) is not supported")
    masks = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    return tf_raw.convert_strided_slice(raw_spec(spec, "StridedSlice", {k: options[k] for k in masks}))


@tflite_op("PACK", "UNPACK")
def convert_pack(spec: LayerSpec, options: TrackedConfig) -> Converted:
    op = "Pack" if spec.config["op"] == "PACK" else "Unpack"
    options.get("values_count")
    attrs = {"axis": options["axis"]} if op == "Pack" else {"axis": options["axis"], "num": options["num"]}
    return (tf_raw.convert_pack if op == "Pack" else tf_raw.convert_unpack)(raw_spec(spec, op, attrs))


@tflite_op("SQUEEZE")
def convert_squeeze(spec: LayerSpec, options: TrackedConfig) -> Converted:
    dims = list(options.get("squeeze_dims") or [])
    if not dims:
        dims = [i for i, d in enumerate(spec.input_shape) if d == 1]
    return tf_raw.convert_squeeze(raw_spec(spec, "Squeeze", {"squeeze_dims": dims}))


@tflite_op("EXPAND_DIMS")
def convert_expand_dims(spec: LayerSpec, options: TrackedConfig) -> Converted:
    return tf_raw.convert_expand_dims(raw_spec(spec, "ExpandDims", {}))


@tflite_op("GATHER")
def convert_gather(spec: LayerSpec, options: TrackedConfig) -> Converted:
    operands = [*spec.config["operands"][:2], {"value": int(options["axis"]), "dtype": "int32", "shape": []}]
    return tf_raw.convert_gather(raw_spec(spec, "GatherV2", {"batch_dims": options["batch_dims"]}, operands))


@tflite_op("SPLIT", "SPLIT_V")
def convert_split(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """``SPLIT`` (axis, input) and ``SPLIT_V`` (input, sizes, axis): the operand orders of TF's Split and SplitV."""
    op = "Split" if spec.config["op"] == "SPLIT" else "SplitV"
    attrs = {"num_split": options["num_splits"]} if op == "Split" else {}
    options.get("num_splits")
    return tf_raw.convert_split(raw_spec(spec, op, attrs))


@tflite_op("BATCH_MATMUL")
def convert_batch_matmul(spec: LayerSpec, options: TrackedConfig) -> Converted:
    options.get("asymmetric_quantize_inputs")  # only for int8 weights, refused with the quantized model
    attrs = {"adj_x": options["adj_x"], "adj_y": options["adj_y"]}
    return tf_raw.convert_matmul(raw_spec(spec, "BatchMatMulV2", attrs))


@tflite_op("LEAKY_RELU")
def convert_leaky_relu(spec: LayerSpec, options: TrackedConfig) -> Converted:
    return tf_raw.convert_unary(raw_spec(spec, "LeakyRelu", {"alpha": options["alpha"]}))


@tflite_op("GELU")
def convert_gelu(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """``0.5 x (1 + erf(x / sqrt 2))``, or with ``approximate`` the tanh form ``0.5 x (1 + tanh(sqrt(2 / pi) (x +
    0.044715 x^3)))`` ([TFLite] ``kernels/internal/reference/gelu.h``): the ``gelu`` function keras.ops.gelu and
    tf.nn.gelu run (``nn/ops.py``; TF has no raw op of that name: the TFLite converter fuses Erf or Tanh into it)."""
    return Converted(Op("gelu", [Slot(0)], {"approximate": bool(options["approximate"])}, label=PREFIX + "GELU"))


# -- builtins that are a raw TF op with the same operands ---------------------------------------------------------
# TFLite builtin → (raw TF op, its attributes from the options); converted by that op's ``tf.raw`` converter
SAME_AS_RAW = {
    "SLICE": ("Slice", lambda o: {}), "TILE": ("Tile", lambda o: {}), "REVERSE_V2": ("ReverseV2", lambda o: {}),
    "GATHER_ND": ("GatherNd", lambda o: {}), "SELECT": ("Select", lambda o: {}),
    "SELECT_V2": ("SelectV2", lambda o: {}), "LOG_SOFTMAX": ("LogSoftmax", lambda o: {}),
    "TOPK_V2": ("TopKV2", lambda o: {"sorted": True}),
    "ARG_MAX": ("ArgMax", lambda o: {"output_type": o["output_type"]}),
    "ARG_MIN": ("ArgMin", lambda o: {"output_type": o["output_type"]}),
    "MIRROR_PAD": ("MirrorPad", lambda o: {"mode": o["mode"]}),
    "CUMSUM": ("Cumsum", lambda o: {"exclusive": o["exclusive"], "reverse": o["reverse"]}),
    "ONE_HOT": ("OneHot", lambda o: {"axis": o["axis"]}),
    "LOCAL_RESPONSE_NORMALIZATION": ("LRN", lambda o: {"depth_radius": o["radius"], "bias": o["bias"],
                                                        "alpha": o["alpha"], "beta": o["beta"]}),
}


@tflite_op(*SAME_AS_RAW)
def convert_same_as_raw(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """A builtin whose operands and options are a raw TF op's (``SAME_AS_RAW``; [TFLite] ``kernels/`` implement
    each as TF does: ``SELECT`` with a rank-1 condition picks rows, ``TOPK_V2`` sorts, ``MIRROR_PAD``'s two modes)."""
    op, attrs = SAME_AS_RAW[spec.config["op"]]
    return lookup(tf_raw.RAW + op)(raw_spec(spec, op, attrs(options)))


@tflite_op("CAST")
def convert_cast(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """To the output tensor's type: TFLite's kernel (``kernels/cast.cc``) reads the tensors' types, not the options
    (which older files leave out)."""
    options.get("in_data_type"), options.get("out_data_type")
    return tf_raw.convert_cast(raw_spec(spec, "Cast", {"DstT": spec.config["output_dtypes"][0]}))


@tflite_op("RELU_N1_TO_1")
def convert_relu_n1_to_1(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """``min(max(x, -1), 1)`` (``kernels/activations.cc``), which is ``nn.Hardtanh``."""
    return Converted(nn.Hardtanh(-1.0, 1.0))


@tflite_op("L2_NORMALIZATION")
def convert_l2_normalization(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """Over the last axis, ``x / max(sqrt(sum(x^2)), 1e-6)`` ([TFLite] ``kernels/internal/reference/
    l2normalization.h``), which is TF's ``x * rsqrt(max(sum(x^2), 1e-12))``: the ``l2_normalize`` function
    tf.math.l2_normalize runs (``nn/ops.py``; the TFLite converter fuses its Square, Sum, Maximum, Rsqrt, Mul);
    then the fused activation."""
    last = len(spec.input_shape) - 1
    module = Op("l2_normalize", [Slot(0), [last]], {"epsilon": 1e-12}, label=PREFIX + "L2_NORMALIZATION")
    return fused(spec, Converted(module, input_layouts=KERAS, output_layouts=KERAS), options)


@tflite_op("SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND")
def convert_space_to_batch(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """TF's ``SpaceToBatchND`` / ``BatchToSpaceND`` (block shape, then paddings or crops, as operands; [TFLite]
    ``kernels/space_to_batch_nd.cc``), which the TFLite converter leaves around a dilated convolution it does not
    fold back (a Keras ``Conv1D`` with ``dilation_rate``): each exact on its own (``ops/tf_raw.py``)."""
    op = {"SPACE_TO_BATCH_ND": "SpaceToBatchND", "BATCH_TO_SPACE_ND": "BatchToSpaceND"}[spec.config["op"]]
    return tf_raw.convert_space_to_batch(raw_spec(spec, op, {}))


# -- recurrent --------------------------------------------------------------------------------------------------
LSTM_ABSENT = {9: "peephole weights", 10: "peephole weights", 11: "peephole weights", 16: "a projection",
               17: "a projection bias", 20: "layer normalization", 21: "layer normalization",
               22: "layer normalization", 23: "layer normalization"}


@tflite_op("UNIDIRECTIONAL_SEQUENCE_LSTM")
def convert_sequence_lstm(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """Operands (kernels/lstm_shared.h): 0 input; 1-4 input weights and 5-8 recurrent weights of the input,
    forget, cell and output gates, (out, in) each; 12-15 their biases; 18, 19 the output and cell states (zero
    variables, or zero constants in float16-weight files). Peepholes, projection, layer norm and CIFG (no input
    gate) are refused by name."""
    operands = spec.config["operands"]
    present = [i for i, why in LSTM_ABSENT.items() if i < len(operands) and "absent" not in operands[i]]
    if present:
        spec.fail(f"{LSTM_ABSENT[present[0]]} (operand {present[0]}) is not supported")
    if len(operands) < 20 or "absent" in operands[1]:
        spec.fail("an LSTM without an input gate (CIFG) or with fewer than 20 operands is not supported")
    for i in (18, 19):  # a variable (float32 files) or a constant (float16-weight files: DEQUANTIZE of zeros)
        if "state" not in operands[i] and ("input" in operands[i] or np.any(const(spec, i, "the state"))):
            spec.fail(f"its initial state (operand {i}) is computed or not zero; only a zero state is supported")
    if options["diagonal_recurrent_tensors"]:
        spec.fail("diagonal recurrent weights are not supported")
    options.get("asymmetric_quantize_inputs")  # only with int8 weights, refused with the quantized model
    options.get("proj_clip")  # only with a projection, refused above
    activation = options["fused_activation_function"]
    if activation not in ACTIVATIONS:
        spec.fail(f"activation {activation} is not supported")
    w_ih = np.concatenate([const(spec, i, "input weights") for i in (1, 2, 3, 4)])
    w_hh = np.concatenate([const(spec, i, "recurrent weights") for i in (5, 6, 7, 8)])
    bias = np.concatenate([const(spec, i, "gate bias").reshape(-1) for i in (12, 13, 14, 15)])
    hidden = w_hh.shape[1]
    if w_ih.ndim != 2 or w_hh.shape != (4 * hidden, hidden) or bias.shape != (4 * hidden,) \
            or spec.input_shape[-1] not in (None, w_ih.shape[1]):
        spec.fail(f"weights {w_ih.shape} / {w_hh.shape} / bias {bias.shape} disagree with the input "
                  f"{spec.input_shape}")
    module = SequenceLSTM(to_tensor(w_ih), to_tensor(w_hh), to_tensor(bias), activation, options["cell_clip"],
                          options["time_major"])
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS)


# -- MediaPipe's custom operators ----------------------------------------------------------------------------------
@tflite_op("custom:Convolution2DTransposeBias")
def convert_transpose_conv_bias(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """MediaPipe's ``Convolution2DTransposeBias`` (mediapipe/util/tflite/operations/transpose_conv_bias.cc):
    operands (input, filter OHWI, bias); options a ``TfLiteTransposeConvParams`` (int32 padding: 1 SAME, 2 VALID;
    stride_w; stride_h). The output size follows from the input: ``s * (in - 1) + k - pad``, where SAME pads
    ``max(0, k - (in - 1) % s - 1)`` and starts ``pad // 2`` into the full transposed convolution."""
    raw = bytes(options["custom_options"])
    if len(raw) < 12:
        spec.fail(f"custom options of {len(raw)} bytes; expected at least 12 (padding, stride_w, stride_h)")
    padding, stride_w, stride_h = struct.unpack_from("<iii", raw)
    kernel, bias = const(spec, 1, "the filter"), const(spec, 2, "the bias").reshape(-1)
    spatial = spec.input_shape[1:3]
    if padding not in (0, 1, 2) or stride_w < 1 or stride_h < 1 or kernel.ndim != 4 \
            or bias.shape != (kernel.shape[0],) or None in spatial or "input" not in spec.config["operands"][0]:
        spec.fail(f"padding {padding}, strides ({stride_h}, {stride_w}), filter {kernel.shape}, bias {bias.shape} "
                  f"and input {spec.input_shape} do not fit together")
    crop = []
    for size, k, s in zip(spatial, kernel.shape[1:3], (stride_h, stride_w)):
        pad = max(0, k - (size - 1) % s - 1) if padding == 1 else 0
        crop.append((pad // 2, s * (size - 1) + k - pad))
    conv = nn.ConvTranspose2d(kernel.shape[3], kernel.shape[0], tuple(kernel.shape[1:3]), stride=(stride_h, stride_w))
    conv.weight = as_parameter(kernel.transpose(3, 0, 1, 2))
    conv.bias = as_parameter(bias)
    return Converted(ConvBackpropInput(conv, crop), input_layouts=tf_raw.CHANNELS_FIRST,
                     output_layouts=tf_raw.CHANNELS_FIRST)


# TfLiteFusedActivation → the range ``CalculateActivationRange`` clamps a float pool's output to (None: no clamp;
# TANH, SIGN_BIT and SIGMOID have no float range there, so the MediaPipe pooling kernels apply nothing for them)
POOL_CLAMPS = {0: None, 1: (0.0, float("inf")), 2: (-1.0, 1.0), 3: (0.0, 6.0), 4: None, 5: None, 6: None}


def pool_params(spec: LayerSpec, options: TrackedConfig) -> tuple[int, tuple[int, int], tuple[int, int], int]:
    """A custom operator's ``TfLitePoolParams`` (tensorflow/lite/core/c/builtin_op_data.h, the struct MediaPipe's
    pooling kernels cast ``custom_initial_data`` to): int32 padding (1 SAME, 2 VALID), stride_w, stride_h,
    filter_w, filter_h, activation. Returns (padding, (filter_h, filter_w), (stride_h, stride_w), activation)."""
    raw = bytes(options["custom_options"])
    if len(raw) < 24:
        spec.fail(f"custom options of {len(raw)} bytes; expected at least 24 (a TfLitePoolParams)")
    padding, stride_w, stride_h, filter_w, filter_h, activation = struct.unpack_from("<6i", raw)
    if padding not in (1, 2) or min(stride_w, stride_h, filter_w, filter_h) < 1 or activation not in POOL_CLAMPS \
            or len(spec.input_shape) != 4 or None in spec.input_shape[1:3]:
        spec.fail(f"padding {padding}, strides ({stride_h}, {stride_w}), filter ({filter_h}, {filter_w}), "
                  f"activation {activation} on an input of shape {spec.input_shape}: not a pooling it can convert")
    return padding, (filter_h, filter_w), (stride_h, stride_w), activation


def compute_padding(stride: int, size: int, kernel: int, out: int) -> int:
    """TFLite's ``ComputePadding`` (kernels/padding.h) without dilation: the padding before, never negative."""
    return max(((out - 1) * stride + kernel - size) // 2, 0)


@tflite_op("custom:MaxPoolingWithArgmax2D")
def convert_max_pool_argmax(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """MediaPipe's ``MaxPoolingWithArgmax2D`` (mediapipe/util/tflite/operations/max_pool_argmax.cc): one input, two
    float32 outputs (the pooled values, each max's position in its window). Output size as TF's
    ``GetWindowedOutputSize`` (SAME ``ceil(in / s)``, VALID ``(in - k + s) // s``), padding before as
    ``ComputePadding``; the fused activation's range clamps the values."""
    padding, kernel, stride, activation = pool_params(spec, options)
    if len(spec.config["operands"]) != 1 or len(spec.config["output_tensors"]) != 2:
        spec.fail("expected one input and two outputs (values, indices)")
    pads = []
    for size, k, s in zip(spec.input_shape[1:3], kernel, stride):
        out = (size + s - 1) // s if padding == 1 else (size - k + s) // s
        if out < 1:
            spec.fail(f"a window of {k} does not fit an input of {size}")
        before = compute_padding(s, size, k, out)
        pads += [before, max((out - 1) * s + k - size - before, 0)]
    module = MaxPoolArgmax(kernel, stride, (pads[0], pads[1], pads[2], pads[3]), POOL_CLAMPS[activation])
    return Converted(module, input_layouts=tf_raw.CHANNELS_FIRST,
                     output_layouts=[tf_raw.CHANNELS_FIRST, tf_raw.CHANNELS_FIRST])


@tflite_op("custom:MaxUnpooling2D")
def convert_max_unpooling(spec: LayerSpec, options: TrackedConfig) -> Converted:
    """MediaPipe's ``MaxUnpooling2D`` (mediapipe/util/tflite/operations/max_unpooling.cc): inputs (values,
    indices as MaxPoolingWithArgmax2D writes them), output (H * filter_h, W * filter_w) whatever the padding and
    strides; the padding before is ``ComputePadding(stride, out, filter, in)``. Its activation is read but never
    applied by the kernel."""
    _, kernel, stride, _ = pool_params(spec, options)
    operands = spec.config["operands"]
    if len(operands) != 2 or any("input" not in o for o in operands) or len(spec.input_shapes) != 2 \
            or len(spec.input_shapes[1]) != 4:
        spec.fail("expected two run-time inputs (values, indices), both 4-D")
    pads = [compute_padding(s, size * k, k, size) for size, k, s in zip(spec.input_shape[1:3], kernel, stride)]
    return Converted(MaxUnpool(kernel, stride, (pads[0], pads[1])), input_layouts=tf_raw.CHANNELS_FIRST,
                     output_layouts=tf_raw.CHANNELS_FIRST)
