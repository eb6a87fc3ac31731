"""Right or refused: every conversion either matches Keras or stops, naming the layer and the reason.

Each case is one a new user hit: a layer shared by calls of different sizes, names that collide once made legal,
dict outputs, float64 and mixed-precision models, quantized layers, configs that disagree with their weights, a
config option no converter implements, open dimensions that need more than the default stand-in size.
"""

from __future__ import annotations

import json
import re
import warnings

import h5py
import numpy as np
import pytest
import torch
from harness import (
    FLAVOURS,
    assert_matches,
    check_conversion,
    formats_for,
    keras_module,
    keras_outputs,
    random_inputs,
    torch_outputs,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tf2torch
from tf2torch.errors import ConversionError, Tf2TorchError
from tf2torch.naming import RESERVED, TorchNames, legal_segment


# -- a layer shared by calls of different sizes ---------------------------------------------------------------
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_shared_conv_gets_each_calls_same_padding(flavour, tmp_path):
    """One Conv2D(k=4, s=2, same) on 32×32 and on 33×33: TF pads (1, 2) for 32 and (1, 1)... per call."""

    def build(k):
        a = k.Input((32, 32, 3), name="a")
        b = k.Input((33, 33, 3), name="b")
        conv = k.layers.Conv2D(5, 4, strides=2, padding="same", name="shared_conv")
        ya, yb = conv(a), conv(b)
        return k.Model([a, b], [k.layers.Flatten(name="fa")(ya), k.layers.Flatten(name="fb")(yb)])

    check_conversion(build, flavour, tmp_path)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_batch_written_into_the_graph(flavour, tmp_path):
    """``Input(batch_size=1)`` and a reshape to ``(1, -1)`` (``keras.ops.reshape``, tf_keras's ``tf.reshape``): the
    graph holds its batch, so the module is built at batch 1 (at batch 2 the Dense after it fails), with a notice;
    it matches Keras in both formats and layouts."""
    from tf2torch.errors import ConversionNotice

    def build(k):
        i = k.Input((4, 4, 3), batch_size=1, name="image")
        flat = k.ops.reshape(i, (1, -1)) if flavour == "keras3" else __import__("tensorflow").reshape(i, (1, -1))
        return k.Model(i, k.layers.Dense(5, name="head")(flat))

    with pytest.warns(ConversionNotice, match="fixes its batch size at 1 .* layer head"):
        check_conversion(build, flavour, tmp_path)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_shared_layer_converted_twice_keeps_one_set_of_weights(flavour, tmp_path):
    k = keras_module(flavour)
    a, b = k.Input((8, 8, 3)), k.Input((9, 9, 3))
    conv = k.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")
    model = k.Model([a, b], [conv(a), conv(b)])
    path = tmp_path / "m.h5"
    model.save(path)
    module = tf2torch.convert(path)
    params = list(module.parameters())
    assert sum(p.numel() for p in params) == model.count_params()


# -- names -----------------------------------------------------------------------------------------------------
COLLIDING = ["blk-1", "blk_1", "blk.1", "type", "training", "forward", "graph", "code", "in", "class", "lambda",
             "self", "1st", "_1st", "état", "etat", "__init__", "add_module", "state_dict", "None"]


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_colliding_and_reserved_layer_names(flavour, tmp_path):
    """Each name is its own submodule with its own weights, whatever sanitising makes of it."""

    def build(k):
        x = k.Input((6,), name="input")
        # TensorFlow's name scopes (tf_keras) take only [A-Za-z0-9.][A-Za-z0-9_.\/>-]*
        names = [n for n in COLLIDING if flavour == "keras3" or re.fullmatch(r"[A-Za-z0-9.][\w.>-]*", n, re.ASCII)]
        outs = [k.layers.Dense(2, name=name)(x) for name in names]
        return k.Model(x, outs)

    check_conversion(build, flavour, tmp_path, layouts=("keras",))


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_input_named_like_a_keyword(flavour, tmp_path):
    def build(k):
        x = k.Input((4,), name="in")
        y = k.Input((4,), name="lambda")
        return k.Model([x, y], k.layers.Add(name="class")([x, y]))

    check_conversion(build, flavour, tmp_path, layouts=("keras",))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.sampled_from(COLLIDING + sorted(RESERVED)[:40]),
                          st.text(alphabet="ab_-. 1éΩ", min_size=1, max_size=4)), min_size=1, max_size=12))
def test_torch_names_are_unique_legal_and_not_reserved(names):
    """Property: any Keras keys, nested or not, get distinct identifier paths that torch accepts."""
    allocator = TorchNames()
    keys = []
    for i, name in enumerate(names):
        key = name if i % 3 else f"outer/{name}"
        if key not in keys and name != "outer":
            keys.append(key)
    paths = [allocator.path(k) for k in keys]
    assert len(set(paths)) == len(paths)
    root = torch.nn.Module()
    for path in paths:
        for segment in path.split("."):
            assert segment.isidentifier() and segment not in RESERVED, segment
        parent = root
        *parents, leaf = path.split(".")
        for p in parents:
            if not hasattr(parent, p):
                parent.add_module(p, torch.nn.Module())
            parent = getattr(parent, p)
        parent.add_module(leaf, torch.nn.Identity())


NAME_PARTS = st.sampled_from(["blk", "in", "class", "training", "forward", "code", "graph", "type", "état", "1",
                               "-", "_", ".", "Ω", "lambda", "state_dict"])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(names=st.lists(st.lists(NAME_PARTS, min_size=1, max_size=3).map("".join), min_size=2, max_size=6,
                      unique=True))
def test_models_with_random_colliding_names_convert_exactly(names, tmp_path_factory):
    """Property, on real Keras 3 models: whatever the layer names, each layer keeps its own weights."""
    import keras

    x = keras.Input((5,), name="x")
    model = keras.Model(x, [keras.layers.Dense(2, name=name)(x) for name in names])
    path = tmp_path_factory.mktemp("names") / "m.keras"
    model.save(path)
    data = random_inputs(model)
    module = tf2torch.convert(path)
    assert_matches(torch_outputs(module, data, "keras"), keras_outputs(model, data))
    assert sorted(tf2torch_meta_names(module)) == sorted(names)


def tf2torch_meta_names(module):
    return list(module.tf2torch_meta["submodules"].values())


@pytest.mark.parametrize("name", ["training", "forward", "in", "class", "blk-1"])
def test_legal_segment_never_reserved(name):
    segment = legal_segment(name)
    assert segment.isidentifier() and segment not in RESERVED


# -- outputs -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_dict_outputs_follow_model_outputs_order_and_are_named(flavour, tmp_path):
    k = keras_module(flavour)
    x = k.Input((4,), name="x")
    model = k.Model(x, {"z_out": k.layers.Dense(2, name="zeta")(x), "a_out": k.layers.Dense(3, name="alpha")(x)})
    inputs = random_inputs(model)
    out = model(inputs[0], training=False)
    ref = [np.asarray(out[key]) for key in sorted(out)]  # model.outputs order: keys sorted
    for fmt in formats_for(flavour):
        path = tmp_path / f"m.{fmt}"
        model.save(path)
        module = tf2torch.convert(path)
        assert module.output_names == list(model.output_names) == ["alpha", "zeta"]
        assert module.input_names == ["x"]
        assert_matches(torch_outputs(module, inputs, "keras"), ref, what=fmt)


# -- dtypes ------------------------------------------------------------------------------------------------------
@pytest.mark.numerics
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_float64_model_computes_in_float64(flavour, tmp_path):
    k = keras_module(flavour)
    x = k.Input((6, 6, 2), dtype="float64")
    y = k.layers.Conv2D(3, 3, padding="same", dtype="float64", name="conv")(x)
    y = k.layers.BatchNormalization(dtype="float64", name="bn")(y)
    y = k.layers.Flatten(dtype="float64")(y)
    model = k.Model(x, k.layers.Dense(4, dtype="float64", name="dense")(y))
    data = np.random.default_rng(0).standard_normal((2, 6, 6, 2))
    ref = np.asarray(model(data, training=False))
    assert ref.dtype == np.float64
    path = tmp_path / "m.h5"
    model.save(path)
    for layout in ("channels_first", "keras"):
        module = tf2torch.convert(path, layout=layout)
        assert all(p.dtype == torch.float64 for p in module.parameters())
        got = torch_outputs(module, [data], layout)[0]
        assert got.dtype == np.float64
        assert np.max(np.abs(got - ref)) / np.max(np.abs(ref)) < 1e-12  # float64 round-off is ~1e-16 on any CPU
    forced = tf2torch.convert(path, dtype="float32")
    assert all(p.dtype == torch.float32 for p in forced.parameters())
    got = torch_outputs(forced, [data.astype(np.float32)], "channels_first")[0]
    assert_matches([got], [ref])


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_float32_layers_cast_float64_inputs_like_keras(flavour, tmp_path):
    def build(k):
        x = k.Input((5,), dtype="float64")
        return k.Model(x, k.layers.Dense(3, name="d")(x))

    data = [np.random.default_rng(1).standard_normal((2, 5))]
    check_conversion(build, flavour, tmp_path, inputs=data)


@pytest.mark.numerics
@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_converts_to_float32_with_a_notice(flavour, policy, tmp_path):
    k = keras_module(flavour)
    x = k.Input((8,))
    y = k.layers.Dense(6, dtype=policy, name="d1")(x)
    model = k.Model(x, k.layers.Dense(2, dtype="float32", name="d2")(y))
    path = tmp_path / "m.h5"
    model.save(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = tf2torch.convert(path)
    notices = [w for w in caught if issubclass(w.category, tf2torch.ConversionNotice)]
    assert len(notices) == 1 and policy in str(notices[0].message) and "float32" in str(notices[0].message)
    data = random_inputs(model)
    ref32 = k.Model.from_config(_float32_config(model.get_config()))
    ref32.set_weights(model.get_weights())
    got = torch_outputs(module, data, "keras")
    assert_matches(got, keras_outputs(ref32, data))
    # against Keras's own half-precision result, the difference is half-precision round-off: within (n + 3) u of
    # the sum of the terms' magnitudes (input, weight and output rounded, n products summed in any order and
    # precision), u = 2^-8 (bfloat16) or 2^-11 (float16). Not a tolerance relative to the output: a sum that
    # cancels makes that as large as it likes (2.2% > 2% in one run, bfloat16, the weights are not seeded)
    w1, b1, w2, _ = (np.abs(w) for w in ref32.get_weights())
    u = 2.0 ** (-8 if policy == "mixed_bfloat16" else -11)
    bound = ((len(w1) + 3) * u * (np.abs(data[0]) @ w1 + b1)) @ w2 + 1e-6
    error = np.abs(got[0] - keras_outputs(model, data)[0])
    assert np.all(error <= bound), f"{error.max():.3g} > {bound.min():.3g}"


def _float32_config(config):
    text = json.dumps(config)
    for policy in ("mixed_float16", "mixed_bfloat16"):
        text = text.replace(f'"{policy}"', '"float32"')
    return json.loads(text)


def test_int8_quantized_model_is_refused_by_name(tmp_path):
    import keras

    x = keras.Input((8,))
    model = keras.Model(x, keras.layers.Dense(4, name="dense_q")(x))
    model.quantize("int8")
    path = tmp_path / "q.keras"
    model.save(path)
    with pytest.raises(ConversionError, match=r"dense_q.*quantized"):
        tf2torch.convert(path)


# -- config and weights -------------------------------------------------------------------------------------------
def _edit_h5_config(path, edit):
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)


def _layer_config(config, name):
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] == name:
            return layer["config"]
    raise KeyError(name)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_config_that_disagrees_with_its_weights_is_refused(flavour, tmp_path):
    k = keras_module(flavour)
    x = k.Input((8,))
    model = k.Model(x, k.layers.Dense(3, name="dense")(x))
    path = tmp_path / "m.h5"
    model.save(path)
    _edit_h5_config(path, lambda c: _layer_config(c, "dense").update(units=5))
    with pytest.raises(ConversionError, match=r"dense \(Dense\).*\(8, 5\).*\(8, 3\)"):
        tf2torch.convert(path)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("layer_name, key, value", [
    ("dense", "future_option", True),
    ("conv", "padding_mode", "reflect"),
    ("bn", "future_axis_mode", "mean"),
])
def test_unread_config_key_with_a_value_is_refused_by_name(flavour, layer_name, key, value, tmp_path):
    """An option no converter reads must refuse the conversion, naming the layer, the key and its value."""
    k = keras_module(flavour)
    x = k.Input((6, 6, 2))
    y = k.layers.Conv2D(3, 3, name="conv")(x)
    y = k.layers.BatchNormalization(name="bn")(y)
    model = k.Model(x, k.layers.Dense(2, name="dense")(k.layers.Flatten()(y)))
    path = tmp_path / "m.h5"
    model.save(path)
    _edit_h5_config(path, lambda c: _layer_config(c, layer_name).update({key: value}))
    with pytest.raises(ConversionError, match=rf"{layer_name} .*{key}.*{value!r}".replace("(", r"\(")):
        tf2torch.convert(path)


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_call_with_training_true(flavour, tmp_path):
    """tf_keras keeps a call's recorded training=True in predict(): the dropout runs, Keras's outputs are random,
    and the conversion is refused. Keras 3 replaces it with predict()'s training=False: nothing is dropped, and
    the conversion matches predict()."""
    k = keras_module(flavour)
    x = k.Input((4,))
    model = k.Model(x, k.layers.Dropout(0.5, name="drop")(x, training=True))
    data = np.random.default_rng(0).standard_normal((64, 4)).astype("float32")
    predicted = model.predict(data, verbose=0)
    assert np.array_equal(predicted, data) == (flavour == "keras3")  # what each Keras does in predict()
    for fmt in formats_for(flavour):
        path = tmp_path / f"m.{fmt}"
        model.save(path)
        if flavour == "keras3":
            np.testing.assert_array_equal(tf2torch.convert(path)(torch.from_numpy(data)).numpy(), predicted)
            continue
        with pytest.raises(ConversionError, match=r"drop .*training=True"):
            tf2torch.convert(path)


# -- open dimensions ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_open_length_that_must_exceed_the_stand_in(flavour, tmp_path):
    """A genomics-style model: an open-length input cropped by 5000 on each side."""

    def build(k):
        x = k.Input((None, 4))
        y = k.layers.Conv1D(3, 5, padding="same", name="conv")(x)
        return k.Model(x, k.layers.Cropping1D((5000, 5000), name="crop")(y))

    data = [np.random.default_rng(0).standard_normal((1, 10050, 4)).astype("float32")]
    check_conversion(build, flavour, tmp_path, inputs=data, layouts=("keras",))


def test_no_stand_in_size_fits_says_so(tmp_path):
    import keras

    x = keras.Input((None, 4))
    y = keras.layers.Cropping1D((40000, 40000), name="crop")(x)
    path = tmp_path / "m.keras"
    keras.Model(x, y).save(path)
    with pytest.raises(Tf2TorchError, match=r"crop.*stand-in sizes.*--input-shape"):
        tf2torch.convert(path)
    module = tf2torch.convert(path, input_shapes=[[80010, 4]])
    assert module(torch.zeros(1, 80010, 4)).shape == (1, 10, 4)


# -- a user's own class named like a Keras layer ------------------------------------------------------------------
def _converted_class_names() -> list[str]:
    """Every layer class name tf2torch converts (the registry), op spellings and ``Package>Name`` keys aside (a
    registered name is Keras's own identity: tf_keras's ``Custom>CustomScaleLayer``)."""
    from tf2torch.converters import registry

    return sorted(n for n in registry.CONVERTERS if not registry.is_op_key(n) and ">" not in n)


def _user_layer(k, name: str, module: str, package: str | None = None):
    """A layer of the user's called ``name``, computing ``x * w + 1`` (no Keras layer's arithmetic), defined in
    ``module``; registered under ``package`` when given."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="w")

    def call(self, x):
        return x * self.w + 1.0

    def compute_output_shape(self, input_shape):
        return input_shape

    cls = type(name, (k.layers.Layer,), {"__module__": module, "build": build, "call": call,
                                          "compute_output_shape": compute_output_shape})
    if package is not None:
        register = k.saving.register_keras_serializable if hasattr(k, "saving") else k.utils.register_keras_serializable
        cls = register(package=package)(cls)
    return cls


def assert_refused_by_name(path, name: str, spelled: str) -> str:
    """Convert ``path`` and return the refusal, checking it is the one for a user's class named ``name``."""
    from tf2torch.errors import UnsupportedLayerError

    with pytest.raises(UnsupportedLayerError) as refused:
        tf2torch.convert(path)
    message = str(refused.value)
    assert f"user_layer ({spelled}: the file says this is your own class" in message, message
    assert f"shares its name with the Keras layer {name};" in message
    assert f"@tf2torch.register({spelled!r})" in message
    return message


TABLE_VARIANTS = [  # (Keras, file format, module the class is defined in, registered package, the spelling)
    ("keras3", "keras", "__main__", None, "__main__.{}"),
    ("tf_keras", "h5", "user_pkg.layers", "user_pkg", "user_pkg>{}"),
]


@pytest.mark.parametrize("flavour, fmt, module, package, spelled", TABLE_VARIANTS,
                         ids=[f"{v[0]}-{v[1]}" for v in TABLE_VARIANTS])
@pytest.mark.parametrize("name", _converted_class_names())
def test_user_class_named_like_a_converted_keras_layer_is_refused(name, flavour, fmt, module, package, spelled,
                                                                  tmp_path):
    """Issue 27: the converter was chosen by the bare class name, so a user's ``LayerNormalization`` computing
    ``x * (1 + scale) + beta`` got Keras's converter and came out 0.77 off. Each class name tf2torch converts, as
    a user's layer with other arithmetic, is refused by name: in ``.keras`` files by ``module`` (null for
    ``__main__``), in tf_keras ``.h5`` files by the registered ``Package>Name`` (an unregistered class there is a
    bare name: the format cannot say, see docs/custom-layers.md)."""
    k = keras_module(flavour)
    x = k.Input((3,), name="x")
    model = k.Model(x, _user_layer(k, name, module, package)(name="user_layer")(x))
    path = tmp_path / f"user.{fmt}"
    model.save(str(path))
    assert_refused_by_name(path, name, spelled.format(name))


# -- backend-tensor constants among an operation's arguments -------------------------------------------------------
TENSOR_CONSTANTS = {  # Keras 3 writes each constant as {"class_name": "__tensor__", "config": {value, dtype}}
    "scaled_by_sqrt_d": lambda k, x: x * k.ops.cast(k.ops.sqrt(16.0), "float32"),
    "vector_added": lambda k, x: k.ops.add(x, k.ops.convert_to_tensor(np.array([0.5, -1.0, 2.0], "float32"))),
    "matrix_matmul": lambda k, x: k.ops.matmul(x, k.ops.convert_to_tensor(np.arange(6.0, dtype="float32")
                                                                        .reshape(3, 2))),
}


@pytest.mark.parametrize("case", sorted(TENSOR_CONSTANTS))
def test_tensor_constant_in_an_operation_argument(case, tmp_path):
    """Issue 27: ``x * ops.cast(ops.sqrt(d), "float32")`` was refused with ``TypeError: can't convert np.ndarray
    of type numpy.object_`` (the ``__tensor__`` object was read as a dict); it is the constant it holds."""

    def build(k):
        x = k.Input((4, 3), name="x")
        return k.Model(x, TENSOR_CONSTANTS[case](k, x))

    check_conversion(build, "keras3", tmp_path, layouts=("keras",))


@pytest.mark.parametrize("call", ["add", "concatenate"])
def test_layer_called_with_a_constant_tensor_is_refused(call, tmp_path):
    """A Keras 3 layer called with a constant among its inputs (``Add()([x, ops.convert_to_tensor(c)])``): the
    reader keeps the constant in the call's argument template, no layer converter reads it, and ``Add`` of ``x``
    alone was ``x`` (exit 0, off by the constant). Refused by name instead."""
    import keras

    x = keras.Input((3,), name="x")
    c = keras.ops.convert_to_tensor(np.array([[1.0, 2.0, 3.0]], "float32"))
    layer = keras.layers.Add(name="merge") if call == "add" else keras.layers.Concatenate(name="merge")
    path = tmp_path / "constant.keras"
    keras.Model(x, layer([x, c])).save(path)
    with pytest.raises(ConversionError, match=r"layer merge \(.*\): the layer is called with the constant "
                                              r"\[\[1\.0, 2\.0, 3\.0\]\] among its inputs"):
        tf2torch.convert(path)


def _user_td_dense(keras):
    class Dense(keras.layers.Layer):
        """The user's ``Dense``: ``x @ kernel - bias`` (Keras's adds the bias)."""

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 2), name="kernel")
            self.bias = self.add_weight(shape=(2,), initializer="ones", name="bias")

        def call(self, x):
            return x @ self.kernel - self.bias

        def compute_output_shape(self, input_shape):
            return (*input_shape[:-1], 2)

        def get_config(self):  # Keras's Dense converter finds what it reads
            return {**super().get_config(), "units": 2}

    return keras.layers.TimeDistributed(Dense(), name="outer")


def _user_rnn_cell(keras):
    class SimpleRNNCell(keras.layers.Layer):
        """The user's ``SimpleRNNCell``: ``state + x @ kernel`` (no recurrent kernel, no tanh)."""

        state_size = 2

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(input_shape[-1], 2), name="kernel")

        def call(self, x, states):
            out = states[0] + x @ self.kernel
            return out, [out]

    return keras.layers.RNN(SimpleRNNCell(), name="outer")


@pytest.mark.parametrize("wrap", [_user_td_dense, _user_rnn_cell], ids=["time_distributed", "rnn_cell"])
def test_users_class_inside_a_wrapper_is_refused(wrap, tmp_path):
    """A user's class named like a Keras layer, nested in a Keras wrapper's config (the layer of
    ``TimeDistributed``, an RNN's cell): the wrapper's converter looked the inner class up by its bare name, so
    ``TimeDistributed(user Dense)`` converted as Keras's ``Dense``. The nested class is spelled from its
    ``module`` like any layer, and the wrapper refuses it by that spelling."""
    import keras

    x = keras.Input((3, 4), name="x")
    path = tmp_path / "wrapped.keras"
    keras.Model(x, wrap(keras)(x)).save(path)
    with pytest.raises(ConversionError, match=rf"layer outer \(.*\): .*{__name__}\.(Dense|SimpleRNNCell)\b"):
        tf2torch.convert(path)
