"""Bad input: one clear line (what, where, what to do), exit code 2, no traceback, no file left behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
from click.testing import CliRunner
from harness import keras_module

from tf2torch.cli import main
from tf2torch.errors import Tf2TorchError


def small_model(k):
    inp = k.Input((8, 8, 3), name="image")
    x = k.layers.Conv2D(4, 3, name="conv")(inp)
    x = k.layers.Flatten(name="flatten")(x)
    return k.Model(inp, k.layers.Dense(2, name="head")(x))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A valid model in each format."""
    root = tmp_path_factory.mktemp("valid")
    model = small_model(keras_module("keras3"))
    paths = {"h5": root / "model.h5", "keras": root / "model.keras"}
    for path in paths.values():
        model.save(str(path))
    return paths


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_clean_failure(result, out_path: Path, *fragments: str) -> str:
    """Exit 2, one line on stderr naming the problem, no traceback, no output (or temp) file left."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    message = result.stderr.strip()
    assert message.startswith("error: "), message
    assert "\n" not in message and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not out_path.exists()
    assert not list(out_path.parent.glob(f".{out_path.name}.*")), "a temporary file was left behind"
    return message


def test_missing_file(tmp_path):
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(tmp_path / "nope.h5"), str(out)), out, "nope.h5", "no such file")


def test_file_of_another_kind(tmp_path):
    src = tmp_path / "notes.h5"
    src.write_text("just some text, not a model")
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(src), str(out)), out, "notes.h5", "not a Keras model file")


def test_empty_file(tmp_path):
    src = tmp_path / "empty.keras"
    src.write_bytes(b"")
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(src), str(out)), out, "empty")


@pytest.mark.parametrize("fmt", ["h5", "keras"])
@pytest.mark.parametrize("fraction", [0.2, 0.7, 0.97])
def test_truncated_file(saved, tmp_path, fmt, fraction):
    data = saved[fmt].read_bytes()
    src = tmp_path / f"truncated.{fmt}"
    src.write_bytes(data[: int(len(data) * fraction)])
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(src), str(out)), out, "truncated.", "truncated or damaged")


def test_corrupted_zip_member(saved, tmp_path):
    """Bytes of model.weights.h5 overwritten inside the archive: the CRC check catches it."""
    data = bytearray(saved["keras"].read_bytes())
    start = data.find(b"\x89HDF")
    data[start + 100 : start + 400] = bytes((b ^ 0x5A) for b in data[start + 100 : start + 400])
    src = tmp_path / "corrupt.keras"
    src.write_bytes(bytes(data))
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(src), str(out)), out, "corrupt.keras", "damaged")


def test_corrupted_hdf5_structure(saved, tmp_path):
    data = bytearray(saved["h5"].read_bytes())
    data[96:2096] = b"\xff" * 2000  # superblock's neighbours: object headers and the global heap
    src = tmp_path / "corrupt.h5"
    src.write_bytes(bytes(data))
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(src), str(out)), out, "corrupt.h5")


def test_config_that_does_not_parse(saved, tmp_path):
    src = tmp_path / "badconfig.h5"
    src.write_bytes(saved["h5"].read_bytes())
    with h5py.File(src, "r+") as f:
        f.attrs["model_config"] = '{"class_name": "Functional", "config": {"layers": [{"oops": 1'
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(src), str(out)), out, "badconfig.h5", "not valid JSON")


def test_config_with_wrong_structure(saved, tmp_path):
    src = tmp_path / "badgraph.h5"
    src.write_bytes(saved["h5"].read_bytes())
    with h5py.File(src, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["output_layers"] = [["no_such_layer", 0, 0]]
        f.attrs["model_config"] = json.dumps(config)
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(src), str(out)), out, "no_such_layer")


def test_weights_only_file(tmp_path):
    model = small_model(keras_module("keras3"))
    src = tmp_path / "only.weights.h5"
    model.save_weights(str(src))
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(src), str(out)), out, "model config", "model.save")


def test_unsupported_layers_reported_at_once(tmp_path):
    k = keras_module("keras3")

    @k.saving.register_keras_serializable(package="t2t_test")
    class Doubler(k.layers.Layer):
        def call(self, x):
            return x * 2

    @k.saving.register_keras_serializable(package="t2t_test")
    class Halver(k.layers.Layer):
        def call(self, x):
            return x / 2

    inp = k.Input((4,))
    model = k.Model(inp, Halver(name="halve_it")(k.layers.Dense(3)(Doubler(name="double_it")(inp))))
    src = tmp_path / "custom.keras"
    model.save(str(src))
    out = tmp_path / "out.pt"
    message = assert_clean_failure(run_cli("convert", str(src), str(out)), out, "2 layer(s)")
    # Keras 3 records registered_name; a converter is looked up (and registered) under it
    assert "double_it (t2t_test>Doubler)" in message and "halve_it (t2t_test>Halver)" in message
    assert "register" in message


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_lambda_bytecode_is_refused(tmp_path, flavour):
    k = keras_module(flavour)
    inp = k.Input((4,))
    model = k.Model(inp, k.layers.Lambda(lambda x: x * 3.0, name="times_three")(inp))
    src = tmp_path / ("lambda.keras" if flavour == "keras3" else "lambda.h5")
    model.save(str(src))
    out = tmp_path / "out.pt"
    message = assert_clean_failure(run_cli("convert", str(src), str(out)), out, "times_three (Lambda")
    assert "never executes" in message


def test_bad_input_shape_option(saved, tmp_path):
    out = tmp_path / "out.pt"
    result = run_cli("convert", str(saved["h5"]), str(out), "--input-shape", "8,eight,3")
    assert_clean_failure(result, out, "--input-shape")


def test_real_process_prints_one_line(tmp_path):
    """The installed entry point, not the test runner: stderr is one line and the exit code is 2."""
    out = tmp_path / "out.pt"
    proc = subprocess.run([sys.executable, "-m", "tf2torch", "convert", str(tmp_path / "missing.keras"), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()


def test_load_rejects_other_files(tmp_path, saved):
    import tf2torch

    with pytest.raises(tf2torch.ModelFileError, match="not a tf2torch .pt file"):
        tf2torch.load(saved["h5"])


# -- issue #20: mistakes that got the wrong explanation, and internal errors where the user did nothing wrong ----
@pytest.mark.parametrize("fmt", ["h5", "keras"])
@pytest.mark.parametrize("shape, wanted", [("3,8,8", "8,8,3"), ("8,3,8", "8,8,3")])
def test_channels_first_input_shape_names_keras_layout(saved, tmp_path, fmt, shape, wanted):
    """A PyTorch user's 3,8,8 for a model taking 8,8,3 was told "the config and the weights disagree"."""
    out = tmp_path / "out.pt"
    message = assert_clean_failure(run_cli("convert", str(saved[fmt]), str(out), "--input-shape", shape), out,
                                   "Keras's layout", f"--input-shape {wanted}")
    assert "disagree" not in message


def test_input_shape_takes_only_commas(saved, tmp_path):
    """``20x1`` was read as ``20,1`` without a word; the help names commas only."""
    out = tmp_path / "out.pt"
    assert_clean_failure(run_cli("convert", str(saved["h5"]), str(out), "--input-shape", "8x8x3"), out,
                         "commas", "8,8,3")


def test_existing_directory_as_output(saved, tmp_path):
    """An existing directory as OUTPUT without --emit was an IsADirectoryError, "a tf2torch bug" (exit 3)."""
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("convert", str(saved["h5"]), str(out))
    assert result.exit_code == 2 and result.stderr.startswith("error: "), result.output
    assert "--emit" in result.stderr and list(out.iterdir()) == []


def test_converted_pt_given_as_source(saved, tmp_path):
    """A tf2torch .pt given back as SOURCE was "zip file without config.json"; say what it is and how to load it."""
    converted = tmp_path / "model.pt"
    assert run_cli("convert", str(saved["h5"]), str(converted)).exit_code == 0
    for command in (["convert", str(converted), str(tmp_path / "again.pt")], ["inspect", str(converted)]):
        result = run_cli(*command)
        assert result.exit_code == 2, result.output
        assert "tf2torch.load" in result.stderr and "\n" not in result.stderr.strip()
    assert not (tmp_path / "again.pt").exists()


@pytest.mark.parametrize("suffix", [".onnx", ".pt2"])
def test_output_suffix_picks_the_format(saved, tmp_path, suffix):
    """``convert model.h5 out.onnx`` wrote a .pt zip named .onnx; the suffix now picks the emitter."""
    import numpy as np
    import torch

    import tf2torch

    out = tmp_path / f"out{suffix}"
    result = run_cli("convert", str(saved["h5"]), str(out))
    assert result.exit_code == 0, result.output
    x = np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype("float32")
    expected = tf2torch.convert(saved["h5"])(torch.from_numpy(x)).detach().numpy()
    if suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x})[0]
    else:
        got = torch.export.load(str(out)).module()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize("suffix", [".h5", ".keras", ".py"])
def test_output_of_another_format_is_refused(saved, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    assert_clean_failure(run_cli("convert", str(saved["h5"]), str(out)), out, f"does not write {suffix}")


def test_emit_does_not_overwrite_without_force(saved, tmp_path):
    """--emit into a directory holding an edited model.py overwrote it; any file it would write blocks."""
    out = tmp_path / "emitted"
    assert run_cli("convert", str(saved["h5"]), str(out), "--emit", "python").exit_code == 0
    model_py = out / "model.py"
    model_py.write_text(model_py.read_text() + "# edited by hand\n")
    result = run_cli("convert", str(saved["h5"]), str(out), "--emit", "python")
    assert result.exit_code == 2 and "model.py" in result.stderr and "--force" in result.stderr, result.output
    assert model_py.read_text().endswith("# edited by hand\n")
    assert run_cli("convert", str(saved["h5"]), str(out), "--emit", "pt2").exit_code == 0  # another file: fine
    assert run_cli("convert", str(saved["h5"]), str(out), "--emit", "python", "--force").exit_code == 0
    assert not model_py.read_text().endswith("# edited by hand\n")


SOURCE_FORMATS = (".h5", ".keras", "SavedModel", "checkpoint", ".pb")


def test_help_and_errors_name_every_source_format(tmp_path):
    """The top-level --help said ".h5, .keras" and the not-a-model error "expected .h5 or .keras"."""
    help_text = " ".join(run_cli("--help").output.split())
    src = tmp_path / "notes.txt"
    src.write_text("not a model")
    message = run_cli("inspect", str(src)).stderr
    for text in (help_text, message):
        for fmt in SOURCE_FORMATS:
            assert fmt in text, f"{fmt!r} not in {text!r}"


def test_unsupported_operations_grouped(tmp_path):
    """ConvNeXt as a SavedModel listed 36 unsupported entries in one 8 KB line; one entry per operation now, with
    a count and one (shortened) example path."""
    import tensorflow as tf

    class Repeated(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32)])
        def __call__(self, x):
            for i in range(12):
                with tf.name_scope(f"convnext_tiny_stage_{i // 3}_block_{i % 3}_with_a_long_name"):
                    x = tf.math.special.dawsn(x) * 0.5
            return tf.math.bessel_i0(x)

    src = tmp_path / "saved"
    tf.saved_model.save(Repeated(), str(src))
    out = tmp_path / "out.pt"
    message = assert_clean_failure(run_cli("convert", str(src), str(out)), out, "13 layer(s)",
                                   "12 x operation tf.raw>Dawsn (e.g. ", "(operation tf.raw>BesselI0)")
    assert len(message) < 400, message


@pytest.mark.parametrize("given, declared, refused", [
    ((3, 32, 32), (32, 32, 3), True), ((3, 64, 64), (None, None, 3), True), ((8, 3, 8), (8, 8, 3), True),
    ((3, 16, 16, 16), (16, 16, 16, 3), True), ((2, 50), (50, 2), True),
    ((64, 32, 3), (32, 64, 3), False), ((64, 64, 3), (None, None, 3), False), ((4, 4, 5), (8, 8, 3), False),
    ((3, 32, 32), (None, None, None), False), ((50, 2), (None, 2), False)])
def test_permuted_input_shape_table(given, declared, refused):
    """Which --input-shape values are told they are in PyTorch's layout: a changed channel count that a rotation
    or permutation of the model's shape explains; a spatial override that keeps the channels passes."""
    from tf2torch.assemble import check_layout_of_given_shape

    if refused:
        with pytest.raises(Tf2TorchError, match="Keras's layout"):
            check_layout_of_given_shape("x", given, declared)
    else:
        check_layout_of_given_shape("x", given, declared)
