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
