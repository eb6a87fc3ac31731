"""The IR is declared data (issue #21): every field declared (nothing else can be set), weights read through one
declared ``WeightSource``, and ``from_json(to_json(g)) == g`` through JSON text for every field, on a table of
the IRs the readers build (Keras .h5 and .keras, a SavedModel with Keras metadata and a traced layer, a raw TF
graph with a while loop's sub-graphs, TFLite). ``tests/ir_check.py`` holds the check; ``conftest.py`` also runs
it on every graph any test reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness import keras_module
from ir_check import assert_round_trip, sub_graphs
from tf_graph_fixtures import small_cnn, while_loop_module

import tf2torch
from tf2torch.graph import (
    InputSpec,
    KerasGraph,
    Layer,
    Node,
    Overrides,
    TensorRef,
    Weight,
    WeightFunction,
)


def keras_file(fmt: str, flavour: str):
    def build(directory: Path) -> Path:
        model = small_cnn(keras_module(flavour))
        path = directory / f"m.{fmt}"
        model.save(path)
        return path
    return build


def saved_model_with_traced_layer(directory: Path) -> Path:
    """tf_keras SavedModel: layers from the Keras metadata (``object_paths``), a Lambda from its traced function."""
    import tf_keras

    inputs = tf_keras.Input((6,), name="features")
    h = tf_keras.layers.Dense(4, name="dense")(inputs)
    h = tf_keras.layers.Lambda(lambda t: t * t * 0.5 - t[:, :1], name="fn")(h)
    tf_keras.Model(inputs, h).save(str(directory / "saved"))
    return directory / "saved"


def tf_loop(directory: Path) -> Path:
    return while_loop_module(directory / "loop")["dir"]


def tflite_file(directory: Path) -> Path:
    import tensorflow as tf
    import tf_keras

    i = tf_keras.Input((8, 8, 3))
    x = tf_keras.layers.Conv2D(4, 3, padding="same", activation="relu")(i)
    x = tf_keras.layers.GlobalAveragePooling2D()(x)
    model = tf_keras.Model(i, tf_keras.layers.Dense(2)(x))
    path = directory / "m.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def has_offsets(graph: KerasGraph) -> bool:
    return any(w.offset is not None for layer in graph.layers.values() for w in layer.weights)


# (IR, how it is built, what of it must be there for the row to prove something)
IRS = [
    ("h5_keras3", keras_file("h5", "keras3"), has_offsets),
    ("h5_tf_keras", keras_file("h5", "tf_keras"), has_offsets),
    ("keras_v3", keras_file("keras", "keras3"), has_offsets),
    ("savedmodel_keras", saved_model_with_traced_layer,
     lambda g: bool(g.object_paths) and any(where.endswith("/function") for where, _ in sub_graphs(g))),
    ("tf_while_loop", tf_loop, lambda g: {w.rsplit("/", 1)[-1] for w, _ in sub_graphs(g)} == {"cond", "body"}),
    ("tflite", tflite_file, lambda g: g.source_format == "tflite" and len(g.layers) > 3),
]


@pytest.mark.parametrize("build, expect", [row[1:] for row in IRS], ids=[row[0] for row in IRS])
def test_every_field_survives_json(build, expect, tmp_path):
    """Each reader's IR comes back equal from its JSON text, sub-graphs too, and its weight references still
    resolve: the round-tripped graph reads the same values through the original's weight source."""
    with tf2torch.readers.open_model(build(tmp_path)) as graph:
        assert expect(graph), "the row's IR lacks what it is meant to prove"
        assert_round_trip(graph)
        back = KerasGraph.from_json(json.loads(json.dumps(graph.to_json())))
        back.weight_source = graph.weight_source
        pairs = [(w, v) for a, b in zip(graph.layers.values(), back.layers.values())
                 for w, v in zip(a.weights, b.weights)]
        assert pairs
        for w, v in pairs:
            assert np.array_equal(graph.load_weight(w), back.load_weight(v)), w.key


def tiny_graph() -> KerasGraph:
    w = Weight("kernel", (2, 3), "float32", "model_weights/d/kernel:0", 128)
    return KerasGraph("m", {"d": Layer("d", "Dense", {"units": 3}, [w])}, [Node("d_0", "d", [TensorRef("in_0")])],
                      [TensorRef("in_0")], [TensorRef("d_0")], [InputSpec("in", (None, 2), declared=False)],
                      output_names=["d"], containers=[], object_paths={"d": "root.layer-1"})


@pytest.mark.parametrize("make", [lambda: tiny_graph(), lambda: tiny_graph().layers["d"],
                                  lambda: tiny_graph().nodes[0], lambda: tiny_graph().input_specs[0],
                                  lambda: tiny_graph().layers["d"].weights[0]],
                         ids=["KerasGraph", "Layer", "Node", "InputSpec", "Weight"])
def test_an_undeclared_field_is_refused(make):
    """Slots: a reader cannot hang data on an IR object where ``to_json`` would not see it."""
    with pytest.raises(AttributeError):
        make().object_path = "root"


def test_tiny_graph_round_trips_every_field():
    """Every declared field set to a value that is not its default, and back equal (through JSON text)."""
    graph = tiny_graph()
    assert_round_trip(graph)
    back = KerasGraph.from_json(json.loads(json.dumps(graph.to_json())))
    assert back.input_specs[0].declared is False and back.object_paths == {"d": "root.layer-1"}


def test_json_of_older_files_loads_with_defaults():
    """A ``.pt`` written before ``offset``, ``declared`` and ``object_paths`` travelled still loads."""
    data = tiny_graph().to_json()
    for key in ("object_paths", "output_names", "containers", "trained_with"):
        del data[key]
    del data["layers"]["d"]["weights"][0]["offset"], data["input_specs"][0]["declared"]
    back = KerasGraph.from_json(data)
    assert (back.object_paths, back.containers) == ({}, None)
    assert back.layers["d"].weights[0].offset is None and back.input_specs[0].declared is True


@pytest.mark.parametrize("where, value", [
    (("layers", "d", "weights", 0, "offset"), -1),
    (("layers", "d", "weights", 0, "offset"), "128"),
    (("input_specs", 0, "declared"), "no"),
    (("object_paths",), {"d": 1}),
    (("object_paths",), ["root.layer-1"]),
    (("containers",), [1]),
])
def test_wrong_types_in_a_file_are_type_errors(where, value):
    """Files are hostile: ``io.read_saved`` turns these into one 'damaged tf2torch file' line."""
    data = tiny_graph().to_json()
    target = data
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(TypeError):
        KerasGraph.from_json(data)


def test_weight_sources_compose():
    """``Overrides`` reads the keys it names its own way and the rest from its fallback; without one, an unknown
    key is an error, not zeros. No source at all: zeros (the structure-only graph of a loaded ``.pt``)."""
    graph = tiny_graph()
    weight = graph.layers["d"].weights[0]
    other = Weight("bias", (3,), "float32", "model_weights/d/bias:0")
    graph.weight_source = Overrides({weight.key: lambda: np.ones((2, 3), "float32")},
                                    WeightFunction(lambda w: np.full(w.shape, 7, w.dtype)))
    assert graph.load_weight(weight).tolist() == [[1, 1, 1]] * 2 and graph.load_weight(other).tolist() == [7] * 3
    graph.weight_source = Overrides({})
    with pytest.raises(KeyError, match="bias"):
        graph.load_weight(other)
    graph.weight_source = None
    assert not graph.load_weight(other).any()
