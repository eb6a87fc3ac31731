"""The parts of TensorFlow Lite's schema tf2torch reads: field slots of the tables, the enums, and the options
tables of the operators it converts. Source: tensorflow/lite/schema/schema.fbs (TF 2.21; field slot =
``4 + 2 * id``, ids in declaration order, deprecated fields keep their slot)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .flatbuf import Table

IDENTIFIER = b"TFL3"  # the file_identifier, bytes 4..8 of every .tflite file

# TensorType → numpy dtype (None: not a dense numeric tensor tf2torch reads)
TENSOR_TYPES: dict[int, str | None] = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: None, 6: "bool", 7: "int16",
    8: None, 9: "int8", 10: "float64", 11: None, 12: "uint64", 13: None, 14: None, 15: "uint32", 16: "uint16",
}
TYPE_NAMES = {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 4: "INT64", 5: "STRING", 6: "BOOL", 7: "INT16",
              8: "COMPLEX64", 9: "INT8", 10: "FLOAT64", 11: "COMPLEX128", 12: "UINT64", 13: "RESOURCE",
              14: "VARIANT", 15: "UINT32", 16: "UINT16", 17: "INT4", 18: "BFLOAT16", 19: "INT2", 20: "UINT4"}

BUILTINS = (
    "ADD AVERAGE_POOL_2D CONCATENATION CONV_2D DEPTHWISE_CONV_2D DEPTH_TO_SPACE DEQUANTIZE EMBEDDING_LOOKUP FLOOR "
    "FULLY_CONNECTED HASHTABLE_LOOKUP L2_NORMALIZATION L2_POOL_2D LOCAL_RESPONSE_NORMALIZATION LOGISTIC "
    "LSH_PROJECTION LSTM MAX_POOL_2D MUL RELU RELU_N1_TO_1 RELU6 RESHAPE RESIZE_BILINEAR RNN SOFTMAX "
    "SPACE_TO_DEPTH SVDF TANH CONCAT_EMBEDDINGS SKIP_GRAM CALL CUSTOM EMBEDDING_LOOKUP_SPARSE PAD "
    "UNIDIRECTIONAL_SEQUENCE_RNN GATHER BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND TRANSPOSE MEAN SUB DIV SQUEEZE "
    "UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE BIDIRECTIONAL_SEQUENCE_RNN EXP TOPK_V2 SPLIT LOG_SOFTMAX DELEGATE "
    "BIDIRECTIONAL_SEQUENCE_LSTM CAST PRELU MAXIMUM ARG_MAX MINIMUM LESS NEG PADV2 GREATER GREATER_EQUAL "
    "LESS_EQUAL SELECT SLICE SIN TRANSPOSE_CONV SPARSE_TO_DENSE TILE EXPAND_DIMS EQUAL NOT_EQUAL LOG SUM SQRT "
    "RSQRT SHAPE POW ARG_MIN FAKE_QUANT REDUCE_PROD REDUCE_MAX PACK LOGICAL_OR ONE_HOT LOGICAL_AND LOGICAL_NOT "
    "UNPACK REDUCE_MIN FLOOR_DIV REDUCE_ANY SQUARE ZEROS_LIKE FILL FLOOR_MOD RANGE RESIZE_NEAREST_NEIGHBOR "
    "LEAKY_RELU SQUARED_DIFFERENCE MIRROR_PAD ABS SPLIT_V UNIQUE CEIL REVERSE_V2 ADD_N GATHER_ND COS WHERE RANK "
    "ELU REVERSE_SEQUENCE MATRIX_DIAG QUANTIZE MATRIX_SET_DIAG ROUND HARD_SWISH IF WHILE NON_MAX_SUPPRESSION_V4 "
    "NON_MAX_SUPPRESSION_V5 SCATTER_ND SELECT_V2 DENSIFY SEGMENT_SUM BATCH_MATMUL PLACEHOLDER_FOR_GREATER_OP_CODES "
    "CUMSUM CALL_ONCE BROADCAST_TO RFFT2D CONV_3D IMAG REAL COMPLEX_ABS HASHTABLE HASHTABLE_FIND HASHTABLE_IMPORT "
    "HASHTABLE_SIZE REDUCE_ALL CONV_3D_TRANSPOSE VAR_HANDLE READ_VARIABLE ASSIGN_VARIABLE BROADCAST_ARGS "
    "RANDOM_STANDARD_NORMAL BUCKETIZE RANDOM_UNIFORM MULTINOMIAL GELU DYNAMIC_UPDATE_SLICE RELU_0_TO_1 "
    "UNSORTED_SEGMENT_PROD UNSORTED_SEGMENT_MAX UNSORTED_SEGMENT_SUM ATAN2 UNSORTED_SEGMENT_MIN SIGN BITCAST "
    "BITWISE_XOR RIGHT_SHIFT").split()


def builtin_name(code: int) -> str:
    return BUILTINS[code] if 0 <= code < len(BUILTINS) else f"BUILTIN_{code}"


PADDING = {0: "SAME", 1: "VALID"}
ACTIVATION = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def _pad(t: Table, slot: int) -> str:
    return PADDING.get(t.scalar(slot, "b"), f"padding {t.scalar(slot, 'b')}")


def _act(t: Table, slot: int) -> str:
    return ACTIVATION.get(t.scalar(slot, "b"), f"activation {t.scalar(slot, 'b')}")


# Each options table as a dict, by its BuiltinOptions union type (schema.fbs ``union BuiltinOptions``). A field
# tf2torch does not read is not listed; the converters refuse values they do not implement.
def _conv(t: Table) -> dict[str, Any]:
    return {"padding": _pad(t, 4), "stride_w": t.scalar(6, "i"), "stride_h": t.scalar(8, "i"),
            "fused_activation_function": _act(t, 10), "dilation_w_factor": t.scalar(12, "i", 1),
            "dilation_h_factor": t.scalar(14, "i", 1)}


def _depthwise(t: Table) -> dict[str, Any]:
    return {"padding": _pad(t, 4), "stride_w": t.scalar(6, "i"), "stride_h": t.scalar(8, "i"),
            "depth_multiplier": t.scalar(10, "i"), "fused_activation_function": _act(t, 12),
            "dilation_w_factor": t.scalar(14, "i", 1), "dilation_h_factor": t.scalar(16, "i", 1)}


def _pool(t: Table) -> dict[str, Any]:
    return {"padding": _pad(t, 4), "stride_w": t.scalar(6, "i"), "stride_h": t.scalar(8, "i"),
            "filter_width": t.scalar(10, "i"), "filter_height": t.scalar(12, "i"),
            "fused_activation_function": _act(t, 14)}


def _fully_connected(t: Table) -> dict[str, Any]:
    return {"fused_activation_function": _act(t, 4), "weights_format": t.scalar(6, "b"),
            "keep_num_dims": bool(t.scalar(8, "?", False))}


def _activation_only(t: Table) -> dict[str, Any]:
    return {"fused_activation_function": _act(t, 4)}


def _concat(t: Table) -> dict[str, Any]:
    return {"axis": t.scalar(4, "i"), "fused_activation_function": _act(t, 6)}


def _reshape(t: Table) -> dict[str, Any]:
    return {"new_shape": t.scalars(4, "i", "ReshapeOptions.new_shape")}


def _resize_bilinear(t: Table) -> dict[str, Any]:
    return {"align_corners": bool(t.scalar(8, "?", False)), "half_pixel_centers": bool(t.scalar(10, "?", False))}


def _resize_nearest(t: Table) -> dict[str, Any]:
    return {"align_corners": bool(t.scalar(4, "?", False)), "half_pixel_centers": bool(t.scalar(6, "?", False))}


def _transpose_conv(t: Table) -> dict[str, Any]:
    return {"padding": _pad(t, 4), "stride_w": t.scalar(6, "i"), "stride_h": t.scalar(8, "i"),
            "fused_activation_function": _act(t, 10)}


def _strided_slice(t: Table) -> dict[str, Any]:
    masks = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
    return {**{k: t.scalar(4 + 2 * i, "i") for i, k in enumerate(masks)}, "offset": bool(t.scalar(14, "?", False))}


def _axis_count(count: str) -> Any:
    return lambda t: {count: t.scalar(4, "i"), "axis": t.scalar(6, "i")}


def _sequence_lstm(t: Table) -> dict[str, Any]:
    return {"fused_activation_function": _act(t, 4), "cell_clip": t.scalar(6, "f", 0.0),
            "proj_clip": t.scalar(8, "f", 0.0), "time_major": bool(t.scalar(10, "?", False)),
            "asymmetric_quantize_inputs": bool(t.scalar(12, "?", False)),
            "diagonal_recurrent_tensors": bool(t.scalar(14, "?", False))}


OPTIONS = {
    19: lambda t: {"block_size": t.scalar(4, "i")}, 94: lambda t: {"block_size": t.scalar(4, "i")},
    71: _sequence_lstm,
    23: lambda t: {"axis": t.scalar(4, "i"), "batch_dims": t.scalar(6, "i")},
    30: lambda t: {"squeeze_dims": t.scalars(4, "i", "SqueezeOptions.squeeze_dims")},
    32: _strided_slice, 35: lambda t: {"num_splits": t.scalar(4, "i")}, 79: lambda t: {"num_splits": t.scalar(4, "i")},
    55: lambda t: {"out_type": TENSOR_TYPES.get(t.scalar(4, "b"))}, 59: _axis_count("values_count"),
    64: _axis_count("num"), 75: lambda t: {"alpha": t.scalar(4, "f", 0.0)},
    101: lambda t: {"adj_x": bool(t.scalar(4, "?", False)), "adj_y": bool(t.scalar(6, "?", False)),
                    "asymmetric_quantize_inputs": bool(t.scalar(8, "?", False))},
    1: _conv, 2: _depthwise, 5: _pool, 8: _fully_connected,
    9: lambda t: {"beta": t.scalar(4, "f", 0.0)},
    10: _concat, 11: _activation_only, 15: _resize_bilinear, 17: _reshape, 21: _activation_only,
    27: lambda t: {"keep_dims": bool(t.scalar(4, "?", False))},
    28: _activation_only, 29: _activation_only, 49: _transpose_conv, 74: _resize_nearest,
    116: lambda t: {"approximate": bool(t.scalar(4, "?", False))},
    40: lambda t: {"output_type": TENSOR_TYPES.get(t.scalar(4, "b"))},
    57: lambda t: {"output_type": TENSOR_TYPES.get(t.scalar(4, "b"))},
    37: lambda t: {"in_data_type": TENSOR_TYPES.get(t.scalar(4, "b")),
                   "out_data_type": TENSOR_TYPES.get(t.scalar(6, "b"))},
    12: lambda t: {"fused_activation_function": _act(t, 4)},
    13: lambda t: {"radius": t.scalar(4, "i"), "bias": t.scalar(6, "f", 0.0), "alpha": t.scalar(8, "f", 0.0),
                   "beta": t.scalar(10, "f", 0.0)},
    77: lambda t: {"mode": {0: "REFLECT", 1: "SYMMETRIC"}.get(t.scalar(4, "b"), f"mode {t.scalar(4, 'b')}")},
    102: lambda t: {"exclusive": bool(t.scalar(4, "?", False)), "reverse": bool(t.scalar(6, "?", False))},
    61: lambda t: {"axis": t.scalar(4, "i")},
}


# options tables without fields (PadOptions, BatchToSpaceNDOptions, SpaceToBatchNDOptions, TransposeOptions,
# ExpOptions, DequantizeOptions, NegOptions, PadV2Options, HardSwishOptions, MaximumMinimumOptions, PowOptions,
# SquareOptions, SquaredDifferenceOptions, AbsOptions, CosOptions, ExpandDimsOptions; TopKV2Options,
# LogSoftmaxOptions, LessOptions, GreaterOptions, GreaterEqualOptions, LessEqualOptions, SelectOptions,
# SliceOptions, TileOptions, EqualOptions, NotEqualOptions, LogicalOrOptions, LogicalAndOptions, LogicalNotOptions,
# FloorDivOptions, FloorModOptions, ReverseV2Options, GatherNdOptions, SelectV2Options, SignOptions)
EMPTY_OPTIONS = frozenset({22, 24, 25, 26, 33, 38, 39, 42, 43, 52, 56, 66, 76, 78, 84, 91, 34, 36, 41, 44, 45, 46, 47,
                           48, 51, 53, 54, 60, 62, 63, 65, 72, 81, 83, 98, 123})


def read_options(op: Table) -> dict[str, Any]:
    """The operator's builtin options as a dict; ``{"options_type": n}`` for a table tf2torch does not read
    (its converter, if any, then refuses it)."""
    kind = op.scalar(10, "B")
    table = op.table(12, "Operator.builtin_options")
    if kind == 0 or table is None:
        return {}
    if kind in EMPTY_OPTIONS:
        return {}
    if kind not in OPTIONS:
        return {"options_type": kind}
    return OPTIONS[kind](table)


def element_count(shape: list[int]) -> int:
    return int(np.prod([max(d, 1) for d in shape], dtype=np.float64)) if shape else 1
