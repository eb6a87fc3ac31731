"""TF 1 while loops (control flow v1: ``Enter`` / ``Merge`` / ``Switch`` / ``NextIteration`` / ``Exit`` frames and
``TensorArrayV3``) in ``tf.compat.v1`` checkpoints (issue 22): each frame is rebuilt as a TF 2 ``While`` with its
cond and body functions (``readers/tf_frames.py``) and converted like one. Every checkpoint is built here in graph
mode with control flow v2 off, random weights, saved with ``tf.compat.v1.train.Saver``, converted, and compared
with the TF session's output at two sequence lengths (one input, two time axes) at the suite's tolerance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from harness import assert_matches, torch_outputs

import tf2torch

FEATURES, UNITS, BATCH = 3, 4, 3
LENGTHS = (5, 9)  # the time axes each conversion is run at


def cell(kind: str):
    from tf_keras.src.layers.rnn import legacy_cells

    return {"lstm": lambda: legacy_cells.LSTMCell(UNITS), "gru": lambda: legacy_cells.GRUCell(UNITS),
            "basic_lstm": lambda: legacy_cells.BasicLSTMCell(UNITS)}[kind]()


def dynamic_rnn(tf, x, lengths, kind):
    out, _ = tf.compat.v1.nn.dynamic_rnn(cell(kind), x, sequence_length=lengths, dtype=tf.float32)
    return out


def bidirectional(tf, x, lengths, kind):
    (fw, bw), _ = tf.compat.v1.nn.bidirectional_dynamic_rnn(cell(kind), cell(kind), x, sequence_length=lengths,
                                                             dtype=tf.float32)
    return tf.concat([fw, bw], -1)


def trained_bidirectional(tf, x, lengths, kind):
    """As a training checkpoint carries it: the loss's gradients (their own while frames, ``TensorArrayGradV3``,
    stacks) and an optimizer beside the inference path."""
    y = bidirectional(tf, x, lengths, kind)
    tf.compat.v1.train.AdamOptimizer(0.01).minimize(tf.reduce_sum(tf.square(y)))
    return y


def stacked_bidirectional(tf, x, lengths, kind):
    """Two bidirectional layers one after the other (a sequence model's stack): the second's frames read the
    first's exits."""
    for layer in range(2):
        with tf.compat.v1.variable_scope(f"layer{layer}"):
            x = bidirectional(tf, x, lengths, kind)
    return x


def multi_cell(tf, x, lengths, kind):
    """``MultiRNNCell`` of two cells: one frame, both cells in its body."""
    from tf_keras.src.layers.rnn import legacy_cells

    stacked = legacy_cells.MultiRNNCell([cell(kind), cell(kind)])
    out, _ = tf.compat.v1.nn.dynamic_rnn(stacked, x, sequence_length=lengths, dtype=tf.float32)
    return out


def raw_rnn(tf, x, lengths, kind):
    """``tf.compat.v1.nn.raw_rnn`` (a loop_fn reading a TensorArray of the inputs, finished per sequence)."""
    steps = tf.shape(x)[1]
    inputs = tf.compat.v1.TensorArray(tf.float32, size=steps, clear_after_read=False)
    inputs = inputs.unstack(tf.transpose(x, [1, 0, 2]))
    rnn_cell = cell(kind)

    def loop_fn(time, output, state, loop_state):
        state = rnn_cell.zero_state(tf.shape(x)[0], tf.float32) if output is None else state
        finished = time >= lengths
        step = inputs.read(tf.minimum(time, steps - 1))
        return finished, step, state, output, None

    outputs, _, _ = tf.compat.v1.nn.raw_rnn(rnn_cell, loop_fn)
    return tf.transpose(outputs.stack(), [1, 0, 2])


def concat_array(tf, x, lengths, kind):
    """A TensorArray read back with ``concat()`` (``TensorArrayConcatV3``: no TensorList form here)."""
    steps = tf.shape(x)[1]
    w = tf.compat.v1.get_variable("w", [FEATURES, FEATURES])
    ta = tf.compat.v1.TensorArray(tf.float32, size=steps)
    _, ta = tf.compat.v1.while_loop(lambda t, ta: t < steps, lambda t, ta: (t + 1, ta.write(t, x[:, t] @ w)),
                                    (0, ta))
    return ta.concat()


def cond_in_body(tf, x, lengths, kind):
    """A ``tf.cond(is_training)`` inside the loop's body (dropout at training time), its predicate a placeholder
    with a default that enters the frame: fixed by ``--constant``, the body's cond resolves."""
    is_training = tf.compat.v1.placeholder_with_default(True, [], name="is_training")
    w = tf.compat.v1.get_variable("w", [FEATURES, FEATURES])
    steps = tf.shape(x)[1]

    def body(t, h):
        h = tf.tanh(tf.matmul(h, w) + x[:, t])
        return t + 1, tf.cond(is_training, lambda: tf.nn.dropout(h, rate=0.5), lambda: h)

    _, h = tf.compat.v1.while_loop(lambda t, h: t < steps, body, (0, tf.zeros_like(x[:, 0])))
    return h


def while_loop(tf, x, lengths, kind):
    w = tf.compat.v1.get_variable("w", [FEATURES, FEATURES])
    steps = tf.shape(x)[1]

    def body(t, h):
        return t + 1, tf.tanh(tf.matmul(h, w) + x[:, t])

    _, h = tf.compat.v1.while_loop(lambda t, h: t < steps + 5, body, (0, tf.zeros_like(x[:, 0])),
                                   maximum_iterations=steps)  # (the loop counter maximum_iterations adds)
    return h


def map_fn(tf, x, lengths, kind):
    w = tf.compat.v1.get_variable("w", [FEATURES, UNITS])
    return tf.compat.v1.map_fn(lambda row: tf.nn.relu(tf.matmul(row, w)), x)


CASES = {  # name: (builder, cell, reads the lengths)
    "dynamic_rnn_lstm": (dynamic_rnn, "lstm", True),
    "dynamic_rnn_gru": (dynamic_rnn, "gru", True),
    "dynamic_rnn_basic_lstm": (dynamic_rnn, "basic_lstm", True),
    "bidirectional_lstm": (bidirectional, "lstm", True),
    "bidirectional_gru": (bidirectional, "gru", True),
    "bidirectional_gru_with_gradients": (trained_bidirectional, "gru", True),
    "stacked_bidirectional_lstm": (stacked_bidirectional, "lstm", True),
    "multi_rnn_cell_gru": (multi_cell, "gru", True),
    "raw_rnn_lstm": (raw_rnn, "lstm", True),
    "while_loop": (while_loop, None, False),
    "cond_in_body": (cond_in_body, None, False),
    "map_fn": (map_fn, None, False),
}


def batches(with_lengths: bool, seed: int = 0) -> list[list[np.ndarray]]:
    """Per time axis in LENGTHS: the inputs, and the sequence lengths (shorter than the time axis but one)."""
    rng = np.random.default_rng(seed)
    out = []
    for steps in LENGTHS:
        x = rng.normal(size=(BATCH, steps, FEATURES)).astype("float32")
        lengths = np.array([steps, steps - 2, 1], dtype="int32")
        out.append([x, lengths] if with_lengths else [x])
    return out


def tf1_checkpoint(directory: Path, name: str, case: tuple | None = None) -> dict:
    """The case's graph built with control flow v1, random weights, saved (and frozen to ``frozen.pb``); the
    session's outputs per length."""
    import tensorflow as tf

    v1 = tf.compat.v1
    build, kind, with_lengths = case or CASES[name]
    v1.disable_control_flow_v2()
    try:
        graph = tf.Graph()
        with graph.as_default():
            v1.set_random_seed(1)
            x = v1.placeholder(tf.float32, [None, None, FEATURES], name="x")
            lengths = v1.placeholder(tf.int32, [None], name="lengths") if with_lengths else None
            tf.identity(build(tf, x, lengths, kind), name="y")
            fixed = {"is_training:0": False} if name == "cond_in_body" else {}
            saver = v1.train.Saver()
            with v1.Session(graph=graph) as session:
                session.run(v1.global_variables_initializer())
                feeds = batches(with_lengths)
                names = ["x:0", "lengths:0"]
                references = [session.run("y:0", {**dict(zip(names, f)), **fixed}) for f in feeds]
                directory.mkdir(parents=True, exist_ok=True)
                saver.save(session, str(directory / "model.ckpt"))
                frozen = v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["y"])
                (directory / "frozen.pb").write_bytes(frozen.SerializeToString())
    finally:
        v1.enable_control_flow_v2()
    return {"dir": directory, "feeds": feeds, "references": references, "constants": fixed}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tf1_loop_converts(tmp_path, name):
    fixture = tf1_checkpoint(tmp_path / name, name)
    module = tf2torch.convert(fixture["dir"], outputs=["y:0"],  # (the loops' final states are sinks too)
                              constants=fixture["constants"])
    assert [type(m).__name__ for m in module.modules()].count("TFWhile") >= 1
    for feeds, reference, steps in zip(fixture["feeds"], fixture["references"], LENGTHS):
        assert_matches(torch_outputs(module, feeds, "keras"), [reference], what=f"{name}, {steps} steps")


@pytest.mark.parametrize("name", ["bidirectional_lstm", "while_loop"])
def test_tf1_loop_frozen_graph(tmp_path, name):
    """The same loops frozen (``convert_variables_to_constants``: the weights are constants entering the frame)."""
    fixture = tf1_checkpoint(tmp_path / name, name)
    module = tf2torch.convert(fixture["dir"] / "frozen.pb", outputs=["y:0"])
    for feeds, reference, steps in zip(fixture["feeds"], fixture["references"], LENGTHS):
        assert_matches(torch_outputs(module, feeds, "keras"), [reference], what=f"frozen {name}, {steps} steps")


def test_tf1_loop_outputs_found_without_being_named(tmp_path):
    """Without ``--outputs``: the sequence output and the final state (the loop's results nothing reads), not
    the shape arithmetic of the zero state (sinks that read the input's shape only)."""
    fixture = tf1_checkpoint(tmp_path / "gru", "dynamic_rnn_gru")
    module = tf2torch.convert(fixture["dir"])
    names = [o["node"] for o in module.tf2torch_meta["graph"]["outputs"]]
    assert len(names) == 2 and not any("ZeroState" in n for n in names), names
    outputs = torch_outputs(module, fixture["feeds"][0], "keras")
    assert_matches([o for o in outputs if o.shape == fixture["references"][0].shape], [fixture["references"][0]],
                   what="sequence output")


def test_tensor_array_without_a_list_form_refused_by_name(tmp_path):
    """A TensorArray read by an op with no TensorList form is left as it is: refused by name after reading."""
    from tf2torch.errors import UnsupportedLayerError

    fixture = tf1_checkpoint(tmp_path / "concat", "concat_array", (concat_array, None, False))
    with pytest.raises(UnsupportedLayerError, match=r"tf\.raw>TensorArrayConcatV3"):
        tf2torch.convert(fixture["dir"], outputs=["y:0"])


def test_dropped_gradient_op_named_as_output(tmp_path):
    """``--outputs`` naming a gradient op of a rebuilt loop (dropped with the frame) says so, not "no such op"."""
    import tensorflow as tf

    from tf2torch.errors import Tf2TorchError

    fixture = tf1_checkpoint(tmp_path / "trained", "bidirectional_gru_with_gradients")
    meta = tf.compat.v1.MetaGraphDef.FromString((fixture["dir"] / "model.ckpt.meta").read_bytes())
    grad = next(n.name for n in meta.graph_def.node if n.op == "TensorArrayGradV3")
    with pytest.raises(Tf2TorchError, match="gradient or bookkeeping op, dropped when the loop was rebuilt"):
        tf2torch.convert(fixture["dir"], outputs=[f"{grad}:1"])


def test_tf1_loop_verify_inspect_and_reload(tmp_path):
    """``verify`` runs the rebuilt ``While`` on TensorFlow (its functions in the graph's library) and compares it;
    ``inspect`` lists it with nothing left unconverted; a saved module reloads with its loop."""
    from click.testing import CliRunner

    from tf2torch.cli import main

    fixture = tf1_checkpoint(tmp_path / "rnn", "bidirectional_lstm")
    result = CliRunner().invoke(main, ["inspect", str(fixture["dir"]), "--outputs", "y:0"])
    assert result.exit_code == 0, result.output
    assert "tf.raw>While" in result.output and "layers without a converter: 0" in result.output
    report = tf2torch.verify(fixture["dir"], inputs=fixture["feeds"][1], tf_options={"outputs": ["y:0"]})
    assert report.ok, [(r.node, r.status) for r in report.layers]
    # each loop's outputs are compared through what reads them: its TensorArray stacked after the loop
    assert sum(r.node.endswith("TensorArrayGatherV3") and r.status == "pass" for r in report.layers) == 2, \
        [(r.node, r.status) for r in report.layers]
    module = tf2torch.convert(fixture["dir"], outputs=["y:0"])
    tf2torch.save(module, tmp_path / "rnn.pt")
    loaded = tf2torch.load(tmp_path / "rnn.pt")
    assert_matches(torch_outputs(loaded, fixture["feeds"][1], "keras"), [fixture["references"][1]], what="reloaded")


def test_nested_tf1_loop_refused_by_name(tmp_path):
    """A loop inside a loop's body (two frames, one inside the other) is refused, each frame named."""
    import tensorflow as tf

    from tf2torch.errors import UnsupportedLayerError

    v1 = tf.compat.v1
    v1.disable_control_flow_v2()
    try:
        graph = tf.Graph()
        with graph.as_default():
            x = v1.placeholder(tf.float32, [None, FEATURES], name="x")
            w = v1.get_variable("w", [FEATURES, FEATURES])

            def outer(i, h):
                _, h = tf.compat.v1.while_loop(lambda j, g: j < 2, lambda j, g: (j + 1, tf.tanh(tf.matmul(g, w))),
                                               [0, h], name="inner")
                return i + 1, h

            _, y = tf.compat.v1.while_loop(lambda i, h: i < 3, outer, [0, x], name="outer")
            tf.identity(y, name="y")
            saver = v1.train.Saver()
            with v1.Session(graph=graph) as session:
                session.run(v1.global_variables_initializer())
                saver.save(session, str(tmp_path / "model.ckpt"))
    finally:
        v1.enable_control_flow_v2()
    with pytest.raises(UnsupportedLayerError, match=r"2 x operation tf\.raw>While: a nested TF 1 while loop .*outer/"):
        tf2torch.convert(tmp_path, outputs=["y:0"])
