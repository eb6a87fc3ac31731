"""TensorFlow graphs: SavedModel signatures, TF1 checkpoints with their MetaGraph, frozen GraphDefs.

Fixtures are made here with TensorFlow (tests/tf_graph_fixtures.py); every conversion is compared with
TensorFlow's own output at the suite's tolerance, in both layouts.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from harness import LAYOUTS, assert_matches, torch_outputs
from tf_graph_fixtures import (
    custom_layer_model,
    image_batch,
    input_pipeline_frozen_graph,
    nested_recurrent,
    randomize_batch_norms,
    small_cnn,
    tf1_training_graph,
    tf_module_saved_model,
)

import tf2torch
from tf2torch.errors import Tf2TorchError
from tf2torch.readers import file_kind

CONSTANTS = {"is_training": False}


@pytest.fixture(scope="module")
def tf1(tmp_path_factory):
    return tf1_training_graph(tmp_path_factory.mktemp("tf1") / "model_dir")


@pytest.fixture(scope="module")
def tf_module(tmp_path_factory):
    return tf_module_saved_model(tmp_path_factory.mktemp("tfmodule") / "saved")


def outputs_of(module, inputs, layout):
    return torch_outputs(module, [inputs], layout)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tf1_checkpoint_directory(tf1, layout):
    """The checkpoint directory as given: a `checkpoint` file with a foreign absolute path, a stale
    `_output_shapes`, a training graph with tf.cond on is_training around batch norm and dropout."""
    meta = (tf1["prefix"] + ".meta", (tf1["dir"] / "checkpoint"))
    before = [open(p, "rb").read() for p in meta]
    module = tf2torch.convert(tf1["dir"], layout=layout, constants=CONSTANTS)
    assert_matches(outputs_of(module, tf1["inputs"], layout), [tf1["reference"]], what="checkpoint dir")
    assert [open(p, "rb").read() for p in meta] == before  # cleaned in memory only


@pytest.mark.parametrize("form", ["prefix", "prefix_without_step", "index_file"])
def test_tf1_checkpoint_path_forms(tf1, form):
    path = {"prefix": tf1["prefix"], "prefix_without_step": str(tf1["dir"] / "model.ckpt"),
            "index_file": tf1["prefix"] + ".index"}[form]
    assert file_kind(path) == "checkpoint"
    module = tf2torch.convert(path, constants=CONSTANTS)
    assert_matches(outputs_of(module, tf1["inputs"], "channels_first"), [tf1["reference"]], what=form)


def test_tf1_batch_norm_uses_moving_statistics(tf1):
    module = tf2torch.convert(tf1["dir"], constants=CONSTANTS)
    norms = [m for m in module.modules() if type(m).__name__ == "BatchNorm2d"]
    assert len(norms) == 1
    np.testing.assert_array_equal(norms[0].running_mean.numpy(), tf1["moving_mean"])


def test_tf1_pruned_to_inference_path(tf1):
    module = tf2torch.convert(tf1["dir"], constants=CONSTANTS)
    classes = {layer["class_name"] for layer in module.tf2torch_meta["graph"]["layers"].values()}
    assert not any(c.split(">")[-1] in ("RandomUniform", "Switch", "Merge", "ApplyAdam", "AssignSub")
                   for c in classes), classes
    assert [s["name"] for s in module.tf2torch_meta["graph"]["input_specs"]] == ["x"]
    # an NHWC conv trunk runs channels-first without a single transpose
    permutes = [n for n in module.graph.nodes if n.op == "call_method" and n.target == "permute"]
    assert permutes == []


def test_tf1_predicate_must_be_fixed(tf1):
    with pytest.raises(Tf2TorchError, match="--constant"):
        tf2torch.convert(tf1["dir"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_frozen_graph(tf1, layout):
    module = tf2torch.convert(tf1["dir"] / "frozen.pb", layout=layout, constants=CONSTANTS)
    assert_matches(outputs_of(module, tf1["inputs"], layout), [tf1["reference"]], what="frozen .pb")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_tf_module_saved_model(tf_module, layout):
    module = tf2torch.convert(tf_module["dir"], layout=layout)
    assert_matches(outputs_of(module, tf_module["inputs"], layout), tf_module["reference"], what="tf.Module")


def test_save_load_round_trip(tf1, tmp_path):
    module = tf2torch.convert(tf1["dir"], constants=CONSTANTS)
    tf2torch.save(module, tmp_path / "m.pt")
    loaded = tf2torch.load(tmp_path / "m.pt")
    assert_matches(outputs_of(loaded, tf1["inputs"], "channels_first"), [tf1["reference"]], what="reloaded")


def test_without_tensorflow_one_line_says_how_to_install(tf_module, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.modules["tensorflow"] = None  # as if TensorFlow were not installed
        from tf2torch.cli import main
        main(["convert", {str(tf_module["dir"])!r}, {str(tmp_path / "out.pt")!r}])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        "error: reading SavedModels, TF checkpoints and frozen graphs needs TensorFlow: pip install -c constraints.txt "
        "-e '.[tf]' in the tf2torch clone (tf2torch is not on PyPI)"]
    assert not (tmp_path / "out.pt").exists()


# -- Keras SavedModels ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("build, shape, layer", [(small_cnn, (2, 12, 12, 3), "conv1"),
                                                  (nested_recurrent, (2, 6, 4), "inner/inner_dense")])
def test_tf_keras_saved_model_equals_h5(tmp_path, build, shape, layer):
    """tf_keras `model.save(dir)`: structure from keras_metadata.pb, weights from variables/; the conversion
    is the same as converting the .h5 of the model."""
    import tf_keras

    model = build(tf_keras)
    randomize_batch_norms(model)
    model.save(str(tmp_path / "saved"))
    model.save(str(tmp_path / "model.h5"))
    inputs = image_batch(shape)
    reference = [model(inputs, training=False).numpy()]
    from_dir = tf2torch.convert(tmp_path / "saved")
    from_h5 = tf2torch.convert(tmp_path / "model.h5")
    assert from_dir.code == from_h5.code
    graph = from_dir.tf2torch_meta["graph"]
    assert graph["source_format"] == "savedmodel" and layer in graph["layers"]
    for key, value in from_h5.state_dict().items():
        np.testing.assert_array_equal(from_dir.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    for layout in LAYOUTS:
        assert_matches(torch_outputs(tf2torch.convert(tmp_path / "saved", layout=layout), [inputs], layout),
                       reference, what=f"tf_keras SavedModel {layout}")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_keras3_export(tmp_path, layout):
    """Keras 3 `model.export(dir)`: no Keras metadata, converted from the serving signature's graph."""
    import keras

    model = small_cnn(keras)
    randomize_batch_norms(model)
    model.export(str(tmp_path / "exported"), verbose=False)
    inputs = image_batch((2, 12, 12, 3))
    reference = [np.asarray(model(inputs, training=False))]
    module = tf2torch.convert(tmp_path / "exported", layout=layout)
    assert_matches(torch_outputs(module, [inputs], layout), reference, what="Keras 3 export")


def test_tf_keras_saved_model_with_custom_layer(tmp_path):
    """A custom layer tf2torch has no converter for, whose class exists only in the script that saved the
    model: the model comes from its Keras config, the custom layer from its own traced call function, one
    submodule named after it; converted, inspected and verified in processes that never saw that class."""
    import tf_keras

    model = custom_layer_model(tf_keras)
    saved = tmp_path / "custom"
    model.save(str(saved))
    x = image_batch((2, 10, 10, 3))

    proc = subprocess.run([sys.executable, "-m", "tf2torch", "convert", str(saved), str(tmp_path / "out.pt")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    module = tf2torch.load(tmp_path / "out.pt")
    assert_matches(torch_outputs(module, [x], "channels_first"), [model(x).numpy()], what="custom layer")
    layers = module.tf2torch_meta["graph"]["layers"]
    assert {k: v["class_name"] for k, v in layers.items()} == {
        "image": "InputLayer", "conv": "Conv2D", "gated": "tf.traced>KerasLayer", "gap": "GlobalAveragePooling2D",
        "head": "Dense"}
    assert layers["gated"]["config"]["keras_class_name"] == "GatedScale"
    assert sorted(module.tf2torch_meta["submodules"]) == ["conv", "gap", "gated", "head"]
    from click.testing import CliRunner

    from tf2torch.cli import main

    # (in this process too the class is unknown to Keras: it was never registered, and it is local to a function)
    result = CliRunner().invoke(main, ["inspect", str(saved)])
    assert result.exit_code == 0 and "gated  tf.traced>KerasLayer" in result.output, result.output
    result = CliRunner().invoke(main, ["verify", str(saved), str(tmp_path / "out.pt")])
    assert result.exit_code == 0 and "gated" in result.output and "OK:" in result.output, result.output


def test_tf_keras_saved_model_lambda_from_its_trace(tmp_path):
    """A Lambda's bytecode is never run: in a SavedModel its traced call function converts instead."""
    import tf_keras

    inputs = tf_keras.Input((6,), name="features")
    h = tf_keras.layers.Dense(4, name="dense")(inputs)
    h = tf_keras.layers.Lambda(lambda t: t * t * 0.5 - t[:, :1], name="fn")(h)  # (no globals: tf_keras saves it)
    model = tf_keras.Model(inputs, h)
    model.save(str(tmp_path / "saved"))
    x = image_batch((3, 6))
    module = tf2torch.convert(tmp_path / "saved")
    assert module.tf2torch_meta["graph"]["layers"]["fn"]["class_name"] == "tf.traced>KerasLayer"
    assert_matches(torch_outputs(module, [x], "keras"), [model(x).numpy()], what="Lambda from its trace")


@pytest.mark.slow
def test_mobilenet_v2_saved_model_equals_h5(tmp_path):
    import tf_keras

    model = tf_keras.applications.MobileNetV2(input_shape=(64, 64, 3), weights=None, alpha=0.35, classes=10)
    randomize_batch_norms(model)
    model.save(str(tmp_path / "saved"))
    model.save(str(tmp_path / "model.h5"))
    inputs = image_batch((2, 64, 64, 3))
    from_dir = tf2torch.convert(tmp_path / "saved")
    from_h5 = tf2torch.convert(tmp_path / "model.h5")
    assert from_dir.code == from_h5.code
    for key, value in from_h5.state_dict().items():
        np.testing.assert_array_equal(from_dir.state_dict()[key].numpy(), value.numpy(), err_msg=key)
    assert_matches(torch_outputs(from_dir, [inputs], "channels_first"), [model(inputs, training=False).numpy()],
                   what="MobileNetV2 SavedModel")


# -- command line: convert, inspect, verify -----------------------------------------------------------------
def test_cli_convert_inspect_verify_checkpoint(tf1, tmp_path):
    from click.testing import CliRunner

    from tf2torch.cli import main

    runner = CliRunner()
    out = tmp_path / "out.pt"
    result = runner.invoke(main, ["convert", str(tf1["dir"]), str(out), "--constant", "is_training=false"])
    assert result.exit_code == 0, result.output
    module = tf2torch.load(out)
    assert_matches(outputs_of(module, tf1["inputs"], "channels_first"), [tf1["reference"]], what="cli .pt")

    result = runner.invoke(main, ["inspect", str(tf1["dir"]), "--constant", "is_training=false"])
    assert result.exit_code == 0, result.output
    assert "placeholder is_training:0: bool [] (fixed by --constant)" in result.output
    assert "placeholder x:0: float32 [?, 16, 16, 3]" in result.output
    assert "layers without a converter: 0" in result.output

    result = runner.invoke(main, ["inspect", str(tf1["dir"])])  # the placeholders come before the error
    assert result.exit_code == 2 and "placeholder is_training:0: bool []" in result.output
    assert "--constant" in result.output

    result = runner.invoke(main, ["verify", str(tf1["dir"]), str(out), "--constant", "is_training=false"])
    assert result.exit_code == 0, result.output
    assert "conv1/Conv2D" in result.output and "dw/depthwise" in result.output and "OK:" in result.output


def test_verify_float64_tells_round_off(tf1):
    """`--dtype both` on a TF graph: TensorFlow runs the same graph retyped to float64 (batch norm as its affine
    form, for want of a float64 kernel); every float64 error is float64 round-off."""
    report = tf2torch.verify(tf1["dir"], dtype="both", tf_options={"constants": CONSTANTS})
    assert report.ok
    assert "bn/cond_1/FusedBatchNormV3_1" in [r.node for r in report.layers]
    assert all(r.float64 is not None and r.float64.max_rel_error < 1e-12 for r in report.layers), report.layers


def test_verify_saved_models(tf_module):
    report = tf2torch.verify(tf_module["dir"])
    assert report.ok and len(report.layers) == 7


# -- issue 13: training graphs ----------------------------------------------------------------------------------
def test_tf1_graph_with_if_ops(tmp_path):
    """tf.cond as `If` / `StatelessIf` (TF 2 control flow in a tf.compat.v1 graph): only the taken branch is
    inlined and converted."""
    fixture = tf1_training_graph(tmp_path / "v2", control_flow_v2=True)
    module = tf2torch.convert(fixture["dir"], constants=CONSTANTS)
    assert_matches(outputs_of(module, fixture["inputs"], "channels_first"), [fixture["reference"]], what="If")
    classes = [layer["class_name"] for layer in module.tf2torch_meta["graph"]["layers"].values()]
    assert "tf.raw>FusedBatchNormV3" in classes and not any("If" in c or "Random" in c for c in classes), classes
    assert tf2torch.verify(fixture["dir"], module, tf_options={"constants": CONSTANTS}).ok


def test_placeholder_with_default_is_folded(tmp_path):
    """An `is_training` placeholder_with_default(False) gates the conds: folded to its default unasked."""
    fixture = tf1_training_graph(tmp_path / "default", with_default=True)
    module = tf2torch.convert(fixture["dir"])
    assert_matches(outputs_of(module, fixture["inputs"], "channels_first"), [fixture["reference"]], what="default")


def test_tf1_ref_variable_graph_outputs_are_the_model_not_its_optimizer(tmp_path):
    """A TF 1.x training graph as written by default (ref variables): the unconsumed ``ApplyAdam`` updates (with a
    float output, fed a learning-rate placeholder), a metric's ``Shape`` and a moving-mean update that is the
    variable itself once ``is_training`` is false are not the model's outputs (musicnn's checkpoints)."""
    fixture = tf1_training_graph(tmp_path / "ref", ref_variables=True)
    module = tf2torch.convert(fixture["dir"], constants=CONSTANTS)
    graph = module.tf2torch_meta["graph"]
    assert [s["name"] for s in graph["input_specs"]] == ["x"]
    layer_of = {n["id"]: n["layer"] for n in graph["nodes"]}
    assert [layer_of[r["node"]] for r in graph["outputs"]] == ["probs"], graph["outputs"]
    assert_matches(outputs_of(module, fixture["inputs"], "channels_first"), [fixture["reference"]], what="ref vars")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_frozen_graph_with_its_batch_fixed(tmp_path, layout):
    """A TF 1 frozen graph whose placeholder is [1, 8, 8, 3] and whose reshape names that batch (``[1, -1]``, as
    research code and phone exports write it): built at batch 1, where examples of batch 2 fail in the reshape;
    matches TensorFlow and says in a notice that it takes batches of 1 only."""
    import tensorflow as tf

    from tf2torch.errors import ConversionNotice

    rng = np.random.default_rng(3)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 8, 8, 3), name="x")
        y = tf.nn.relu(tf.nn.conv2d(x, rng.standard_normal((3, 3, 3, 4)).astype("float32"), 1, "SAME"))
        tf.identity(tf.matmul(tf.reshape(y, [1, -1]), rng.standard_normal((256, 5)).astype("float32")), name="y")
    path = tmp_path / "fixed.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    inputs = image_batch((1, 8, 8, 3))
    with tf.compat.v1.Session(graph=graph) as session:
        reference = session.run("y:0", {"x:0": inputs})
    with pytest.warns(ConversionNotice, match="fixes its batch size at 1"):
        module = tf2torch.convert(path, layout=layout)
    assert module.tf2torch_meta["batch"] == 1
    assert_matches(outputs_of(module, inputs, layout), [reference], what="fixed batch")


HOSTILE_EXPANSIONS = {  # op → (what the frozen graph computes from its 8×8×3 input, the refused op)
    "tile": (lambda tf, x: tf.tile(x, [1, 100000, 100000, 1]), "Tile"),
    "pad": (lambda tf, x: tf.pad(x, [[0, 0], [100000, 0], [0, 100000], [0, 0]]), "Pad"),
    "mirror_pad": (lambda tf, x: tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, 10 ** 9]], mode="SYMMETRIC"), "MirrorPad"),
    "one_hot": (lambda tf, x: tf.one_hot(tf.cast(x, tf.int32), 10 ** 9), "OneHot"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_EXPANSIONS))
def test_a_hostile_expansion_is_refused_before_it_is_built(tmp_path, case):
    """A frozen graph whose constants make an 8×8×3 input's output 1e8 times larger or more (tiling by 100000 ×
    100000, paddings of 100000 or 1e9, a one-hot depth of 1e9): refused by name before the example run would
    allocate it (the tiling asked the allocator for 15 TB)."""
    import tensorflow as tf

    build, op = HOSTILE_EXPANSIONS[case]
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 8, 8, 3), name="x")
        tf.identity(build(tf, x), name="y")
    path = tmp_path / f"{case}.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(Tf2TorchError, match=f"{op}.*more than"):
        tf2torch.convert(path)


def test_frozen_graph_fed_by_an_input_pipeline(tmp_path):
    """deepbrain's graph.pb: the image placeholder defaults to a tf.data iterator's next batch, so it is the
    input; the sink that reads the iterator's labels is refused with the way out, and so is the dropout that a
    training flag defaulting to True leaves on the path; named, the output converts and matches TensorFlow."""
    fixture = input_pipeline_frozen_graph(tmp_path / "pipeline")
    with pytest.raises(Tf2TorchError, match=r"read the training input pipeline \(ones_like\S* reads "
                                            r"IteratorGetNext:1.*--outputs"):
        tf2torch.convert(fixture["path"])
    with pytest.raises(Tf2TorchError, match=r"RandomUniform.*draws random numbers.*--constant"):
        tf2torch.convert(fixture["path"], outputs=["prob"])
    for layout in LAYOUTS:
        module = tf2torch.convert(fixture["path"], outputs=["prob"], constants={"training": False}, layout=layout)
        assert [s["name"] for s in module.tf2torch_meta["graph"]["input_specs"]] == ["img"]
        assert_matches(outputs_of(module, fixture["inputs"], layout), [fixture["reference"]], what=layout)


def test_checkpoint_prefix_is_a_directory(tf1, tmp_path):
    """`saver.save(sess, "model_dir/")` writes `model_dir/.index`, `.meta`, `.data-...`: the folder is the prefix."""
    import shutil

    folder = tmp_path / "model_dir"
    folder.mkdir()
    for suffix in (".index", ".meta", ".data-00000-of-00001"):
        shutil.copy(tf1["prefix"] + suffix, folder / suffix)
    assert file_kind(folder) == "checkpoint"
    module = tf2torch.convert(folder, constants=CONSTANTS)
    assert_matches(outputs_of(module, tf1["inputs"], "channels_first"), [tf1["reference"]], what="dir prefix")


@pytest.mark.parametrize("control_flow_v2", [True, False])
def test_tf1_graph_while_loop(tmp_path, control_flow_v2):
    """A tf.compat.v1 graph's `tf.while_loop` whose body reads a resource variable, saved as a checkpoint: a
    `While` op with its functions converts (the variable fed to the body as its value); TF 1 loop frames
    (control flow v1: Enter / Exit / NextIteration) are rebuilt as one (readers/tf_frames.py)."""
    import tensorflow as tf

    v1 = tf.compat.v1
    if not control_flow_v2:
        v1.disable_control_flow_v2()
    try:
        graph = tf.Graph()
        with graph.as_default():
            x = v1.placeholder(tf.float32, [None, 4], name="x")
            w = v1.get_variable("w", [4, 4], use_resource=True)
            _, y = tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, w) + x)), [0, x],
                                 name="loop")
            y = tf.identity(y, name="y")
            saver = v1.train.Saver()
            inputs = image_batch((2, 4))
            with v1.Session(graph=graph) as session:
                session.run(v1.global_variables_initializer())
                reference = session.run(y, {x: inputs})
                saver.save(session, str(tmp_path / "model.ckpt"))
    finally:
        v1.enable_control_flow_v2()
    module = tf2torch.convert(tmp_path, outputs=["y:0"])  # (the loop's other outputs are sinks too)
    assert_matches(torch_outputs(module, [inputs], "keras"), [reference],
                   what=f"control flow v{2 if control_flow_v2 else 1}")


def test_damaged_graph_files_one_line(tmp_path):
    from click.testing import CliRunner

    from tf2torch.cli import main

    (tmp_path / "broken.pb").write_bytes(b"\x0a\xff\xff\xff\x0f garbage")
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "saved_model.pb").write_bytes(b"not a protobuf")
    for path in (tmp_path / "broken.pb", saved):
        result = CliRunner().invoke(main, ["convert", str(path), str(tmp_path / "out.pt")])
        assert result.exit_code == 2, result.output
        assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1, result.output
        assert not (tmp_path / "out.pt").exists()


def test_chosen_inputs_and_outputs(tf1):
    """--inputs / --outputs: only the ops between them are converted (the logits from the first ReLU on)."""
    module = tf2torch.convert(tf1["dir"], constants=CONSTANTS, inputs=["conv1/Relu:0"], outputs=["dense/add"])
    graph = module.tf2torch_meta["graph"]
    assert [(s["name"], list(s["shape"])) for s in graph["input_specs"]] == [("conv1_Relu", [8, 8, 8])]
    assert not any(c["class_name"] in ("tf.raw>Conv2D", "tf.raw>Softmax") for c in graph["layers"].values())
    report = tf2torch.verify(tf1["dir"], module, tf_options=module.tf2torch_meta["tf_options"])
    assert report.ok and [r.node for r in report.layers][-1] == "dense/add"
