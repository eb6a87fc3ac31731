"""TF 2 while loops in TensorFlow graphs (issue 10): ``tf.while_loop`` in a ``tf.Module`` SavedModel and Keras
RNNs traced into a graph (a Keras 3 ``export()``, a tf_keras SavedModel seen through its serving signature).
The loop's cond and body are converted as graphs of their own and run in a Python loop; TensorLists are
stacked tensors. Every conversion is compared with TensorFlow's own output at the suite's tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import assert_matches, torch_outputs
from tf_graph_fixtures import (
    TOKENS,
    bidirectional_rnn,
    image_batch,
    masked_rnn,
    recurrent_model,
    stacked_backwards_rnn,
    while_loop_module,
)

import tf2torch
from tf2torch.errors import UnsupportedLayerError


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    return while_loop_module(tmp_path_factory.mktemp("loop") / "saved")


def signature_outputs(directory, x, signature="serving_default"):
    import tensorflow as tf

    fn = tf.saved_model.load(str(directory)).signatures[signature]
    (name,) = fn.structured_input_signature[1]
    out = fn(**{name: tf.constant(x)})
    return [out[k].numpy() for k in sorted(out)]


def loops_in(module):
    return [m for m in module.modules() if type(m).__name__ == "TFWhile"]


def test_while_loop_module(loop, tmp_path):
    """A hand-written recurrence: captured weights folded into the body's matmuls, the trip count read from the
    input at run time, a TensorArray of the steps; any sequence length runs, and save/load keeps the loop."""
    module = tf2torch.convert(loop["dir"])
    assert_matches(torch_outputs(module, [loop["inputs"]], "keras"), loop["reference"], what="tf.while_loop")
    (while_,) = loops_in(module)
    assert sum(isinstance(m, torch.nn.Linear) for m in while_.body.modules()) == 2
    longer = image_batch((3, 11, 3), seed=9)
    assert_matches(torch_outputs(module, [longer], "keras"), signature_outputs(loop["dir"], longer),
                   what="11 steps")
    tf2torch.save(module, tmp_path / "loop.pt")
    loaded = tf2torch.load(tmp_path / "loop.pt")
    assert_matches(torch_outputs(loaded, [longer], "keras"), signature_outputs(loop["dir"], longer),
                   what="reloaded")


def test_while_loop_inspect_and_verify(loop):
    from click.testing import CliRunner

    from tf2torch.cli import main

    result = CliRunner().invoke(main, ["inspect", str(loop["dir"])])
    assert result.exit_code == 0, result.output
    assert "tf.raw>While" in result.output and "layers without a converter: 0" in result.output
    report = tf2torch.verify(loop["dir"], input_shapes=[[6, 3]], dtype="both")
    assert report.ok, [(r.node, r.status) for r in report.layers]
    rows = {r.node.split("/")[-1]: r for r in report.layers}
    assert rows["while"].status == "pass"  # the loop's `last` output, compared with TensorFlow's
    assert rows["while"].float64.max_rel_error < 1e-12  # the loop's functions retyped to float64 too


def test_unsupported_op_in_loop_body_listed_by_name(tmp_path):
    fixture = while_loop_module(tmp_path / "saved", unsupported_in_body=True)
    with pytest.raises(UnsupportedLayerError,
                       match=r"while_/body/while_/bessel_i0/BesselI0 \(operation tf\.raw>BesselI0\)"):
        tf2torch.convert(fixture["dir"])


def test_reading_keeps_what_does_not_convert(tmp_path):
    """Readers read (issue #21): the body's op without a converter is read into the loop's sub-IR; the pass after
    reading (``tf2torch/support.py``) names it, at its path, without the reader consulting any converter."""
    from tf2torch.readers import open_model
    from tf2torch.support import unsupported_in

    fixture = while_loop_module(tmp_path / "saved", unsupported_in_body=True)
    with open_model(fixture["dir"]) as graph:
        missing, _ = unsupported_in(graph, "")
    assert missing == [("while_/body/while_/bessel_i0/BesselI0", "tf.raw>BesselI0")]


@pytest.mark.parametrize("cell, return_sequences, steps", [("LSTM", False, 5), ("GRU", True, None),
                                                            ("SimpleRNN", False, 4)])
def test_keras3_exported_rnn(tmp_path, cell, return_sequences, steps):
    """Keras 3 `model.export()`: the RNN is a While loop over a TensorList of the time steps."""
    import keras

    model = recurrent_model(keras, cell, return_sequences, steps)
    model.export(str(tmp_path / "exported"), verbose=False)
    x = image_batch((2, steps or 7, 3), seed=3)
    module = tf2torch.convert(tmp_path / "exported")
    assert len(loops_in(module)) == 1
    assert_matches(torch_outputs(module, [x], "keras"), [np.asarray(model(x))], what=f"Keras 3 {cell}")
    report = tf2torch.verify(tmp_path / "exported", module, inputs=[x])
    assert report.ok, [(r.node, r.status) for r in report.layers]


@pytest.mark.parametrize("build", [bidirectional_rnn, stacked_backwards_rnn, masked_rnn])
def test_keras3_exported_rnn_variants(tmp_path, build):
    """Bidirectional (ReverseV2, two loops), stacked with go_backwards, masked (the body selects with the mask)."""
    import keras

    model = build(keras)
    x = TOKENS if build is masked_rnn else image_batch((2, 6, 3), seed=3)
    model.export(str(tmp_path / "saved"), verbose=False)
    module = tf2torch.convert(tmp_path / "saved")
    assert len(loops_in(module)) == (2 if build is not masked_rnn else 1)
    assert_matches(torch_outputs(module, [x], "keras"), [np.asarray(model(x))], what=build.__name__)


def test_tf_keras_rnn_through_its_signature(tmp_path):
    """A tf_keras SavedModel converts from its Keras metadata by default; through its serving signature its
    masked LSTM is the traced While loop (selecting with the mask in its body), and converts too."""
    import tf_keras

    model = masked_rnn(tf_keras)
    model.save(str(tmp_path / "saved"))
    module = tf2torch.convert(tmp_path / "saved", signature="serving_default")
    assert len(loops_in(module)) == 1
    assert_matches(torch_outputs(module, [TOKENS], "keras"), [model(TOKENS).numpy()], what="tf_keras LSTM signature")
    report = tf2torch.verify(tmp_path / "saved", module, inputs=[TOKENS], tf_options={"signature": "serving_default"})
    assert report.ok, [(r.node, r.status) for r in report.layers]
