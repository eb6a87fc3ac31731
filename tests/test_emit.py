"""Owning the result: generated PyTorch source, torch.export programs and ONNX models.

Each small model below (conv with asymmetric SAME padding, pooling, batch norm; masked LSTM/GRU; open spatial
dimensions; the shipped transformer fixture: attention, layer norm, padding masks as op nodes) is converted and
emitted in all three forms. The Python package and the
``.pt2`` run in a fresh virtual environment that has torch and safetensors only (tf2torch, Keras and TensorFlow
are proven absent there) and must match the converted module within 1e-6; the ONNX model runs in onnxruntime and
must match Keras within the suite's tolerance (1e-5). Inputs use batch 3, the exports were traced with batch 2:
the batch dimension is dynamic.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from harness import (
    RTOL,
    assert_matches,
    keras_module,
    keras_outputs,
    max_rel_error,
    random_inputs,
    to_torch_input,
    torch_outputs,
)
from standalone import STANDALONE_TOL, channels_last, onnx_outputs, run_standalone

import tf2torch
from tf2torch.cli import main
from tf2torch.emit import emit, to_python
from tf2torch.emit.export import ONNX_OPSET
from tf2torch.emit.inputs import module_inputs
from tf2torch.errors import EmitError

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
BATCH = 3


# -- models -------------------------------------------------------------------------------------------------------
def cnn(k):
    """SAME padding with stride 2 on an even size (asymmetric: TFSamePad2d), BN, pooling (SAME average pooling
    that leaves the padding out of the mean), a depthwise conv and a Dense head."""
    x = inputs = k.Input((32, 32, 3))
    x = k.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU()(x)
    x = k.layers.DepthwiseConv2D(3, padding="same")(x)
    x = k.layers.MaxPooling2D(2)(x)
    x = k.layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(5, activation="softmax")(x)
    return k.Model(inputs, x, name="cnn")


def masked_rnn(k):
    """Embedding(mask_zero) → LSTM (sequences) → GRU: masks carried into recurrent layers."""
    x = inputs = k.Input((7,), dtype="int32")
    x = k.layers.Embedding(20, 8, mask_zero=True)(x)
    x = k.layers.LSTM(6, return_sequences=True)(x)
    x = k.layers.GRU(5)(x)
    x = k.layers.Dense(3)(x)
    return k.Model(inputs, x, name="masked_rnn")


def open_size(k):
    """Height and width left open (None): dynamic in the exports too."""
    x = inputs = k.Input((None, None, 3))
    x = k.layers.Conv2D(4, 3, strides=2, padding="same")(x)
    x = k.layers.GlobalMaxPooling2D()(x)
    return k.Model(inputs, k.layers.Dense(2)(x), name="open_size")


def tokens(model_inputs, rng):
    ids = rng.integers(1, 20, (BATCH, 7))
    ids[0, 5:] = 0
    ids[2, 3:] = 0
    return [ids.astype("int32")]


CASES = {  # name: (flavour, builder or fixture file, inputs (Keras layout, batch first))
    "cnn": ("keras3", cnn, lambda rng: [rng.standard_normal((BATCH, 32, 32, 3)).astype("float32")]),
    "masked_rnn": ("tf_keras", masked_rnn, lambda rng: tokens(None, rng)),
    "open_size": ("keras3", open_size, lambda rng: [rng.standard_normal((BATCH, 20, 27, 3)).astype("float32")]),
    "transformer": ("keras3", "transformer_encoder.keras", lambda rng: padded_tokens(rng)),
}


def padded_tokens(rng):
    ids = rng.integers(1, 50, (BATCH, 12))
    ids[0, 8:] = 0
    ids[1, 10:] = 0
    positions = np.where(ids != 0, np.arange(1, 13), 0)
    return [ids.astype("int32"), positions.astype("int32")]


def keras_model(flavour, source, tmp_path):
    k = keras_module(flavour)
    if isinstance(source, str):
        return k.models.load_model(str(FIXTURES / source), compile=False), FIXTURES / source
    model = source(k)
    path = tmp_path / f"{model.name}.{'keras' if flavour == 'keras3' else 'h5'}"
    model.save(str(path))
    return model, path


def as_module_inputs(module, arrays):
    """Keras arrays → the converted module's inputs (layout and dtype it was exported with)."""
    infos = module_inputs(module)
    return [to_torch_input(a, "channels_first" if i.channels_first else "keras").to(i.dtype).contiguous()
            for a, i in zip(arrays, infos)]


def flat(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


@pytest.fixture(scope="module")
def emitted(tmp_path_factory):
    """Every case converted and emitted once: name → (directory, torch inputs, converted outputs, Keras outputs,
    Keras inputs)."""
    root = tmp_path_factory.mktemp("emitted")
    results = {}
    for name, (flavour, source, make_inputs) in CASES.items():
        model, path = keras_model(flavour, source, root)
        arrays = make_inputs(np.random.default_rng(0))
        ref = keras_outputs(model, arrays)
        module = tf2torch.convert(path)
        assert_matches(torch_outputs(module, arrays, "channels_first"), ref, RTOL, f"{name} converted")
        emit(module, root / name, ("python", "pt2", "onnx"))
        torch_in = as_module_inputs(module, arrays)
        with torch.no_grad():
            expected = [t.contiguous() for t in flat(module(*torch_in))]
        results[name] = (root / name, torch_in, expected, ref, arrays)
    return root, results


# -- running without tf2torch ------------------------------------------------------------------------------------
def test_python_and_pt2_run_without_tf2torch(emitted, tmp_path):
    """The generated Python runs the converted module's own kernels (within ``STANDALONE_TOL`` of it); the
    ``torch.export`` program holds torch's own convolutions where the module runs a 1×1 one as a matrix product
    (``tf2torch/nn/conv.py``), so like the ONNX model it is held to the suite's tolerance of Keras."""
    root, results = emitted
    got = run_standalone(root, {name: r[1] for name, r in results.items()}, tmp_path)
    for name, (_, _, expected, ref, _) in results.items():
        assert len(got[name]["python"]) == len(expected) == len(got[name]["pt2"])
        for i, want in enumerate(expected):
            err = max_rel_error(got[name]["python"][i].double().numpy(), want.double().numpy())
            assert err <= STANDALONE_TOL, f"{name} python output {i}: {err:.3g}"
        assert_matches(channels_last([t.double().numpy() for t in got[name]["pt2"]]), ref, RTOL,
                       f"{name} pt2 vs Keras")


@pytest.mark.parametrize("name", CASES)
def test_onnx_matches_keras(emitted, name):
    """The ONNX model takes Keras's own arrays, dtype included: int32 token ids (before: int64 was declared and
    onnxruntime refused them, issue #20)."""
    import onnx

    root, results = emitted
    directory, torch_in, _, ref, arrays = results[name]
    model = onnx.load(str(directory / "model.onnx"))
    assert any(o.domain in ("", "ai.onnx") and o.version == ONNX_OPSET for o in model.opset_import)
    declared = [onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in model.graph.input]
    assert declared == [a.dtype for a in arrays], f"{name}: ONNX takes {declared}, Keras {[a.dtype for a in arrays]}"
    keras_in = [t.to(torch.from_numpy(a).dtype) for a, t in zip(arrays, torch_in)]  # the module's layout
    got = channels_last(onnx_outputs(directory / "model.onnx", keras_in))
    assert_matches(got, ref, RTOL, f"{name} onnxruntime vs Keras")


def test_open_dimensions_stay_dynamic(emitted):
    root, results = emitted
    program = torch.export.load(str(results["open_size"][0] / "model.pt2"))
    dims = program.graph_signature.user_inputs
    placeholder = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name in dims)
    shape = placeholder.meta["val"].shape
    assert [isinstance(d, torch.SymInt) for d in shape] == [True, False, True, True]


# -- the generated source -----------------------------------------------------------------------------------------
def test_source_reads_like_keras(emitted):
    root, results = emitted
    source = (results["cnn"][0] / "model.py").read_text()
    assert "class cnn(nn.Module):" in source
    # tf2torch/nn's Conv2d (torch's, with 1×1 calls as a matrix product), spelled as torch's own
    assert re.search(r"[^.]Conv2d\(3, 8, kernel_size=3, stride=2, bias=False\)", source)
    assert "TFSamePad2d(" in source and re.search(r"BatchNorm2d\(\s*8,\s*eps=0\.001", source)
    tree = ast.parse(source)
    forward = next(f for c in tree.body if isinstance(c, ast.ClassDef) for f in c.body
                   if isinstance(f, ast.FunctionDef) and f.name == "forward")
    assigned = [t.id for s in forward.body if isinstance(s, ast.Assign) for t in s.targets]
    params = [a.arg for a in forward.args.args[1:]]
    assert assigned[0] == params[0]  # the image is copied into channels-last memory under its own name
    assert f"{params[0]}.contiguous(memory_format=torch.channels_last)" in source
    # Keras names layers conv2d, conv2d_1, ... by how many it made before in this process
    assert [re.sub(r"_\d+$", "", name) for name in assigned[1:4]] == ["conv2d", "batch_normalization", "re_lu"]
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "pathlib", "collections", "torch", "runtime", "safetensors", "math",
                        "operator"}


def test_runtime_holds_only_what_the_model_uses(emitted):
    root, results = emitted
    runtime = (results["cnn"][0] / "runtime.py").read_text()
    defined = {n.name for n in ast.parse(runtime).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert {"TFSamePad2d", "tf_same_padding"} <= defined
    assert not defined & {"KerasRNN", "MultiHeadAttention", "TFResize"}
    tree = ast.parse(runtime)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "torch" in imported and not imported - {"torch"} - sys.stdlib_module_names  # no numpy, no tf2torch
    assert "KerasRNN" in (results["masked_rnn"][0] / "runtime.py").read_text()


def test_generated_files_pass_ruff(emitted):
    root, results = emitted
    paths = [str(p) for name in results for p in sorted((results[name][0]).glob("*.py"))]
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                          *paths], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


# -- the writers, family by family (Python only: no export, fast) ---------------------------------------------------
def sequence_zoo(k):
    """Keras 3 masks as op nodes (a dead Embedding mask) into an LSTM; Bidirectional GRU, the generic
    MultiHeadAttention (EinsumDense), Attention with scale and concat, AdditiveAttention, LayerNormalization over
    two axes."""
    L = k.layers
    ids = k.Input((6,), dtype="int32")
    masked = L.LSTM(3)(L.Embedding(9, 4, mask_zero=True)(ids))
    x = features = k.Input((5, 4))
    x = L.Bidirectional(L.GRU(3, return_sequences=True))(x)
    x = L.MultiHeadAttention(2, 3, value_dim=5, output_shape=6)(x, x)
    x = L.Attention(use_scale=True, score_mode="concat")([x, x])
    x = L.AdditiveAttention()([x, x])
    x = L.GlobalAveragePooling1D()(L.LayerNormalization(axis=[1, 2])(x))
    return k.Model([ids, features], L.Concatenate()([masked, x]), name="sequence_zoo")


def image_zoo(k):
    """Preprocessing with constant tensors and resampling matrices, transposed and separable convs, PReLU."""
    L = k.layers
    x = inputs = k.Input((20, 24, 3))
    x = L.Rescaling([0.5, 1.0, 2.0], offset=[1.0, 0.0, 1.0])(x)
    x = L.Normalization(mean=[1.0, 2.0, 3.0], variance=[1.0, 4.0, 9.0])(x)
    x = L.Resizing(10, 9, interpolation="bicubic")(x)
    x = L.CenterCrop(8, 8)(x)
    x = L.Conv2DTranspose(2, 3, strides=2, padding="same")(x)
    x = L.SeparableConv2D(4, 3, strides=2, padding="same")(x)
    x = L.PReLU()(x)
    return k.Model(inputs, L.GlobalAveragePooling2D()(x), name="image_zoo")


def recurrent_zoo(k):
    L = k.layers
    x = inputs = k.Input((3, 6, 6, 2))
    x = L.ConvLSTM2D(2, 3, padding="same", return_sequences=True)(x)
    x = L.TimeDistributed(L.Conv2D(2, 3))(x)
    x = L.Reshape((3, 32))(x)
    x = L.SimpleRNN(4, activation="relu")(x)
    return k.Model(inputs, x, name="recurrent_zoo")


def applications_zoo(k):
    """What keras.applications models are made of beyond plain layers: op nodes (MobileNetV3's
    ``relu6(x + 3) / 6``), ConvNeXt's ``LayerScale`` after a LayerNormalization, InceptionResNetV2's
    ``CustomScaleLayer``, a grouped conv (RegNet) and a nested model (ConvNeXt's downsampling blocks)."""
    from keras.src.applications.convnext import LayerScale
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    L = k.layers
    x = inputs = k.Input((8, 8, 4))
    x = L.Conv2D(8, 3, padding="same", groups=2)(x)
    x = x * k.ops.relu6(x + 3.0) / 6.0
    inner_in = k.Input((8, 8, 8))
    block = k.Model(inner_in, L.Conv2D(8, 2, strides=2)(L.LayerNormalization(epsilon=1e-6)(inner_in)), name="down")
    x = block(x)
    y = LayerScale(0.5, 8)(L.LayerNormalization(epsilon=1e-6)(x))
    x = CustomScaleLayer(0.17)([x, y])
    return k.Model(inputs, L.GlobalAveragePooling2D()(x), name="applications_zoo")


@pytest.mark.parametrize("build", [sequence_zoo, image_zoo, recurrent_zoo, applications_zoo], ids=lambda b: b.__name__)
def test_python_source_rebuilds_every_family(build, tmp_path):
    model = build(keras_module("keras3"))
    path = tmp_path / "model.keras"
    model.save(str(path))
    module = tf2torch.convert(path)
    to_python(module, tmp_path / build.__name__)
    sys.path.insert(0, str(tmp_path))
    try:
        generated = importlib.import_module(f"{build.__name__}.model").load()
    finally:
        sys.path.remove(str(tmp_path))
    inputs = as_module_inputs(module, random_inputs(model))
    with torch.no_grad():
        want, got = flat(module(*inputs)), flat(generated(*inputs))
    for w, g in zip(want, got):
        assert max_rel_error(g.double().numpy(), w.double().numpy()) <= STANDALONE_TOL
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                          str(tmp_path / build.__name__)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


def tf_keras_default_name(k):
    """tf_keras names its first Functional model ``model``, the name ``load()`` binds; locally connected layers
    (both data formats) and augmentation layers (tf_keras's RandomCrop resizes at inference)."""
    L = k.layers
    x = inputs = k.Input((10, 9, 3))
    x = L.RandomFlip()(x)
    x = L.RandomCrop(8, 7)(x)
    x = L.LocallyConnected2D(4, 3, activation="relu", bias_initializer="random_normal")(x)
    x = L.Permute((3, 1, 2))(x)
    x = L.LocallyConnected2D(2, 2, data_format="channels_first", implementation=2)(x)
    return k.Model(inputs, L.Flatten()(x), name="model")


def named_like_a_helper(k):
    """A model named like the run-time helper it imports (``Conv2d``)."""
    x = k.Input((6, 6, 2))
    return k.Model(x, k.layers.Conv2D(3, 1)(x), name="Conv2d")


def generated_model(module, tmp_path: Path, package: str):
    """``module`` written as Python into ``tmp_path/package`` and loaded back with its ``load()``."""
    to_python(module, tmp_path / package)
    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module(f"{package}.model").load()
    finally:
        sys.path.remove(str(tmp_path))


@pytest.mark.parametrize("flavour, build", [("tf_keras", tf_keras_default_name), ("keras3", named_like_a_helper)],
                         ids=["model", "Conv2d"])
def test_python_source_whatever_the_model_is_called(flavour, build, tmp_path):
    model = build(keras_module(flavour))
    path = tmp_path / "m.h5"
    model.save(str(path))
    module = tf2torch.convert(path)
    package = f"named_{build.__name__}"
    generated = generated_model(module, tmp_path, package)
    assert type(generated).__name__ == {"model": "model_", "Conv2d": "Conv2d_"}[model.name]
    inputs = as_module_inputs(module, random_inputs(model))
    with torch.no_grad():
        assert max_rel_error(generated(*inputs).double().numpy(), module(*inputs).double().numpy()) <= STANDALONE_TOL


# -- refusals and atomic writes -----------------------------------------------------------------------------------
class Clipped(torch.nn.Module):
    """A module defined outside tf2torch/nn: generated code could not rebuild it."""

    def forward(self, x):
        return x.clamp(0, 1)


def test_refuses_a_module_it_cannot_write_by_layer_name(tmp_path):
    module = tf2torch.convert(FIXTURES / "small_cnn.h5")
    module.stem_relu = Clipped()
    with pytest.raises(EmitError, match=r"layer stem_relu \(Clipped\).*neither in torch.nn nor in tf2torch/nn"):
        to_python(module, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []  # no partial directory left behind


def test_refuses_state_it_cannot_rebuild(tmp_path):
    module = tf2torch.convert(FIXTURES / "small_cnn.h5")
    module.stem_relu.extra_flag = object()  # state the constructor cannot reproduce
    with pytest.raises(EmitError, match="stem_relu"):
        to_python(module, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_cli_emits_into_a_directory(tmp_path):
    out = tmp_path / "small"
    result = CliRunner().invoke(main, ["convert", str(FIXTURES / "small_cnn.h5"), str(out), "--emit", "python",
                                       "--emit", "pt2"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"model.py", "runtime.py", "model.safetensors", "__init__.py",
                                               "model.pt2"}
    bad = CliRunner().invoke(main, ["convert", str(FIXTURES / "small_cnn.h5"), str(tmp_path / "x"), "--emit", "tflite"])
    assert bad.exit_code == 2


# -- the run-time room stands alone --------------------------------------------------------------------------------
def test_nn_imports_only_torch_and_the_standard_library():
    for path in sorted((ROOT / "tf2torch" / "nn").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.level == 1, f"{path.name} imports from outside tf2torch/nn"
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ("torch", "numpy"), f"{path.name} imports {name}"


# -- frozen layers ------------------------------------------------------------------------------------------------
def frozen_zoo(k):
    """A Conv2D and a BatchNormalization saved with ``trainable=False``, an LSTM (torch's second bias: a frozen
    placeholder), a BatchNormalization without ``center`` (a frozen zero bias) and trainable Dense layers."""
    L = k.layers
    x = inputs = k.Input((8, 8, 3))
    x = L.Conv2D(4, 3, trainable=False)(x)
    x = L.BatchNormalization(trainable=False)(x)
    x = L.Reshape((6, 24))(x)
    x = L.LSTM(5, return_sequences=True)(x)
    x = L.BatchNormalization(center=False)(x)
    x = L.GlobalAveragePooling1D()(x)
    return k.Model(inputs, L.Dense(2)(x), name="frozen_zoo")


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_generated_code_freezes_what_the_converted_module_freezes(flavour, tmp_path):
    model = frozen_zoo(keras_module(flavour))
    path = tmp_path / ("model.keras" if flavour == "keras3" else "model.h5")
    model.save(str(path))
    module = tf2torch.convert(path)
    package = f"frozen_zoo_{flavour}"
    generated = generated_model(module, tmp_path, package)
    want = {name: p.requires_grad for name, p in module.named_parameters()}
    got = {name: p.requires_grad for name, p in generated.named_parameters()}
    assert got == want
    frozen = {name.split(".")[0] for name, grad in want.items() if not grad}
    assert len(frozen) == 4 and not all(want.values()) and any(want.values())  # conv, bn, lstm bias, norm bias
    source = (tmp_path / package / "model.py").read_text()
    assert source.count("requires_grad_(False)  # Keras trainable=False") == 2
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
                          str(tmp_path / package)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


# -- regularizers ---------------------------------------------------------------------------------------------------
def regularized(k):
    """Kernel, bias and activity regularizers, as a 2017 Keras 2.0.5 file (fer) carries them on every conv."""
    L, r = k.layers, k.regularizers
    x = inputs = k.Input((8, 8, 1))
    x = L.Conv2D(4, 3, kernel_regularizer=r.l2(0.01), bias_regularizer=r.l1(0.001), activation="relu")(x)
    x = L.Flatten()(x)
    return k.Model(inputs, L.Dense(3, activity_regularizer=r.l1(0.01))(x), name="regularized")


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_python_source_of_a_regularized_model(flavour, tmp_path):
    """Before: ``cannot write tf2torch.nn.conv.Conv2d as Python source (... tf2torch_regularizers: present on one
    side only)``. Regularizers add training losses (``tf2torch.regularization_loss`` on the converted module): the
    generated source computes the same outputs and says in its docstring which layers' penalties it leaves out."""
    model = regularized(keras_module(flavour))
    path = tmp_path / "model.h5"
    model.save(str(path))
    module = tf2torch.convert(path)
    generated = generated_model(module, tmp_path, f"regularized_{flavour}")
    inputs = as_module_inputs(module, random_inputs(model))
    with torch.no_grad():
        assert max_rel_error(generated(*inputs).double().numpy(), module(*inputs).double().numpy()) <= STANDALONE_TOL
    source = (tmp_path / f"regularized_{flavour}" / "model.py").read_text()
    layers = [m.tf2torch_regularizers.layer for m in module.modules() if hasattr(m, "tf2torch_regularizers")]
    assert len(layers) == 2 and all(name in source.split('"""')[1] for name in layers)


# -- open dimensions torch.export cannot keep -------------------------------------------------------------------------
def open_length_lstm(k):
    """An LSTM over an open sequence length: its time loop runs once per step, so torch.export fixes the length."""
    x = inputs = k.Input((None,), dtype="int32", name="tokens")
    x = k.layers.Embedding(20, 8)(x)
    x = k.layers.LSTM(6, name="encoder")(x)
    return k.Model(inputs, k.layers.Dense(3)(x), name="open_length_lstm")


def test_pt2_names_the_layer_that_fixes_an_open_dimension(tmp_path):
    """Before: torch's ``Constraints violated (L['tokens'].size()[1])``, naming neither the layer nor the way out.
    Now one ``error:`` line naming the LSTM and ``--input-shape``, nothing written; with the length given, the
    program exports and runs with a dynamic batch."""
    model = open_length_lstm(keras_module("keras3"))
    path = tmp_path / "lstm.keras"
    model.save(str(path))
    out = tmp_path / "out"
    refused = CliRunner().invoke(main, ["convert", str(path), str(out), "--emit", "pt2"])
    assert refused.exit_code == 2, refused.output
    lines = [line for line in refused.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and re.search(r"layer encoder \(LSTM\).*dimension 1 of input tokens.*--input-shape SIZE",
                                         lines[0]), refused.output
    assert not out.exists()
    fixed = CliRunner().invoke(main, ["convert", str(path), str(out), "--emit", "pt2", "--input-shape", "9"])
    assert fixed.exit_code == 0, fixed.output
    ids = np.random.default_rng(0).integers(0, 20, (BATCH, 9)).astype("int32")
    program = torch.export.load(str(out / "model.pt2")).module()
    with torch.no_grad():
        got = program(torch.from_numpy(ids).long()).numpy()
    assert_matches([got], keras_outputs(model, [ids]), RTOL, "pt2 with the length fixed vs Keras")
