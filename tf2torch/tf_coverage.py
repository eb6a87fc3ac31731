"""Which TensorFlow ops tf2torch converts, measured against the ops tf2onnx's handlers convert: the source of
``docs/tf-ops.md``, regenerated with ``python -m tf2torch.tf_coverage docs/tf-ops.md`` (a test fails when
the file is stale).

Each op's status comes from the registry itself (a ``tf.raw>Op`` converter), from what the graph walker does
with it before conversion (``readers/tf_graph.py``: identities looked through, constant predicates resolved,
function calls inlined, dilated convolutions folded), or from the reasons below: refused with the reason, or
not applicable (input pipelines, strings, TPU and resource bookkeeping).
"""

from __future__ import annotations

import sys
from pathlib import Path

# tf2onnx's op handlers: every name in a ``@tf_op(...)`` of ``tf2onnx/onnx_opset/*.py`` at onnx/tensorflow-onnx
# commit 6537fcb2ee98, by the module that holds it; "rewriter": control flow v1 and TensorArrays,
# which tf2onnx rewrites into ONNX ``Loop`` before its handlers run (``tf2onnx/rewriter/``).
TF2ONNX_COMMIT = "6537fcb2ee9868f7446a278dc1473915cdec5d45"
TF2ONNX_OPS = {
    "controlflow": """
        If Loop Range Scan Select SelectV2 StatelessIf StatelessWhile TensorListFromTensor TensorListGetItem
        TensorListLength TensorListReserve TensorListResize TensorListSetItem TensorListStack Where While
    """,
    "generator": """
        Const ConstV2 FIFOQueueV2 Fill IteratorGetNext IteratorV2 Multinomial OnesLike QueueDequeueManyV2
        QueueDequeueUpToV2 QueueDequeueV2 RandomNormal RandomNormalLike RandomShuffle RandomStandardNormal
        RandomUniform RandomUniformInt RandomUniformLike ZerosLike
    """,
    "logical": """
        Equal Greater GreaterEqual Less LessEqual LogicalAnd LogicalNot LogicalOr NotEqual
    """,
    "math": """
        Abs Acos Acosh Add AddV2 Asin Asinh Atan Atan2 Atanh BatchMatMul BatchMatMulV2 BatchMatMulV3 BitwiseAnd
        BitwiseOr BitwiseXor Ceil ClipByValue Cos Cosh Cumprod Cumsum Div DivNoNan Einsum Elu Erf Exp Floor
        FloorDiv FloorMod HardSwish Invert InvertPermutation IsFinite L2Normalization LRN LeakyRelu LeftShift
        Log LogSoftmax MatMul MatrixDeterminant Maximum Minimum Mul Neg Pow Prelu RealDiv Reciprocal Relu Relu6
        RightShift Rint Round Rsqrt Selu Sigmoid Sign Sin Sinh Softmax Softplus Softsign Sqrt Square
        SquaredDifference SquaredDistance Sub Tan Tanh TruncateDiv
    """,
    "misc": """
        CheckNumerics NoOp Placeholder PlaceholderV2 PlaceholderWithDefault StopGradient
    """,
    "nn": """
        AdjustContrastv2 AdjustHue AdjustSaturation AvgPool AvgPool3D BiasAdd BiasAddV1 CTCGreedyDecoder Conv1D
        Conv2D Conv2DBackpropInput Conv3D Conv3DBackpropInputV2 CropAndResize DepthToSpace DepthwiseConv2d
        DepthwiseConv2dNative ExtractImagePatches FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3
        MatrixBandPart MaxPool MaxPool3D MaxPoolV2 MaxPoolWithArgmax MirrorPad Pad PadV2 ResizeArea
        ResizeBicubic ResizeBilinear ResizeNearestNeighbor SampleDistortedBoundingBox
        SampleDistortedBoundingBoxV2 SoftmaxCrossEntropyWithLogits SpaceToDepth
        SparseSoftmaxCrossEntropyWithLogits
    """,
    "quantize": """
        FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars
    """,
    "reduction": """
        AddN All Any ArgMax ArgMin Max Mean Min Prod SegmentMax SegmentMean SegmentMin SegmentProd SegmentSum
        SparseSegmentMean SparseSegmentMeanWithNumSegments SparseSegmentSqrtN SparseSegmentSqrtNWithNumSegments
        SparseSegmentSum SparseSegmentSumWithNumSegments Sum UnsortedSegmentMax UnsortedSegmentMin
        UnsortedSegmentProd UnsortedSegmentSum
    """,
    "rnn": """
        CudnnRNN LSTMBlockCell
    """,
    "signal": """
        ComplexAbs FFT RFFT RFFT2D
    """,
    "tensor": """
        AsString BatchToSpaceND Bincount BroadcastTo Cast CombinedNonMaxSuppression Concat ConcatV2
        DenseBincount DenseToDenseSetOperation Dropout DynamicPartition DynamicStitch EnsureShape ExpandDims
        Flatten Gather GatherNd GatherV2 Identity IdentityN IsInf IsNan MatrixDiag MatrixDiagPart
        MatrixDiagPartV2 MatrixDiagPartV3 MatrixDiagV2 MatrixDiagV3 MatrixSetDiagV3 NonMaxSuppressionV2
        NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5 OneHot Pack ParallelDynamicStitch
        RaggedGather RaggedRange RaggedTensorFromVariant RaggedTensorToSparse RaggedTensorToTensor
        RaggedTensorToVariant Reshape ReverseSequence ReverseV2 Roll ScatterNd Shape Size Slice SpaceToBatchND
        SparseFillEmptyRows SparseReshape SparseToDense Split SplitV Squeeze StridedSlice StringToNumber
        TensorScatterAdd TensorScatterMax TensorScatterMin TensorScatterSub TensorScatterUpdate Tile TopKV2
        Transpose Unique UniqueWithCounts Unpack
    """,
    "rewriter": """
        Enter Exit LoopCond Merge NextIteration Switch TensorArrayGatherV3 TensorArrayReadV3 TensorArrayScatterV3
        TensorArraySizeV3 TensorArrayV3 TensorArrayWriteV3
    """,
}

# What the graph walker does with an op before any converter sees it (readers/tf_graph.py).
WALKER = {
    **dict.fromkeys(("Const",), "folded: a constant operand (inline or a weight)"),
    **dict.fromkeys(("Placeholder", "PlaceholderV2"), "an input, or a constant with --constant"),
    "PlaceholderWithDefault": "an input when chosen, else its default (a constant)",
    **dict.fromkeys(("Identity", "IdentityN", "StopGradient", "CheckNumerics", "EnsureShape", "Snapshot"),
                    "looked through (an identity at inference)"),
    "NoOp": "ignored (control dependencies order side effects, never values)",
    **dict.fromkeys(("If", "StatelessIf"), "the taken branch inlined when the predicate is constant (fix it "
                    "with --constant); refused when it is computed at run time"),
    **dict.fromkeys(("Switch", "Merge"), "resolved when the predicate is constant (fix it with --constant); "
                    "inside a TF 1 while loop: part of the loop rebuilt as a While"),
    **dict.fromkeys(("Enter", "Exit", "LoopCond", "NextIteration"), "a TF 1 while loop (control flow v1) rebuilt "
                    "as a TF 2 While with cond and body functions (readers/tf_frames.py); nested loops refused"),
    **dict.fromkeys(("TensorArrayGatherV3", "TensorArrayReadV3", "TensorArrayScatterV3", "TensorArraySizeV3",
                     "TensorArrayV3", "TensorArrayWriteV3"), "rewritten as the TensorList op of the same meaning "
                    "(readers/tf_frames.py), then converted"),
    **dict.fromkeys(("PartitionedCall", "StatefulPartitionedCall"), "inlined from the graph's function library"),
}
REFUSED = {
    **dict.fromkeys(("Multinomial", "RandomShuffle", "RandomStandardNormal",
                     "RandomUniform", "RandomUniformInt", "TruncatedNormal",
                     "StatelessRandomUniformV2", "StatelessRandomNormalV2", "StatelessTruncatedNormalV2"),
                    "refused: draws random numbers (dropout or noise left in training mode: fix the training "
                    "flag with --constant)"),
    **dict.fromkeys(("SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits"),
                    "refused: a training loss; name the model's outputs with --outputs"),
    **dict.fromkeys(("CudnnRNN", "LSTMBlockCell"), "refused: recurrent-cell ops are not converted yet (they come "
                    "with TF 1 loops; Keras's LSTM/GRU layers and TF 2 While loops are)"),
}
NOT_APPLICABLE = {
    "an input pipeline op: the walker takes the tensors it feeds as inputs": (
        "FIFOQueueV2", "IteratorGetNext", "IteratorV2", "QueueDequeueManyV2", "QueueDequeueUpToV2",
        "QueueDequeueV2"),
    "string tensors": ("AsString", "StringToNumber"),
    "sparse or ragged tensors (tf2torch converts dense tensors)": (
        "RaggedGather", "RaggedRange", "RaggedTensorFromVariant", "RaggedTensorToSparse", "RaggedTensorToTensor",
        "RaggedTensorToVariant", "SparseFillEmptyRows", "SparseReshape", "SparseToDense",
        "SparseSegmentMean", "SparseSegmentMeanWithNumSegments", "SparseSegmentSqrtN",
        "SparseSegmentSqrtNWithNumSegments", "SparseSegmentSum", "SparseSegmentSumWithNumSegments"),
    "complex tensors (tf2torch converts real tensors)": ("ComplexAbs", "FFT", "RFFT", "RFFT2D"),
    "sparse outputs (a SparseTensor's indices, values and shape)": ("CTCGreedyDecoder",
                                                                   "DenseToDenseSetOperation"),
    "random image augmentation (training only)": ("SampleDistortedBoundingBox", "SampleDistortedBoundingBoxV2"),
    "not a TensorFlow op (an ONNX, TFLite or tf2onnx-internal name; TF's own op is listed)": (
        "ConstV2", "DepthwiseConv2d", "Dropout", "Flatten", "HardSwish", "L2Normalization", "Loop", "Prelu",
        "RandomNormal", "RandomNormalLike", "RandomUniformLike", "Scan", "SquaredDistance"),
}


def tf2onnx_ops() -> dict[str, str]:
    """op → the tf2onnx module whose handler converts it."""
    return {op: family for family, names in TF2ONNX_OPS.items() for op in names.split()}


def status(op: str) -> tuple[str, str]:
    """(kind, text): kind is ``converted``, ``walker``, ``refused`` or ``n/a``."""
    from . import ops as _ops  # noqa: F401  (registers the raw TF ops' converters)
    from .registry import describe, lookup

    if op in REFUSED:
        return "refused", REFUSED[op][len("refused: "):]
    if op in WALKER:
        return "walker", WALKER[op]
    if lookup("tf.raw>" + op) is not None:
        return "converted", str(describe("tf.raw>" + op))
    for reason, ops in NOT_APPLICABLE.items():
        if op in ops:
            return "n/a", reason
    return "refused", "no converter yet (refused by name, with every other unsupported op of the graph)"


def raw_ops_converted() -> list[str]:
    """Every TF op with a registered ``tf.raw>`` converter."""
    from . import ops as _ops  # noqa: F401  (registers the raw TF ops' converters)
    from .registry import spellings

    return sorted(name[len("tf.raw>"):] for name in spellings("tf") if name.startswith("tf.raw>"))


def render() -> str:
    """docs/tf-ops.md."""
    ours = tf2onnx_ops()
    rows = [(op, family, *status(op)) for op, family in sorted(ours.items())]
    counts = {kind: sum(1 for r in rows if r[2] == kind) for kind in ("converted", "walker", "refused", "n/a")}
    lines = [
        "# TensorFlow ops: what tf2torch converts",
        "",
        "Generated by `python -m tf2torch.tf_coverage docs/tf-ops.md` from tf2torch's registry "
        "(`tf2torch/tf_coverage.py`); a test fails when this file is stale. Do not edit by hand.",
        "",
        f"The ops are those tf2onnx's handlers convert (`@tf_op` in `tf2onnx/onnx_opset/*.py` at onnx/tensorflow-onnx "
        f"{TF2ONNX_COMMIT[:12]}, and the control-flow-v1 and TensorArray ops its rewriters turn into `Loop`): "
        f"{len(rows)} ops; {counts['converted']} converted, {counts['walker']} handled by the graph walker before "
        f"conversion, {counts['refused']} refused, {counts['n/a']} not applicable.",
        "",
        "Statuses: **converted** (the converter that does it; it may still refuse a configuration by name), "
        "**walker** (what `readers/tf_graph.py` does with the op), **refused** (with the reason the conversion "
        "gives), **n/a** (no meaning in a torch module: input pipelines, strings, sparse tensors).",
        "",
        "| op | tf2onnx | status | how |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{op}` | {family} | {kind} | {text} |" for op, family, kind, text in rows]
    extra = [op for op in raw_ops_converted() if op not in ours and op not in REFUSED]
    lines += ["", f"## Converted here, not among tf2onnx's handlers ({len(extra)})", "",
              ", ".join(f"`{op}`" for op in extra), ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if not argv:
        sys.stdout.write(text)
        return 0
    Path(argv[0]).write_text(text, encoding="utf8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
