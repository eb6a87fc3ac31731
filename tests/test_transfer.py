"""tf2torch.transfer: Keras weights into hand-written torch twins, with no map, within RTOL of Keras.

Each model is built in Keras 3 and tf_keras with random weights (BatchNormalization statistics included), saved as
every file the flavour writes (whole model .keras/.h5 and save_weights .h5/.weights.h5), transferred into a twin
written here in plain torch, and both are run on the same input.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from harness import RTOL, keras_module, max_rel_error
from torch import nn

import tf2torch
from tf2torch import transforms
from tf2torch.converters import conv, dense, normalization, recurrent
from tf2torch.transfer import TransferError

FILES = {"keras3": ("model.keras", "model.h5", "model.weights.h5"),
         "tf_keras": ("model.h5", "weights.h5", "ckpt/weights", "object/ckpt", "tf1/ckpt")}  # 3 TF checkpoints
CASES = [(flavour, name) for flavour, names in FILES.items() for name in names]


# -- models and their twins ------------------------------------------------------------------------------------
def vgg_keras(k):
    L = k.layers
    return k.Sequential([k.Input((16, 16, 3)), L.Conv2D(8, 3, padding="same", activation="relu"),
                         L.Conv2D(8, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
                         L.Conv2D(16, 3, padding="same", activation="relu"), L.MaxPooling2D(2), L.Flatten(),
                         L.Dense(32, activation="relu"), L.Dense(10)])


class VGGTwin(nn.Module):
    """Written as a person would: NCHW, torch.flatten, its own names."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                                      nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                                      nn.MaxPool2d(2))
        self.fc1, self.fc2 = nn.Linear(16 * 4 * 4, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(torch.flatten(self.features(x), 1))))


def rnn_keras(k, cell="LSTM"):
    L = k.layers
    return k.Sequential([k.Input((9, 4)), L.Conv1D(6, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
                         getattr(L, cell)(5), L.Dense(3)])


class RNNTwin(nn.Module):
    def __init__(self, cell="LSTM"):
        super().__init__()
        self.conv, self.bn = nn.Conv1d(4, 6, 3, padding=1), nn.BatchNorm1d(6, eps=1e-3)
        self.rnn, self.head = getattr(nn, cell)(6, 5, batch_first=True), nn.Linear(5, 3)

    def replace_bn(self):
        self.bn = nn.BatchNorm1d(6)  # torch's default eps 1e-5 where Keras's is 1e-3
        return self

    def forward(self, x):  # x: (N, T, F) as Keras takes it
        h = torch.relu(self.bn(self.conv(x.transpose(1, 2)))).transpose(1, 2)
        return self.head(self.rnn(h)[0][:, -1])


def mobile_keras(k):
    L = k.layers
    return k.Sequential([k.Input((10, 10, 3)), L.Conv2D(8, 3, use_bias=False), L.BatchNormalization(), L.ReLU(),
                         L.DepthwiseConv2D(3, depth_multiplier=2), L.Conv2DTranspose(4, 2, strides=2),
                         L.GlobalAveragePooling2D(), L.Dense(3)])


class MobileTwin(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8, eps=1e-3), nn.ReLU())
        self.dw, self.up = nn.Conv2d(8, 16, 3, groups=8), nn.ConvTranspose2d(16, 4, 2, stride=2)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.up(self.dw(self.stem(x))).mean((2, 3)))


def attention_keras(k):
    L = k.layers
    x = inputs = k.Input((9, 4))
    x = L.ReLU()(L.BatchNormalization()(L.Conv1D(8, 3, padding="same")(x)))
    x = L.LSTM(8, return_sequences=True)(x)
    x = L.MultiHeadAttention(num_heads=2, key_dim=4)(x, x)
    return k.Model(inputs, L.Dense(3)(L.GlobalAveragePooling1D()(x)))


class AttentionTwin(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv1d(4, 8, 3, padding=1), nn.BatchNorm1d(8, eps=1e-3)
        self.lstm = nn.LSTM(8, 8, batch_first=True)
        self.attention, self.head = nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 3)

    def forward(self, x):
        h = self.lstm(torch.relu(self.bn(self.conv(x.transpose(1, 2)))).transpose(1, 2))[0]
        return self.head(self.attention(h, h, h, need_weights=False)[0].mean(1))


def separable_rnn_keras(k):
    L = k.layers
    return k.Sequential([k.Input((8, 8, 3)), L.SeparableConv2D(6, 3, depth_multiplier=2), L.Reshape((36, 6)),
                         L.Bidirectional(L.LSTM(4, return_sequences=True)), L.LSTM(5, return_sequences=True),
                         L.LSTM(5), L.Dense(3)])


class SeparableRNNTwin(nn.Module):
    """SeparableConv2D as depthwise + pointwise convs, a bidirectional LSTM, two stacked LSTMs as one
    ``nn.LSTM(num_layers=2)``: each torch module takes one Keras layer's part, or several layers."""

    def __init__(self):
        super().__init__()
        self.depthwise = nn.Conv2d(3, 6, 3, groups=3, bias=False)
        self.pointwise = nn.Conv2d(6, 6, 1)
        self.birnn = nn.LSTM(6, 4, batch_first=True, bidirectional=True)
        self.stack = nn.LSTM(8, 5, num_layers=2, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        h = self.pointwise(self.depthwise(x)).permute(0, 2, 3, 1).reshape(x.shape[0], 36, 6)
        return self.head(self.stack(self.birnn(h)[0])[0][:, -1])


def make_divisible(v, divisor=8):
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def conv_bn(cin, cout, k=1, stride=1, groups=1, relu=True, pad=None):
    """Conv (no bias) + BN (Keras's eps 1e-3) + ReLU6; ``pad``: Keras's ZeroPadding2D before a valid conv."""
    layers = [nn.ZeroPad2d(pad)] if pad else []
    layers += [nn.Conv2d(cin, cout, k, stride, (k // 2) if pad is None else 0, groups=groups, bias=False),
               nn.BatchNorm2d(cout, eps=1e-3)]
    return nn.Sequential(*layers, *([nn.ReLU6()] if relu else []))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expansion):
        super().__init__()
        hidden, odd = cin * expansion, (0, 1, 0, 1)  # keras.applications correct_pad on an even input
        self.expand = conv_bn(cin, hidden) if expansion != 1 else nn.Identity()
        self.depthwise = conv_bn(hidden, hidden, 3, stride, groups=hidden, pad=odd if stride == 2 else None)
        self.project = conv_bn(hidden, cout, relu=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class MobileNetV2Twin(nn.Module):
    """torchvision's MobileNetV2 as a person would port it, for keras.applications' (alpha 0.35, 96x96)."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]

    def __init__(self, alpha=0.35, classes=10):
        super().__init__()
        cin = make_divisible(32 * alpha)
        blocks = [conv_bn(3, cin, 3, 2, pad=(0, 1, 0, 1))]
        for t, c, n, s in self.SETTINGS:
            cout = make_divisible(c * alpha)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        blocks.append(conv_bn(cin, 1280, 1))
        self.features, self.classifier = nn.Sequential(*blocks), nn.Linear(1280, classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def mobilenet_v2(k):
    return k.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10,
                                      classifier_activation=None)


MODELS = {"vgg": (vgg_keras, VGGTwin, (2, 16, 16, 3), (0, 3, 1, 2)),
          "conv_bn_lstm": (rnn_keras, RNNTwin, (2, 9, 4), None),
          "conv_bn_gru": (lambda k: rnn_keras(k, "GRU"), lambda: RNNTwin("GRU"), (2, 9, 4), None),
          "depthwise_transposed": (mobile_keras, MobileTwin, (2, 10, 10, 3), (0, 3, 1, 2)),
          "conv_bn_lstm_attention": (attention_keras, AttentionTwin, (2, 9, 4), None),
          "separable_bidirectional_stacked": (separable_rnn_keras, SeparableRNNTwin, (2, 8, 8, 3), (0, 3, 1, 2)),
          "mobilenet_v2": (mobilenet_v2, MobileNetV2Twin, (2, 96, 96, 3), (0, 3, 1, 2))}


def randomize(model, seed=0):
    """Random weights everywhere; BatchNormalization variances positive, so every statistic matters."""
    rng = np.random.default_rng(seed)
    model.set_weights([(rng.uniform(0.5, 1.5, w.shape) if "variance" in w.name else
                        rng.standard_normal(w.shape) * 0.5).astype("float32") for w in model.weights])


def save(model, path):
    if path.parent.name == "ckpt":  # tf_keras save_weights without .h5: a TF 2 object checkpoint
        model.save_weights(str(path))
    elif path.parent.name == "tf1":
        save_tf1_checkpoint(model, path)
    elif path.parent.name == "object":
        import tensorflow as tf

        tf.train.Checkpoint(model=model).write(str(path))
    elif path.name.endswith("weights.h5"):
        model.save_weights(str(path))
    else:
        model.save(str(path))


def save_tf1_checkpoint(model, path):
    """A TF 1 checkpoint without a .meta: the variables by their scoped names (``conv2d_3/kernel``)."""
    import tensorflow as tf

    values = [(w.name.split(":")[0], np.asarray(w)) for w in model.weights]
    with tf.Graph().as_default():
        for name, value in values:
            tf.compat.v1.get_variable(name, initializer=value)
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(path), write_meta_graph=False)


def built(case, flavour, file, tmp_path):
    build, twin_class, shape, perm = MODELS[case]
    model = build(keras_module(flavour))
    randomize(model)
    path = tmp_path / file
    save(model, path)
    x = np.random.default_rng(1).standard_normal(shape).astype("float32")
    tx = torch.from_numpy(x if perm is None else x.transpose(perm).copy())
    return model, twin_class(), path, x, tx


# -- parity ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", MODELS)
@pytest.mark.parametrize("flavour,file", CASES)
def test_transfer_matches_keras(case, flavour, file, tmp_path):
    model, twin, path, x, tx = built(case, flavour, file, tmp_path)
    mapping = None
    unnamed = {"weights.h5": model.layers[4].name, "ckpt/weights": "layer_with_weights-3",  # no classes named:
               "tf1/ckpt": model.layers[4].name,
               "object/ckpt": "model/layer_with_weights-3"}  # a transposed kernel reads as a conv kernel,
    if case == "depthwise_transposed" and file in unnamed:  # refused, not wrong; a map names the pair
        with pytest.raises(TransferError, match="up.weight, up.bias"):
            tf2torch.transfer(path, twin, example_inputs=(tx,))
        mapping = {"up": unnamed[file]}
    if case == "mobilenet_v2" and file == "tf1/ckpt":  # names only, sorted: block_10_* before block_1_*; the
        with pytest.raises(TransferError, match="candidate source layers"):  # order is gone, and refused
            tf2torch.transfer(path, twin, example_inputs=(tx,))
        return
    report = tf2torch.transfer(path, twin, example_inputs=(tx,), mapping=mapping)
    assert report.ok, report.to_markdown()
    assert len(report.mapping) == len(twin.state_dict()) - sum("num_batches" in k for k in twin.state_dict())
    if file in ("model.keras", "model.h5"):  # a whole model: the verification ran Keras and compared layer by layer
        compared = [entry for entry in report.verification["layers"] if entry.get("compared")]
        assert len(compared) >= 3 and report.first_divergence is None
        assert report.verification["output_max_rel_error"] <= RTOL
    ref = np.asarray(model(x, training=False))
    with torch.no_grad():
        got = twin.eval()(tx).numpy()
    assert max_rel_error(got, ref) <= RTOL


def test_flatten_reorder_is_needed(tmp_path):
    """The check can fail: the Flatten row order loaded as a plain transpose gives a different output."""
    model, twin, path, x, tx = built("vgg", "keras3", "model.keras", tmp_path)
    report = tf2torch.transfer(path, twin, example_inputs=(tx,))
    assert "channels=16" in report.mapping["fc1.weight"]["transform"]
    kernel = model.layers[-2].get_weights()[0]
    with torch.no_grad():
        twin.fc1.weight.copy_(torch.from_numpy(kernel.T.copy()))
        got = twin.eval()(tx).numpy()
    assert max_rel_error(got, np.asarray(model(x, training=False))) > 1e-2


# -- verification: the traps shapes cannot see ----------------------------------------------------------------
def strided_same_keras(k):
    L = k.layers
    return k.Sequential([k.Input((16, 16, 3)), L.Conv2D(8, 3, strides=2, padding="same"), L.Flatten(),
                         L.Dense(4)])


class SymmetricPadTwin(nn.Module):
    """The classic port: padding=1 where TF's SAME pads (0, 1) on an even input with stride 2."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


TRAPS = {"same_stride2": (strided_same_keras, SymmetricPadTwin, (2, 16, 16, 3), (0, 3, 1, 2), "conv",
                          "nn.ZeroPad2d((0, 1, 0, 1))"),
         "bn_eps": (rnn_keras, lambda: RNNTwin().replace_bn(), (2, 9, 4), None, "bn", "eps=0.001")}


@pytest.mark.parametrize("trap", TRAPS)
@pytest.mark.parametrize("flavour,file", [("keras3", "model.keras"), ("tf_keras", "model.h5")])
def test_verification_names_the_trap(trap, flavour, file, tmp_path, monkeypatch):
    build, twin_class, shape, perm, layer, fix = TRAPS[trap]
    monkeypatch.setitem(MODELS, trap, (build, twin_class, shape, perm))
    model, twin, path, x, tx = built(trap, flavour, file, tmp_path)
    report = tf2torch.transfer(path, twin, example_inputs=(tx,))  # loads: every shape fits
    assert report.loaded and not report.ok
    first = report.first_divergence
    assert first["target"] == layer and fix in first["diagnosis"][0], first
    assert fix in report.to_markdown()


def test_output_divergence_without_a_layer_to_blame(tmp_path):
    """A layer without weights differs (the twin pools 15 -> 7 where Keras's SAME pooling gives 8): the conv
    agrees, the Dense after the pooling does not, and the diagnosis says its input already differed."""
    k = keras_module("keras3")
    L = k.layers
    model = k.Sequential([k.Input((15, 15, 3)), L.Conv2D(4, 3, padding="same"), L.MaxPooling2D(2, padding="same"),
                          L.GlobalAveragePooling2D(), L.Dense(2)])
    randomize(model)
    model.save(str(tmp_path / "m.keras"))

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(nn.functional.max_pool2d(self.conv(x), 2).mean((2, 3)))

    report = tf2torch.transfer(tmp_path / "m.keras", Twin(), example_inputs=(torch.randn(2, 3, 15, 15),))
    assert report.loaded and not report.ok and report.first_divergence["target"] == "fc"
    assert "its input already differs" in report.to_markdown()
    assert [e["diverges"] for e in report.verification["layers"]] == [False, True]


# -- refusals --------------------------------------------------------------------------------------------------
def three_dense(k, names=("p", "q", "r")):
    return k.Sequential([k.Input((8,)), *(k.layers.Dense(8, name=name) for name in names)])


class TwoLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.b(self.a(x))


class WrongVGG(VGGTwin):
    def __init__(self):
        super().__init__()
        self.fc2 = nn.Linear(32, 11)


@pytest.mark.parametrize("flavour", FILES)
def test_ambiguous_refused_with_table(flavour, tmp_path):
    model = three_dense(keras_module(flavour))
    path = tmp_path / "model.h5"
    model.save(str(path))
    twin = TwoLinear()
    before = {k: v.clone() for k, v in twin.state_dict().items()}
    with pytest.raises(TransferError) as caught:
        tf2torch.transfer(path, twin, example_inputs=(torch.zeros(1, 8),))
    assert "| target module | kind | candidate source layers |" in str(caught.value)
    assert {a["target"] for a in caught.value.report.ambiguous} == {"a", "b"}
    assert all(torch.equal(before[k], v) for k, v in twin.state_dict().items())  # nothing loaded
    report = tf2torch.transfer(path, twin, mapping={"a": "p", "[b]": "r"}, strict=False)  # "[b]": a regex
    assert report.unused_source == ["q/kernel", "q/bias"]
    assert not report.unloaded_target and not report.ambiguous
    assert torch.equal(twin.b.weight, torch.from_numpy(model.layers[2].get_weights()[0].T.copy()))


def test_names_settle_a_tie(tmp_path):
    """Three Dense(8, 8) for two Linear(8, 8): ``a`` ↔ ``layer_a`` and ``b`` ↔ ``layer_b`` by name tokens; a
    regular expression with a group maps the same pairs."""
    model = three_dense(keras_module("keras3"), ("layer_a", "layer_x", "layer_b"))
    path = tmp_path / "model.keras"
    model.save(str(path))
    for mapping in (None, {r"([ab])": r"layer_\1"}):
        report = tf2torch.transfer(path, TwoLinear(), mapping=mapping, strict=False)
        assert report.module_mapping() == {"a": "layer_a", "b": "layer_b"}
        assert report.unused_source == ["layer_x/kernel", "layer_x/bias"] and not report.ambiguous


def test_saved_mapping_applies(tmp_path):
    """--save-mapping's JSON read back: the same tensors, loaded without matching."""
    _, twin, path, _, tx = built("vgg", "keras3", "model.weights.h5", tmp_path)
    first = tf2torch.transfer(path, twin, example_inputs=(tx,))
    first.save_mapping(str(tmp_path / "map.json"))
    assert json.loads((tmp_path / "map.json").read_text())["fc1"].startswith("dense")
    again = VGGTwin()
    report = tf2torch.transfer(path, again, example_inputs=(tx,), mapping=tmp_path / "map.json")
    assert report.ok and report.mapping == first.mapping
    assert all(torch.equal(value, again.state_dict()[key]) for key, value in twin.state_dict().items())


def test_mismatch_refused_then_loaded_partly(tmp_path):
    model, _, path, x, tx = built("vgg", "tf_keras", "model.h5", tmp_path)
    twin = WrongVGG()
    with pytest.raises(TransferError, match="fc2.weight, fc2.bias"):
        tf2torch.transfer(path, twin, example_inputs=(tx,))
    report = tf2torch.transfer(path, twin, example_inputs=(tx,), strict=False)
    assert report.unloaded_target == ["fc2.weight", "fc2.bias"] and len(report.unused_source) == 2
    assert "fc1.weight" in report.mapping and "fc2.weight" in report.to_markdown()


def test_head_count_is_checked(tmp_path):
    """Four heads of 2 where Keras has two of 4: every shape fits, the computation differs; refused."""
    _, twin, path, _, tx = built("conv_bn_lstm_attention", "keras3", "model.keras", tmp_path)
    twin.attention = nn.MultiheadAttention(8, 4, batch_first=True)
    with pytest.raises(TransferError, match="attention.in_proj_weight"):
        tf2torch.transfer(path, twin, example_inputs=(tx,))


def test_report_writes(tmp_path):
    _, twin, path, _, tx = built("conv_bn_lstm", "keras3", "model.weights.h5", tmp_path)
    report = tf2torch.transfer(path, twin, example_inputs=(tx,))
    assert '"ok": true' in report.to_json()
    assert report.mapping["rnn.bias_hh_l0"]["transform"].startswith("zeros")
    assert "<table>" in report._repr_html_()


# -- hostile weights files: refused by the reading policy, before any value is read ------------------------------
def bomb(f):  # Keras 3 layout; 3.6 GB declared, nothing stored (a compressed, unwritten dataset)
    f.create_dataset("layers/dense/vars/0", shape=(30_000, 30_000), dtype="float32", chunks=(1000, 1000),
                     compression="gzip")


def listed_but_missing(f):  # Keras 2 layout: the attribute lists a weight the file does not hold
    f.attrs["layer_names"] = np.array([b"dense"])
    f.create_group("dense").attrs["weight_names"] = np.array([b"dense/kernel:0"])


@pytest.mark.parametrize("write,message", [(bomb, "decompression bomb"), (listed_but_missing, "listed but missing")])
def test_hostile_weights_files(write, message, tmp_path):
    import h5py

    path = tmp_path / "w.weights.h5"
    with h5py.File(path, "w") as f:
        write(f)
    with pytest.raises(tf2torch.ModelFileError, match=message):
        tf2torch.transfer(path, nn.Linear(4, 4))


@pytest.mark.parametrize("file", ["model.keras", "model.weights.h5"])
def test_reading_never_imports_tensorflow(file, tmp_path):
    """Keras files are read with h5py only; TensorFlow comes in only to verify (here: no example inputs)."""
    _, _, path, _, _ = built("conv_bn_lstm", "keras3", file, tmp_path)
    code = ("import sys, tf2torch, test_transfer as t\n"
            f"report = tf2torch.transfer({str(path)!r}, t.RNNTwin())\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'))\n"
            "print(report.loaded, heavy)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "True []", done.stderr[-2000:]


# -- the transforms, shared with the converters ----------------------------------------------------------------
def test_converters_use_the_shared_transforms():
    assert conv.hwio_to_oihw is transforms.hwio_to_oihw
    assert dense.kernel_to_linear is transforms.kernel_to_linear
    assert recurrent.keras_gru_to_torch is transforms.keras_gru_to_torch
    assert normalization.keras_bn_to_torch_params is transforms.keras_bn_to_torch_params


def test_transform_values():
    k = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert transforms.hwio_to_oihw(k)[4, 3, 1, 2] == k[1, 2, 3, 4]
    assert transforms.transposed_kernel_to_iohw(k)[4, 3, 1, 2] == k[1, 2, 3, 4]
    d = transforms.depthwise_kernel_to_oihw(k)  # in=4, dm=5: output 3*5+4 reads input 3 with k[..., 3, 4]
    assert d.shape == (20, 1, 2, 3) and d[3 * 5 + 4, 0, 1, 2] == k[1, 2, 3, 4]
    flat = np.arange(2 * 3 * 4 * 7).reshape(2 * 3 * 4, 7)  # rows H,W,C (2, 3, 4)
    w = transforms.kernel_to_linear(flat, 4, (2, 3))
    assert w[6, 2 * 6 + 1 * 3 + 2] == flat[(1 * 3 + 2) * 4 + 2, 6]  # column C,H,W (2, 1, 2)
    g = np.array([1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(transforms.keras_gru_gates_to_torch(g), [2, 2, 1, 1, 3, 3])
    b_ih, b_hh = transforms.input_and_recurrent_bias(np.arange(12).reshape(2, 6))
    np.testing.assert_array_equal(b_hh, np.arange(6, 12))
    params = transforms.keras_bn_to_torch_params([np.ones(2), np.zeros(2), np.full(2, 3.0), np.full(2, 4.0)])
    assert params["running_var"][0] == 4.0 and params["weight"][0] == 1.0


# -- the command line ------------------------------------------------------------------------------------------
def run_cli(tmp_path, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "tf2torch", "transfer", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_cli_transfer(tmp_path):
    model, _, path, x, tx = built("vgg", "keras3", "model.keras", tmp_path)
    (tmp_path / "twins.py").write_text("import torch\nfrom torch import nn\n\n\n" + inspect.getsource(VGGTwin)
                                       + "\n\n" + inspect.getsource(WrongVGG))
    out, refused = tmp_path / "vgg.safetensors", tmp_path / "wrong.pt"
    done = run_cli(tmp_path, str(path), str(out), "--into", "twins:VGGTwin", "--example-input", "1,3,16,16",
                   "--save-mapping", str(tmp_path / "map.json"), "--report", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    from safetensors.torch import load_file

    twin = VGGTwin()
    twin.load_state_dict(load_file(str(out)))
    with torch.no_grad():
        assert max_rel_error(twin.eval()(tx).numpy(), np.asarray(model(x, training=False))) <= RTOL
    assert "fc1" in json.loads((tmp_path / "map.json").read_text()) and "<table>" in (tmp_path / "r.html").read_text()
    failed = run_cli(tmp_path, str(path), str(refused), "--into", "twins:WrongVGG", "--example-input", "1,3,16,16")
    assert failed.returncode == 2 and failed.stderr.startswith("error: ") and failed.stderr.count("\n") == 1
    assert "fc2.weight" in failed.stderr and not refused.exists()


# -- a Hugging Face style tf_model.h5: weights of a subclassed tf_keras model, no Keras graph inside --------------
H, VOCAB, POSITIONS = 8, 20, 6


def hf_tf_model():
    """Built as transformers' TF models are ([HF] ``modeling_tf_bert.py``, ``modeling_tf_gpt2.py``): subclassed
    layers with HF's names (``layer_._0``, ``LayerNorm``), embeddings added in ``build`` under ``tf.name_scope``
    (``word_embeddings/weight``), a GPT-2 ``TFConv1D`` storing ``weight`` (nx, nf) and ``bias`` (1, nf);
    ``save_pretrained`` writes ``model.save_weights("tf_model.h5")``."""
    import tensorflow as tf

    k = keras_module("tf_keras")
    L = k.layers

    class TFConv1D(L.Layer):
        def __init__(self, nf, nx, **kwargs):
            super().__init__(**kwargs)
            self.nf, self.nx = nf, nx

        def build(self, input_shape):
            self.weight = self.add_weight(name="weight", shape=[self.nx, self.nf])
            self.bias = self.add_weight(name="bias", shape=[1, self.nf])

        def call(self, x):
            return tf.reshape(tf.matmul(tf.reshape(x, [-1, self.nx]), self.weight) + self.bias,
                              tf.concat([tf.shape(x)[:-1], [self.nf]], 0))

    class Embeddings(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.LayerNorm = L.LayerNormalization(epsilon=1e-12, name="LayerNorm")

        def build(self, input_shape):
            with tf.name_scope("word_embeddings"):
                self.weight = self.add_weight(name="weight", shape=[VOCAB, H])
            with tf.name_scope("position_embeddings"):
                self.position_embeddings = self.add_weight(name="embeddings", shape=[POSITIONS, H])

        def call(self, ids):
            return self.LayerNorm(tf.gather(self.weight, ids) + self.position_embeddings[None, :tf.shape(ids)[1]])

    class SelfAttention(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.query, self.key, self.value = (L.Dense(H, name=n) for n in ("query", "key", "value"))

        def call(self, x):
            scores = tf.matmul(self.query(x), self.key(x), transpose_b=True) / H ** 0.5
            return tf.matmul(tf.nn.softmax(scores, -1), self.value(x))

    class SelfOutput(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense, self.LayerNorm = L.Dense(H, name="dense"), L.LayerNormalization(epsilon=1e-12, name="LayerNorm")

        def call(self, h, x):
            return self.LayerNorm(self.dense(h) + x)

    class Layer(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.attention_self, self.attention_output = SelfAttention(name="self"), SelfOutput(name="output")
            self.c_fc, self.c_proj = TFConv1D(H, H, name="c_fc"), TFConv1D(H, H, name="c_proj")

        def call(self, x):
            with tf.name_scope("attention"):
                x = self.attention_output(self.attention_self(x), x)
            return x + self.c_proj(tf.nn.gelu(self.c_fc(x), approximate=False))

    class MainLayer(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.embeddings = Embeddings(name="embeddings")
            self.layers_ = [Layer(name=f"encoder/layer_._{i}") for i in range(2)]

        def call(self, ids):
            x = self.embeddings(ids)
            for layer in self.layers_:
                x = layer(x)
            return x

    class TFBertModel(k.Model):
        def __init__(self):
            super().__init__(name="tf_bert_model")
            self.bert = MainLayer(name="bert")

        def call(self, ids):
            return self.bert(ids)

    return TFBertModel()


class Conv1D(nn.Module):
    """transformers' ``pytorch_utils.Conv1D`` (GPT-2): a Linear whose weight is (in, out)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight, self.bias = nn.Parameter(torch.empty(nx, nf)), nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight).view(*x.size()[:-1], self.nf)


class BertTwin(nn.Module):
    """Written as transformers' PyTorch classes are, with their module names (``encoder.layer.0.attention.self
    .query``); its Conv1Ds are square, so only the module's kind says not to transpose them."""

    def __init__(self):
        super().__init__()
        self.embeddings = nn.ModuleDict({"word_embeddings": nn.Embedding(VOCAB, H),
                                         "position_embeddings": nn.Embedding(POSITIONS, H),
                                         "LayerNorm": nn.LayerNorm(H, eps=1e-12)})
        self.encoder = nn.ModuleDict({"layer": nn.ModuleList(nn.ModuleDict({
            "attention": nn.ModuleDict({
                "self": nn.ModuleDict({n: nn.Linear(H, H) for n in ("query", "key", "value")}),
                "output": nn.ModuleDict({"dense": nn.Linear(H, H), "LayerNorm": nn.LayerNorm(H, eps=1e-12)})}),
            "mlp": nn.ModuleDict({"c_fc": Conv1D(H, H), "c_proj": Conv1D(H, H)})}) for _ in range(2))})

    def forward(self, ids):
        e = self.embeddings
        x = e["LayerNorm"](e["word_embeddings"](ids) + e["position_embeddings"](torch.arange(ids.shape[1])))
        for layer in self.encoder["layer"]:
            a, o, mlp = layer["attention"]["self"], layer["attention"]["output"], layer["mlp"]
            scores = a["query"](x) @ a["key"](x).transpose(1, 2) / H ** 0.5
            x = o["LayerNorm"](o["dense"](scores.softmax(-1) @ a["value"](x)) + x)
            x = x + mlp["c_proj"](nn.functional.gelu(mlp["c_fc"](x)))
        return x


def test_hugging_face_tf_model_h5(tmp_path):
    model = hf_tf_model()
    ids = np.random.default_rng(1).integers(0, VOCAB, (2, POSITIONS))
    model(ids)
    randomize(model)
    model.save_weights(str(tmp_path / "tf_model.h5"))
    twin = BertTwin()
    report = tf2torch.transfer(tmp_path / "tf_model.h5", twin, example_inputs=(torch.from_numpy(ids),))
    assert report.ok, report.to_markdown()
    entry = report.mapping["encoder.layer.1.attention.self.query.weight"]
    assert entry["source"] == "tf_bert_model/bert/encoder/layer_._1/attention/self/query/kernel"
    assert report.mapping["encoder.layer.0.mlp.c_proj.weight"]["transform"].startswith("identity")
    assert report.mapping["embeddings.word_embeddings.weight"]["source"].endswith("word_embeddings/weight")
    fc = report.mapping["encoder.layer.0.mlp.c_fc.weight"]["source"]
    assert fc == "tf_bert_model/bert/encoder/layer_._0/c_fc/weight"  # the file's name, not the role's
    expected = np.asarray(model(ids))
    with torch.no_grad():
        assert max_rel_error(twin.eval()(torch.from_numpy(ids)).numpy(), expected) <= RTOL
        fc = twin.encoder["layer"][0]["mlp"]["c_fc"]
        fc.weight.copy_(fc.weight.T.clone())  # loaded as a Linear would be: the check fails
        assert max_rel_error(twin(torch.from_numpy(ids)).numpy(), expected) > 1e-2


# -- RNN stacks and halves: only what computes the same loads ------------------------------------------------------
def two_lstms(k, bidirectional=False, go_backwards=False):
    L = k.layers
    first = (L.Bidirectional(L.LSTM(3, return_sequences=True)) if bidirectional else
             L.LSTM(3, return_sequences=True, go_backwards=go_backwards))
    return k.Sequential([k.Input((5, 4)), first, L.LSTM(3)])


RNN_PAIRS = {  # Keras layers, torch RNN, what is refused (None: loads, equal to Keras)
    "stack_into_two_layers": (two_lstms, lambda: nn.LSTM(4, 3, num_layers=2, batch_first=True), None),
    "stack_into_bidirectional": (two_lstms, lambda: nn.LSTM(4, 3, bidirectional=True, batch_first=True),
                                 "weight_ih_l0"),
    "half_into_one_direction": (lambda k: two_lstms(k, bidirectional=True),
                                lambda: nn.LSTM(4, 3, num_layers=3, batch_first=True), "weight_ih_l0"),
    "go_backwards_into_forward": (lambda k: two_lstms(k, go_backwards=True),
                                  lambda: nn.LSTM(4, 3, num_layers=2, batch_first=True), "weight_ih_l0"),
}


@pytest.mark.parametrize("case,flavour,file", [  # go_backwards is config: a weights-only file cannot say it
    (case, flavour, file) for case in RNN_PAIRS
    for flavour, file in [("keras3", "model.keras"), ("tf_keras", "weights.h5")]
    if not (case == "go_backwards_into_forward" and file == "weights.h5")])
def test_rnn_stacks_and_halves(case, flavour, file, tmp_path):
    build, target, refused = RNN_PAIRS[case]
    model = build(keras_module(flavour))
    randomize(model)
    save(model, tmp_path / file)
    rnn = target()
    x = np.random.default_rng(1).standard_normal((2, 5, 4)).astype("float32")
    if refused:
        with pytest.raises(TransferError, match=refused):
            tf2torch.transfer(tmp_path / file, rnn, example_inputs=(torch.from_numpy(x),))
        return
    report = tf2torch.transfer(tmp_path / file, rnn, example_inputs=(torch.from_numpy(x),))
    assert report.ok and "weight_ih_l1" in report.mapping, report.to_markdown()
    with torch.no_grad():
        assert max_rel_error(rnn.eval()(torch.from_numpy(x))[0][:, -1].numpy(), np.asarray(model(x))) <= RTOL
    names = report.module_mapping()[""]
    again = target()
    assert tf2torch.transfer(tmp_path / file, again, mapping={"": names}).ok  # "lstm+lstm_1": a stack by name
    assert all(torch.equal(a, b) for a, b in zip(rnn.state_dict().values(), again.state_dict().values()))


# -- a subclassed Keras 3 model's weights file into a twin written the other way round (the MTCNN pair) ----------
def rnet_keras():
    """ipazc/mtcnn's RNet pattern: a subclassed Keras 3 model (weights saved under attribute names, ``conv1/vars``),
    PReLU shared over H, W, a Permute before the Flatten, and the box head defined before the face head."""
    k = keras_module("keras3")
    L = k.layers

    class RNet(k.Model):
        def __init__(self):
            super().__init__()
            self.conv1, self.prelu1 = L.Conv2D(6, 3), L.PReLU(shared_axes=[1, 2])
            self.permute, self.flatten = L.Permute((2, 1, 3)), L.Flatten()
            self.fc4, self.prelu4 = L.Dense(8), L.PReLU()
            self.fc5_1, self.fc5_2 = L.Dense(4), L.Dense(2, activation="softmax")

        def call(self, x):
            x = self.prelu4(self.fc4(self.flatten(self.permute(self.prelu1(self.conv1(x))))))
            return self.fc5_1(x), self.fc5_2(x)

    return RNet()


class RNetTwin(nn.Module):
    """facenet-pytorch's RNet pattern: ``permute(0, 3, 2, 1)`` before ``view`` (the author's own row order, which
    must not be reordered), the face head before the box head."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 6, 3), nn.PReLU(6)
        self.dense4, self.prelu4 = nn.Linear(6 * 5 * 5, 8), nn.PReLU(8)
        self.dense5_1, self.dense5_2 = nn.Linear(8, 2), nn.Linear(8, 4)

    def forward(self, x):
        x = self.prelu1(self.conv1(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), 1)


def test_subclassed_weights_prelu_permuted_flatten(tmp_path):
    model = rnet_keras()
    x = np.random.default_rng(1).standard_normal((2, 7, 7, 3)).astype("float32")
    model(x)
    randomize(model)
    model.save_weights(str(tmp_path / "rnet.weights.h5"))
    twin = RNetTwin()
    report = tf2torch.transfer(tmp_path / "rnet.weights.h5", twin, example_inputs=(torch.from_numpy(
        x.transpose(0, 3, 1, 2).copy()),))
    assert report.ok, report.to_markdown()
    assert report.mapping["dense4.weight"]["transform"] == "kernel_to_linear"  # no H,W,C -> C,H,W reorder
    assert report.module_mapping()["dense5_1"] == "fc5_2"  # the heads, each by its only fitting shape
    with torch.no_grad():
        got = twin.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    for ref, out in zip(model(x), got):
        assert max_rel_error(out.numpy(), np.asarray(ref)) <= RTOL
