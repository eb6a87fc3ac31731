"""tf2torch.transfer on what the real pairs showed (docs/transfer_real_pair_*.py): tensors that belong to no
module of a known kind, as Hugging Face's ViT holds its ``cls_token`` and position embeddings.

Each model is built here in Keras (tf_keras, as ``save_pretrained`` writes ``tf_model.h5``, and Keras 3) with
random weights, saved weights-only, transferred with no map into a twin written in plain torch, and both are run
on the same input (relative error <= RTOL). Nothing is downloaded; transformers is not needed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from harness import RTOL, keras_module, max_rel_error
from torch import nn

import tf2torch
from tf2torch.transfer import TransferError

H, PATCHES = 8, 4  # hidden size; an 8x8 image in 4x4 patches


def vit_keras(k):
    """ViT's embeddings as transformers writes them in TF ([HF] ``models/vit/modeling_tf_vit.py``): ``cls_token``
    and ``position_embeddings`` made with ``add_weight`` on a layer that also holds the patch projection; a layer
    scale of shape (H,) (torch keeps it as (1, 1, H))."""
    import tensorflow as tf

    L = k.layers

    class Embeddings(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.projection = L.Conv2D(H, 4, strides=4, name="projection")

        def build(self, input_shape):
            self.cls_token = self.add_weight(name="cls_token", shape=(1, 1, H))
            self.position_embeddings = self.add_weight(name="position_embeddings", shape=(1, PATCHES + 1, H))

        def call(self, x):
            patches = tf.reshape(self.projection(x), (-1, PATCHES, H))
            cls = tf.tile(self.cls_token, (tf.shape(x)[0], 1, 1))
            return tf.concat([cls, patches], 1) + self.position_embeddings

    class Scale(L.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(H,))

        def call(self, x):
            return x * self.scale

    class ViT(k.Model):
        def __init__(self):
            super().__init__(name="tf_vi_t_model")
            self.embeddings = Embeddings(name="embeddings")
            self.layer_normalization = L.LayerNormalization(name="layernorm")  # a Keras 3 weights file
            # names a subclassed model's layers by attribute: only its class's own name says what it is
            self.layer_scale = Scale(name="layer_scale")
            self.pooler = L.Dense(3, name="pooler")

        def call(self, x):
            return self.pooler(self.layer_scale(self.layer_normalization(self.embeddings(x)))[:, 0])

    return ViT()


class Embeddings(nn.Module):
    def __init__(self):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, H))
        self.position_embeddings = nn.Parameter(torch.zeros(1, PATCHES + 1, H))
        self.projection = nn.Conv2d(3, H, 4, stride=4)

    def forward(self, x):
        patches = self.projection(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), patches], 1) + self.position_embeddings


class LayerScale(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, 1, H))

    def forward(self, x):
        return x * self.weight


class ViTTwin(nn.Module):
    """transformers' ViTModel in small: bare parameters beside a child module, a leaf of no known kind."""

    def __init__(self):
        super().__init__()
        self.embeddings, self.layernorm = Embeddings(), nn.LayerNorm(H, eps=1e-3)
        self.layer_scale, self.pooler = LayerScale(), nn.Linear(H, 3)

    def forward(self, x):
        return self.pooler(self.layer_scale(self.layernorm(self.embeddings(x)))[:, 0])


def saved_vit(flavour, tmp_path):
    model = vit_keras(keras_module(flavour))
    x = np.random.default_rng(1).standard_normal((2, 8, 8, 3)).astype("float32")
    model(x)
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    path = tmp_path / ("tf_model.h5" if flavour == "tf_keras" else "model.weights.h5")
    model.save_weights(str(path))
    return model, path, x, torch.from_numpy(x.transpose(0, 3, 1, 2).copy())


@pytest.mark.parametrize("flavour", ["tf_keras", "keras3"])
def test_loose_tensors_transfer(flavour, tmp_path):
    """Loose tensors pair by shape, names settling ties (the layer scale (H,) also fits ``cls_token`` (1, 1, H)
    by shape); the layer scale loads reshaped; the saved mapping names them one by one and applies."""
    model, path, x, tx = saved_vit(flavour, tmp_path)
    twin = ViTTwin()
    report = tf2torch.transfer(path, twin, example_inputs=(tx,))
    assert report.ok, report.to_markdown()
    names = {"tf_keras": ("tf_vi_t_model/embeddings/cls_token", "tf_vi_t_model/layer_scale/scale"),
             "keras3": ("embeddings/vars/0", "layer_scale/vars/0")}[flavour]
    assert report.mapping["embeddings.cls_token"]["source"] == names[0]
    assert report.mapping["layer_scale.weight"] == {"source": names[1], "transform": f"reshape ({H},) -> (1, 1, {H})",
                                                    "loose": True}
    with torch.no_grad():
        assert max_rel_error(twin.eval()(tx).numpy(), np.asarray(model(x))) <= RTOL
    report.save_mapping(str(tmp_path / "map.json"))
    saved = json.loads((tmp_path / "map.json").read_text())
    assert saved["embeddings.cls_token"] == names[0] and saved["embeddings.projection"].endswith("projection")
    again = ViTTwin()
    assert tf2torch.transfer(path, again, example_inputs=(tx,), mapping=tmp_path / "map.json").mapping == \
        report.mapping
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in twin.state_dict().items())


class TwoScales(nn.Module):
    def __init__(self):
        super().__init__()
        self.alpha, self.beta = nn.Parameter(torch.zeros(H)), nn.Parameter(torch.zeros(H))

    def forward(self, x):
        return x * self.alpha + self.beta


def test_loose_tensors_ambiguous_refused(tmp_path):
    """Two loose (H,) tensors on each side, names that say nothing: refused with the candidates, none loaded."""
    k = keras_module("keras3")

    class Scales(k.layers.Layer):
        def build(self, input_shape):
            self.p = self.add_weight(name="p", shape=(H,))
            self.q = self.add_weight(name="q", shape=(H,))

        def call(self, x):
            return x * self.p + self.q

    model = k.Sequential([k.Input((H,)), Scales(name="scales")])
    model.save_weights(str(tmp_path / "model.weights.h5"))
    twin = TwoScales()
    with pytest.raises(TransferError) as caught:
        tf2torch.transfer(tmp_path / "model.weights.h5", twin, example_inputs=(torch.zeros(1, H),))
    assert caught.value.report.ambiguous[0] == {"target": "alpha", "kind": "tensor",
                                                "candidates": ["scales/vars/0", "scales/vars/1"]}
    assert not twin.alpha.any() and not twin.beta.any()
    report = tf2torch.transfer(tmp_path / "model.weights.h5", twin, mapping={"alpha": "scales/vars/0",
                                                                              "beta": "scales/vars/1"})
    assert report.ok and torch.equal(twin.beta, torch.from_numpy(np.asarray(model.weights[1])))


class BatchNormAct(nn.BatchNorm2d):
    """timm's ``BatchNormAct2d``: the BatchNorm and the activation after it in one module."""

    def forward(self, x):
        return nn.functional.silu(super().forward(x))


class StemTwin(nn.Module):
    def __init__(self, fused=True):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = BatchNormAct(4, eps=1e-3) if fused else nn.BatchNorm2d(4)  # unfused: torch's eps 1e-5
        self.fused = fused

    def forward(self, x):
        x = self.bn(self.conv(x))
        return x.mean((2, 3)) if self.fused else nn.functional.silu(x).mean((2, 3))


@pytest.mark.parametrize("fused", [True, False])
def test_verification_sees_a_fused_activation(fused, tmp_path):
    """A module that applies the weightless Keras layer after it (``stem_bn`` then ``Activation("swish")``, as
    keras.applications' EfficientNets write it, into timm's fused ``BatchNormAct2d``) is compared with that
    layer's output, not reported as a divergence; a real trap at the same place is still named."""
    k = keras_module("keras3")
    L = k.layers
    model = k.Sequential([k.Input((6, 6, 3)), L.Conv2D(4, 3, padding="same", use_bias=False, name="stem_conv"),
                          L.BatchNormalization(name="stem_bn"), L.Activation("swish", name="stem_activation"),
                          L.GlobalAveragePooling2D()])
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in model.weights])
    model.save(str(tmp_path / "model.keras"))
    x = rng.standard_normal((2, 3, 6, 6)).astype("float32")
    report = tf2torch.transfer(tmp_path / "model.keras", StemTwin(fused), example_inputs=(torch.from_numpy(x),))
    layer = next(entry for entry in report.verification["layers"] if entry["target"] == "bn")
    if fused:
        assert report.ok and layer["fused_through"] == "stem_activation", report.to_markdown()
        assert layer["max_rel_error"] <= RTOL
    else:
        assert not report.ok and "epsilon: Keras 0.001, torch 1e-05" in layer["diagnosis"][0]


def test_small_epsilon_errors_named_downstream(tmp_path):
    """torch's BatchNorm eps 1e-5 where Keras's is 1e-3 moves a channel of variance 10 by ~5e-5 of its output:
    under the tolerance there; a head that subtracts two nearly equal features diverges, and its diagnosis names
    the epsilon upstream (timm's ``legacy_xception`` against Keras's Xception)."""
    k = keras_module("keras3")
    model = k.Sequential([k.Input((2,)), k.layers.BatchNormalization(name="bn"),
                          k.layers.Dense(1, use_bias=False, name="head")])
    model.set_weights([np.ones(2), np.zeros(2), np.zeros(2), np.array([10.0, 1000.0]), np.array([[1.0], [-1.0]])])
    model.save(str(tmp_path / "model.keras"))
    x = torch.tensor([[np.sqrt(10 + 1e-3), 0.99 * np.sqrt(1000 + 1e-3)]], dtype=torch.float32)
    twin = nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 1, bias=False))
    report = tf2torch.transfer(tmp_path / "model.keras", twin, example_inputs=(x,))
    first = report.first_divergence
    assert first["target"] == "1" and report.verification["layers"][0]["diverges"] is False
    assert first["diagnosis"][-1] == "upstream at 0 (from bn): epsilon: Keras 0.001, torch 1e-05. Fix: " \
                                     "BatchNorm1d(..., eps=0.001)"


def test_batchnorm_without_scale_loads_ones(tmp_path):
    """Keras ``BatchNormalization(scale=False, center=False)`` stores only its statistics; an affine torch
    BatchNorm takes ones and zeros there (keras.applications' InceptionV3 into timm's)."""
    k = keras_module("keras3")
    model = k.Sequential([k.Input((3,)), k.layers.BatchNormalization(scale=False, center=False, name="bn")])
    model.set_weights([np.array([0.5, -1.0, 2.0]), np.array([2.0, 0.5, 1.5])])
    model.save(str(tmp_path / "model.keras"))
    twin = nn.Sequential(nn.BatchNorm1d(3, eps=1e-3))
    nn.init.uniform_(twin[0].weight)
    nn.init.uniform_(twin[0].bias)
    x = torch.randn(4, 3)
    report = tf2torch.transfer(tmp_path / "model.keras", twin, example_inputs=(x,))
    assert report.ok and report.mapping["0.weight"]["transform"] == "ones (Keras scale=False)"
    with torch.no_grad():
        assert max_rel_error(twin.eval()(x).numpy(), np.asarray(model(x.numpy()))) <= RTOL


def test_first_divergence_in_execution_order(tmp_path):
    """Pairs are matched kind by kind (both Linears, then the BatchNorm); the first divergence is the first in
    the order the model runs: the BatchNorm with torch's eps, not the Linear after it."""
    k = keras_module("keras3")
    model = k.Sequential([k.Input((4,)), k.layers.Dense(4, name="fc1"), k.layers.BatchNormalization(name="bn"),
                          k.layers.Dense(2, name="fc2")])
    model.save(str(tmp_path / "model.keras"))
    twin = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    report = tf2torch.transfer(tmp_path / "model.keras", twin, example_inputs=(torch.randn(3, 4),))
    assert report.first_divergence["target"] == "1", report.to_markdown()
    assert [entry["target"] for entry in report.verification["layers"]] == ["0", "1", "2"]


class PooledHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.head, self.classifier = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 6, 1), nn.Linear(6, 5)

    def forward(self, x):
        x = self.head(torch.relu(self.conv(x)).mean((2, 3), keepdim=True))
        return self.classifier(x.flatten(1))


@pytest.mark.parametrize("file", ["model.keras", "model.weights.h5"])
def test_pointwise_conv_head_into_linear(file, tmp_path):
    """A classifier written as ``Conv2D(classes, 1)`` on a (N, 1, 1, C) tensor (keras.applications'
    MobileNetV3) into a ``Linear`` (timm's): the last 1x1 convolution is taken as the Dense it computes, since
    torch has one more Linear and one fewer conv; the 1x1 conv before it stays a conv."""
    k = keras_module("keras3")
    L = k.layers
    model = k.Sequential([k.Input((6, 6, 3)), L.Conv2D(4, 3, activation="relu"),
                          L.GlobalAveragePooling2D(keepdims=True), L.Conv2D(6, 1), L.Conv2D(5, 1, name="logits"),
                          L.Flatten()])
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.weights])
    model.save_weights(str(tmp_path / file)) if file.endswith(".weights.h5") else model.save(str(tmp_path / file))
    x = rng.standard_normal((2, 3, 6, 6)).astype("float32")
    twin = PooledHead()
    report = tf2torch.transfer(tmp_path / file, twin, example_inputs=(torch.from_numpy(x),))
    assert report.loaded and report.mapping["classifier.weight"]["transform"] == "kernel_to_linear"
    assert report.mapping["head.weight"]["transform"] == "hwio_to_oihw"
    with torch.no_grad():
        assert max_rel_error(twin.eval()(torch.from_numpy(x)).numpy(),
                             np.asarray(model(x.transpose(0, 2, 3, 1)))) <= RTOL


# -- a TensorFlow Lite model as the source (MediaPipe's BlazeFace into face-alignment's, by hand) ----------------
class TFLiteTwin(nn.Module):
    """TF SAME with stride 2 written as torch ports write it (a ZeroPad2d before an unpadded conv)."""

    def __init__(self):
        super().__init__()
        self.pad, self.conv, self.prelu = nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 8, 3, 2), nn.PReLU(8)
        self.dw = nn.Conv2d(8, 16, 3, padding=1, groups=8)
        self.up, self.fc = nn.ConvTranspose2d(16, 4, 2, stride=2), nn.Linear(12 * 12 * 4, 5)

    def forward(self, x):
        return self.fc(self.up(self.dw(self.prelu(self.conv(self.pad(x))))).flatten(1))


@pytest.mark.parametrize("weights", ["float32", "float16"])
def test_tflite_source(weights, tmp_path):
    """A .tflite file's operators as the source: OHWI conv filters, a (1, kh, kw, C·multiplier) depthwise filter,
    a TRANSPOSE_CONV (bias in operand 3), a PRELU and a FULLY_CONNECTED after a channels-last flatten, float16
    weights behind DEQUANTIZE read widened; the loaded twin against TensorFlow Lite's interpreter."""
    import tensorflow as tf
    import tf_keras as k
    from test_tflite import interpreter_outputs

    L = k.layers
    model = k.Sequential([k.Input((12, 12, 3)), L.Conv2D(8, 3, strides=2, padding="same"),
                          L.PReLU(shared_axes=[1, 2]), L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"),
                          L.Conv2DTranspose(4, 2, strides=2), L.Flatten(), L.Dense(5)])
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") * 0.5 for w in model.weights])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if weights == "float16":
        converter.optimizations, converter.target_spec.supported_types = [tf.lite.Optimize.DEFAULT], [tf.float16]
    path = tmp_path / "model.tflite"
    path.write_bytes(converter.convert())
    x = rng.standard_normal((1, 12, 12, 3)).astype("float32")
    twin = TFLiteTwin()
    report = tf2torch.transfer(path, twin, example_inputs=(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()),))
    assert report.ok and report.verification is None, report.to_markdown()
    with torch.no_grad():
        got = twin.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert max_rel_error(got, interpreter_outputs(path, [x])[0]) <= RTOL


class PoolTwin(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1)

    def forward(self, x):  # avg_pool2d counts its padding (count_include_pad=True), as timm's inception_v3 does
        return self.conv2(nn.functional.avg_pool2d(self.conv1(x), 3, stride=1, padding=1))


def test_pooling_padding_named_upstream(tmp_path):
    """Keras's ``AveragePooling2D(3, 1, padding="same")`` averages the input positions only; torch's
    ``avg_pool2d(padding=1)`` counts the zeros: the next conv's input differs, and the diagnosis names the
    pooling layer and the fix (keras.applications' InceptionV3 into timm's)."""
    k = keras_module("keras3")
    L = k.layers
    model = k.Sequential([k.Input((5, 5, 3)), L.Conv2D(4, 1), L.AveragePooling2D(3, 1, padding="same", name="pool"),
                          L.Conv2D(2, 1)])
    model.save(str(tmp_path / "model.keras"))
    report = tf2torch.transfer(tmp_path / "model.keras", PoolTwin(), example_inputs=(torch.randn(1, 3, 5, 5),))
    first = report.first_divergence
    assert first["target"] == "conv2" and first["diagnosis"][0].startswith("its input already differs")
    assert first["diagnosis"][1].startswith('upstream at pool (AveragePooling2D, padding="same")')
    assert first["diagnosis"][1].endswith("Fix: count_include_pad=False")


# -- what transformers' TF classes showed: T5, MobileBERT, ConvNeXt (their patterns, built here) ------------------
V = 11


def t5_like(k):
    """T5's patterns in tf_keras: the embedding shared between the model and its encoder (``save_weights`` lists
    ``shared/shared/embeddings`` twice), scale-only RMS norms ``block_._i/layer_._j/layer_norm/weight`` of one
    shape (only the indices in order tell them apart), and MobileBERT's ``NoNorm`` (``weight`` and ``bias`` of one
    shape, no epsilon: loose tensors whose names must not cross)."""
    import tensorflow as tf

    L = k.layers

    class RMSNorm(L.Layer):
        def build(self, input_shape):
            self.weight = self.add_weight(name="weight", shape=(H,))

        def call(self, x):
            return x * tf.math.rsqrt(tf.reduce_mean(x * x, -1, keepdims=True) + 1e-6) * self.weight

    class NoNorm(L.Layer):
        def build(self, input_shape):
            self.weight, self.bias = (self.add_weight(name=n, shape=(H,)) for n in ("weight", "bias"))

        def call(self, x):
            return x * self.weight + self.bias

    class Sub(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.layer_norm, self.dense = RMSNorm(name="layer_norm"), L.Dense(H, name="dense")

        def call(self, x):
            return x + self.dense(self.layer_norm(x))

    class Encoder(L.Layer):
        def __init__(self, shared, **kwargs):
            super().__init__(**kwargs)
            self.embed_tokens, self.no_norm = shared, NoNorm(name="no_norm")
            self.block = [[Sub(name=f"block_._{i}/layer_._{j}") for j in range(2)] for i in range(2)]

        def call(self, ids):
            x = self.no_norm(self.embed_tokens(ids))
            for block in self.block:
                for sub in block:
                    x = sub(x)
            return x

    class T5(k.Model):
        def __init__(self):
            super().__init__(name="tft5_encoder_model")
            self.shared = L.Embedding(V, H, name="shared")
            self.encoder = Encoder(self.shared, name="encoder")

        def call(self, ids):
            return self.encoder(ids)

    return T5()


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight, self.variance_epsilon = nn.Parameter(torch.ones(H)), 1e-6

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon) * self.weight


class NoNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(H)), nn.Parameter(torch.zeros(H))

    def forward(self, x):
        return x * self.weight + self.bias


class T5Twin(nn.Module):
    def __init__(self):
        super().__init__()
        self.shared = nn.Embedding(V, H)
        self.encoder = nn.Module()
        self.encoder.embed_tokens, self.encoder.no_norm = self.shared, NoNorm()  # tied, as transformers ties them
        self.encoder.block = nn.ModuleList(nn.Module() for _ in range(2))
        for block in self.encoder.block:
            block.layer = nn.ModuleList(nn.ModuleDict({"layer_norm": RMSNorm(), "dense": nn.Linear(H, H)})
                                        for _ in range(2))

    def forward(self, ids):
        x = self.encoder.no_norm(self.encoder.embed_tokens(ids))
        for block in self.encoder.block:
            for sub in block.layer:
                x = x + sub["dense"](sub["layer_norm"](x))
        return x


def test_tied_weights_indices_and_loose_roles(tmp_path):
    model = t5_like(keras_module("tf_keras"))
    ids = np.random.default_rng(1).integers(0, V, (2, 5))
    model(ids)
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    model.save_weights(str(tmp_path / "tf_model.h5"))
    twin = T5Twin()
    report = tf2torch.transfer(tmp_path / "tf_model.h5", twin, example_inputs=(torch.from_numpy(ids),))
    assert report.ok, report.to_markdown()
    assert report.mapping["encoder.block.0.layer.1.layer_norm.weight"]["source"].endswith(
        "block_._0/layer_._1/layer_norm/weight")
    assert report.mapping["encoder.no_norm.bias"]["source"].endswith("no_norm/bias")
    with torch.no_grad():
        assert max_rel_error(twin.eval()(torch.from_numpy(ids)).numpy(), np.asarray(model(ids))) <= RTOL


def convnext_like(k):
    """Hugging Face's TF ConvNeXt: the depthwise 7x7 written as ``Conv2D(groups=C)`` (kernel (7, 7, 1, C)) and
    Keras LayerNormalization where torch has a channels-first LayerNorm of its own class; ``nn.GroupNorm`` after."""
    L = k.layers
    return k.Sequential([k.Input((8, 8, 3)), L.Conv2D(4, 2, strides=2, name="stem"),
                         L.LayerNormalization(epsilon=1e-6, name="layernorm"),
                         L.Conv2D(4, 3, padding="same", groups=4, name="dwconv"),
                         L.GroupNormalization(2, epsilon=1e-5, name="groupnorm") if hasattr(L, "GroupNormalization")
                         else L.LayerNormalization(name="groupnorm"), L.GlobalAveragePooling2D(), L.Dense(3)])


class ChannelsFirstLayerNorm(nn.Module):
    """transformers' ``ConvNextLayerNorm(data_format="channels_first")``."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(channels)), nn.Parameter(torch.zeros(channels)), eps
        self.data_format = "channels_first"  # says its layout: (N, 4, 4, 4) fits either way

    def forward(self, x):
        u, s = x.mean(1, keepdim=True), (x - x.mean(1, keepdim=True)).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - u) / torch.sqrt(s + self.eps) + self.bias[:, None, None]


class ConvNextTwin(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.layernorm = nn.Conv2d(3, 4, 2, stride=2), ChannelsFirstLayerNorm(4)
        self.dwconv, self.groupnorm = nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.GroupNorm(2, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.groupnorm(self.dwconv(self.layernorm(self.stem(x)))).mean((2, 3)))


@pytest.mark.parametrize("file", ["model.keras", "model.weights.h5"])
def test_grouped_conv_and_norms_of_other_classes(file, tmp_path):
    model = convnext_like(keras_module("keras3"))
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.weights])
    model.save_weights(str(tmp_path / file)) if file.endswith(".weights.h5") else model.save(str(tmp_path / file))
    x = rng.standard_normal((2, 3, 8, 8)).astype("float32")
    twin = ConvNextTwin()
    report = tf2torch.transfer(tmp_path / file, twin, example_inputs=(torch.from_numpy(x),))
    assert report.ok, report.to_markdown()
    assert report.mapping["dwconv.weight"]["transform"] == "depthwise_kernel_to_oihw"
    with torch.no_grad():
        assert max_rel_error(twin.eval()(torch.from_numpy(x)).numpy(),
                             np.asarray(model(x.transpose(0, 2, 3, 1)))) <= RTOL


# -- the real pairs themselves (transformers 4.x is a dev dependency; timm and face-alignment: docs/ scripts) -------
@pytest.mark.parametrize("name", ["Bert", "GPT2", "ViT", "ConvNext", "T5Encoder"])
def test_hugging_face_pair(name, tmp_path, monkeypatch):
    """transformers' TF class → its PyTorch class with no map (docs/transfer_real_pair_hf.py, small configs)."""
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    import transformers as T  # pinned to 4.x (constraints.txt): 5.x has no TF classes
    config = {"Bert": lambda: T.BertConfig(vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                           intermediate_size=20),
              "GPT2": lambda: T.GPT2Config(vocab_size=99, n_embd=16, n_layer=1, n_head=2),
              "ViT": lambda: T.ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=20),
              "ConvNext": lambda: T.ConvNextConfig(hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
              "T5Encoder": lambda: T.T5Config(vocab_size=99, d_model=16, d_kv=8, d_ff=20, num_layers=1, num_heads=2),
              }[name]()
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 3, 16 if name == "ViT" else 32, 16 if name == "ViT" else 32)).astype("float32")
         if name in ("ViT", "ConvNext") else rng.integers(0, 99, (1, 5)).astype("int32"))
    tf_model = getattr(T, f"TF{name}Model")(config)
    expected = tf_model(x).last_hidden_state.numpy()
    tf_model.save_pretrained(str(tmp_path))
    model = getattr(T, f"{name}Model")(config)
    tx = torch.from_numpy(x.astype("int64") if x.dtype.kind == "i" else x)
    report = tf2torch.transfer(tmp_path / "tf_model.h5", model, example_inputs=(tx,))
    assert report.ok, report.to_markdown()
    with torch.no_grad():
        assert max_rel_error(model.eval()(tx).last_hidden_state.numpy(), expected) <= RTOL


def wav2vec2_like(k):
    """Hugging Face's TF Wav2Vec2 (and BART) attention makes ``k_proj``, ``v_proj``, ``q_proj``, ``out_proj`` in that
    order (the file's) while torch calls ``q_proj`` first: all square, every projection fits every other, so
    in order they would load crossed; and its weight-normalized positional conv stores ``weight_v`` (out, in, K)
    and ``weight_g`` (K, 1, 1), torch's ``weight_norm(dim=2)`` ``original1`` and ``original0`` (1, 1, K)."""
    import tensorflow as tf

    L = k.layers

    class Attention(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.k_proj, self.v_proj, self.q_proj, self.out_proj = (L.Dense(H, name=n) for n in
                                                                    ("k_proj", "v_proj", "q_proj", "out_proj"))

        def call(self, x):
            scores = tf.matmul(self.q_proj(x), self.k_proj(x), transpose_b=True) / H ** 0.5
            return x + self.out_proj(tf.matmul(tf.nn.softmax(scores, -1), self.v_proj(x)))

    class WeightNormConv(L.Layer):
        def build(self, input_shape):
            self.weight_v = self.add_weight(name="weight_v", shape=(H, H, 3))
            self.weight_g = self.add_weight(name="weight_g", shape=(3, 1, 1))
            self.bias = self.add_weight(name="bias", shape=(H,))

        def call(self, x):
            kernel = tf.nn.l2_normalize(self.weight_v, axis=[0, 1]) * tf.transpose(self.weight_g)
            return tf.nn.conv1d(x, tf.transpose(kernel, (2, 1, 0)), 1, "SAME") + self.bias

    class Model(k.Model):
        def __init__(self):
            super().__init__(name="tf_wav2_vec2_model")
            self.conv = WeightNormConv(name="conv")
            self.layers_ = [Attention(name=f"layers.{i}/attention") for i in range(2)]

        def call(self, x):
            x = self.conv(x)
            for layer in self.layers_:
                x = layer(x)
            return x

    return Model()


class Wav2Vec2Twin(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(H, H, 3, padding=1), dim=2)
        self.layers = nn.ModuleList(nn.Module() for _ in range(2))
        for layer in self.layers:
            layer.attention = nn.ModuleDict({n: nn.Linear(H, H) for n in ("q_proj", "k_proj", "v_proj", "out_proj")})

    def forward(self, x):
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)
        for layer in self.layers:
            a = layer.attention
            scores = a["q_proj"](x) @ a["k_proj"](x).transpose(1, 2) / H ** 0.5
            x = x + a["out_proj"](scores.softmax(-1) @ a["v_proj"](x))
        return x


def test_names_overrule_a_crossed_order_and_weight_norm(tmp_path):
    model = wav2vec2_like(keras_module("tf_keras"))
    x = np.random.default_rng(1).standard_normal((2, 6, H)).astype("float32")
    model(x)
    rng = np.random.default_rng(0)
    model.set_weights([rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    model.save_weights(str(tmp_path / "tf_model.h5"))
    twin = Wav2Vec2Twin()
    report = tf2torch.transfer(tmp_path / "tf_model.h5", twin, example_inputs=(torch.from_numpy(x),))
    assert report.ok, report.to_markdown()
    assert report.mapping["layers.1.attention.q_proj.weight"]["source"].endswith("layers.1/attention/q_proj/kernel")
    assert report.mapping["conv.parametrizations.weight.original0"]["transform"] == "reshape (3, 1, 1) -> (1, 1, 3)"
    with torch.no_grad():
        assert max_rel_error(twin.eval()(torch.from_numpy(x)).numpy(), np.asarray(model(x))) <= RTOL
