"""TensorFlow Lite files (issue #23): models built here with ``tf.lite.TFLiteConverter`` (random weights, nothing
downloaded), converted without TensorFlow and compared with ``tf.lite.Interpreter`` within ``RTOL``; unknown
operators and quantized models refused by name; damaged files one ``error:`` line, exit 2."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from harness import LAYOUTS, RTOL, assert_matches, torch_outputs

import tf2torch
from tf2torch.cli import main
from tf2torch.errors import Tf2TorchError, UnsupportedLayerError

ROOT = Path(__file__).parent.parent
RNG = np.random.default_rng(0)


def cnn(keras):
    """Conv, depthwise conv (multiplier 2, fused RELU6), transposed convs (dynamic batch: SHAPE, STRIDED_SLICE,
    PACK feed the output shape), bilinear resize, both pools, ADD, LOGISTIC, CONCATENATION, PRELU, MEAN, a dense
    head."""
    i = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(i)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, activation="relu6")(x)
    y = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    y = keras.layers.Conv2DTranspose(4, 2, strides=1, padding="valid")(y)
    y = keras.layers.Resizing(10, 12)(y)
    z = keras.layers.MaxPooling2D(2)(y) + keras.layers.AveragePooling2D(3, 2, padding="same")(y)
    z = keras.layers.Concatenate()([z, keras.layers.Activation("sigmoid")(z)])
    z = keras.layers.PReLU()(z)
    h = keras.layers.GlobalAveragePooling2D()(z)
    h = keras.layers.Dense(6, activation="tanh")(h)
    h = keras.layers.Dense(3, activation="softmax")(h)
    return keras.Model(i, [h, z])


def lstm(keras):
    """Two stacked LSTMs (UNIDIRECTIONAL_SEQUENCE_LSTM with zero variable states and cell_clip 10, then a
    STRIDED_SLICE for the last step) and a dense head; the batch is fixed, as TFLite's builtin LSTM needs."""
    i = keras.Input((7, 3), batch_size=1)
    x = keras.layers.LSTM(4, return_sequences=True)(i)
    x = keras.layers.LSTM(5)(x)
    return keras.Model(i, keras.layers.Dense(2)(x))


def fixed_batch(keras):
    """A model on a batch fixed at 1, as phone models are: the TFLite converter writes the batch into RESHAPE's
    constant shapes ([1, 4, 16, 8], [1, 140]; MobileNet's head has [1, 1000]), which examples of batch 2 cannot
    pass; then GELU, exact (Keras's ``gelu``) and in its tanh form (``approximate=True``)."""
    import tensorflow as tf

    i = keras.Input((16, 16, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(i)
    x = keras.layers.Conv2D(5, 3, activation="relu")(keras.layers.Reshape((4, 16, 8))(x))
    x = keras.layers.Dense(6, activation="gelu")(keras.layers.Flatten()(x))
    return keras.Model(i, keras.layers.Lambda(lambda t: tf.nn.gelu(t * 3.0, approximate=True))(x))


def dilated_conv1d(keras):
    """Dilated ``Conv1D`` layers (``same`` and ``valid``) on an open batch: the TFLite converter leaves each between
    SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND (with a batch fixed at 1 it folds them into a dilated CONV_2D)."""
    i = keras.Input((20, 3))
    x = keras.layers.Conv1D(4, 3, dilation_rate=2, padding="same", activation="relu")(i)
    return keras.Model(i, keras.layers.Conv1D(2, 2, dilation_rate=3)(x))


def space_to_batch_function(tf):
    """SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND with uneven paddings and crops (each block scaled by its index, so a
    wrong block order shows), and a dilated 1-D convolution of a reshape that holds the batch of 1 (with the batch
    fixed, the TFLite converter folds that one into a dilated CONV_2D)."""
    w = tf.constant(RNG.standard_normal((3, 3, 4)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec((1, 10, 10, 3), tf.float32)])
    def f(x):
        s = tf.space_to_batch_nd(x, block_shape=[2, 3], paddings=[[1, 1], [0, 2]])
        s = s * tf.reshape(tf.range(1, 7, dtype=tf.float32), (6, 1, 1, 1))
        t = tf.batch_to_space(s, block_shape=[2, 3], crops=[[0, 1], [1, 0]])
        return t, tf.nn.convolution(tf.reshape(x, (1, 100, 3)), w, padding="VALID", dilations=[2])

    return f


def builtins_function(tf):
    """Builtins phone models hold that a Keras CNN does not make, each matched by a raw TF op: ARG_MAX, ARG_MIN,
    CAST, LOG_SOFTMAX, L2_NORMALIZATION, LOCAL_RESPONSE_NORMALIZATION, MIRROR_PAD (both modes), SLICE, TILE,
    SELECT and SELECT_V2 (where, with a broadcast condition), the comparisons and logical operators, ROUND, SIGN,
    FLOOR_DIV, FLOOR_MOD, CUMSUM (exclusive, reversed), REVERSE_V2, GATHER_ND, TOPK_V2 (values and indices),
    ONE_HOT, REDUCE_ANY and REDUCE_ALL, RELU_N1_TO_1."""

    @tf.function(input_signature=[tf.TensorSpec((1, 6, 6, 4), tf.float32)])
    def f(x):
        as_float = lambda t: tf.cast(t, tf.float32)  # noqa: E731
        pads = [[0, 0], [2, 1], [1, 2], [0, 0]]
        a = tf.pad(x, pads, mode="REFLECT")[:, :6, :6] + tf.pad(x, pads, mode="SYMMETRIC")[:, 1:7, 2:8]
        a = tf.nn.local_response_normalization(tf.math.l2_normalize(a, axis=-1), 2, 1.0, 0.5, 0.75)
        b = tf.where(x > 0, x, x * 0.1) + tf.where(x[..., :1] > 0.5, x, 0.25)
        b = b + as_float(tf.logical_or(tf.logical_and(x > -0.5, x <= 0.5), x >= 1.5))
        b = b + as_float(tf.not_equal(tf.round(x * 3), 0.0)) + as_float(tf.logical_not(tf.cast(tf.round(x), tf.bool)))
        b = b + tf.sign(x) + tf.clip_by_value(x, -1, 1)
        c = tf.math.floordiv(x * 3, 2.0) + tf.math.floormod(x * 3, 2.0) + tf.cumsum(x, axis=2, exclusive=True,
                                                                                       reverse=True)
        d = tf.tile(tf.slice(tf.reverse(x, [1]), [0, 1, 2, 0], [1, 3, 2, 4]), [1, 2, 1, 3])
        top = tf.math.top_k(tf.reshape(x, (1, -1)), k=5)
        arg = tf.argmax(x, axis=-1, output_type=tf.int32)
        e = tf.one_hot(arg, 4) + as_float(tf.reduce_any(x > 1.0, axis=-1, keepdims=True))
        e = e + as_float(tf.reduce_all(x > -1.0, axis=-1, keepdims=True)) + as_float(tf.less(x, x[..., :1]))
        e = e + as_float(tf.equal(tf.round(x), 0.0))
        return (a, b, c, d, top.values, top.indices, e, tf.argmin(x, axis=1), tf.gather_nd(x, [[0, 1, 2], [0, 3, 4]]),
                tf.nn.log_softmax(x))

    return f


def ops_function(tf):
    """Builtins a Keras CNN does not make: nearest resizes (align_corners, half_pixel_centers), legacy bilinear,
    PAD, RESHAPE, SUB, MUL by a constant, ABS, DIV of two run-time tensors, SPACE_TO_DEPTH and DEPTH_TO_SPACE
    (a channel ramp between them, so a wrong channel order shows), TRANSPOSE, HARD_SWISH, MAXIMUM."""
    k = tf.constant(RNG.standard_normal((1, 1, 1, 4)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec((1, 6, 6, 4), tf.float32)])
    def f(x):
        a = tf.compat.v1.image.resize_nearest_neighbor(x, (9, 11), align_corners=True)
        b = tf.compat.v1.image.resize_nearest_neighbor(x, (9, 11), half_pixel_centers=True)
        c = tf.compat.v1.image.resize_bilinear(x, (9, 11))
        d = tf.pad(a + b - c, [[0, 0], [1, 2], [2, 1], [0, 0]]) * k
        d = d / (tf.abs(d) + 1.0)
        d = tf.nn.depth_to_space(tf.nn.space_to_depth(d[:, :8, :8], 2) * tf.range(16, dtype=tf.float32), 2)
        e = tf.reshape(tf.transpose(d, [0, 2, 1, 3]), (1, -1, 4))
        return tf.maximum(e * tf.nn.relu6(e + 3.0) / 6.0, -0.5)

    return f


def sparse(keras):
    """A conv (relu) and a dense head whose kernels are 80% zeros, so TFLiteConverter's ``EXPERIMENTAL_SPARSITY``
    stores them as CSR rows behind ``DENSIFY`` (and ``DEQUANTIZE`` with float16 weights), as MediaPipe's sparse
    models do."""
    return keras.Sequential([keras.Input((8, 8, 16)), keras.layers.Conv2D(32, 3, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(8)])


def random_weights(model, zeros: float = 0.0):
    rng = np.random.default_rng(1)
    for w in model.weights:
        value = rng.standard_normal(w.shape).astype("float32") * 0.3
        if len(w.shape) > 1:
            value[rng.random(w.shape) < zeros] = 0
        w.assign(value)


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    import tensorflow as tf
    import tf_keras as keras

    root = tmp_path_factory.mktemp("tflite")
    models = {"cnn": cnn(keras), "lstm": lstm(keras), "sparse": sparse(keras)}
    files = {}
    for name, f16 in ((f"{m}_{t}", t == "float16") for m in models for t in ("float32", "float16")):
        model = models[name.split("_")[0]]
        random_weights(model, zeros=0.8 if name.startswith("sparse") else 0.0)
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if name.startswith("sparse") else []
        if f16:
            converter.optimizations += [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        files[name] = root / f"{name}.tflite"
        files[name].write_bytes(converter.convert())
    for name, build in (("fixed_batch", fixed_batch), ("dilated_conv1d", dilated_conv1d)):
        random_weights(model := build(keras))
        files[name] = root / f"{name}.tflite"
        files[name].write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    for name, f in (("ops", ops_function(tf)), ("space_to_batch", space_to_batch_function(tf)),
                    ("builtins", builtins_function(tf))):
        files[name] = root / f"{name}.tflite"
        files[name].write_bytes(tf.lite.TFLiteConverter.from_concrete_functions(
            [f.get_concrete_function()], f).convert())
    return files


def interpreter_outputs(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


CASES = {"cnn_float32": [(1, 16, 16, 3)], "cnn_float16": [(1, 16, 16, 3)], "lstm_float32": [(1, 7, 3)],
         "lstm_float16": [(1, 7, 3)], "ops": [(1, 6, 6, 4)], "sparse_float32": [(1, 8, 8, 16)],
         "sparse_float16": [(1, 8, 8, 16)], "fixed_batch": [(1, 16, 16, 3)], "space_to_batch": [(1, 10, 10, 3)],
         "dilated_conv1d": [(1, 20, 3)], "builtins": [(1, 6, 6, 4)]}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_the_interpreter(tflite_files, name, layout):
    path = tflite_files[name]
    inputs = [np.random.default_rng(2).standard_normal(s).astype("float32") for s in CASES[name]]
    module = tf2torch.convert(path, layout=layout)
    assert_matches(torch_outputs(module, inputs, layout), interpreter_outputs(path, inputs), RTOL, name)


def test_float16_weights_are_folded(tflite_files):
    """A float16-weight file stores its kernels as float16 behind DEQUANTIZE operators; they are read widened
    and no DEQUANTIZE node is left (the parity test above checks the values)."""
    from tf2torch.readers.tflite import read_structure

    data = tflite_files["cnn_float16"].read_bytes()
    assert b"TFL3" == data[4:8]
    graph, stored = read_structure("cnn_float16", data)
    assert all(s.widen and s.dtype == "float16" for s in stored.values()) and stored
    assert not any(layer.class_name == "tflite>DEQUANTIZE" for layer in graph.layers.values())


@pytest.mark.parametrize("name", ["sparse_float32", "sparse_float16"])
def test_sparse_weights_are_expanded(tflite_files, name):
    """Sparse weights (``Tensor.sparsity``: CSR rows) are read with the dense position of each stored value; the
    ``DENSIFY`` (and float16 ``DEQUANTIZE``) operators are folded, no node is left for them (the parity test above
    checks the values)."""
    from tf2torch.readers.tflite import read_structure

    graph, stored = read_structure(name, tflite_files[name].read_bytes())
    assert sum(s.positions is not None for s in stored.values()) == 2
    assert all(s.nbytes < np.prod(s.shape) * np.dtype(s.dtype).itemsize for s in stored.values()
               if s.positions is not None)  # stored compressed
    assert not {"tflite>DENSIFY", "tflite>DEQUANTIZE"} & {layer.class_name for layer in graph.layers.values()}


def test_conversion_does_not_import_tensorflow(tflite_files, tmp_path):
    out = tmp_path / "out.pt"
    code = ("import sys, tf2torch; tf2torch.save(tf2torch.convert(sys.argv[1]), sys.argv[2]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code, str(tflite_files["cnn_float16"]), str(out)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert out.exists()


def test_saved_module_reloads(tflite_files, tmp_path):
    path = tflite_files["cnn_float32"]
    module = tf2torch.convert(path)
    tf2torch.save(module, tmp_path / "m.pt")
    x = [np.random.default_rng(3).standard_normal((1, 16, 16, 3)).astype("float32")]
    assert_matches(torch_outputs(tf2torch.load(tmp_path / "m.pt"), x, "channels_first"),
                   torch_outputs(module, x, "channels_first"), RTOL, "reloaded")


# -- refusals --------------------------------------------------------------------------------------------------
def with_custom_operator(source: Path, target: Path, code: str) -> None:
    """``source`` with its first operator turned into the custom operator ``code`` (TFLite's own object API)."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(source.read_bytes(), 0))
    opcode = model.operatorCodes[model.subgraphs[0].operators[0].opcodeIndex]
    opcode.builtinCode = opcode.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    opcode.customCode = code
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    target.write_bytes(builder.Output())


def int8_model(path: Path, kind: str = "int8") -> None:
    """A conv, flatten and dense model quantized by TFLiteConverter: ``int8`` full-integer (a representative
    dataset calibrates the activations; float inputs and outputs behind QUANTIZE / DEQUANTIZE), ``int8_io`` the
    same with int8 inputs and outputs, ``dynamic`` dynamic-range (int8 weights, float activations)."""
    import tensorflow as tf
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    if kind == "dynamic":  # dynamic-range quantization only quantizes weights of 1024 values or more
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(32, 3, activation="relu"),
                                  keras.layers.Conv2D(32, 3), keras.layers.Flatten(), keras.layers.Dense(40)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind != "dynamic":
        converter.representative_dataset = lambda: ([np.random.default_rng(i).standard_normal((1, 8, 8, 3))
                                                     .astype("float32")] for i in range(16))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if kind == "int8_io":
        converter.inference_input_type = converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())


def test_custom_operator_refused_by_name(tflite_files, tmp_path):
    path = tmp_path / "custom.tflite"
    with_custom_operator(tflite_files["cnn_float32"], path, "Landmarks2TransformMatrix")
    with pytest.raises(UnsupportedLayerError, match="Landmarks2TransformMatrix") as info:
        tf2torch.convert(path)
    assert "custom operator" in str(info.value)


def test_quantized_model_refused_by_name(tmp_path):
    path = tmp_path / "int8.tflite"
    int8_model(path)
    with pytest.raises(UnsupportedLayerError, match="quantized") as info:
        tf2torch.convert(path)
    assert "tflite>CONV_2D" in str(info.value) and "--dequantize" in str(info.value)


QUANT_RTOL = 0.05  # a dequantized model against the interpreter's quantized run: int8 rounding, not round-off


@pytest.mark.parametrize("kind", ["int8", "dynamic"])
def test_dequantize_comes_close_to_the_quantized_model(tmp_path, kind):
    """``dequantize=True``: the quantized weights read as ``(q - zero_point) * scale``, QUANTIZE / DEQUANTIZE as
    identities, one notice; the float model comes within ``QUANT_RTOL`` of the interpreter's quantized output but
    not within ``RTOL`` (it is a different computation: the test would notice a reference that is not quantized),
    and ``verify`` judges it at its looser tolerance with a note saying so."""
    from tf2torch.errors import ConversionNotice

    path = tmp_path / f"{kind}.tflite"
    int8_model(path, kind)
    with pytest.raises(UnsupportedLayerError, match="quantized"):
        tf2torch.convert(path)
    with pytest.warns(ConversionNotice, match="dequantized"):
        module = tf2torch.convert(path, dequantize=True)
    x = [np.random.default_rng(6).standard_normal((1, 8, 8, 3)).astype("float32")]
    error = assert_matches(torch_outputs(module, x, "channels_first"), interpreter_outputs(path, x), QUANT_RTOL,
                           kind)
    assert error > RTOL, error
    with pytest.warns(ConversionNotice):
        report = tf2torch.verify(path, tf_options={"dequantize": True}, batch_size=1)
    assert report.ok and RTOL < report.max_rel_error <= QUANT_RTOL, report.failed
    assert any("--dequantize" in note for note in report.notes)


def test_dequantize_refuses_quantized_inputs(tmp_path):
    """int8 inputs and outputs hold quantized numbers, which a float model cannot take: refused by name."""
    path = tmp_path / "int8_io.tflite"
    int8_model(path, "int8_io")
    with pytest.raises(UnsupportedLayerError, match="float inputs and outputs"):
        tf2torch.convert(path, dequantize=True)


# -- damaged and hostile files: one error line, exit 2 ----------------------------------------------------------
def mutations(data: bytes, seed: int, count: int) -> list[tuple[str, bytes]]:
    """Truncations at every eighth of the file and seeded byte flips (1 to 6 bytes each)."""
    rng = np.random.default_rng(seed)
    cases = [(f"truncated to {n} bytes", data[:n]) for n in range(8, len(data), max(len(data) // 8, 1))]
    for i in range(count):
        b = bytearray(data)
        for _ in range(int(rng.integers(1, 7))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        cases.append((f"flip case {i}", bytes(b)))
    return cases


def patched(data: bytes, position: int, fmt: str, value: int) -> bytes:
    b = bytearray(data)
    struct.pack_into("<" + fmt, b, position, value)
    return bytes(b)


def model_table(data: bytes):
    from tf2torch.readers.tflite.flatbuf import Buffer

    return Buffer(data, "test").root("Model")


def huge_vector(data: bytes) -> bytes:
    """Model.operator_codes declared 2**31 - 1 entries long."""
    start, _ = model_table(data).vector(6, 4, "codes")
    return patched(data, start - 4, "I", 2**31 - 1)


def huge_shape(data: bytes) -> bytes:
    """The first constant's first dimension made 2**31 - 1: it would need gigabytes, its buffer holds less."""
    model = model_table(data)
    buffers = model.tables(12, "buffers")
    for tensor in model.tables(8, "subgraphs")[0].tables(4, "tensors"):
        start, count = tensor.vector(4, 4, "shape")
        if count and buffers[tensor.scalar(8, "I")].vector(4, 1, "data")[1]:
            return patched(data, start, "i", 2**31 - 1)
    return data


def external_buffer(data: bytes) -> bytes:
    """A weight's buffer emptied (its length set to 0): the kernel's shape needs bytes the file does not hold."""
    for b in model_table(data).tables(12, "buffers"):
        start, count = b.vector(4, 1, "data")
        if count > 64:
            return patched(data, start - 4, "I", 0)
    return data


def huge_input(data: bytes) -> bytes:
    """The input declared (1, 2**30, 2**30, 3): refused before any example tensor is allocated."""
    subgraph = model_table(data).tables(8, "subgraphs")[0]
    tensor = subgraph.tables(4, "tensors")[subgraph.scalars(6, "i", "inputs")[0]]
    for slot in (4, 18):  # shape and shape_signature
        start, count = tensor.vector(slot, 4, "shape")
        for axis in (1, 2)[:count]:
            data = patched(data, start + 4 * axis, "i", 2**30)
    return data


HOSTILE = {
    "huge_input": huge_input,
    "huge_vector": huge_vector,
    "huge_shape": huge_shape,
    "identifier_only": lambda d: b"\x00\x00\x00\x00TFL3",
    "root_out_of_file": lambda d: b"\xff\xff\xff\x7fTFL3" + d[8:],
    "vtable_out_of_file": lambda d: patched(d, struct.unpack_from("<I", d, 0)[0], "i", -2**30),
    "empty_weights": external_buffer,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_file_one_error_line(tflite_files, tmp_path, case):
    data = tflite_files["cnn_float32"].read_bytes()
    mutated = HOSTILE[case](data)
    assert mutated != data
    path = tmp_path / f"{case}.tflite"
    path.write_bytes(mutated)
    result = CliRunner().invoke(main, ["convert", str(path), str(tmp_path / "out.pt")])
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "out.pt").exists()


@pytest.mark.parametrize("name", ["cnn_float32", "sparse_float16"])
def test_mutated_files_fail_cleanly(tflite_files, name):
    """Every mutation converts or raises tf2torch's own error (which the CLI prints as one line, exit 2); the
    sparse file's mutations reach its CSR segments and indices."""
    data = tflite_files[name].read_bytes()
    root = tflite_files[name].parent
    for what, mutated in mutations(data, seed=23, count=int(os.environ.get("FUZZ_CASES", "60"))):
        path = root / "mutated.tflite"
        path.write_bytes(mutated)
        try:
            tf2torch.convert(path)
        except Tf2TorchError:
            pass
        except Exception as exc:  # pragma: no cover - the failure message names the case
            pytest.fail(f"{what}: {type(exc).__name__}: {exc}")


@pytest.mark.parametrize("name,operators", [
    ("fixed_batch", {"RESHAPE": 2, "GELU": 2}), ("dilated_conv1d", {"SPACE_TO_BATCH_ND": 2, "BATCH_TO_SPACE_ND": 2}),
    ("space_to_batch", {"SPACE_TO_BATCH_ND": 1, "BATCH_TO_SPACE_ND": 1, "RESHAPE": 1}),
    ("builtins", {op: 1 for op in (
        "ARG_MAX", "ARG_MIN", "CAST", "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "SLICE",
        "TILE", "SELECT", "SELECT_V2", "GREATER", "GREATER_EQUAL", "LESS", "LESS_EQUAL", "EQUAL", "NOT_EQUAL",
        "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT", "ROUND", "SIGN", "FLOOR_DIV", "FLOOR_MOD", "CUMSUM", "REVERSE_V2",
        "GATHER_ND", "TOPK_V2", "ONE_HOT", "REDUCE_ANY", "REDUCE_ALL", "RELU_N1_TO_1")} | {"MIRROR_PAD": 2})])
def test_the_files_hold_their_operators(tflite_files, name, operators):
    """The new cases hold what they are about, at least so many of each (GELU exact and tanh, the block
    operators, RESHAPEs whose constant shapes hold the batch): a converter that folds them away would leave the
    comparisons above testing nothing."""
    from tf2torch.readers.tflite import read_structure

    graph, _ = read_structure(name, tflite_files[name].read_bytes())
    ops = [layer.class_name.removeprefix("tflite>") for layer in graph.layers.values()]
    assert all(ops.count(op) >= count for op, count in operators.items()), ops


@pytest.mark.parametrize("name", ["fixed_batch", "space_to_batch"])
def test_a_fixed_batch_is_kept(tflite_files, name):
    """The batch of 1 these files fix (in RESHAPE's constant shapes) stays fixed: the module is built on examples
    of that batch, says so in a notice and its metadata, and another batch fails in a reshape, as the file's own
    shapes would."""
    import torch

    from tf2torch.errors import ConversionNotice

    with pytest.warns(ConversionNotice, match="fixes its batch size at 1"):
        module = tf2torch.convert(tflite_files[name], layout="keras")
    assert module.tf2torch_meta["batch"] == 1
    with pytest.raises(RuntimeError, match="invalid for input of size"):
        module(torch.zeros(2, *CASES[name][0][1:]))


def test_an_open_batch_is_not_fixed(tflite_files):
    """A file whose signature leaves the batch open (``from_keras_model`` of an ``Input`` without batch size)
    keeps it open: no batch in the metadata, and a batch of 3 runs."""
    import torch

    module = tf2torch.convert(tflite_files["cnn_float32"], layout="keras")
    assert "batch" not in module.tf2torch_meta
    assert [out.shape[0] for out in module(torch.zeros(3, 16, 16, 3))] == [3, 3]


# -- verify ------------------------------------------------------------------------------------------------------
def test_verify_compares_every_operator(tflite_files):
    """``verify`` runs TFLite's interpreter with every tensor kept and compares each operator's output; a batch of
    2 (the file says 1, with an open signature) resizes the interpreter's input."""
    from tf2torch.readers.tflite import read_structure

    graph, _ = read_structure("cnn", tflite_files["cnn_float16"].read_bytes())
    report = tf2torch.verify(tflite_files["cnn_float16"])
    assert report.ok, report.failed
    assert [r.node for r in report.layers] == [n.id for n in graph.nodes if n.id in graph.layers
                                                 and graph.layers[n.id].class_name != "InputLayer"]


def test_verify_runs_a_fixed_batch_at_its_size(tflite_files):
    """A model that fixes its batch at 1 is verified at batch 1 (the default 2 would not run it)."""
    report = tf2torch.verify(tflite_files["fixed_batch"])
    assert report.ok, report.failed
    assert report.layers and all(r.ok for r in report.layers)


# -- MediaPipe's custom operators ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, "SAME"), (3, 2, "SAME"), (3, 2, "VALID"), (4, 3, "SAME")])
def test_mediapipe_transpose_conv_bias(tmp_path, kernel, stride, padding):
    """``Convolution2DTransposeBias`` (TF 2.21's interpreter runs it too, as MediaPipe's): the reference is the builtin
    ``TRANSPOSE_CONV`` of the same filter and bias with the output size MediaPipe's kernel computes; the custom
    file is that one with the operator rewritten as MediaPipe writes it (inputs, filter, bias; a 12-byte
    ``TfLiteTransposeConvParams``)."""
    import flatbuffers
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema

    size, channels, out_channels = 5, 3, 4
    pad = max(0, kernel - (size - 1) % stride - 1) if padding == "SAME" else 0
    out = stride * (size - 1) + kernel - pad
    w = RNG.standard_normal((kernel, kernel, out_channels, channels)).astype("float32")
    b = RNG.standard_normal(out_channels).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec((1, size, size, channels), tf.float32)])
    def f(x):
        return tf.nn.conv2d_transpose(x, w, (1, out, out, out_channels), stride, padding) + b

    builtin, custom = tmp_path / "builtin.tflite", tmp_path / "custom.tflite"
    builtin.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert())
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(builtin.read_bytes(), 0))
    (op,) = [o for o in model.subgraphs[0].operators
             if model.operatorCodes[o.opcodeIndex].builtinCode == schema.BuiltinOperator.TRANSPOSE_CONV]
    assert len(op.inputs) == 4 and op.inputs[3] >= 0  # the bias fused into the builtin
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = "Convolution2DTransposeBias"
    model.operatorCodes.append(code)
    op.opcodeIndex, op.inputs = len(model.operatorCodes) - 1, [op.inputs[2], op.inputs[1], op.inputs[3]]
    op.builtinOptionsType, op.builtinOptions = 0, None
    op.customOptions = list(struct.pack("<iii", 1 if padding == "SAME" else 2, stride, stride))
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    custom.write_bytes(builder.Output())
    from tf2torch.readers.tflite import read_structure

    graph, _ = read_structure("custom", custom.read_bytes())
    assert "tflite>custom:Convolution2DTransposeBias" in {layer.class_name for layer in graph.layers.values()}
    x = [np.random.default_rng(4).standard_normal((1, size, size, channels)).astype("float32")]
    for layout in LAYOUTS:
        got = torch_outputs(tf2torch.convert(custom, layout=layout), x, layout)
        assert_matches(got, interpreter_outputs(builtin, x), RTOL, f"{kernel}/{stride}/{padding}")


def pooling_with_argmax_file(path: Path, size: int, kernel: int, stride: int, padding: str) -> None:
    """Input → MediaPipe's ``MaxPoolingWithArgmax2D`` → ``MaxUnpooling2D``, outputs (unpooled, values, indices):
    a builtin ``MAX_POOL_2D`` file (TFLiteConverter) rewritten with TFLite's object API as MediaPipe's files hold
    the two custom operators (``TfLitePoolParams`` as custom options, a float32 indices tensor)."""
    import flatbuffers
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema

    @tf.function(input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32)])
    def f(x):
        return tf.nn.max_pool2d(x, kernel, stride, padding)

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(
        tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert(), 0))
    sg = model.subgraphs[0]
    (op,) = sg.operators
    values = sg.tensors[op.outputs[0]]
    options = list(struct.pack("<6i", 1 if padding == "SAME" else 2, stride, stride, kernel, kernel, 0) + bytes(16))
    for code, shape, name in (("MaxPoolingWithArgmax2D", None, "pool/indices"),
                              ("MaxUnpooling2D", [1, values.shape[1] * kernel, values.shape[2] * kernel, 3],
                               "unpool/out")):
        tensor = schema.TensorT()
        tensor.shape, tensor.type, tensor.buffer, tensor.name = shape or list(values.shape), 0, 0, name
        sg.tensors.append(tensor)
        opcode = schema.OperatorCodeT()
        opcode.builtinCode = opcode.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        opcode.customCode = code
        model.operatorCodes.append(opcode)
    op.opcodeIndex, op.outputs = len(model.operatorCodes) - 2, [op.outputs[0], len(sg.tensors) - 2]
    op.builtinOptionsType, op.builtinOptions, op.customOptions = 0, None, options
    unpool = schema.OperatorT()
    unpool.opcodeIndex, unpool.inputs, unpool.outputs = len(model.operatorCodes) - 1, list(op.outputs), \
        [len(sg.tensors) - 1]
    unpool.customOptions = options
    sg.operators.append(unpool)
    sg.outputs = [len(sg.tensors) - 1, *op.outputs]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


def argmax_reference(x: np.ndarray, kernel: int, stride: int, padding: str) -> list[np.ndarray]:
    """TensorFlow's ``max_pool_with_argmax`` (flat NHWC indices) → the values, each max's position in its window
    (``y * kernel + x + 0.1``, MediaPipe's encoding) and the unpooled tensor, its maxima scattered back into
    (H_out * kernel, W_out * kernel) (when stride == kernel, the window origin of output (i, j) is (i, j) * stride
    minus the SAME padding before)."""
    import tensorflow as tf

    values, flat = (np.asarray(t) for t in tf.nn.max_pool_with_argmax(x, kernel, stride, padding,
                                                                      include_batch_in_index=True))
    n, h, w, c = x.shape
    _, oh, ow, _ = values.shape
    py, px = (flat // c // w) % h, (flat // c) % w
    out = [((oh - 1) * stride + kernel - s) // 2 if padding == "SAME" else 0 for s in (h, w)]
    origin_y = np.arange(oh).reshape(1, -1, 1, 1) * stride - max(out[0], 0)
    origin_x = np.arange(ow).reshape(1, 1, -1, 1) * stride - max(out[1], 0)
    local = (py - origin_y) * kernel + (px - origin_x)
    unpooled = np.zeros((n, oh * kernel, ow * kernel, c), np.float32)
    dy, dx = local // kernel, local % kernel
    oy = np.arange(oh).reshape(1, -1, 1, 1) * stride + dy
    ox = np.arange(ow).reshape(1, 1, -1, 1) * stride + dx
    nn_, cc = np.arange(n).reshape(-1, 1, 1, 1), np.arange(c).reshape(1, 1, 1, -1)
    unpooled[nn_, oy, ox, cc] = values
    return [unpooled, values, local.astype(np.float32) + 0.1]


@pytest.mark.parametrize("size,kernel,stride,padding", [(8, 2, 2, "SAME"), (7, 2, 2, "SAME"), (7, 2, 2, "VALID"),
                                                        (9, 3, 3, "SAME")])
def test_mediapipe_pooling_with_argmax_and_unpooling(tmp_path, size, kernel, stride, padding):
    """``MaxPoolingWithArgmax2D`` → ``MaxUnpooling2D`` (what MediaPipe's hair segmentation model chains) against
    TensorFlow's ``max_pool_with_argmax``, and the unpooled and pooled outputs also against TFLite's interpreter,
    which has kernels of its own for both. Its indices tensor is not compared with the interpreter's: TF 2.21's
    kernel writes int32 bits, ``x * filter_h + y``, into the float32 tensor, where MediaPipe's kernel (which
    MediaPipe's files are made for, and tf2torch follows) writes ``y * filter_w + x + 0.1``; each unpooling reads
    its own, so the pair's result is the same. Windows do not overlap (stride == kernel, as MediaPipe uses them),
    so the unpooling's writes never collide."""
    path = tmp_path / "argmax.tflite"
    pooling_with_argmax_file(path, size, kernel, stride, padding)
    from tf2torch.readers.tflite import read_structure

    graph, _ = read_structure("argmax", path.read_bytes())
    assert {f"tflite>custom:{c}" for c in ("MaxPoolingWithArgmax2D", "MaxUnpooling2D")} <= \
        {layer.class_name for layer in graph.layers.values()}
    x = [np.random.default_rng(5).standard_normal((1, size, size, 3)).astype("float32")]
    expected = argmax_reference(x[0], kernel, stride, padding)
    interpreter = interpreter_outputs(path, x)
    for layout in LAYOUTS:
        got = torch_outputs(tf2torch.convert(path, layout=layout), x, layout)
        assert_matches(got, expected, RTOL, f"{size}/{kernel}/{stride}/{padding}")
        assert_matches(got[:2], interpreter[:2], RTOL, f"{size}/{kernel}/{stride}/{padding} vs the interpreter")


# -- emitters and inspect --------------------------------------------------------------------------------------------
def import_emitted(directory: Path, name: str):
    """The package ``--emit python`` wrote, imported from its directory (its ``load()`` reads the safetensors)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, directory / "__init__.py",
                                                  submodule_search_locations=[str(directory)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[name] = package
    spec.loader.exec_module(package)
    return package.load()


@pytest.mark.parametrize("name", ["cnn_float32", "sparse_float16", "ops", "lstm_float32", "fixed_batch"])
def test_every_emitter(tflite_files, tmp_path, name):
    """``--emit python``, ``pt2`` and ``onnx`` of the converted models (Keras layout, so each takes the
    interpreter's own arrays) match the interpreter within ``RTOL``: the Python source, the ``torch.export``
    program and onnxruntime. (A constant-shape ``RESHAPE`` is a static reshape: read from a tensor, it stopped
    ``torch.export`` on a data-dependent size.)"""
    import onnxruntime as ort
    import torch

    from tf2torch.emit import emit

    path = tflite_files[name]
    x = [np.random.default_rng(7).standard_normal(s).astype("float32") for s in CASES[name]]
    ref = interpreter_outputs(path, x)
    emit(tf2torch.convert(path, layout="keras"), tmp_path / "out", ("python", "pt2", "onnx"))
    inputs = [torch.from_numpy(a) for a in x]
    with torch.no_grad():
        python = import_emitted(tmp_path / "out", f"emitted_tflite_{name}")(*inputs)
        exported = torch.export.load(str(tmp_path / "out" / "model.pt2")).module()(*inputs)
    for what, got in (("python", python), ("pt2", exported)):
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        assert_matches([g.numpy() for g in got], ref, RTOL, f"{name} {what}")
    session = ort.InferenceSession(str(tmp_path / "out" / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx = session.run(None, {i.name: a for i, a in zip(session.get_inputs(), x)})
    assert_matches(onnx, ref, RTOL, f"{name} onnx")


def test_inspect_counts_the_operators(tflite_files):
    """``inspect`` ends with the operators and their counts, most used first (the CNN's two transposed convs)."""
    from tf2torch.readers.tflite import read_structure

    result = CliRunner().invoke(main, ["inspect", str(tflite_files["cnn_float32"])])
    assert result.exit_code == 0, result.output
    graph, _ = read_structure("cnn", tflite_files["cnn_float32"].read_bytes())
    ops = [layer.class_name for layer in graph.layers.values() if layer.class_name != "InputLayer"]
    (line,) = [line for line in result.output.splitlines() if line.startswith("operators (")]
    assert line.startswith(f"operators ({len(ops)}, {len(set(ops))} kinds): ")
    assert "TRANSPOSE_CONV x 2" in line and "CONV_2D x 1" in line and "tflite>" not in line
