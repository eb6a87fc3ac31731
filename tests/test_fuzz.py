"""A seeded mutation fuzzer over small model files (issue 8).

Every mutated file must give exit 0 or a clean exit 2 (one ``error:`` line, no traceback), leave no output,
temporary or unpacked file behind, never put the bytes of a file outside the input into the output, and never run
code stored in the model (a Lambda whose bytecode would write a marker file). Mutations: byte flips, duplicated
bytes, truncation, config (JSON) edits, weight edits (dtype, shape, type, links, external storage, virtual
datasets, huge chunked datasets), and zip tricks (bombs, bad or missing members, junk). A small ``.tflite`` file
(built here with ``tf.lite.TFLiteConverter``, once per run) is a seed too: byte flips, duplicated bytes, truncation and
FlatBuffer word edits (a random aligned 32-bit offset, length or index replaced by a junk value; issue #23).

``make test`` runs ``FUZZ_CASES`` (default 240) cases in-process through click's CliRunner, plus two real
subprocesses; ``make fuzz`` runs a longer seeded run (``FUZZ_CASES=3000 FUZZ_SEED=...``).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import marshal
import os
import random
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from tf2torch.cli import main
from tf2torch.readers import policy

ROOT = Path(__file__).parent.parent
SEEDS = [ROOT / "tests" / "data" / "nested_keras3.h5", ROOT / "fixtures" / "small_cnn.h5",
         ROOT / "fixtures" / "small_cnn.keras"]
SECRET = b"FUZZ-SECRET-7c1e2"
CASES = int(os.environ.get("FUZZ_CASES", "240"))
SEED = int(os.environ.get("FUZZ_SEED", "8"))


class World:
    """The temporary directory of one run: the secret file, its HDF5 twin, the marker path, the tiny .keras seed."""

    def __init__(self, root: Path):
        self.root = root
        self.secret = root / "secret.bin"
        self.secret.write_bytes(SECRET * 256)
        self.secret_h5 = root / "secret.h5"
        with h5py.File(self.secret_h5, "w") as f:
            f["data"] = np.frombuffer(SECRET[:16] * 64, dtype="f4")
        self.marker = root / "marker.txt"
        self.tiny_keras = root / "tiny.keras"
        write_tiny_keras(self.tiny_keras)
        self.tiny_tflite = root / "tiny.tflite"
        self.tiny_tflite.write_bytes(tiny_tflite())

    def lambda_config(self) -> dict:
        """A Keras 2 Lambda layer whose bytecode would create the marker file if it ever ran."""
        marker = str(self.marker)

        def touch(x):
            open(marker, "w").write("ran")  # noqa: SIM115
            return x

        code = base64.b64encode(marshal.dumps(touch.__code__)).decode()
        return {"class_name": "Lambda", "name": "touch",
                "config": {"name": "touch", "function": [code, None, [marker]], "function_type": "lambda",
                           "output_shape": None, "arguments": {}}}


@functools.cache
def tiny_tflite() -> bytes:
    """A conv (fused RELU), depthwise conv, max pool, reshape and dense head as ``.tflite`` (random weights)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf_keras as keras

    model = keras.Sequential([keras.Input((8, 8, 2)), keras.layers.Conv2D(3, 3, activation="relu"),
                              keras.layers.DepthwiseConv2D(3, padding="same"), keras.layers.MaxPooling2D(),
                              keras.layers.Flatten(), keras.layers.Dense(2, activation="softmax")])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def write_tiny_keras(path: Path) -> None:
    config = {"class_name": "Sequential", "config": {"name": "tiny", "layers": [
        {"class_name": "InputLayer", "config": {"batch_shape": [None, 6], "name": "x"}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 4, "activation": "relu", "use_bias": True}},
        {"class_name": "BatchNormalization", "config": {"name": "bn", "axis": -1, "epsilon": 0.001}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 2, "activation": "softmax"}}]}}
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    with h5py.File(buffer, "w") as f:
        f["layers/dense/vars/0"] = rng.normal(size=(6, 4)).astype("f4")
        f["layers/dense/vars/1"] = np.zeros(4, "f4")
        for i, value in enumerate([1.0, 0.0, 0.0, 1.0]):
            f[f"layers/batch_normalization/vars/{i}"] = np.full(4, value, "f4")
        f["layers/dense_1/vars/0"] = rng.normal(size=(4, 2)).astype("f4")
        f["layers/dense_1/vars/1"] = np.zeros(2, "f4")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", buffer.getvalue())


# -- mutations: (rng, world, source path, target path) -> None ----------------------------------------------
def flip_bytes(rng, world, src, dst):
    data = bytearray(src.read_bytes())
    for _ in range(rng.choice([1, 1, 2, 4, 16])):
        i = rng.randrange(len(data))
        data[i] ^= rng.randrange(1, 256)
    dst.write_bytes(bytes(data))


def duplicate_byte(rng, world, src, dst):
    data = src.read_bytes()
    i = rng.randrange(len(data))
    dst.write_bytes(data[:i] + data[i:i + 1] + data[i:])


def truncate(rng, world, src, dst):
    data = src.read_bytes()
    dst.write_bytes(data[: rng.randrange(len(data))])


JUNK_WORDS = [0, 1, 3, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, 0xFFFF, 0x10000, 8, 4]


def patch_word(rng, world, src, dst):
    """One aligned 32-bit word (a FlatBuffer offset, vector length, index or scalar) set to a junk value."""
    data = bytearray(src.read_bytes())
    for _ in range(rng.choice([1, 1, 2])):
        i = rng.randrange(len(data) // 4) * 4
        value = rng.choice(JUNK_WORDS + [int.from_bytes(data[i:i + 4], "little") + rng.choice([-8, -4, 4, 8])])
        data[i:i + 4] = (value % (1 << 32)).to_bytes(4, "little")
    dst.write_bytes(bytes(data))


JUNK_VALUES = [None, -1, 0, 2**40, 1.5, "x", "", [], {}, True, [None], [-3, "a"], {"class_name": "__tuple__"},
               {"class_name": "__keras_tensor__", "config": {"keras_history": ["nowhere", 0, 0]}}]


def mutate_json(rng, world, value):
    """One edit at a random place of a JSON tree: replace, delete, duplicate, or insert a Lambda."""
    places: list[tuple[object, object]] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            places.extend((item, k) for k in item)
            stack.extend(item.values())
        elif isinstance(item, list):
            places.extend((item, i) for i in range(len(item)))
            stack.extend(item)
    if not places:
        return rng.choice(JUNK_VALUES)
    container, key = rng.choice(places)
    action = rng.random()
    if action < 0.6:
        container[key] = rng.choice(JUNK_VALUES + [world.lambda_config()])
    elif action < 0.75:
        del container[key]
    elif action < 0.9 and isinstance(container, list):
        container.insert(key, json.loads(json.dumps(container[key])))
    else:
        container[key] = world.lambda_config() if isinstance(container[key], dict) else rng.choice(JUNK_VALUES)
    return value


def edit_config(rng, world, src, dst):
    if zipfile.is_zipfile(src):
        rewrite_zip(src, dst, {"config.json": lambda data: json.dumps(
            mutate_json(rng, world, json.loads(data))).encode()})
        return
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(mutate_json(rng, world, config))


def weight_edits(world) -> list[Callable]:
    def int_dtype(g, n, a):
        g.create_dataset(n, data=np.asarray(a).astype("int32"))

    def string(g, n, a):
        g.create_dataset(n, data=np.array([b"abc"] * 3))

    def reshape(g, n, a):
        g.create_dataset(n, data=np.zeros((3,) + np.shape(a), "f4"))

    def scalar(g, n, a):
        g.create_dataset(n, data=np.float32(1))

    def group(g, n, a):
        g.create_group(n)

    def soft(g, n, a):
        g[n] = h5py.SoftLink("/")

    def external_link(g, n, a):
        g[n] = h5py.ExternalLink(str(world.secret_h5), "/data")

    def external_storage(g, n, a):
        g.create_dataset(n, shape=(64,), dtype="f4", external=[(str(world.secret), 0, h5py.h5f.UNLIMITED)])

    def virtual(g, n, a):
        layout = h5py.VirtualLayout(shape=(256,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(world.secret_h5), "data", shape=(256,))
        g.create_virtual_dataset(n, layout)

    def huge_chunked(g, n, a):
        g.create_dataset(n, shape=(131072, 131072), chunks=(64, 64), dtype="f4")

    def compressed_zeros(g, n, a):
        g.create_dataset(n, data=np.zeros((256, 256), "f4"), compression="gzip")

    def empty(g, n, a):
        g.create_dataset(n, data=h5py.Empty("f4"))

    return [int_dtype, string, reshape, scalar, group, soft, external_link, external_storage, virtual,
            huge_chunked, compressed_zeros, empty]


def edit_weight_file(rng, world, path: Path) -> None:
    with h5py.File(path, "r+") as f:
        datasets: list[str] = []
        f.visititems(lambda name, obj: datasets.append(name) if isinstance(obj, h5py.Dataset) else None)
        if not datasets:
            return
        name = rng.choice(datasets)
        parent, leaf = name.rsplit("/", 1) if "/" in name else ("/", name)
        original = f[name][()]
        del f[name]
        rng.choice(weight_edits(world))(f[parent], leaf, original)


def edit_weight(rng, world, src, dst):
    if zipfile.is_zipfile(src):
        def edit(data: bytes) -> bytes:
            tmp = dst.with_suffix(".weights.h5")
            tmp.write_bytes(data)
            edit_weight_file(rng, world, tmp)
            out = tmp.read_bytes()
            tmp.unlink()
            return out
        rewrite_zip(src, dst, {"model.weights.h5": edit})
        return
    shutil.copy(src, dst)
    edit_weight_file(rng, world, dst)


def zip_trick(rng, world, src, dst):
    if not zipfile.is_zipfile(src):
        return edit_weight(rng, world, src, dst)
    trick = rng.choice(["bomb", "drop", "junk_metadata", "bad_method", "append", "extra", "stored"])
    if trick == "bomb":  # the floor is lowered for the fuzz run: 2 MiB of zeros is a bomb here
        rewrite_zip(src, dst, {"model.weights.h5": lambda d: d + b"\0" * (2 << 20)})
    elif trick == "drop":
        rewrite_zip(src, dst, {rng.choice(["config.json", "metadata.json", "model.weights.h5"]): None})
    elif trick == "junk_metadata":
        rewrite_zip(src, dst, {"metadata.json": lambda d: rng.choice([b"\xff\xfe", b"[]", b"{", b"null", b"7"])})
    elif trick == "bad_method":
        rewrite_zip(src, dst, {})
        data = bytearray(dst.read_bytes())
        i = data.find(b"PK\x03\x04")
        data[i + 8:i + 10] = (99).to_bytes(2, "little")  # compression method 99 (AES): not supported
        dst.write_bytes(bytes(data))
    elif trick == "append":
        dst.write_bytes(src.read_bytes() + bytes(rng.randrange(256) for _ in range(64)))
    elif trick == "extra":
        rewrite_zip(src, dst, {"../../escape.txt": lambda d: SECRET, "assets/x": lambda d: b"x"})
    else:
        rewrite_zip(src, dst, {}, compression=zipfile.ZIP_STORED)


def rewrite_zip(src: Path, dst: Path, edits: dict, compression: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(src) as archive:
        parts = {n: archive.read(n) for n in archive.namelist()}
    for name, edit in edits.items():
        if edit is None:
            parts.pop(name, None)
        else:
            parts[name] = edit(parts.get(name, b""))
    with zipfile.ZipFile(dst, "w", compression=compression) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


MUTATIONS = [flip_bytes, flip_bytes, duplicate_byte, truncate, edit_config, edit_config, edit_config,
             edit_weight, edit_weight, zip_trick]
TFLITE_MUTATIONS = [flip_bytes, flip_bytes, duplicate_byte, truncate, patch_word, patch_word, patch_word]


# -- the run ---------------------------------------------------------------------------------------------------
def check_result(world: World, exit_code: int, output: str, out: Path, case: str) -> None:
    assert exit_code in (0, 2), f"{case}: exit {exit_code}: {output[-2000:]}"
    assert "Traceback" not in output and "internal error" not in output, f"{case}: {output[-2000:]}"
    assert SECRET.decode() not in output, f"{case}: the secret file's bytes are in the output"
    if exit_code == 2:
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {output!r}"
        assert not out.exists(), f"{case}: output left behind"
    elif out.exists():  # (inspect writes nothing)
        assert SECRET not in out.read_bytes(), f"{case}: the secret file's bytes are in the .pt"
        out.unlink()
    assert not list(out.parent.glob(f".{out.name}.*")), f"{case}: a temporary file left behind"
    assert not world.marker.exists(), f"{case}: code stored in the model ran"


def make_case(rng: random.Random, world: World, index: int) -> tuple[Path, str]:
    src = rng.choice(SEEDS + [world.tiny_keras, world.tiny_keras, world.tiny_tflite, world.tiny_tflite])
    mutation = rng.choice(TFLITE_MUTATIONS if src.suffix == ".tflite" else MUTATIONS)
    dst = world.root / f"case{index}{src.suffix}"
    mutation(rng, world, src, dst)
    if not dst.exists():
        shutil.copy(src, dst)
    return dst, f"case {index} ({mutation.__name__} of {src.name}, FUZZ_SEED={SEED})"


@pytest.fixture
def fuzz_world(tmp_path, monkeypatch):
    tiny_tflite()  # built before the temporary directory is watched (TensorFlow's autograph leaves files there)
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))
    monkeypatch.setattr(policy, "EXPANSION_FLOOR_BYTES", 1 << 20)
    monkeypatch.setenv("TF2TORCH_READ_TIMEOUT", "20")
    world = World(tmp_path)
    yield world, work


def test_fuzz_in_process(fuzz_world):
    world, work = fuzz_world
    rng = random.Random(SEED)
    runner = CliRunner()
    outcomes = {0: 0, 2: 0}
    tflite = {0: 0, 2: 0}
    for index in range(CASES):
        src, case = make_case(rng, world, index)
        out = world.root / f"out{index}.pt"
        command = ["inspect", str(src)] if index % 10 == 9 else ["convert", str(src), str(out)]
        result = runner.invoke(main, command)
        check_result(world, result.exit_code, result.output, out, case)
        assert not list(work.iterdir()), f"{case}: temporary files left behind: {list(work.iterdir())}"
        outcomes[result.exit_code] += 1
        tflite[result.exit_code] += src.suffix == ".tflite"
        src.unlink()
    assert outcomes[2] > CASES // 4 and outcomes[0] > 0, outcomes  # the mutations do reach both outcomes
    assert CASES < 60 or (tflite[0] and tflite[2]), tflite  # and so do the .tflite seed's


@pytest.mark.parametrize("index", [0, 1])
def test_fuzz_subprocess(fuzz_world, index):
    """Real processes (no CliRunner): the same guarantees on stdout/stderr and the exit status."""
    world, work = fuzz_world
    rng = random.Random(SEED * 1000 + index)
    src, case = make_case(rng, world, index)
    out = world.root / "out.pt"
    env = {**os.environ, "TMPDIR": str(work), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "tf2torch", "convert", str(src), str(out)], capture_output=True,
                            text=True, env=env, cwd=ROOT, timeout=300)
    output = result.stdout if result.returncode == 0 else result.stderr
    check_result(world, result.returncode, output, out, case)
    assert not list(work.iterdir())
