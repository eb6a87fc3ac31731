"""``convert(..., optimize=True)`` against real Keras models (both Keras versions, both layouts, every format):
batch norms and input scaling folded into convolutions, no-ops dropped, channels_last, within 1e-5 of Keras; and
the folds that would not be exact are left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import (
    LAYOUTS,
    assert_matches,
    formats_for,
    keras_module,
    keras_outputs,
    random_inputs,
    to_torch_input,
    torch_outputs,
)
from torch import nn

import tf2torch
from tf2torch import optimize as optimize_module
from tf2torch.nn.fused import FusedConv2d, FusedConvAdd2d, fused_conv_available


def randomize_batch_norms(model, seed: int = 1) -> None:
    """Moving statistics and affine parameters far from their initial values, so a wrong fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            shapes = [w.shape for w in layer.get_weights()]
            values = [rng.uniform(0.5, 1.5, s).astype("float32") for s in shapes]
            names = [w.name.split("/")[-1].split(":")[0] for w in layer.weights]
            values = [v - 1.0 if "beta" in n or "mean" in n else v for v, n in zip(values, names)]
            layer.set_weights(values)


def trunk(k):
    """Conv→BN folds (with and without bias, SAME padding, depthwise, separable, scale/center off); conv with its
    own activation, conv read twice: no fold; Dropout dropped; a scale-only Rescaling into a padded conv."""
    inp = k.Input((12, 11, 3))
    x = k.layers.Rescaling(1.0 / 255, name="rescale")(inp)
    x = k.layers.Conv2D(8, 3, padding="same", name="c1")(x)
    x = k.layers.BatchNormalization(name="c1_bn")(x)
    x = k.layers.ReLU(name="re_lu")(x)
    x = k.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="c2")(x)
    x = k.layers.BatchNormalization(scale=False, name="c2_bn")(x)
    x = k.layers.Dropout(0.5, name="drop")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = k.layers.BatchNormalization(center=False, name="dw_bn")(x)
    y = k.layers.SeparableConv2D(16, 3, name="sep")(x)
    y = k.layers.BatchNormalization(name="sep_bn")(y)
    z = k.layers.Conv2D(16, 3, activation="relu", name="act")(x)
    z = k.layers.BatchNormalization(name="act_bn")(z)
    w = k.layers.Conv2D(16, 3, name="shared")(x)
    v = k.layers.BatchNormalization(name="shared_bn")(w)
    out = k.layers.Add()([y, z, v, w])
    return k.Model(inp, k.layers.GlobalAveragePooling2D()(out))


def offset_valid(k):
    """Rescaling with an offset into an unpadded conv: folds."""
    inp = k.Input((9, 10, 3))
    x = k.layers.Rescaling([0.5, 2.0, 0.25], offset=[-1.0, 0.5, 2.0], name="rescale")(inp)
    x = k.layers.Conv2D(4, 3, name="c1")(x)
    return k.Model(inp, k.layers.BatchNormalization(name="bn")(x))


def offset_same(k):
    """Rescaling with an offset into a zero-padded conv: the padded border would differ, no fold."""
    inp = k.Input((9, 10, 3))
    x = k.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inp)
    return k.Model(inp, k.layers.Conv2D(4, 3, padding="same", name="c1")(x))


def normalization_valid(k):
    inp = k.Input((9, 10, 3))
    x = k.layers.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 1.0], name="norm")(inp)
    return k.Model(inp, k.layers.Conv2D(4, 3, name="c1")(x))


def conv1d(k):
    inp = k.Input((20, 5))
    x = k.layers.Conv1D(6, 3, padding="causal", name="c1")(inp)
    x = k.layers.BatchNormalization(name="c1_bn")(x)
    return k.Model(inp, k.layers.Conv1D(6, 3, name="c2")(x))


def residual(k):
    """ResNet's block ends: a projection and a conv added then ReLU'd (both folded into the later conv's pass), and
    an identity shortcut added without activation (the add folded into c2; its other input is read twice)."""
    inp = k.Input((10, 9, 4))
    x = k.layers.BatchNormalization(name="proj_bn")(k.layers.Conv2D(8, 1, name="proj")(inp))
    y = k.layers.BatchNormalization(name="c1_bn")(k.layers.Conv2D(8, 3, padding="same", name="c1")(inp))
    x = k.layers.ReLU(name="out1")(k.layers.Add(name="add1")([x, y]))
    z = k.layers.BatchNormalization(name="c2_bn")(k.layers.Conv2D(8, 3, padding="same", name="c2")(x))
    w = k.layers.Add(name="add2")([x, z])
    return k.Model(inp, k.layers.GlobalAveragePooling2D(name="gap")(w))


def padded_pools(k):
    """ZeroPadding2D before a max pooling: folded into the pooling after a ReLU, when symmetric and at most half
    the window; kept before a pooling of values that can be negative, asymmetric, too wide, or before a conv."""
    inp = k.Input((13, 12, 4))
    r = k.layers.ReLU(name="r1")(k.layers.Conv2D(8, 3, name="c1")(inp))
    branches = [
        k.layers.MaxPooling2D(3, 2, name="pool")(k.layers.ZeroPadding2D(1, name="pool_pad")(r)),
        k.layers.MaxPooling2D(3, 2, name="neg_pool")(k.layers.ZeroPadding2D(1, name="neg_pad")(
            k.layers.Conv2D(8, 3, name="c2")(inp))),
        k.layers.MaxPooling2D(2, name="asym_pool")(k.layers.ZeroPadding2D(((0, 1), (0, 1)), name="asym_pad")(r)),
        k.layers.MaxPooling2D(3, 2, name="wide_pool")(k.layers.ZeroPadding2D(2, name="wide_pad")(r)),
        k.layers.Conv2D(4, 3, name="c3")(k.layers.ZeroPadding2D(1, name="conv_pad")(r)),
    ]
    pooled = [k.layers.GlobalAveragePooling2D()(b) for b in branches]
    return k.Model(inp, k.layers.Concatenate()(pooled))


def padded_depthwise(k):
    """Zero paddings before stride-2 depthwise convolutions run inside them (``ZeroPaddedDepthwiseConv2d``): a
    ``ZeroPadding2D`` one more after (MobileNetV2's), one more before on one axis, two more (padded first at run
    time), TF ``SAME`` inside the layer (an even size: (1, 2)) with a depth multiplier and a ReLU; before a
    regular convolution the padding stays."""
    inp = k.Input((12, 12, 4))
    x = k.layers.Conv2D(6, 1, name="c1")(inp)
    branches = [
        k.layers.DepthwiseConv2D(3, strides=2, name="dw_a")(k.layers.ZeroPadding2D(((0, 1), (0, 1)), name="a_pad")(x)),
        k.layers.DepthwiseConv2D(3, strides=2, name="dw_b")(k.layers.ZeroPadding2D(((1, 0), (0, 1)), name="b_pad")(x)),
        k.layers.DepthwiseConv2D(3, strides=2, name="dw_c")(k.layers.ZeroPadding2D(((0, 2), (0, 2)), name="c_pad")(x)),
        k.layers.DepthwiseConv2D(5, strides=2, padding="same", depth_multiplier=2, activation="relu",
                                 name="dw_same")(x),
        k.layers.Conv2D(4, 3, strides=2, name="conv")(k.layers.ZeroPadding2D(((0, 1), (0, 1)), name="conv_pad")(x)),
    ]
    pooled = [k.layers.GlobalAveragePooling2D()(b) for b in branches]
    return k.Model(inp, k.layers.Concatenate()(pooled + [k.layers.Flatten()(branches[0])]))


def pooled_branches(k):
    """An average pooling read only by a 1×1 convolution that narrows the channels moves after it
    (``PooledPointwiseConv2d``; InceptionV3's branch pools): ``SAME`` (padding out of the count) with a batch norm
    and ReLU after the conv, and ``valid`` stride 2; not before a widening conv, a 3×3 conv or two readers."""
    inp = k.Input((9, 9, 16))
    x = k.layers.Conv2D(16, 1, name="c0")(inp)
    same = k.layers.AveragePooling2D(3, strides=1, padding="same", name="pool")(x)
    same = k.layers.Conv2D(4, 1, use_bias=False, name="c1")(same)
    same = k.layers.ReLU(name="relu")(k.layers.BatchNormalization(name="bn")(same))
    valid = k.layers.Conv2D(6, 1, name="c2")(k.layers.AveragePooling2D(2, name="pool2")(x))
    wide = k.layers.Conv2D(32, 1, name="wide")(k.layers.AveragePooling2D(3, 1, "same", name="wide_pool")(x))
    square = k.layers.Conv2D(4, 3, name="square")(k.layers.AveragePooling2D(3, 1, "same", name="square_pool")(x))
    shared = k.layers.AveragePooling2D(3, 1, "same", name="shared_pool")(x)
    twice = [k.layers.Conv2D(4, 1, name=f"reader{i}")(shared) for i in (1, 2)]
    pooled = [k.layers.GlobalAveragePooling2D()(b) for b in (valid, wide, square, *twice)]
    return k.Model(inp, k.layers.Concatenate()([k.layers.Flatten()(same), *pooled]))


def steps_batch_norm(k):
    """BatchNormalization(axis=1) after a Conv1D normalizes the steps, not the filters: no fold, even where there
    are as many steps as filters."""
    inp = k.Input((10, 4))
    x = k.layers.Conv1D(8, 3, name="c1")(inp)
    return k.Model(inp, k.layers.BatchNormalization(axis=1, name="bn")(x))


def dense_bn(k):
    """A dense layer's (batch, features) output normalized: folds; after a dense layer with its own activation:
    no fold."""
    inp = k.Input((6,))
    x = k.layers.BatchNormalization(name="bn1")(k.layers.Dense(8, name="d1")(inp))
    x = k.layers.Dense(5, activation="relu", name="d2")(x)
    return k.Model(inp, k.layers.BatchNormalization(name="bn2")(x))


def dense_steps_bn(k):
    """Dense layers on (batch, steps, features): a batch norm over the steps (axis=1, as many steps as units)
    or over the features (the last axis) is left alone."""
    inp = k.Input((8, 6))
    a = k.layers.BatchNormalization(axis=1, name="bn_steps")(k.layers.Dense(8, name="d1")(inp))
    b = k.layers.BatchNormalization(name="bn_last")(k.layers.Dense(8, name="d2")(inp))
    return k.Model(inp, k.layers.Add(name="add")([a, b]))


# (model, layers gone in the channels_first conversion, layers that must remain)
CASES = [
    (trunk, {"c1_bn", "c2_bn", "dw_bn", "sep_bn", "rescale"}, {"c1", "c2", "dw", "sep", "act_bn", "shared_bn"}),
    (offset_valid, {"rescale", "bn"}, {"c1"}),
    (offset_same, set(), {"rescale", "c1"}),
    (normalization_valid, {"norm"}, {"c1"}),
    (conv1d, {"c1_bn"}, {"c1", "c2"}),
    (residual, {"c1_bn", "add1", "out1", "c2_bn", "add2"}, {"proj", "c1", "c2"}),
    (padded_pools, {"pool_pad"}, {"pool", "neg_pad", "asym_pad", "wide_pad", "conv_pad"}),
    (padded_depthwise, {"a_pad", "b_pad", "c_pad"}, {"dw_a", "dw_b", "dw_c", "dw_same", "conv", "conv_pad"}),
    (pooled_branches, {"pool", "bn", "relu", "pool2"},
     {"c1", "c2", "wide", "wide_pool", "square", "square_pool", "shared_pool", "reader1", "reader2"}),
    (steps_batch_norm, set(), {"c1", "bn"}),
    (dense_bn, {"bn1"}, {"d1", "d2", "bn2"}),
    (dense_steps_bn, set(), {"d1", "d2", "bn_steps", "bn_last"}),
]


@pytest.mark.parametrize(("build", "gone", "kept"), CASES, ids=[c[0].__name__ for c in CASES])
def test_optimized_matches_keras(build, gone, kept, flavour, tmp_path):
    k = keras_module(flavour)
    model = build(k)
    randomize_batch_norms(model)
    inputs = random_inputs(model)
    inputs = [a * 100 if build is normalization_valid else a for a in inputs]
    ref = keras_outputs(model, inputs)
    for fmt in formats_for(flavour):
        path = tmp_path / f"model.{fmt}"
        model.save(str(path))
        for layout in LAYOUTS:
            module = tf2torch.convert(path, layout=layout, optimize=True)
            assert_matches(torch_outputs(module, inputs, layout), ref, what=f"{flavour} .{fmt} {layout} optimized")
            names = {name for name, _ in module.named_children()}
            assert kept <= names, f"{sorted(kept - names)} missing from {sorted(names)}"
            if layout == "channels_first":
                assert not gone & names, f"{sorted(gone & names)} not folded"


def test_nothing_else_changes_without_optimize(tmp_path):
    keras = keras_module("keras3")
    path = tmp_path / "model.keras"
    trunk(keras).save(str(path))
    names = {name for name, _ in tf2torch.convert(path).named_children()}
    assert {"c1_bn", "rescale", "drop"} <= names


def saved(build, tmp_path):
    """A Keras 3 model from ``build`` with random batch-norm statistics, saved as .keras."""
    model = build(keras_module("keras3"))
    randomize_batch_norms(model)
    path = tmp_path / "model.keras"
    model.save(str(path))
    return path


def test_optimized_module_saves_loads_and_records_folds(tmp_path):
    path = saved(trunk, tmp_path)
    module = tf2torch.convert(path, optimize=True)
    tf2torch.save(module, tmp_path / "model.pt")
    loaded = tf2torch.load(tmp_path / "model.pt")
    x = torch.randn(2, 3, 12, 11)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), module(x), rtol=0, atol=0)
    c1 = next(n for n in module.graph.nodes if n.target == "c1")
    assert not any(isinstance(m, (nn.Identity, nn.Dropout)) for m in module.modules())
    if fused_conv_available():  # c1's BN folded, then the ReLU layer after it and act's own relu fused
        assert isinstance(module.c1, FusedConv2d) and module.c1.post_op == "relu"
        assert isinstance(module.act, FusedConv2d) and module.act.post_op == "relu"
        assert "re_lu" not in dict(module.named_children())
        assert c1.meta["tf2torch"]["folded"] == ["c1_bn", "rescale", "re_lu"]


def test_residual_add_and_relu_run_in_the_convolution(tmp_path):
    module = tf2torch.convert(saved(residual, tmp_path), optimize=True)
    if not fused_conv_available():
        pytest.skip("no oneDNN fused convolution in this torch build")
    assert isinstance(module.c1, FusedConvAdd2d) and module.c1.post_op == "relu"
    assert isinstance(module.c2, FusedConvAdd2d) and module.c2.post_op == "none"
    c1 = next(n for n in module.graph.nodes if n.target == "c1")
    assert c1.meta["tf2torch"]["folded"] == ["c1_bn", "add1", "out1"]
    x = torch.randn(3, 4, 10, 9)
    with torch.no_grad():  # the fused pass against the plain one (autograd takes the plain path)
        fast = module(x)
        with torch.enable_grad():
            plain = module(x.requires_grad_())
    torch.testing.assert_close(fast, plain.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fused", ["conv", "conv_add"])
def test_fused_convolution_given_the_wrong_channels_raises_torchs_error(fused):
    """oneDNN's own error for a wrong input ("could not create a primitive descriptor") names nothing; the
    plain convolution's does."""
    if not fused_conv_available():
        pytest.skip("no oneDNN fused convolution in this torch build")
    conv = FusedConv2d(nn.Conv2d(4, 6, 3)) if fused == "conv" else FusedConvAdd2d(nn.Conv2d(4, 6, 3))
    x = torch.randn(2, 5, 8, 8)
    args = (x,) if fused == "conv" else (x, torch.randn(2, 6, 6, 6))
    with torch.no_grad(), pytest.raises(RuntimeError, match="channels"):
        conv(*args)


def test_conv_trunk_compiles_without_graph_breaks(tmp_path):
    """torch.compile sees one graph for a converted conv trunk, default and optimized (dynamo tracing only)."""
    keras = keras_module("keras3")
    path = tmp_path / "model.keras"
    trunk(keras).save(str(path))
    x = torch.randn(2, 3, 12, 11)
    for optimize in (False, True):
        explanation = torch._dynamo.explain(tf2torch.convert(path, optimize=optimize))(x)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        assert explanation.graph_count == 1


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("shape", [(512, 512, 3, 3), (64, 3, 7, 7), (10, 4, 1, 1), (8, 1, 3, 3), (6, 4, 5)])
@pytest.mark.parametrize("block_bytes", [1, 100, 1 << 20])
def test_batch_norm_fold_in_blocks_equals_the_whole_array_fold(monkeypatch, shape, memory_format, block_bytes):
    """``fold_into_weights`` works a block of output channels at a time (bounded float64 temporaries): the weight,
    its memory format and the bias are what the one-piece float64 fold gives, bit for bit."""
    monkeypatch.setattr(optimize_module, "FOLD_BLOCK_BYTES", block_bytes)
    conv = (nn.Conv1d if len(shape) == 3 else nn.Conv2d)(shape[1], shape[0], shape[2:])
    if len(shape) == 4:
        conv.weight.data = conv.weight.data.contiguous(memory_format=memory_format)
    generator = torch.Generator().manual_seed(0)
    scale = torch.rand(shape[0], dtype=torch.float64, generator=generator) + 0.5
    shift = torch.randn(shape[0], dtype=torch.float64, generator=generator)
    view = (-1,) + (1,) * (len(shape) - 1)
    weight, bias = (conv.weight.double() * scale.reshape(view)).float(), (conv.bias.double() * scale + shift).float()
    strides = conv.weight.stride()
    optimize_module.fold_into_weights(conv, scale, shift)
    assert torch.equal(conv.weight, weight) and torch.equal(conv.bias, bias)
    assert conv.weight.stride() == strides


def activation_readers(k):
    """Activations reading a dense layer's, a batch norm's, a merge's, a shared, an input's and a reshaped tensor."""
    inp = k.Input((6, 5, 3))
    c = k.layers.Conv2D(4, 3, padding="same", name="c")(inp)
    bn = k.layers.ELU(name="after_bn")(k.layers.BatchNormalization(name="bn")(c))
    shared = k.layers.Conv2D(4, 3, padding="same", name="shared")(inp)
    read_twice = k.layers.ReLU(name="after_shared")(shared)
    merged = k.layers.LeakyReLU(name="after_add")(k.layers.Add(name="add")([bn, read_twice, shared]))
    on_input = k.layers.ReLU(name="after_input")(inp)
    flat = k.layers.ReLU(name="after_reshape")(k.layers.Reshape((30, 4), name="reshape")(merged))
    dense = k.layers.ReLU(name="after_dense")(k.layers.Dense(3, name="dense")(flat))
    return k.Model(inp, [dense, on_input])


def test_activations_in_place_read_fresh_private_tensors(flavour, tmp_path):
    """``activations_in_place`` (the rule ``nn/inplace.py`` applies per call: ``makes_fresh_output``) runs an
    activation in place exactly where it is the only reader of a conv's, dense layer's, batch norm's or
    merge's new tensor; the optimized module still matches Keras."""
    k = keras_module(flavour)
    model = activation_readers(k)
    randomize_batch_norms(model)
    path = tmp_path / "model.h5"
    model.save(str(path))
    module = tf2torch.convert(path)
    optimize_module.activations_in_place(module)
    in_place = {name for name in ("after_bn", "after_shared", "after_add", "after_input", "after_reshape",
                                  "after_dense") if module.get_submodule(name).inplace}
    assert in_place == {"after_bn", "after_add", "after_dense"}
    inputs = random_inputs(model)
    assert_matches(torch_outputs(tf2torch.convert(path, optimize=True), inputs, "channels_first"),
                   keras_outputs(model, inputs), what=f"{flavour} optimized")


@pytest.mark.parametrize("shape", [(1, 16), (5, 16), (2, 7, 16), (0, 16)])
@pytest.mark.parametrize("bias", [True, False])
def test_fused_linear_equals_the_linear_it_replaces(shape, bias):
    """``FusedLinear`` (oneDNN, weight packed once) against ``nn.Linear`` (MKL) on the same parameters: any batch
    shape, with and without bias; the packed weight follows an in-place weight change; a copy runs alike."""
    import copy

    from tf2torch.nn.fused import FusedLinear, fused_linear_available

    if not fused_linear_available():
        pytest.skip("no oneDNN linear in this torch build")
    linear = nn.Linear(16, 9, bias=bias)
    fused = FusedLinear(linear)
    x = torch.randn(*shape)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), linear(x), rtol=1e-5, atol=1e-5)
        linear.weight.mul_(2)  # the same parameter: the packed copy must be rebuilt
        torch.testing.assert_close(fused(x), linear(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(copy.deepcopy(fused)(x), linear(x), rtol=1e-5, atol=1e-5)
    assert list(fused.state_dict()) == list(linear.state_dict())


def test_dense_layers_run_as_fused_linears(tmp_path):
    module = tf2torch.convert(saved(dense_bn, tmp_path), optimize=True)
    from tf2torch.nn.fused import FusedLinear, fused_linear_available

    if not fused_linear_available():
        pytest.skip("no oneDNN linear in this torch build")
    assert isinstance(module.d1, FusedLinear) and isinstance(module.d2[0], FusedLinear)  # d2: (linear, relu)


# -- zero paddings that stay: only their border written with zeros -------------------------------------------
@pytest.mark.parametrize("pads", [(0, 1, 0, 1), (1, 1, 1, 1), (2, 0, 0, 3), (0, 0, 0, 0)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_border_zero_pad_equals_f_pad(pads, memory_format, monkeypatch):
    """Bit for bit ``F.pad``'s result, in its memory format. ``torch.empty`` hands out NaNs here, so a border
    region left unwritten shows."""
    import torch.nn.functional as F

    from tf2torch.nn.fused import pad_zero_border

    empty = torch.empty
    monkeypatch.setattr(torch, "empty", lambda *a, **kw: empty(*a, **kw).fill_(float("nan")))
    x = torch.randn(2, 5, 7, 6).contiguous(memory_format=memory_format)
    got, want = pad_zero_border(x, *pads), F.pad(x, pads)
    assert torch.equal(got, want)
    assert got.is_contiguous(memory_format=memory_format) == want.is_contiguous(memory_format=memory_format)


def test_zero_paddings_that_stay_zero_only_their_border(flavour, tmp_path):
    """TF ``SAME`` with stride 2 (padded (0, 1) at run time) and an asymmetric ``ZeroPadding2D`` before a strided
    regular conv run as the border-zeroing twins, match Keras, and fall back to ``F.pad`` where autograd
    records."""
    from tf2torch.nn.fused import BorderZeroPad2d, TFSameZeroPad2d
    from tf2torch.nn.padding import TFSamePad2d

    k = keras_module(flavour)
    inp = k.Input((12, 12, 3))
    x = k.layers.Conv2D(4, 3, strides=2, padding="same", name="same2")(inp)
    x = k.layers.ZeroPadding2D(((0, 1), (0, 1)), name="pad")(x)
    model = k.Model(inp, k.layers.Conv2D(2, 3, strides=2, name="c")(x))
    inputs = random_inputs(model)
    path = tmp_path / "model.h5"
    model.save(str(path))
    module = tf2torch.convert(path, optimize=True)
    kinds = {type(m) for m in module.modules()}
    assert {BorderZeroPad2d, TFSameZeroPad2d} <= kinds and not {nn.ZeroPad2d, TFSamePad2d} & kinds, kinds
    assert_matches(torch_outputs(module, inputs, "channels_first"), keras_outputs(model, inputs), what="pads")
    x = to_torch_input(inputs[0], "channels_first").requires_grad_()
    pad = next(m for m in module.modules() if type(m) is BorderZeroPad2d)
    assert pad(x).grad_fn.name() == "ConstantPadNdBackward0"


def test_same_padding_inside_a_depthwise_conv_follows_the_input_size(flavour, tmp_path):
    """TF ``SAME`` before a stride-2 depthwise conv of an input whose size is known only at run time: (0, 1) on
    an even size, (1, 1) on an odd one, each run by the convolution (``ZeroPaddedDepthwiseConv2d``), and by
    ``F.pad`` first where autograd records (the same values)."""
    from tf2torch.nn.fused import ZeroPaddedDepthwiseConv2d

    k = keras_module(flavour)
    inp = k.Input((None, None, 3))
    model = k.Model(inp, k.layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(inp))
    path = tmp_path / "model.h5"
    model.save(str(path))
    module = tf2torch.convert(path, optimize=True)
    assert any(type(m) is ZeroPaddedDepthwiseConv2d for m in module.modules())
    rng = np.random.default_rng(0)
    for size in ((12, 12), (13, 13), (12, 13)):
        x = rng.standard_normal((1, *size, 3)).astype("float32")
        ref = keras_outputs(model, [x])
        with torch.no_grad():
            assert_matches(torch_outputs(module, [x], "channels_first"), ref, what=f"{size}")
        assert_matches([module(to_torch_input(x, "channels_first").requires_grad_()).detach().permute(0, 2, 3, 1)
                        .numpy()], ref, what=f"{size} with autograd")


def test_attention_projections_run_by_onednn_with_packed_weights(flavour, tmp_path):
    """MultiHeadAttention's projections (self-attention's one q/k/v product, cross-attention's three, the output
    one) run as ``packed_linear`` in the optimized module (MKL's GEMM took 182 µs for the bench transformer's
    (128, 256) × (256, 768) product), within the tolerance of Keras."""
    from tf2torch.nn.attention import KerasMaskedMultiheadAttention

    k = keras_module(flavour)
    q, v = k.Input((6, 8)), k.Input((5, 8))
    x = k.layers.MultiHeadAttention(2, 4, name="self_mha")(q, q)
    y = k.layers.MultiHeadAttention(2, 4, name="cross_mha")(x, v)
    model = k.Model([q, v], k.layers.Dense(3, name="d")(y))
    inputs = random_inputs(model)
    path = tmp_path / f"model.{formats_for(flavour)[0]}"
    model.save(str(path))
    module = tf2torch.convert(path, optimize=True)
    assert_matches(torch_outputs(module, inputs, "channels_first"), keras_outputs(model, inputs), what="attention")
    attentions = {name: m for name, m in module.named_modules() if isinstance(m, KerasMaskedMultiheadAttention)}
    assert {name: sorted(m._packed) for name, m in attentions.items()} == {
        "self_mha": ["out", "qkv"], "cross_mha": ["k", "out", "q", "v"]}
