"""TF graphs as they come (issue #22): sizes computed at run time, nested function calls left by freezing,
dilated convolutions as TF lowers them (SpaceToBatchND → conv → BatchToSpaceND), exact GELU's Erf/Erfc and the
math ops beside them. Each graph is built with TensorFlow in the test and compared with TensorFlow's own output
(rtol 1e-5, float32, as everywhere: erf/erfc and the other element-wise functions are exact functions that torch
and TF's Eigen kernels both compute to float32 round-off)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest
from harness import LAYOUTS, assert_matches, torch_outputs
from test_applications import APPLICATIONS, KERAS3_APPLICATIONS

import tf2torch
from tf2torch.nn.shapes import TFBatchToSpace, TFSpaceToBatch

RNG = np.random.default_rng(7)


def w(*shape):
    return RNG.standard_normal(shape).astype("float32")


W = {"k": w(3, 3, 4, 5), "dw": w(3, 3, 4, 2), "k1": w(3, 4, 6), "k5": w(5, 5, 4, 3), "table": w(80, 4),
     "kt": w(3, 3, 5, 4)}


def frozen_pb(tf, fn, signature, path):
    """``fn`` traced for inputs of ``signature`` (None: open) and frozen to a GraphDef file."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = tf.function(fn).get_concrete_function(tf.TensorSpec(signature, tf.float32, name="x"))
    path.write_bytes(convert_variables_to_constants_v2(concrete).graph.as_graph_def().SerializeToString())


def converted_matches(tf, fn, signature, shapes, path, layouts=LAYOUTS):
    frozen_pb(tf, fn, signature, path)
    modules = {layout: tf2torch.convert(path, layout=layout) for layout in layouts}
    for shape in shapes:
        x = RNG.standard_normal(shape).astype("float32")
        reference = [np.asarray(fn(tf.constant(x)))]
        for layout, module in modules.items():
            assert_matches(torch_outputs(module, [x], layout), reference, what=f"{path.stem} {shape} {layout}")
    return modules


# -- run-time sizes: one conversion, right at two input sizes ----------------------------------------------------
def size_cases(tf):
    f = tf.float32
    return {
        "resize_to_input_size": lambda x: tf.image.resize(tf.nn.relu(tf.nn.conv2d(x, W["k"], 2, "SAME")),
                                                          tf.shape(x)[1:3]),
        "resize_nearest_to_twice": lambda x: tf.image.resize(x, tf.shape(x)[1:3] * 2, method="nearest"),
        "reshape_computed_batch": lambda x: tf.reduce_sum(tf.reshape(x, tf.stack([tf.shape(x)[0], -1])), 1),
        "tile_by_a_dimension": lambda x: tf.tile(x[:, :1], tf.stack([1, tf.shape(x)[1], 1, 1])) + x,
        "range_size_rank_fill": lambda x: x * tf.cast(tf.reshape(tf.range(tf.shape(x)[2]), [1, 1, -1, 1]), f)
        + tf.cast(tf.size(x), f) / 100.0 + tf.cast(tf.rank(x), f) + tf.fill(tf.shape(x), 0.5),
        "broadcast_args_to": lambda x: tf.broadcast_to(tf.reduce_mean(x, [1, 2], keepdims=True),
                                                       tf.broadcast_dynamic_shape(tf.shape(x), [1, 1, 1, 4])),
        "shape_n": lambda x: tf.cast(tf.concat(tf.raw_ops.ShapeN(input=[x, x[:, 1:]]), 0), f)[None, :] + x[:, 0, 0, :1],
        "pad_to_a_multiple": lambda x: tf.pad(x, tf.stack([[0, 0], [0, (-tf.shape(x)[1]) % 5],
                                                           [(-tf.shape(x)[2]) % 3, 0], [0, 0]]), "REFLECT"),
        "split_open_axes": lambda x: tf.concat(tf.split(x, 2, axis=1)[::-1], 1) + tf.split(x, [3, -1], axis=2)[1][
            :, :, :1],
        "slice_run_time_bounds": lambda x: tf.slice(x, [0, 1, 0, 0], tf.stack([-1, tf.shape(x)[1] - 2, -1, 2])),
        "constant_sliced_to_the_input": lambda x: x + tf.constant(W["table"])[None, :tf.shape(x)[1], None, :],
        "conv_transpose_to_twice": lambda x: tf.nn.conv2d_transpose(
            x, W["kt"], tf.stack([tf.shape(x)[0], tf.shape(x)[1] * 2, tf.shape(x)[2] * 2, 5]), 2, "SAME"),
        "conv_transpose_valid_open": lambda x: tf.nn.conv2d_transpose(
            x, W["kt"], tf.stack([tf.shape(x)[0], tf.shape(x)[1] * 2 + 1, tf.shape(x)[2] * 2 + 1, 5]), 2, "VALID"),
    }


SIZE_CASES = ["resize_to_input_size", "resize_nearest_to_twice", "reshape_computed_batch", "tile_by_a_dimension",
              "range_size_rank_fill", "broadcast_args_to", "shape_n", "pad_to_a_multiple", "split_open_axes",
              "slice_run_time_bounds", "constant_sliced_to_the_input", "conv_transpose_to_twice",
              "conv_transpose_valid_open"]


@pytest.mark.parametrize("case", SIZE_CASES)
def test_runtime_sizes_follow_the_input(case, tmp_path):
    """One conversion with open sizes, compared with TensorFlow at two input sizes (``converted_matches``); the
    output's size follows the second input, not the first."""
    import tensorflow as tf

    fn = size_cases(tf)[case]
    modules = converted_matches(tf, fn, (None, None, None, 4), [(2, 8, 8, 4), (1, 12, 6, 4)], tmp_path / f"{case}.pb")
    x = RNG.standard_normal((1, 12, 6, 4)).astype("float32")
    want = np.asarray(fn(tf.constant(x))).shape
    assert {layout: torch_outputs(module, [x], layout)[0].shape for layout, module in modules.items()} == \
        {layout: want for layout in modules}


@pytest.mark.parametrize("signature, static", [((2, 8, 6, 4), True), ((None, 8, 6, 4), False),
                                               ((None, None, None, 4), False)])
def test_shapes_fold_only_when_static(signature, static, tmp_path):
    """``Shape`` / ``Size`` / ``Rank`` become constants only when TensorFlow knows the whole shape."""
    import tensorflow as tf

    def fn(x):
        return tf.image.resize(tf.reshape(x, tf.stack([tf.shape(x)[0], 8, -1, 4])), tf.shape(x)[1:3] * 2) \
            + tf.cast(tf.size(x) + tf.rank(x), tf.float32)

    modules = converted_matches(tf, fn, signature, [(2, 8, 6, 4)], tmp_path / "sizes.pb", layouts=["keras"])
    graph = str(modules["keras"].tf2torch_meta["graph"])
    assert ("tf.raw>Shape" in graph) != static and ("tf.raw>Size" in graph) != static
    assert "tf.raw>Rank" not in graph  # the rank is known in all three


def test_saved_model_resizes_to_its_input_size(tmp_path):
    """The edge-detector pattern: side outputs resized to the image's own size, a SavedModel with open sizes."""
    import tensorflow as tf

    class Side(tf.Module):
        def __init__(self):
            self.k = tf.Variable(W["k"][..., :3, :])

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="image")])
        def __call__(self, image):
            side = tf.nn.relu(tf.nn.conv2d(image, self.k, 2, "SAME"))
            return tf.sigmoid(tf.image.resize(side, tf.shape(image)[1:3]))

    tf.saved_model.save(Side(), str(tmp_path / "side"))
    loaded = tf.saved_model.load(str(tmp_path / "side"))
    module = tf2torch.convert(tmp_path / "side", layout="keras")
    for shape in [(1, 16, 16, 3), (2, 21, 13, 3)]:
        x = RNG.standard_normal(shape).astype("float32")
        assert_matches(torch_outputs(module, [x], "keras"), [loaded(tf.constant(x)).numpy()], what=str(shape))


# -- element-wise math: exact GELU and the functions beside erf ---------------------------------------------------
def math_cases(tf):
    def positive(x):
        return tf.abs(x) + 1.5

    return {
        "exact_gelu": lambda x: tf.nn.gelu(x, approximate=False) + tf.math.erf(x) + tf.math.erfc(x * 2.0),
        "hyperbolic_and_inverse": lambda x: tf.sinh(x) + tf.cosh(x) + tf.math.asinh(x) + tf.math.acosh(positive(x))
        + tf.math.atanh(tf.tanh(x) * 0.9) + tf.atan(x) + tf.asin(tf.tanh(x)) + tf.acos(tf.tanh(x)) + tf.tan(x * 0.5),
        "gamma_and_exp": lambda x: tf.math.lgamma(positive(x)) + tf.math.digamma(positive(x)) + tf.math.expm1(x)
        + tf.math.rint(x * 3.0),
        "binary": lambda x: tf.math.atan2(x, x[:, ::-1] + 0.1) + tf.truncatemod(x * 5.0, 2.0)
        + tf.math.xlogy(tf.abs(x), positive(x)) + tf.math.xdivy(tf.nn.relu(x), positive(x)),
        "finite_checks": lambda x: tf.cast(tf.math.is_finite(tf.math.log(x)), tf.float32)
        + tf.cast(tf.math.is_inf(1.0 / tf.nn.relu(x)), tf.float32),
    }


@pytest.mark.parametrize("case", ["exact_gelu", "hyperbolic_and_inverse", "gamma_and_exp", "binary",
                                  "finite_checks"])
def test_math_ops(case, tmp_path):
    import tensorflow as tf

    converted_matches(tf, math_cases(tf)[case], (None, 16), [(3, 16)], tmp_path / f"{case}.pb", layouts=["keras"])


# -- dilated convolutions ----------------------------------------------------------------------------------------
def dilated_cases(tf):
    """name → (fn, signature, folded): ``folded`` says whether the SpaceToBatchND pair must become one dilated
    convolution (constant sizes, VALID stride-1 conv between) or stay as two ops (open sizes: the paddings are
    computed at run time; or an op between them that is not a convolution)."""
    return {
        "conv2d_same": (lambda x: tf.nn.convolution(x, W["k"], padding="SAME", dilations=2), (None, 9, 10, 4), True),
        "conv2d_valid_rates_2_3": (lambda x: tf.nn.convolution(x, W["k5"], padding="VALID", dilations=[2, 3]),
                                   (None, 14, 15, 4), True),
        "depthwise_same": (lambda x: tf.nn.depthwise_conv2d(x, W["dw"], [1, 1, 1, 1], "SAME", dilations=[3, 3]),
                           (None, 10, 11, 4), True),
        "conv1d_causal": (lambda x: tf.nn.convolution(tf.pad(x, [[0, 0], [4, 0], [0, 0]]), W["k1"], dilations=2),
                          (None, 13, 4), True),
        "open_sizes": (lambda x: tf.nn.convolution(x, W["k"], padding="SAME", dilations=2), (None, None, None, 4),
                       False),
        "not_a_conv_between": (lambda x: tf.batch_to_space(tf.nn.relu(tf.space_to_batch(x, [2, 2], [[1, 1], [0, 2]])),
                                                           [2, 2], [[0, 1], [1, 0]]), (None, 8, 6, 4), False),
    }


@pytest.mark.parametrize("case", ["conv2d_same", "conv2d_valid_rates_2_3", "depthwise_same", "conv1d_causal",
                                  "open_sizes", "not_a_conv_between"])
def test_dilated_convolutions(case, tmp_path):
    import tensorflow as tf

    fn, signature, folded = dilated_cases(tf)[case]
    shapes = [(2, *signature[1:])] if None not in signature[1:] else [(2, 9, 10, 4), (1, 12, 7, 4)]
    modules = converted_matches(tf, fn, signature, shapes, tmp_path / f"{case}.pb")
    graph = tf2torch.convert(tmp_path / f"{case}.pb").tf2torch_meta["graph"]
    assert ("tf.raw>SpaceToBatchND" in str(graph)) != folded
    for module in modules.values():
        kinds = {type(m) for m in module.modules()}
        assert (TFSpaceToBatch in kinds and TFBatchToSpace in kinds) != folded, case
        if folded:
            assert any(max(getattr(m, "dilation", (1,))) > 1 for m in module.modules()), case


def test_tf_keras_dilated_causal_conv1d_on_its_signature(tmp_path):
    """A tf_keras SavedModel read through its serving signature (no Keras metadata): the graph carries the
    SpaceToBatchND lowering of each dilated Conv1D."""
    import tf_keras as k

    model = k.Sequential([k.layers.Input((16, 3)), k.layers.Conv1D(4, 3, dilation_rate=2, padding="causal"),
                          k.layers.Conv1D(4, 3, dilation_rate=3, padding="same", activation="relu"),
                          k.layers.Dense(2)])
    model.save(tmp_path / "dilated")
    x = RNG.standard_normal((3, 16, 3)).astype("float32")
    module = tf2torch.convert(tmp_path / "dilated", layout="keras", signature="serving_default")
    assert_matches(torch_outputs(module, [x], "keras"), [model(x).numpy()], what="dilated causal Conv1D")
    assert {type(m) for m in module.modules()}.isdisjoint({TFSpaceToBatch, TFBatchToSpace})


# -- nested function calls ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_keras3_export_with_nested_calls_and_exact_gelu(tmp_path, layout):
    """Keras 3 runs a grouped convolution in its own ``tf.function(jit_compile=True)``, which freezing leaves as a
    ``StatefulPartitionedCall``; its exact GELU lowers to ``Erfc`` (ConvNeXt has both)."""
    import keras
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    model = keras.Sequential([keras.Input((12, 12, 3)), keras.layers.DepthwiseConv2D(3, padding="same"),
                              keras.layers.Conv2D(6, 3, groups=3, padding="same"),
                              keras.layers.Dense(8, activation=keras.activations.gelu),
                              keras.layers.Conv2D(4, 3, dilation_rate=2)])
    model.export(str(tmp_path / "exported"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "exported"))
    frozen = convert_variables_to_constants_v2(loaded.signatures["serving_default"], lower_control_flow=False)
    ops = {n.op for n in frozen.graph.as_graph_def().node}
    assert {"StatefulPartitionedCall", "Erfc", "SpaceToBatchND"} <= ops  # the test still tests what it says
    x = RNG.standard_normal((2, 12, 12, 3)).astype("float32")
    module = tf2torch.convert(tmp_path / "exported", layout=layout)
    assert_matches(torch_outputs(module, [x], layout), [np.asarray(model(x))], what=f"Keras 3 export {layout}")


# -- every keras.applications family through the raw graph (slow) ----------------------------------------------
# How each row's SavedModel is written: ``model.export()`` (Keras 3 and tf_keras: the serving function only), and
# for two small tf_keras families also ``tf.saved_model.save`` as TF Serving users write it, which stores every
# layer's traced call beside it (same signature graph; 3-4x slower to write and to load: DenseNet121 20 s vs 6 s).
FULL_SAVED_MODEL = ("MobileNetV3Small", "MobileNet")


@pytest.mark.slow
@pytest.mark.parametrize("flavour, name, writer", [("keras3", n, "export") for n in KERAS3_APPLICATIONS]
                         + [("tf_keras", n, "export") for n in APPLICATIONS]
                         + [("tf_keras", n, "tf.saved_model.save") for n in FULL_SAVED_MODEL])
def test_applications_through_the_raw_graph(tmp_path, flavour, name, writer):
    """The exported SavedModel walked op by op (no Keras metadata read), on logits with randomized batch-norm
    statistics."""
    import tensorflow as tf
    from test_applications import build, image_batch, shape_of

    model = build(flavour, name)
    directory = tmp_path / "saved"
    if writer == "tf.saved_model.save":
        tf.saved_model.save(model, str(directory))
    elif flavour == "keras3":
        model.export(str(directory), verbose=False)
    else:
        model.export(str(directory))  # tf_keras's export takes no verbose
    x = image_batch(shape_of(name))
    reference = [np.asarray(model(x, training=False))]
    module = tf2torch.convert(directory, signature="serving_default")
    assert "tf.raw>Conv2D" in str(module.tf2torch_meta["graph"])  # the graph walked, not Keras metadata
    assert_matches(torch_outputs(module, [x], "channels_first"), reference, what=f"{flavour} {name} {writer}")


def test_emitted_python_keeps_run_time_sizes(tmp_path):
    """A raw-graph module written as Python (``--emit python``): its op modules (constants, parameters, sizes
    read at run time) are written back and the loaded copy equals the module at two input sizes."""
    import importlib
    import sys

    import tensorflow as tf
    import torch

    from tf2torch.emit import emit

    def fn(x):
        y = tf.image.resize(tf.nn.relu(tf.nn.conv2d(x, W["k"], 2, "SAME")), tf.shape(x)[1:3])
        return tf.cumsum(y, axis=2, exclusive=True) + tf.roll(y, 1, 1) + tf.gather(y, [2, 0], axis=3)[..., :1]

    module = converted_matches(tf, fn, (None, None, None, 4), [(2, 8, 8, 4)], tmp_path / "sizes.pb",
                               layouts=["channels_first"])["channels_first"]
    emit(module, tmp_path / "emitted_sizes", ("python",))
    sys.path.insert(0, str(tmp_path))
    try:
        emitted = importlib.import_module("emitted_sizes").load()
    finally:
        sys.path.remove(str(tmp_path))
    for shape in [(2, 4, 8, 8), (1, 4, 12, 6)]:
        x = torch.randn(shape)
        with torch.no_grad():
            torch.testing.assert_close(emitted(x), module(x), rtol=0, atol=0)
