"""Readers: every file layout and config dialect, checked by converting and comparing with Keras.

Covers Sequential and Functional models, nested models (also called twice), shared layers, several inputs and
outputs, split HDF5 attribute lists, the Keras 2.0 list-style Sequential config, Keras 1 three-element inbound
refs and ``__tuple__`` encodings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile

import h5py
import numpy as np
import pytest
from harness import (
    assert_matches,
    check_conversion,
    formats_for,
    keras_module,
    keras_outputs,
    random_inputs,
    torch_outputs,
)

import tf2torch
from tf2torch.errors import ModelFileError
from tf2torch.readers import policy
from tf2torch.readers.keras_zip import read_keras_zip


def sequential(k):
    return k.Sequential([k.Input((6,)), k.layers.Dense(5, activation="relu"), k.layers.Dense(3)])


def nested_sequential_in_functional(k):
    inner = k.Sequential([k.Input((5,)), k.layers.Dense(4, activation="tanh"), k.layers.Dense(3)], name="block")
    inp = k.Input((6,))
    return k.Model(inp, inner(k.layers.Dense(5, name="pre")(inp)))


def nested_functional_twice(k):
    x_in = k.Input((5,))
    inner = k.Model(x_in, k.layers.Dense(3, name="inner_dense")(x_in), name="inner")
    a, b = k.Input((6,), name="a"), k.Input((6,), name="b")
    shared = k.layers.Dense(5, name="shared")
    return k.Model([a, b], [inner(shared(a)), inner(shared(b)), shared(a)])


def sequential_in_sequential(k):
    inner = k.Sequential([k.Input((5,)), k.layers.Dense(4)], name="inner_seq")
    return k.Sequential([k.Input((6,)), k.layers.Dense(5), inner, k.layers.Dense(2)])


def two_level_nesting(k):
    x_in = k.Input((4,))
    deepest = k.Model(x_in, k.layers.Dense(4, name="deep_dense")(x_in), name="deepest")
    y_in = k.Input((4,))
    middle = k.Model(y_in, k.layers.Dense(3, name="mid_dense")(deepest(y_in)), name="middle")
    z_in = k.Input((4,))
    return k.Model(z_in, middle(k.layers.Dense(4, name="top_dense")(z_in)))


def multi_io_conv(k):
    img = k.Input((9, 9, 2), name="img")
    vec = k.Input((4,), name="vec")
    c = k.layers.Conv2D(3, 3, strides=2, padding="same", name="conv")(img)
    return k.Model([img, vec], [c, k.layers.Dense(2, name="head")(k.layers.Flatten()(c)),
                                k.layers.Dense(3, name="vec_head")(vec)])


CASES = {
    "sequential": sequential,
    "nested_sequential_in_functional": nested_sequential_in_functional,
    "nested_functional_called_twice": nested_functional_twice,
    "sequential_in_sequential": sequential_in_sequential,
    "two_level_nesting": two_level_nesting,
    "multi_input_multi_output": multi_io_conv,
}


@pytest.mark.parametrize("case", CASES)
def test_model_structures(case, flavour, tmp_path):
    check_conversion(CASES[case], flavour, tmp_path)


def test_submodules_named_after_keras_layers(tmp_path):
    k = keras_module("keras3")
    path = tmp_path / "m.keras"
    nested_functional_twice(k).save(str(path))
    module = tf2torch.convert(path)
    assert module.get_submodule("shared").in_features == 6
    assert module.get_submodule("inner.inner_dense").out_features == 3
    code = module.code
    assert "self.shared(a)" in code and "self.shared(b)" in code


def rewrite_h5(src, dst, edit):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f)


def compare_file(path, model, rtol=1e-5):
    inputs = random_inputs(model)
    module = tf2torch.convert(path, layout="keras")
    assert_matches(torch_outputs(module, inputs, "keras"), keras_outputs(model, inputs), rtol, str(path))


def test_split_attribute_lists(tmp_path):
    """Keras splits attribute lists over 64 KB into name0, name1, ...; readers join them back."""
    k = keras_module("tf_keras")
    model = sequential(k)
    src = tmp_path / "model.h5"
    model.save(str(src))

    def split(f):
        names = f["model_weights"].attrs["layer_names"]
        del f["model_weights"].attrs["layer_names"]
        f["model_weights"].attrs["layer_names0"] = names[:1]
        f["model_weights"].attrs["layer_names1"] = names[1:]
        for group in f["model_weights"].values():
            wn = group.attrs["weight_names"]
            if len(wn) == 2:
                del group.attrs["weight_names"]
                group.attrs["weight_names0"] = wn[:1]
                group.attrs["weight_names1"] = wn[1:]

    dst = tmp_path / "split.h5"
    rewrite_h5(src, dst, split)
    with h5py.File(dst) as f:
        assert "layer_names" not in f["model_weights"].attrs
    compare_file(dst, model)


def as_keras_2_0(config):
    """tf.keras Sequential config → the Keras 2.0/2.1 form: a bare list, no InputLayer, batch_input_shape on the
    first layer."""
    layers = config["config"]["layers"]
    first_input = layers[0]
    assert first_input["class_name"] == "InputLayer"
    rest = [dict(layer) for layer in layers[1:]]
    rest[0]["config"] = dict(rest[0]["config"], batch_input_shape=first_input["config"]["batch_input_shape"])
    return {"class_name": "Sequential", "config": [{"class_name": lc["class_name"], "config": lc["config"]}
                                                   for lc in rest]}


def test_keras_2_0_list_style_sequential(tmp_path):
    k = keras_module("tf_keras")
    model = sequential(k)
    src = tmp_path / "model.h5"
    model.save(str(src))

    def downgrade(f):
        config = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(as_keras_2_0(config)).encode()
        f.attrs["keras_version"] = b"2.0.8"
        f["model_weights"].attrs["keras_version"] = b"2.0.8"

    dst = tmp_path / "keras20.h5"
    rewrite_h5(src, dst, downgrade)
    compare_file(dst, model)


def encode_tuples(value):
    """Encode every list of ints as TF 2.4's {"class_name": "__tuple__", "items": [...]}."""
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return {"class_name": "__tuple__", "items": value}
    if isinstance(value, list):
        return [encode_tuples(v) for v in value]
    if isinstance(value, dict):
        return {key: (v if key == "inbound_nodes" else encode_tuples(v)) for key, v in value.items()}
    return value


def test_keras_1_refs_and_tuple_encoding(tmp_path):
    k = keras_module("tf_keras")
    model = multi_io_conv(k)
    src = tmp_path / "model.h5"
    model.save(str(src))

    def old_dialect(f):
        config = json.loads(f.attrs["model_config"])
        for layer in config["config"]["layers"]:
            layer["inbound_nodes"] = [[ref[:3] for ref in call] for call in layer["inbound_nodes"]]
        f.attrs["model_config"] = json.dumps(encode_tuples(config)).encode()

    dst = tmp_path / "old_dialect.h5"
    rewrite_h5(src, dst, old_dialect)
    with h5py.File(dst) as f:
        assert "__tuple__" in f.attrs["model_config"]
    compare_file(dst, model)


def test_tf_keras_keras_zip_format(tmp_path):
    """tf_keras can write the .keras zip too (its own saving_lib)."""
    k = keras_module("tf_keras")
    model = multi_io_conv(k)
    path = tmp_path / "model.keras"
    model.save(str(path))
    compare_file(path, model)


@pytest.mark.parametrize("compression, in_place", [(zipfile.ZIP_STORED, True), (zipfile.ZIP_DEFLATED, False)])
def test_keras_zip_weights_read_in_place_when_stored(tmp_path, compression, in_place):
    """Keras writes .keras archives uncompressed: model.weights.h5 is read inside the archive, never unpacked (a
    1.3 GB model's weights were first copied to the temporary directory); a compressed member is unpacked."""
    k = keras_module("keras3")
    model = multi_io_conv(k)
    saved, path, workdir = tmp_path / "saved.keras", tmp_path / "model.keras", tmp_path / "work"
    model.save(str(saved))
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(path, "w", compression=compression) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    workdir.mkdir()
    _, span = read_keras_zip(str(path), workdir)
    assert (span.path == os.path.realpath(path) and span.start > 0) == in_place, span
    assert sorted(p.name for p in workdir.iterdir()) == ([] if in_place else ["model.weights.h5"])
    compare_file(path, model)


def test_keras_zip_local_header_disagreeing_with_its_directory(tmp_path):
    """The weights are read where the member's local header says they start, so a header naming another member
    than the directory's entry is refused (zipfile checks the same when it unpacks)."""
    path = tmp_path / "model.keras"
    multi_io_conv(keras_module("keras3")).save(str(path))
    data = path.read_bytes()
    at = data.index(b"model.weights.h5")  # the local header's copy of the name comes before the directory's
    path.write_bytes(data[:at] + b"model.weightsXh5" + data[at + 16:])
    with pytest.raises(ModelFileError, match="local header of model.weights.h5 disagrees"):
        tf2torch.convert(path)


def test_save_load_round_trip(tmp_path):
    k = keras_module("keras3")
    model = multi_io_conv(k)
    path = tmp_path / "model.keras"
    model.save(str(path))
    for layout in ("channels_first", "keras"):
        converted = tf2torch.convert(path, layout=layout)
        tf2torch.save(converted, tmp_path / "out.pt")
        loaded = tf2torch.load(tmp_path / "out.pt")
        inputs = random_inputs(model)
        for a, b in zip(torch_outputs(converted, inputs, layout), torch_outputs(loaded, inputs, layout)):
            np.testing.assert_array_equal(a, b)
        assert loaded.code == converted.code


@pytest.mark.parametrize("fmt", ["h5", "keras"])
def test_conversion_never_imports_tensorflow(tmp_path, fmt):
    k = keras_module("keras3")
    path = tmp_path / f"model.{fmt}"
    multi_io_conv(k).save(str(path))
    script = textwrap.dedent(f"""
        import sys
        import tf2torch
        from tf2torch.cli import main
        tf2torch.convert({str(path)!r})
        try:
            main(["convert", {str(path)!r}, {str(tmp_path / 'out.pt')!r}])
        except SystemExit as exit:
            assert exit.code in (0, None), exit.code
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))
        assert not heavy, heavy
        print("no tensorflow")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no tensorflow" in proc.stdout
    assert (tmp_path / "out.pt").exists()


def sequential_ending_in_states(k):
    return k.Sequential([k.Input((5, 3)), k.layers.Dense(4), k.layers.LSTM(6, return_state=True)])


def test_sequential_whose_last_layer_returns_several_tensors(flavour, tmp_path):
    """A Sequential returns every output of its last layer (here LSTM output, h and c)."""
    if flavour == "tf_keras":
        pytest.skip("tf_keras refuses to build a Sequential whose layer returns several tensors")
    check_conversion(sequential_ending_in_states, flavour, tmp_path)


def damage_chunk(path, key: str, index: int) -> None:
    """Overwrite one compressed chunk of dataset ``key`` with bytes that do not inflate."""
    with h5py.File(path, "r") as f:
        info = f[key].id.get_chunk_info(index)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)


def test_stored_weight_reads_checked_blocks(tmp_path):
    """What readers hand a converter that asks for ``spec.weights(lazy=True)``: shape and dtype now, blocks of
    leading-axis rows when read, each read a one-line ``ModelFileError`` when the data is damaged."""
    values = np.random.default_rng(0).standard_normal((300, 40)).astype("float32")
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("k", data=values, compression="gzip", chunks=(10, 40))
        f["plain"] = values
    damage_chunk(path, "k", 20)  # rows 200-209
    size = path.stat().st_size
    with h5py.File(path, "r") as f:
        stored = policy.stored_weight(f["k"], "k", size)
        assert (stored.shape, stored.dtype, stored.ndim, len(stored)) == ((300, 40), np.dtype("float32"), 2, 300)
        assert stored.rows_per_chunk == 10 and policy.stored_weight(f["plain"], "plain", size).rows_per_chunk == 1
        for rows in (slice(0, 100), slice(190, 200), slice(-5, None), slice(5, 3), slice(210, 999)):
            np.testing.assert_array_equal(stored[rows], values[rows])
        for damaged in (lambda: stored[150:250], lambda: np.asarray(stored)):
            with pytest.raises(ModelFileError, match=r"^cannot read weight k: .*damaged$"):
                damaged()
        for not_rows in (np.s_[::2], 3, np.s_[0:2, 1]):
            with pytest.raises(TypeError, match="blocks of leading-axis rows"):
                stored[not_rows]
        with pytest.raises(ModelFileError, match="more than the whole file"):  # checked before anything is read
            policy.stored_weight(f["plain"], "plain", 1000)
        np.testing.assert_array_equal(np.asarray(policy.stored_weight(f["plain"], "plain", size)), values)
    with pytest.raises(ModelFileError, match="cannot read weight k"):  # the file is closed
        stored[0:3]


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_contiguous_weights_are_read_in_one_pread_and_equal_hdf5s(flavour, fmt, tmp_path):
    """Keras writes every weight contiguous and unfiltered: the structure's reading records where each one's
    values lie (``Weight.offset``) and the values read from there equal h5py's, bit for bit; a weight whose
    values the file no longer holds (truncated after the structure was read) is a one-line error."""
    if fmt not in formats_for(flavour):
        pytest.skip(f"{flavour} does not write .{fmt}")
    k = keras_module(flavour)
    model = CASES["multi_input_multi_output"](k)
    path = tmp_path / f"m.{fmt}"
    model.save(path)
    with tf2torch.readers.open_model(path) as graph:
        weights = [w for layer in graph.layers.values() for w in layer.weights]
        assert weights and all(w.offset is not None for w in weights)
        raw = [np.asarray(graph.load_weight(w)) for w in weights]
        for w in weights:
            w.offset = None  # the same weights through HDF5
        through_hdf5 = [np.asarray(graph.load_weight(w)) for w in weights]
    for a, b in zip(raw, through_hdf5):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if fmt == "h5":
        with tf2torch.readers.open_model(path) as graph:
            last = max((w for layer in graph.layers.values() for w in layer.weights), key=lambda w: w.offset)
            with open(path, "r+b") as f:
                f.truncate(last.offset + 4)
            with pytest.raises(ModelFileError, match=r"^cannot read weight .*: the file ends before its values; "
                                                     r"the file is truncated$"):
                graph.load_weight(last)


def test_chunked_or_compressed_weights_are_read_through_hdf5(tmp_path):
    """``contiguous_offset`` only for contiguous, unfiltered, written storage."""
    values = np.arange(12, dtype="float32").reshape(3, 4)
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f["plain"] = values
        f.create_dataset("gzip", data=values, compression="gzip")
        f.create_dataset("chunked", data=values, chunks=(1, 4))
        f.create_dataset("unwritten", shape=(3, 4), dtype="float32")
    size = path.stat().st_size
    with h5py.File(path, "r") as f:
        assert policy.contiguous_offset(f["plain"], size) is not None
        assert [policy.contiguous_offset(f[k], size) for k in ("gzip", "chunked", "unwritten")] == [None] * 3
        assert policy.contiguous_offset(f["plain"], 100) is None  # the extent must lie in the file


def slash_named_input(k):
    """An Input named ``cqt/mag``, as in a 2018 Keras 2.2.2 ``.h5`` shipped on PyPI (Keras 3 refuses the name)."""
    inp = k.Input((16, 4), name="cqt/mag")
    x = k.layers.Flatten(name="flat")(k.layers.Conv1D(3, 3, name="conv")(inp))
    return k.Model(inp, k.layers.Dense(2, name="head")(x))


@pytest.mark.parametrize("save, signature", [("h5", None), ("model.save", None), ("model.save", "serving_default"),
                                             ("tf.saved_model.save", None)])
def test_input_named_with_a_slash(tmp_path, save, signature):
    """Inputs were looked up by the last path segment of their layer name only: ``cqt/mag`` crashed every Keras
    path and the tf_keras SavedModel's default signature with an AssertionError."""
    k = keras_module("tf_keras")
    model = slash_named_input(k)
    path = tmp_path / ("model.h5" if save == "h5" else "saved")
    if save == "tf.saved_model.save":
        import tensorflow as tf

        tf.saved_model.save(model, str(path))
    else:
        model.save(str(path))
    inputs = random_inputs(model)
    module = tf2torch.convert(path, layout="keras", signature=signature)
    assert_matches(torch_outputs(module, inputs, "keras"), keras_outputs(model, inputs), what=f"{save} {signature}")


def without_input_shape(config):
    """tf_keras Sequential config → the Keras 2.2.4 form of one built on its first call: no InputLayer, no
    ``batch_input_shape`` anywhere (astrorapid 0.2.17's model on PyPI)."""
    layers = [lc for lc in config["config"]["layers"] if lc["class_name"] != "InputLayer"]
    for lc in layers:
        lc["config"].pop("batch_input_shape", None)
    return {"class_name": "Sequential", "config": {"name": config["config"]["name"], "layers": layers}}


def test_sequential_saved_without_an_input_shape(tmp_path):
    """Refused even with ``--input-shape 50,2``, the flag that exists for it; now the flag gives the shape, and
    without it the error names the flag."""
    k = keras_module("tf_keras")
    model = k.Sequential([k.layers.LSTM(4, return_sequences=True, name="lstm"), k.layers.Dense(3, name="d")])
    model.build((None, 50, 2))
    src = tmp_path / "model.h5"
    model.save(str(src))

    def downgrade(f):
        f.attrs["model_config"] = json.dumps(without_input_shape(json.loads(f.attrs["model_config"]))).encode()
        f.attrs["keras_version"] = b"2.2.4"

    dst = tmp_path / "keras224.h5"
    rewrite_h5(src, dst, downgrade)
    with pytest.raises(ModelFileError, match="without an input shape.*--input-shape"):
        tf2torch.convert(dst)
    inputs = random_inputs(model)
    module = tf2torch.convert(dst, layout="keras", input_shapes=[[50, 2]])
    assert_matches(torch_outputs(module, inputs, "keras"), keras_outputs(model, inputs), what="no input shape")
    assert module.tf2torch_meta["graph"]["input_specs"][0]["shape"] == [50, 2]  # JSON-native, as a loaded .pt has it
