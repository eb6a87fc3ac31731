"""Raw TF ops through the graph walker: a table of small ``tf.function``s, each frozen to a GraphDef ``.pb``,
converted in both layouts and compared with TensorFlow's own output."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from harness import LAYOUTS, assert_matches, torch_outputs

import tf2torch

RNG = np.random.default_rng(0)


def w(*shape):
    return RNG.standard_normal(shape).astype("float32")


X4 = (2, 8, 8, 4)
WEIGHTS = {"k": w(3, 3, 4, 5), "k2": w(2, 2, 4, 5), "dw": w(3, 3, 4, 2), "k3": w(3, 3, 3, 3, 2), "kt": w(3, 3, 5, 4),
           "m": w(4, 6), "scale": np.abs(w(4)) + 0.5, "offset": w(4), "mean": w(4), "var": np.abs(w(4)) + 0.5}


def cases(tf):
    W = WEIGHTS
    return {
        "conv_valid_dilated": (X4, lambda x: tf.nn.conv2d(x, W["k"], 1, "VALID", dilations=2)),
        "conv_same_stride2_even_kernel": (X4, lambda x: tf.nn.relu(tf.nn.conv2d(x, W["k2"], 2, "SAME"))),
        "conv_explicit": (X4, lambda x: tf.nn.conv2d(x, W["k"], 2, [[0, 0], [1, 2], [2, 1], [0, 0]])),
        "depthwise_stride2": (X4, lambda x: tf.nn.depthwise_conv2d(x, W["dw"], [1, 2, 2, 1], "SAME")),
        "conv3d_same": ((2, 4, 6, 6, 3), lambda x: tf.nn.conv3d(x, W["k3"], [1, 1, 2, 2, 1], "SAME")),
        "conv_transpose_same": (X4, lambda x: tf.nn.conv2d_transpose(
            x, W["kt"], tf.stack([tf.shape(x)[0], 16, 16, 5]), 2, "SAME")),
        "conv_transpose_explicit": (X4, lambda x: tf.nn.conv2d_transpose(
            x, W["kt"], tf.stack([tf.shape(x)[0], 16, 15, 5]), 2, [[0, 0], [1, 0], [1, 2], [0, 0]])),
        "tf1_spellings": (X4, lambda x: tf.raw_ops.Concat(concat_dim=3, values=[
            tf.raw_ops.BiasAddV1(value=x, bias=W["offset"]),
            tf.raw_ops.FusedBatchNorm(x=x, scale=W["scale"], offset=W["offset"], mean=W["mean"], variance=W["var"],
                                      epsilon=1e-3, is_training=False)[0]])
            + tf.raw_ops.BatchMatMul(x=x, y=x[:, :, :4], adj_y=True)[..., :1]
            + tf.raw_ops.Gather(params=x, indices=[1, 0])[:1, ..., :1]),
        "pools": (X4, lambda x: tf.nn.avg_pool2d(x, 3, 2, "SAME") + tf.nn.max_pool2d(x, 3, 2, "SAME")),
        "pool_valid_3d": ((2, 4, 6, 6, 3), lambda x: tf.nn.max_pool3d(x, 2, 2, "VALID") * 2.0),
        "batch_norm_inference": (X4, lambda x: tf.compat.v1.nn.fused_batch_norm(
            x, W["scale"], W["offset"], W["mean"], W["var"], epsilon=1e-3, is_training=False)[0]),
        "batch_norm_nchw": ((2, 4, 5, 6), lambda x: tf.nn.relu6(tf.compat.v1.nn.fused_batch_norm(
            x, W["scale"], W["offset"], W["mean"], W["var"], epsilon=1e-3, data_format="NCHW",
            is_training=False)[0])),
        "resize_bilinear_half_pixel": (X4, lambda x: tf.image.resize(x, (13, 5))),
        "resize_bilinear_align_corners": (X4, lambda x: tf.compat.v1.image.resize_bilinear(
            x, (13, 5), align_corners=True)),
        "resize_bilinear_legacy": (X4, lambda x: tf.compat.v1.image.resize_bilinear(x, (13, 5))),
        "resize_nearest": (X4, lambda x: tf.image.resize(x, (13, 5), method="nearest")
                           + tf.compat.v1.image.resize_nearest_neighbor(x, (13, 5), align_corners=True)),
        "pads": (X4, lambda x: tf.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]], "REFLECT")
                 + tf.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]], "SYMMETRIC")
                 + tf.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]], constant_values=0.5)),
        "strided_slices": (X4, lambda x: tf.concat([x[:, ::-1, 1:5:2, :][:, 2:6], x[:, 1:5, 0:2, 1:]], axis=-1)),
        "slice_shrink_newaxis": (X4, lambda x: x[..., 0][:, tf.newaxis, 2:, -1] * tf.slice(x, [0, 1, 1, 0],
                                                                                           [-1, 1, 6, 1])[..., 0]),
        "shape_ops": (X4, lambda x: tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [-1, 4, 64])),
        "flatten_dynamic": (X4, lambda x: tf.nn.softmax(tf.matmul(
            tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1, 4]), axis=1), W["m"]))),
        "squeeze_expand_tile": (X4, lambda x: tf.tile(tf.expand_dims(tf.squeeze(x[:, :1], axis=1), 1),
                                                      [1, 2, 1, 1])),
        "stack_unstack_split": (X4, lambda x: tf.stack(tf.unstack(x, axis=3)[::-1], axis=1)
                                + tf.concat(tf.split(x, 2, axis=3)[::-1], axis=3)[:, None, :, :, 0]),
        "splitv_gather": (X4, lambda x: tf.gather(tf.split(x, [1, -1], axis=2)[1], [2, 0, 1], axis=3)),
        "reductions": (X4, lambda x: tf.reduce_max(x, axis=-1, keepdims=True) + tf.reduce_sum(x, [1, 2],
                       keepdims=True) - tf.reduce_min(x, axis=[1, 2, 3], keepdims=True)),
        "mean_channels": (X4, lambda x: tf.reduce_mean(x, axis=3)),
        "elementwise": (X4, lambda x: tf.nn.leaky_relu(x, 0.3) + tf.nn.selu(x) + tf.nn.softplus(x)
                        + tf.math.rsqrt(tf.abs(x) + 1.0) + tf.pow(tf.abs(x), 1.5) + tf.nn.elu(x)
                        + tf.maximum(x, 0.2) - tf.minimum(x, W["offset"]) + tf.math.squared_difference(x, 1.0)
                        + tf.math.divide_no_nan(x, tf.nn.relu(x)) + tf.nn.relu6(x * 4.0) + tf.tanh(-x)),
        "select": (X4, lambda x: tf.where(x > 0.0, x, 0.1 * x) + tf.cast(tf.logical_and(x > -1.0, x < 1.0),
                                                                          tf.float32)),
        "matmuls": ((2, 3, 4), lambda x: tf.matmul(x, x, transpose_b=True) + tf.einsum("bij,bkj->bik", x, x)),
        "lrn": (X4, lambda x: tf.nn.local_response_normalization(x, depth_radius=2, bias=1.0, alpha=0.1, beta=0.75)),
        "softmax_4d": (X4, lambda x: tf.nn.softmax(x) + tf.nn.log_softmax(x)),
        "shared_functions": (X4, lambda x: tf.add_n([x, x * 2.0, tf.nn.relu(x)]) + tf.clip_by_value(x, -0.5, 0.7)
                             + tf.clip_by_value(x, x * 0.5 - 1.0, 0.3) + tf.where(x > 0.0, x, W["offset"])
                             + tf.einsum("bhwc,cd->bhwd", x, W["m"])[..., :4]),
        "argmax": ((2, 7), lambda x: tf.cast(tf.argmax(x, axis=1), tf.float32) + tf.reduce_sum(x, 1)),
        "cumulative": ((2, 7), lambda x: tf.cumsum(x, axis=1, exclusive=True) + tf.math.cumprod(x, 1, reverse=True)
                       + tf.cumsum(x, 0, reverse=True, exclusive=True)),
        "space_to_depth": (X4, lambda x: tf.nn.space_to_depth(x, 2) * 2.0),
        "depth_to_space": (X4, lambda x: tf.nn.depth_to_space(x, 2) + 1.0),
        "one_hot": ((2, 7), lambda x: tf.reduce_sum(tf.one_hot(tf.cast(tf.abs(x) * 3.0, tf.int32) % 5 - 1, 4, 2.0,
                                                               -1.0), -1)
                    + tf.reduce_sum(tf.one_hot(tf.cast(tf.abs(x) * 3.0, tf.int32), 4, axis=1), 1)),
        "scatter_gather_nd": ((2, 4, 5), lambda x: scatter_gather(tf, x[0] + x[1])),
        "band_roll_diag": ((2, 6, 6), lambda x: tf.linalg.band_part(x, 1, -1) + tf.linalg.band_part(x, -1, 0)
                           + tf.roll(x, [2, -1], [1, 2]) + tf.linalg.diag(tf.linalg.diag_part(x))
                           + tf.linalg.det(x)[:, None, None]),
        "top_k_invert_permutation": ((2, 7), lambda x: tf.math.top_k(x, 3).values + tf.cast(
            tf.math.top_k(x, 3).indices, tf.float32) + tf.cast(tf.math.invert_permutation(tf.argsort(
                x[0], direction="DESCENDING")), tf.float32)[:3]),
        "reverse_sequence": ((2, 5, 2), lambda x: tf.reverse_sequence(x, lengths(tf, x), seq_axis=1, batch_axis=0)
                             + tf.transpose(tf.reverse_sequence(tf.transpose(x, [1, 0, 2]), lengths(tf, -x),
                                                                seq_axis=0, batch_axis=1), [1, 0, 2])),
        "segments": ((2, 6, 3), lambda x: segments(tf, x[0] + x[1])),
        "bitwise_clip": ((2, 7), lambda x: bitwise(tf, tf.cast(x * 10.0, tf.int32))
                         + tf.raw_ops.ClipByValue(t=x, clip_value_min=-0.5, clip_value_max=0.7)),
        "where_indices": ((3, 4), lambda x: tf.cast(tf.where(x > 0.0), tf.float32) * 2.0),
        "non_max_suppression": ((2, 12, 5), lambda x: nms(tf, x[0, :, :4], x[0, :, 4] + x[1, :, 4])),
        "combined_nms": ((2, 10, 7), lambda x: combined_nms(tf, x)),
        "unique_stitch_bincount": ((2, 9), lambda x: unique_stitch_bincount(tf, x)),
        "adjust_contrast": (X4, lambda x: tf.image.adjust_contrast(x, 1.7)),
        "crop_and_resize": (X4, lambda x: tf.image.crop_and_resize(
            x, [[0.1, 0.2, 0.8, 0.7], [0.9, 0.6, 0.3, -0.2], [0.0, 0.0, 1.0, 1.0], [0.4, 0.4, 0.5, 0.5]], [1, 0, 1, 0],
            [5, 3], extrapolation_value=-2.0) + tf.image.crop_and_resize(
            x, [[0.1, 0.2, 0.8, 0.7], [-0.3, 0.5, 1.2, 0.9], [0.2, 0.2, 0.2, 0.6], [0.0, 0.0, 1.0, 1.0]], [0, 1, 1, 0],
            [5, 3], method="nearest")),
        "extract_patches": (X4, lambda x: tf.concat([tf.reshape(tf.image.extract_patches(
            x, [1, 3, 2, 1], [1, 2, 1, 1], [1, 1, 2, 1], padding), [tf.shape(x)[0], -1])
            for padding in ("SAME", "VALID")], 1)),
        "partition_set_diag": ((2, 5, 5), lambda x: tf.concat(
            [tf.dynamic_partition(tf.reshape(x, [-1]), tf.cast(tf.abs(tf.reshape(x, [-1])) * 2.0, tf.int32) % 3, 3)[i]
             for i in (2, 0)] + [tf.reshape(tf.linalg.set_diag(x, x[:, 0]), [-1])], 0)),
        "max_pool_with_argmax": (X4, lambda x: tf.concat([tf.cast(t, tf.float32) for t in (
            *tf.nn.max_pool_with_argmax(x, 3, 2, "SAME", include_batch_in_index=True),
            *[t[:, :, :4] for t in tf.nn.max_pool_with_argmax(x * -1.0, [2, 3], [2, 1], "VALID")])], 3)),
        "resize_bicubic": (X4, lambda x: tf.compat.v1.image.resize_bicubic(x, (13, 5))
                           + tf.compat.v1.image.resize_bicubic(x, (13, 5), half_pixel_centers=True)
                           + tf.compat.v1.image.resize_bicubic(x, (13, 5), align_corners=True)
                           + tf.compat.v1.image.resize_bicubic(x[:, :3, 1:], (13, 5))),
        "resize_area": (X4, lambda x: tf.image.resize(x, (3, 5), method="area")
                        + tf.compat.v1.image.resize_area(x, (3, 5), align_corners=True)
                        + tf.image.resize(x, (13, 11), method="area")[:, :3, :5]),
        "fake_quant": ((2, 7), lambda x: tf.quantization.fake_quant_with_min_max_args(x, -1.2, 2.3)
                       + tf.quantization.fake_quant_with_min_max_args(x, -0.7, 0.9, num_bits=4, narrow_range=True)
                       + tf.quantization.fake_quant_with_min_max_vars(x, -2.1, 1.7, num_bits=6)
                       + tf.quantization.fake_quant_with_min_max_args(x, 0.3, 2.5)),
        "max_pool_v2": (X4, lambda x: tf.raw_ops.MaxPoolV2(input=x, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1],
                                                           padding="SAME") * 2.0),
    }


def scatter_gather(tf, x):
    """Scatter and gather by index vectors on a (4, 5) tensor; duplicate indices add (or reduce)."""
    return (tf.tensor_scatter_nd_update(x, [[1], [3]], x[:2] * 2.0)
            + tf.tensor_scatter_nd_add(x, [[0], [2], [0]], x[:3])
            - tf.tensor_scatter_nd_sub(x, [[2], [2]], x[1:3])
            + tf.tensor_scatter_nd_max(x, [[1, 1], [3, 4], [1, 1]], [5.0, -5.0, 1.0])
            + tf.tensor_scatter_nd_min(x, [[0, 1], [0, 1]], [0.5, -0.5])
            + tf.scatter_nd([[1], [3], [1]], x[:3], [4, 5]) + tf.gather_nd(x, [[1], [3], [0], [2]])
            + tf.gather_nd(x, [[1, 2], [3, 4], [0, 0], [2, 1]])[:, None])


def bitwise(tf, i):
    return tf.cast(tf.bitwise.bitwise_and(i, 6) + tf.bitwise.bitwise_or(i, 3) + tf.bitwise.bitwise_xor(i, 5)
                   + tf.bitwise.left_shift(tf.abs(i), 2) + tf.bitwise.right_shift(tf.abs(i), 1) + tf.bitwise.invert(i)
                   + tf.truncatediv(i, 3), tf.float32)


def nms(tf, boxes, scores):
    """Hard NMS three ways (V3, V4 padded, V5 with scores); boxes with corners in either order."""
    v3 = tf.image.non_max_suppression(boxes, scores, 6, iou_threshold=0.3, score_threshold=-0.5)
    v4, valid = tf.raw_ops.NonMaxSuppressionV4(boxes=boxes, scores=scores, max_output_size=8, iou_threshold=0.2,
                                               score_threshold=0.0, pad_to_max_output_size=True)
    v5, kept_scores = tf.image.non_max_suppression_with_scores(boxes, scores, 5, iou_threshold=0.4)
    return tf.concat([tf.cast(tf.concat([v3, v4, [valid], v5], 0), tf.float32), kept_scores], 0)


def combined_nms(tf, x):
    """Batched multi-class NMS: boxes shared by 3 classes (q = 1) and per class (q = 3), clipped or not."""
    boxes, scores = x[..., :4] * 0.6 + 0.5, tf.sigmoid(x[..., 4:])
    shared = tf.image.combined_non_max_suppression(boxes[:, :, None], scores, 3, 7, 0.3, 0.4)
    per_class = tf.image.combined_non_max_suppression(tf.stack([boxes, boxes[:, ::-1], boxes * 0.9], 2), scores, 2,
                                                      8, 0.5, 0.2, pad_per_class=True, clip_boxes=False)
    return tf.concat([tf.reshape(r, [2, -1]) if r.dtype == tf.float32 else tf.cast(r, tf.float32)[:, None]
                      for r in (*shared, *per_class)], 1)


def unique_stitch_bincount(tf, x):
    """Integer bookkeeping on values made from the input: unique (first-occurrence order), counts, stitching,
    bincounts (weighted, binary, per row, values out of range dropped)."""
    ints = tf.cast(tf.abs(x) * 3.0, tf.int32)
    y, idx, count = tf.unique_with_counts(ints[0])
    stitched = tf.dynamic_stitch([[4, 1], [0, 3, 2], [1]], [x[0, :2], x[1, :3], x[1, 5:6]])
    bins = tf.math.bincount(ints, minlength=6, maxlength=6, axis=-1)
    weighted = tf.math.bincount(ints[1], weights=x[1], minlength=5, maxlength=5)
    binary = tf.math.bincount(ints, minlength=4, maxlength=4, binary_output=True, axis=-1)
    parts = [tf.cast(t, tf.float32) for t in (y, idx, count, tf.unique(ints[1])[0])]
    return tf.concat(parts + [stitched, tf.reshape(tf.cast(bins, tf.float32), [-1]), weighted,
                              tf.reshape(tf.cast(binary, tf.float32), [-1])], 0)


def lengths(tf, x):
    """Sequence lengths from 1 to 5 computed from the input (so any batch size works)."""
    return tf.cast(tf.abs(x[:, 0, 0]) * 3.0, tf.int32) % 5 + 1


def segments(tf, x):
    """Every segment reduction on a (6, 3) tensor, sorted ids with an empty segment (2), unsorted ids with a
    dropped row (-1) and empty segments (3)."""
    return tf.concat([
        tf.math.segment_sum(x, [0, 0, 1, 3, 3, 3]), tf.math.segment_mean(x, [0, 0, 1, 3, 3, 3]),
        tf.math.segment_max(x, [0, 0, 1, 3, 3, 3]), tf.math.segment_min(x, [0, 1, 1, 1, 3, 3]),
        tf.math.segment_prod(x, [0, 0, 1, 3, 3, 3]), tf.math.unsorted_segment_sum(x, [2, 0, -1, 2, 0, 1], 4),
        tf.math.unsorted_segment_max(x, [2, 0, 1, 2, 0, 1], 4), tf.math.unsorted_segment_min(x, [3, 0, 1, 3, 0, 1], 4),
        tf.math.unsorted_segment_prod(x, [2, 0, 1, 2, 0, 1], 4)], 0)


def frozen_pb(tf, fn, shape, path):
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = tf.function(fn).get_concrete_function(tf.TensorSpec((None, *shape[1:]), tf.float32, name="x"))
    frozen = convert_variables_to_constants_v2(concrete)
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())


CASES = ["conv_valid_dilated", "conv_same_stride2_even_kernel", "conv_explicit", "depthwise_stride2",
         "conv3d_same", "conv_transpose_same", "conv_transpose_explicit", "tf1_spellings",
         "pools", "pool_valid_3d", "batch_norm_inference", "batch_norm_nchw",
         "resize_bilinear_half_pixel", "resize_bilinear_align_corners", "resize_bilinear_legacy", "resize_nearest",
         "pads", "strided_slices", "slice_shrink_newaxis", "shape_ops", "flatten_dynamic", "squeeze_expand_tile",
         "stack_unstack_split", "splitv_gather", "reductions", "mean_channels", "elementwise", "select", "matmuls",
         "lrn", "softmax_4d", "shared_functions", "argmax", "cumulative", "space_to_depth", "depth_to_space", "one_hot",
         "scatter_gather_nd", "band_roll_diag", "top_k_invert_permutation", "reverse_sequence", "segments",
         "bitwise_clip", "where_indices", "non_max_suppression", "max_pool_v2",
         "combined_nms", "unique_stitch_bincount", "adjust_contrast",
         "crop_and_resize", "extract_patches", "partition_set_diag", "max_pool_with_argmax",
         "resize_bicubic", "resize_area", "fake_quant"]


@pytest.mark.parametrize("case", CASES)
def test_raw_op(case, tmp_path):
    import tensorflow as tf

    shape, fn = cases(tf)[case]
    path = tmp_path / f"{case}.pb"
    frozen_pb(tf, fn, shape, path)
    x = RNG.standard_normal(shape).astype("float32")
    reference = [np.asarray(fn(tf.constant(x)))]
    for layout in LAYOUTS:
        module = tf2torch.convert(path, layout=layout)
        assert_matches(torch_outputs(module, [x], layout), reference, what=f"{case} {layout}")


def test_unsupported_ops_listed_at_once(tmp_path):
    import tensorflow as tf

    from tf2torch.errors import UnsupportedLayerError

    path = tmp_path / "unsupported.pb"
    frozen_pb(tf, lambda x: tf.math.special.dawsn(x) + tf.math.bessel_i0(x), (2, 5), path)
    with pytest.raises(UnsupportedLayerError) as error:
        tf2torch.convert(path)
    message = str(error.value)
    assert "2 layer(s)" in message and "tf.raw>Dawsn" in message and "tf.raw>BesselI0" in message


# Raw ops converted by a converter they share with keras.ops (``ops/tf_raw.py`` ``via_operation``) keep the TF
# graph's own integer dtypes (Keras graphs run integers as int64): each output's dtype and values as TF gives them.
DTYPE_CASES = {
    "cast_int32": lambda tf, x: tf.cast(x * 3.0, tf.int32),
    "argmax_int32": lambda tf, x: tf.argmax(x, 1, output_type=tf.int32),
    "argmin_int64": lambda tf, x: tf.argmin(x, 1),
    "pad_int32": lambda tf, x: tf.pad(tf.cast(x * 3.0, tf.int32), [[0, 0], [1, 2]], constant_values=7),
    "maximum_int32": lambda tf, x: tf.maximum(tf.cast(x * 3.0, tf.int32), 1),
    "floordiv_int32": lambda tf, x: tf.math.floordiv(tf.cast(x * 9.0, tf.int32), 4),
}


@pytest.mark.parametrize("case", list(DTYPE_CASES))
def test_shared_converters_keep_graph_dtypes(case, tmp_path):
    import tensorflow as tf
    import torch

    def fn(x):
        return DTYPE_CASES[case](tf, x)

    path = tmp_path / f"{case}.pb"
    frozen_pb(tf, fn, (2, 7), path)
    x = RNG.standard_normal((2, 7)).astype("float32")
    reference = np.asarray(fn(tf.constant(x)))
    with torch.no_grad():
        got = tf2torch.convert(path)(torch.from_numpy(x))
    assert str(got.dtype).removeprefix("torch.") == reference.dtype.name, case
    np.testing.assert_array_equal(got.numpy(), reference)


def test_shared_spellings_reach_an_operation():
    """Every raw op spelled as a ``tf2torch.ops`` operation names one that has a converter, and the raw op's
    registered converter is the one that reaches it."""
    from tf2torch.converters.registry import converter_for
    from tf2torch.ops import OPS, SPELLINGS
    from tf2torch.ops.tf_raw import RAW

    raw = [name for name in SPELLINGS if name.startswith(RAW)]
    assert len(raw) >= 40
    for name in raw:
        assert SPELLINGS[name].op in OPS, name
        assert converter_for(name) is not None, name
