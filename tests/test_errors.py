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
