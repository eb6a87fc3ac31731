"""``tf2torch verify``: every layer call compared with Keras, the first divergence named, round-off told from
a semantic mismatch, reports that parse (JSON), read (Markdown) and render (HTML in headless Chromium)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from harness import formats_for, keras_module

import tf2torch
from benchmarks.machine import kernel_isas
from tf2torch.cli import main
from tf2torch.converters import registry
from tf2torch.errors import Tf2TorchError
from tf2torch.verify import keras_side
from tf2torch.verify.compare import cause_of, compare_one, relevant_config
from tf2torch.verify.inputs import random_inputs

ROOT = Path(__file__).resolve().parents[1]


def conv_dense(k):
    x = k.Input((9, 8, 3), name="image")
    h = k.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(x)
    h = k.layers.Activation("tanh", name="act")(h)
    h = k.layers.Flatten(name="flat")(h)
    return k.Model(x, k.layers.Dense(5, name="logits")(h), name="conv_dense")


def shared_and_nested(k):
    inner_in = k.Input((6,))
    inner = k.Model(inner_in, k.layers.Dense(4, activation="relu", name="idense")(inner_in), name="inner")
    head = k.Sequential([k.Input((4,)), k.layers.Dense(3, name="sdense")], name="head")
    x = k.Input((6,), name="x")
    shared = k.layers.Dense(6, activation="tanh", name="shared")
    return k.Model(x, head(inner(shared(shared(x)))), name="shared_and_nested")


def two_inputs_two_outputs(k):
    a, b = k.Input((7,), name="a"), k.Input((6, 6, 2), name="b")
    out_a = k.layers.Dense(3, name="dense_a")(a)
    out_b = k.layers.Flatten(name="flat_b")(k.layers.Conv2D(2, 3, name="conv_b")(b))
    return k.Model([a, b], [out_a, out_b], name="two_io")


CASES = {"conv_dense": conv_dense, "shared_and_nested": shared_and_nested,
         "two_inputs_two_outputs": two_inputs_two_outputs}


def saved(model, tmp_path: Path, fmt: str) -> Path:
    path = tmp_path / f"{model.name}.{fmt}"
    model.save(str(path))
    return path


def graph_calls(path: Path) -> list[str]:
    graph = tf2torch.convert(path).tf2torch_meta["graph"]
    return [n["id"] for n in graph["nodes"] if graph["layers"][n["layer"]]["class_name"] != "InputLayer"]


@pytest.mark.parametrize("case", CASES)
def test_verify_passes_and_reports_every_call(case, flavour, tmp_path):
    k = keras_module(flavour)
    for fmt in formats_for(flavour):
        path = saved(CASES[case](k), tmp_path, fmt)
        report = tf2torch.verify(path)
        assert report.ok, report.to_text()
        assert [r.node for r in report.layers] == graph_calls(path)
        assert all(r.status == "pass" and r.metrics.max_rel_error <= 1e-5 for r in report.layers)
        assert report.first_divergence is None and report.max_rel_error <= 1e-5
        expected_keras = "tf_keras" if flavour == "tf_keras" else "keras"
        assert report.model["loaded_with"].split()[0] == expected_keras


def test_keras_side_runs_in_inference_mode(flavour, tmp_path):
    """Dropout and BatchNormalization would differ at once if Keras ran them in training mode."""
    k = keras_module(flavour)
    model = batchnorm_model(k)
    x = k.Input((8, 8, 3), name="image")
    h = k.layers.Dropout(0.5, name="drop")(model(x))
    path = saved(k.Model(x, k.layers.Dense(2, name="out")(h), name="inference"), tmp_path, formats_for(flavour)[0])
    report = tf2torch.verify(path)
    assert report.ok, report.to_text()
    assert {"bn_model/bn_a", "drop"} <= {r.node for r in report.layers}


def test_keras2_file_runs_with_tf_keras(tmp_path):
    """hard_sigmoid is clip(0.2x + 0.5) in Keras 2 and relu6(x + 3) / 6 in Keras 3: Keras 3 would load this
    file with the other meaning, so the reference must come from tf_keras."""
    import keras
    import tf_keras

    x = tf_keras.Input((5,), name="x")
    model = tf_keras.Model(x, tf_keras.layers.Dense(4, activation="hard_sigmoid", name="gate")(x))
    path = saved(model, tmp_path, "h5")
    report = tf2torch.verify(path, batch_size=64)
    assert report.ok and report.model["loaded_with"].startswith("tf_keras")
    probe = np.linspace(-4, 4, 64 * 5, dtype="float32").reshape(64, 5)
    keras3_reading = keras.models.load_model(str(path), compile=False)
    assert np.abs(np.asarray(keras3_reading(probe)) - model(probe).numpy()).max() > 1e-2


def test_keras_model_in_memory(flavour, tmp_path):
    k = keras_module(flavour)
    model = shared_and_nested(k)
    path = saved(model, tmp_path, formats_for(flavour)[-1])
    report = tf2torch.verify(model, tf2torch.convert(path), dtype="both")
    assert report.ok and [r.node for r in report.layers] == graph_calls(path)
    with pytest.raises(Tf2TorchError, match="needs its converted module"):
        tf2torch.verify(model)


def test_shared_layer_once_per_call_nested_layers_flattened(tmp_path):
    path = saved(shared_and_nested(keras_module("keras3")), tmp_path, "keras")
    rows = {r.node: r for r in tf2torch.verify(path).layers}
    assert {"shared", "shared:1", "inner/idense", "head/sdense"} <= set(rows)
    assert (rows["shared"].call, rows["shared:1"].call) == (0, 1)
    assert rows["inner/idense"].output_shapes == [[2, 4]]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ResNet50", "MobileNetV2", "EfficientNetB0", "InceptionV3", "VGG16", "DenseNet121"])
def test_verify_keras_applications(name, tmp_path):
    from test_applications import build

    path = tmp_path / f"{name}.keras"
    build("keras3", name).save(str(path))
    report = tf2torch.verify(path)
    assert report.ok, report.summary_line()
    assert [r.node for r in report.layers] == graph_calls(path)
    assert all(r.status == "pass" for r in report.layers)


# -- a converter broken on purpose: verify names exactly the layer where it shows ---------------------------------
def set_eps(module: torch.nn.Module, eps: float) -> None:
    for m in module.modules():
        if hasattr(m, "eps"):
            m.eps = eps


def flip_kernels(module: torch.nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.weight.data = m.weight.data.flip(-1, -2)


def batchnorm_model(k):
    x = k.Input((8, 8, 3), name="image")
    h = k.layers.Conv2D(6, 3, padding="same", name="stem")(x)
    h = k.layers.BatchNormalization(name="bn_a")(h)
    h = k.layers.Activation("relu", name="relu_a")(h)
    h = k.layers.Conv2D(6, 3, padding="same", name="conv_b")(h)
    h = k.layers.BatchNormalization(name="bn_b")(h)
    model = k.Model(x, k.layers.Dense(4, name="head")(k.layers.Flatten()(h)), name="bn_model")
    rng = np.random.default_rng(0)
    for name in ("bn_a", "bn_b"):  # Keras starts at mean 0, variance 1: that would hide an epsilon
        layer = model.get_layer(name)
        layer.set_weights([rng.uniform(0.7, 1.3, 6), rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 6),
                           rng.uniform(0.05, 0.2, 6)])
    return model


def kernel_model(k):
    x = k.Input((8, 8, 3), name="image")
    h = k.layers.Conv2D(5, 1, name="pointwise")(x)  # a flipped 1x1 kernel is the same kernel
    h = k.layers.Activation("tanh", name="squash")(h)
    h = k.layers.Conv2D(4, 3, name="spatial")(h)
    return k.Model(x, k.layers.Dense(3, name="head")(k.layers.Flatten()(h)), name="kernel_model")


BREAKS = {
    # class whose converter is broken, how, the model, the layer that must be named
    "batchnorm_epsilon": ("BatchNormalization", lambda m: set_eps(m, 1e-5), batchnorm_model, "bn_a"),
    "conv_kernel_flipped": ("Conv2D", flip_kernels, kernel_model, "spatial"),
}


@pytest.fixture
def broken_converter(monkeypatch):
    """Wrap the registered converter of a class so its module is broken; monkeypatch restores it."""

    def breaks(class_name: str, damage) -> None:
        original = registry.CONVERTERS[class_name]

        def broken(spec):
            converted = original(spec)
            damage(converted.module)
            return converted

        monkeypatch.setitem(registry.CONVERTERS, class_name, broken)

    return breaks


@pytest.mark.parametrize("case", BREAKS)
def test_broken_converter_is_named_as_first_divergence(case, broken_converter, tmp_path):
    class_name, damage, build, expected = BREAKS[case]
    path = saved(build(keras_module("keras3")), tmp_path, "keras")
    broken_converter(class_name, damage)
    report = tf2torch.verify(path, dtype="both")
    assert not report.ok
    assert report.first_divergence == expected
    failing = [r.layer for r in report.layers if not r.ok]
    assert failing[0] == expected
    assert all(r.ok for r in report.layers[:[r.layer for r in report.layers].index(expected)])
    assert report.divergence["class_name"] == class_name and report.divergence["cause"] == "semantic"
    if class_name == "BatchNormalization":
        assert report.divergence["config"]["epsilon"] == pytest.approx(1e-3)
    result = CliRunner().invoke(main, ["verify", str(path), "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 1, result.output
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["ok"] is False and written["first_divergence"] == expected


# -- round-off or semantic ----------------------------------------------------------------------------------------
OFFSET = 1e4  # float32's spacing at 1e4 is 2^-10: (x + 1e4) - 1e4 keeps x to ~5e-4; float64's is 2^-39


@keras.saving.register_keras_serializable(package="tf2torch_tests")
class PlusMinus(keras.layers.Layer):
    """y = (x + offset) - offset: x in exact arithmetic, x rounded to float32's spacing at ``offset`` in float32."""

    def __init__(self, offset=OFFSET, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def call(self, x):
        return (x + self.offset) - self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


def convert_plus_minus(spec: tf2torch.LayerSpec) -> tf2torch.Converted:
    """The exact-arithmetic meaning of ``PlusMinus``: the identity, with no cancellation to round."""
    if not isinstance(spec.config.get("offset"), float):
        spec.fail("offset must be a float")
    return tf2torch.Converted(torch.nn.Identity())


@contextlib.contextmanager
def plus_minus_registered() -> Iterator[None]:
    tf2torch.register("tf2torch_tests>PlusMinus")(convert_plus_minus)
    try:
        yield
    finally:
        registry.CONVERTERS.pop("tf2torch_tests>PlusMinus")
        registry.CONFIG_DEFAULTS.pop("tf2torch_tests>PlusMinus", None)


def near_twins(k):
    """A float32-only mismatch by construction, on every CPU: the Keras side cancels ``x + 1e4`` against ``1e4``
    (float32 keeps ~3 digits of x, float64 ~12), the converted side computes x. Before: two 512-wide
    convolutions whose float32 sums differed only because TF (Eigen) and torch (oneDNN) summed in different
    orders; on an AVX-512 CPU they summed alike and the mismatch vanished (issue 26)."""
    x = k.Input((64,), name="x")
    h = k.layers.Dense(32, name="features")(x)
    return k.Model(x, PlusMinus(name="difference")(h), name="cancellation")


def verify_near_twins(path: Path, **kwargs):
    with plus_minus_registered():
        return tf2torch.verify(path, **kwargs)


@pytest.mark.numerics
def test_float32_only_mismatch_is_round_off(tmp_path):
    path = saved(near_twins(keras_module("keras3")), tmp_path, "keras")
    report = verify_near_twins(path, dtype="both")
    assert not report.ok and report.first_divergence == "difference"
    row = report.layers[1]
    assert row.cause == "round-off" and report.divergence["cause"] == "round-off"
    assert row.float64.max_rel_error < 1e-10 < 1e-5 < row.metrics.max_rel_error
    assert "round-off" in report.divergence["message"]
    float64_only = verify_near_twins(path, dtype="float64")
    assert float64_only.ok


@pytest.mark.numerics
def test_kernels_run_the_instruction_set_the_environment_names():
    """``make test`` reruns the ``numerics`` tests with torch's kernels held to AVX2 (docs/development.md): this
    proves that rerun computes as an AVX2 CPU does; a misspelt variable would run the CPU's own and prove nothing."""
    isas = kernel_isas()
    assert isas["aten"] and (isas["onednn"] or not torch.backends.mkldnn.is_available()), isas
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2":
        assert isas["onednn"].startswith("Intel AVX2") and "512" not in isas["onednn"], isas
    if os.environ.get("ATEN_CPU_CAPABILITY", "").lower() == "avx2":
        assert isas["aten"] == "AVX2", isas


def test_cause_thresholds():
    from tf2torch.verify.compare import Metrics

    assert cause_of(Metrics(max_rel_error=1e-4), Metrics(max_rel_error=1e-13)) == "round-off"
    assert cause_of(Metrics(max_rel_error=1e-4), Metrics(max_rel_error=5e-5)) == "semantic"
    assert cause_of(Metrics(max_rel_error=1e-4), None) is None


# -- float64 ------------------------------------------------------------------------------------------------------
@pytest.mark.numerics
@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_float64_really_computes_in_float64(fmt, flavour, tmp_path):
    if fmt not in formats_for(flavour):
        pytest.skip("tf_keras models are saved as legacy .h5 in this suite (its .keras zips: test_readers.py)")
    path = saved(conv_dense(keras_module(flavour)), tmp_path, fmt)
    major = 3 if flavour == "keras3" else 2
    loaded = keras_side.load_keras_model(str(path), major, "float64")
    outputs = keras_side.run_layers(loaded, {"image": np.ones((1, 9, 8, 3))})
    assert {str(o.dtype) for outs in outputs.values() for o in outs} == {"float64"}
    module = tf2torch.convert(path)
    report = tf2torch.verify(path, module, dtype="both")
    assert report.ok and not report.notes
    assert max(r.float64.max_rel_error for r in report.layers) < 1e-13
    assert all(p.dtype == torch.float32 for p in module.parameters()), "the caller's module was changed"


def test_module_in_keras_layout_and_saved_module(tmp_path):
    path = saved(conv_dense(keras_module("keras3")), tmp_path, "keras")
    assert tf2torch.verify(path, tf2torch.convert(path, layout="keras")).ok
    tf2torch.save(tf2torch.convert(path), tmp_path / "module.pt")
    assert tf2torch.verify(path, tmp_path / "module.pt").ok


# -- inputs -------------------------------------------------------------------------------------------------------
def test_user_inputs_npz_npy_and_bad_shapes(tmp_path):
    path = saved(two_inputs_two_outputs(keras_module("keras3")), tmp_path, "keras")
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((3, 7)).astype("float32"), rng.standard_normal((3, 6, 6, 2)).astype("float32")
    np.savez(tmp_path / "named.npz", b=b, a=a)
    np.savez(tmp_path / "ordered.npz", a, b)
    for name in ("named.npz", "ordered.npz"):
        report = tf2torch.verify(path, inputs=tmp_path / name)
        assert report.ok and [i["shape"] for i in report.inputs] == [[3, 7], [3, 6, 6, 2]]
    one = saved(conv_dense(keras_module("keras3")), tmp_path, "keras")
    np.save(tmp_path / "one.npy", rng.standard_normal((1, 9, 8, 3)).astype("float32"))
    assert tf2torch.verify(one, inputs=tmp_path / "one.npy").inputs[0]["shape"] == [1, 9, 8, 3]
    np.save(tmp_path / "bad.npy", np.zeros((1, 8, 8, 3), "float32"))
    with pytest.raises(Tf2TorchError, match="axis 1 has size 8, the model expects 9"):
        tf2torch.verify(one, inputs=tmp_path / "bad.npy")
    result = CliRunner().invoke(main, ["verify", str(one), "--input-data", str(tmp_path / "bad.npy")])
    assert result.exit_code == 2 and result.output.count("\n") == 1


def test_open_dimensions_come_from_input_shape(tmp_path):
    k = keras_module("keras3")
    x = k.Input((None, 3), name="sequence")
    path = saved(k.Model(x, k.layers.Conv1D(4, 3, name="conv")(x), name="open_length"), tmp_path, "keras")
    report = tf2torch.verify(path, input_shapes=[[11, 3]])
    assert report.ok and report.layers[0].output_shapes == [[2, 9, 4]]
    result = CliRunner().invoke(main, ["verify", str(path), "--input-shape", "12,3", "-q"])
    assert result.exit_code == 0, result.output


def test_embedding_inputs_are_ids_within_the_vocabulary(tmp_path):
    k = keras_module("keras3")
    x = k.Input((12,), name="tokens", dtype="int32")
    model = k.Model(x, k.layers.Embedding(7, 4, name="embed")(x), name="embedder")
    path = saved(model, tmp_path, "keras")
    graph = tf2torch.convert(path).tf2torch_meta["graph"]
    ids = random_inputs(graph, None, batch_size=50)[0].array
    assert ids.dtype == np.int32 and ids.min() == 0 and ids.max() == 6
    report = tf2torch.verify(path)
    assert report.ok and report.inputs[0]["max"] <= 6


# -- reports ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def failing_report(tmp_path_factory):
    path = saved(near_twins(keras_module("keras3")), tmp_path_factory.mktemp("report"), "keras")
    return verify_near_twins(path, dtype="both")


def test_json_report_follows_the_documented_schema(failing_report):
    data = json.loads(failing_report.to_json())
    assert data["schema"] == "tf2torch-verify/1"
    assert data["ok"] is False and data["first_divergence"] == "difference"
    assert isinstance(data["max_rel_error"], float) and len(data["layers"]) == 2
    doc = (ROOT / "docs" / "report-schema.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_0-9]+)`", doc, flags=re.M))
    assert set(data) <= documented, f"undocumented keys: {set(data) - documented}"
    assert set(data["layers"][0]) <= documented, f"undocumented row keys: {set(data['layers'][0]) - documented}"
    assert set(data["divergence"]) <= documented


def test_markdown_and_notebook_views(failing_report):
    md = failing_report.to_markdown()
    assert md.startswith("### ❌") and "| # | layer | class |" in md and "`difference`" in md
    fragment = failing_report._repr_html_()
    assert "<svg" in fragment and "<table>" in fragment and "<html" not in fragment
    assert "MISMATCH" in failing_report.to_text()


def test_progress_reports_every_step(tmp_path):
    path = saved(conv_dense(keras_module("keras3")), tmp_path, "keras")
    seen = []
    tf2torch.verify(path, progress=lambda done, total, what: seen.append((done, total)))
    assert [d for d, _ in seen] == list(range(1, len(seen) + 1)) and seen[-1][0] == seen[-1][1] == 8


def test_cli_usage_errors_exit_2(tmp_path):
    path = saved(conv_dense(keras_module("keras3")), tmp_path, "keras")
    runner = CliRunner()
    for args in (["verify", str(tmp_path / "missing.h5")], ["verify", str(path), "--report", "r.pdf"],
                 ["verify", str(path), "--dtype", "float16"], ["convert", str(path), "o.pt", "--report", "r.md"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, (args, result.output)
    result = runner.invoke(main, ["convert", str(path), str(tmp_path / "o.pt"), "--verify",
                                  "--report", str(tmp_path / "r.md")])
    assert result.exit_code == 0 and (tmp_path / "r.md").read_text().startswith("### ✅")
    result = runner.invoke(main, ["verify", str(path), str(tmp_path / "o.pt"), "--report", str(tmp_path / "r.html")])
    assert result.exit_code == 0 and "OK: 4 layer calls match" in result.output


def test_relevant_config_and_metrics_edges():
    bn = {"name": "bn", "axis": -1, "epsilon": 0.001, "momentum": 0.99, "gamma_initializer": {}, "center": True}
    assert relevant_config("BatchNormalization", bn) == {"axis": -1, "epsilon": 0.001, "center": True}
    assert "kernel_size" in relevant_config("DepthwiseConv2D", {"kernel_size": [3, 3], "name": "d"})
    ref = torch.tensor([[0.0, float("nan"), 2.0]])
    same = compare_one(ref, ref.clone())
    assert same.max_abs_error == 0 and same.scale == 2.0
    off = compare_one(ref, torch.tensor([[0.0, 1.0, 2.5]]))
    assert off.max_abs_error == float("inf") and off.worst_index == [0, 1]
    zeros = compare_one(torch.zeros(3), torch.zeros(3))
    assert zeros.max_rel_error == 0 and zeros.cosine_similarity == 1.0


# -- the HTML page, as a reviewer sees it -------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium)")
def test_html_report_renders_table_and_plot(failing_report, tmp_path):
    page = tmp_path / "report.html"
    failing_report.to_html(page)
    html = page.read_text()
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    png = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}", "--window-size=1280,1600",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    pixels = decode_png(png.read_bytes())
    assert pixels.shape[:2] == (1600, 1280)
    colours = np.unique(pixels[..., :3].reshape(-1, 3), axis=0)
    assert len(colours) > 500, "the page looks blank"
    plot_blue = np.all(np.abs(pixels[..., :3].astype(int) - (37, 99, 235)) < 40, axis=-1)
    failure_red = np.all(np.abs(pixels[..., :3].astype(int) - (220, 38, 38)) < 40, axis=-1)
    assert plot_blue.sum() > 200 and failure_red.sum() > 200  # the float32 series and the failing marks
    first_row = np.all(pixels[..., :3] == (254, 226, 226), axis=-1)  # the first divergence's table row
    assert first_row.sum() > 2000


def decode_png(data: bytes) -> np.ndarray:
    import tensorflow as tf

    return tf.io.decode_png(data, channels=3).numpy()


# -- issue #20: --optimize's folds, convert's stand-in sizes, one meaning per flag, -q, the HTML's first row ------
def folds_model(k):
    """Every fold ``--optimize`` makes: Rescaling into the conv after it, BN and ReLU into the conv before them, a
    Dropout dropped, a ZeroPadding2D into the max pooling after it, and a BN that is the model's output."""
    x = k.Input((12, 12, 3), name="image")
    h = k.layers.Rescaling(0.5, name="scale")(x)
    h = k.layers.ReLU(name="relu")(k.layers.BatchNormalization(name="bn")(k.layers.Conv2D(4, 3, name="conv")(h)))
    h = k.layers.ZeroPadding2D(1, name="pad")(k.layers.Dropout(0.3, name="drop")(h))
    h = k.layers.Conv2D(5, 3, name="conv2")(k.layers.MaxPooling2D(3, 2, name="pool")(h))
    model = k.Model(x, k.layers.BatchNormalization(name="bn2")(h), name="folds")
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, k.layers.BatchNormalization):  # moving statistics away from 0 and 1: a fold that
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()])
    return model                                             # forgot them would show


FOLDED = {"scale": "conv", "conv": None, "bn": "conv", "drop": None, "pad": "pool", "conv2": None}
COMPARED = {"relu", "pool", "bn2"}


def test_optimized_module_verifies_with_folded_calls_mapped(flavour, tmp_path):
    path = saved(folds_model(keras_module(flavour)), tmp_path, formats_for(flavour)[0])
    module = tf2torch.convert(path, optimize=True)
    report = tf2torch.verify(path, module)
    status = {r.node: r.status for r in report.layers}
    assert report.ok, report.to_text()
    assert status == {**{n: "folded" for n in FOLDED}, **{n: "pass" for n in COMPARED}}
    notes = {r.node: r.note for r in report.layers}
    for node, into in FOLDED.items():
        assert into is None or f"folded into {into} " in notes[node], notes[node]
    assert "compared there" in notes["conv"] and "identity" in notes["drop"]
    assert notes["relu"] == "computed by conv's module, with bn, scale, relu folded in by --optimize"
    assert "6 more folded by --optimize" in report.summary_line()
    assert {r.node: r.output_shapes for r in report.layers}["bn"] == [[2, 10, 10, 4]]  # Keras's, for every row
    result = CliRunner().invoke(main, ["convert", str(path), str(tmp_path / "o.pt"), "--optimize", "--verify"])
    assert result.exit_code == 0 and "OK: 3 layer calls match" in result.output, result.output


@pytest.mark.parametrize("absorber, compared_as", [("conv", "relu"), ("conv2", "bn2")])
def test_a_wrong_fold_is_caught_where_it_is_compared(absorber, compared_as, tmp_path):
    path = saved(folds_model(keras_module("keras3")), tmp_path, "keras")
    module = tf2torch.convert(path, optimize=True)
    with torch.no_grad():
        module.get_submodule(absorber).bias.add_(0.5)  # the fold's shift gone wrong
    report = tf2torch.verify(path, module)
    assert not report.ok and report.first_divergence == compared_as
    assert f"computed by {absorber}'s module" in report.divergence["message"]
    assert {r.node: r.status for r in report.layers}[compared_as] == "fail"


def test_open_dimensions_take_converts_stand_in_size(tmp_path):
    """A crop of 1000 steps refuses the stand-ins 64 and 67 (and 64, 128): convert builds at 1024 and 2048, and
    verify runs Keras at 1024 without being told (before: "give them with --input-shape")."""
    k = keras_module("keras3")
    x = k.Input((None, 3), name="sequence")
    short = saved(k.Model(x, k.layers.Conv1D(4, 3, name="conv")(x), name="open_length"), tmp_path, "keras")
    cropped = k.Model(x, k.layers.Conv1D(2, 3, name="conv")(k.layers.Cropping1D(500, name="crop")(x)), name="crop")
    long = saved(cropped, tmp_path, "keras")
    for path, size in ((short, 64), (long, 1024)):
        assert tf2torch.convert(path).tf2torch_stand_in_sizes[0] == size
        report = tf2torch.verify(path)
        assert report.ok and report.inputs[0]["shape"] == [2, size, 3], report.inputs
        assert f"stand-in size {size}" in report.inputs[0]["origin"]
        result = CliRunner().invoke(main, ["verify", str(path), "-q"])
        assert result.exit_code == 0 and result.output.startswith("OK:"), result.output
    fixed = tf2torch.verify(short, input_shapes=[[11, 3]])
    assert fixed.inputs[0]["shape"] == [2, 11, 3] and "stand-in" not in fixed.inputs[0]["origin"]


def test_one_meaning_per_flag_old_spellings_warn(tmp_path):
    """``--inputs``/``--outputs`` name TF tensors and ``--dtype`` is the model's dtype in every command; verify's
    arrays are ``--input-data`` and its precision ``--verify-dtype``; the old spellings work with one line."""
    path = saved(conv_dense(keras_module("keras3")), tmp_path, "keras")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((3, 9, 8, 3)).astype("float32"))
    runner = CliRunner()
    for args, deprecated in ((["--input-data", "x.npy", "--verify-dtype", "both"], None),
                             (["--inputs", "x.npy"], "--inputs FILE.npz is now --input-data"),
                             (["--input-data", "x.npy", "--dtype", "both"], "verify --dtype is now --verify-dtype")):
        args = [str(tmp_path / a) if a.endswith(".npy") else a for a in args]
        result = runner.invoke(main, ["verify", str(path), "--report", str(tmp_path / "r.json"), *args])
        data = json.loads((tmp_path / "r.json").read_text())
        assert result.exit_code == 0 and data["inputs"][0]["shape"] == [3, 9, 8, 3], result.output
        assert data["dtype"] == ("both" if "both" in args else "float32")
        assert ("deprecated:" in result.output) == (deprecated is not None)
        assert deprecated is None or deprecated in result.output
    helps = {cmd: runner.invoke(main, [cmd, "--help"]).output for cmd in ("convert", "verify", "inspect")}
    for flag, meaning in (("--inputs", "input tensor names"), ("--outputs", "output tensor names")):
        assert all(meaning in " ".join(h.split(flag, 1)[1].split()[:12]) for h in helps.values()), flag
    assert "--verify-dtype" in helps["convert"] and "--verify-dtype" in helps["verify"]
    assert "--dtype" not in helps["verify"] and "--input-data" in helps["verify"]


def chain_model(k, n: int = 12):
    x = k.Input((6,), name="x")
    h = x
    for i in range(n):
        h = k.layers.Dense(6, activation="tanh", name=f"d{i}")(h)
    return k.Model(x, h, name="chain")


@pytest.fixture(scope="module")
def chain_broken(tmp_path_factory):
    """A 12-layer chain whose 4th layer is off: the 9 calls from it on fail."""
    tmp = tmp_path_factory.mktemp("chain")
    path = saved(chain_model(keras_module("keras3")), tmp, "keras")
    module = tf2torch.convert(path)
    with torch.no_grad():
        module.get_submodule("d3")[0].bias.add_(0.1)
    tf2torch.save(module, tmp / "broken.pt")
    return path, tmp / "broken.pt", tf2torch.verify(path, module)


def test_quiet_prints_a_summary_not_every_failure(chain_broken):
    path, broken, report = chain_broken
    assert len(report.failed) == 9
    result = CliRunner().invoke(main, ["verify", str(path), str(broken), "-q"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and lines[0].startswith("MISMATCH: 9 of 12") and len(lines) == 7, result.output
    assert lines[1].startswith("  FAIL d3 (Dense)") and "4 more failing calls" in lines[-1]


def test_html_table_opens_at_the_first_failing_row(chain_broken):
    _, _, report = chain_broken
    for html in (report.to_html(), report._repr_html_()):
        earlier, table = html.split("</details>")
        assert "3 earlier layer calls, all within tolerance" in earlier and earlier.count("<tr class=") == 3
        rows = re.findall(r"<tr class=\"([a-z]*)\"( id=\"first-failure\")?><td class=\"num\">(\d+)</td>", table)
        assert rows[0] == ("first", ' id="first-failure"', "3") and len(rows) == 9
        assert '<a href="#first-failure">' in html
    ok = tf2torch.verify(chain_broken[0])
    assert "<details>" not in ok.to_html() and "first-failure" not in ok.to_html()
