"""TensorFlow-graph fixtures made in the suite: a ``tf.compat.v1`` training graph (checkpoint, .meta, frozen
.pb), a ``tf.Module`` SavedModel, a Keras 3 ``export()``, tf_keras SavedModels. Each builder returns the path
and TensorFlow's own inference outputs on fixed inputs."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

FOREIGN_PREFIX = "/home/author/experiments/run7/model.ckpt-3"


def image_batch(shape=(2, 16, 16, 3), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def tf1_training_graph(directory: Path, with_default: bool = False, control_flow_v2: bool = False,
                       ref_variables: bool = False) -> dict:
    """A TF1 training graph: conv SAME stride 2, depthwise conv, batch norm behind ``tf.cond(is_training)``
    whose moving statistics are updated through ``UPDATE_OPS``, dropout behind the same cond, dense (its kernel
    a partitioned variable, ``kernel/part_0..1``), softmax;
    Adam, a saver; trained 3 steps. Saved as ``model.ckpt-3`` with a stale ``_output_shapes`` in the .meta and a
    ``checkpoint`` file naming a foreign absolute path; also frozen to ``frozen.pb``. ``tf.cond`` is built as
    TF 1.x built it (``Switch`` / ``Merge``), or as ``If`` ops with ``control_flow_v2``. With ``ref_variables``
    the graph is what TF 1.x wrote by default (musicnn's 2019 checkpoints, in its PyPI package): ref variables,
    whose ``ApplyAdam`` updates are unconsumed ops with an output, a learning rate fed by a placeholder, a
    metric's ``Shape`` op and a moving-mean update behind ``tf.cond(is_training)`` that nothing reads."""
    import tensorflow as tf

    v1 = tf.compat.v1
    if not control_flow_v2:
        v1.disable_control_flow_v2()
    try:
        if ref_variables:
            v1.disable_resource_variables()
        return _tf1_training_graph(tf, directory, with_default, ref_variables)
    finally:
        v1.enable_control_flow_v2()
        v1.enable_resource_variables()


def _tf1_training_graph(tf, directory: Path, with_default: bool, ref_variables: bool) -> dict:
    v1 = tf.compat.v1
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 16, 16, 3], name="x")
        labels = v1.placeholder(tf.float32, [None, 5], name="labels")
        if with_default:
            is_training = v1.placeholder_with_default(False, [], name="is_training")
        else:
            is_training = v1.placeholder(tf.bool, [], name="is_training")
        with v1.variable_scope("conv1"):
            w = v1.get_variable("weights", [3, 3, 3, 8])
            b = v1.get_variable("biases", [8], initializer=v1.random_normal_initializer())
            h = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, w, [1, 2, 2, 1], "SAME"), b))
        with v1.variable_scope("dw"):
            dw = v1.get_variable("depthwise_weights", [3, 3, 8, 2])
            h = tf.nn.depthwise_conv2d(h, dw, [1, 1, 1, 1], "SAME")
        with v1.variable_scope("bn"):
            c = 16
            gamma = v1.get_variable("gamma", [c], initializer=v1.random_uniform_initializer(0.5, 1.5))
            beta = v1.get_variable("beta", [c], initializer=v1.random_normal_initializer())
            mean = v1.get_variable("moving_mean", [c], initializer=v1.zeros_initializer(), trainable=False)
            var = v1.get_variable("moving_variance", [c], initializer=v1.ones_initializer(), trainable=False)
            batch_mean, batch_var = tf.nn.moments(h, [0, 1, 2])
            decay = tf.cond(is_training, lambda: tf.constant(0.5), lambda: tf.constant(0.0))
            v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, v1.assign_sub(mean, (mean - batch_mean) * decay))
            v1.add_to_collection(v1.GraphKeys.UPDATE_OPS, v1.assign_sub(var, (var - batch_var) * decay))

            def train_bn():
                y, _, _ = v1.nn.fused_batch_norm(h, gamma, beta, epsilon=1e-3, is_training=True)
                return y

            def infer_bn():
                y, _, _ = v1.nn.fused_batch_norm(h, gamma, beta, mean=mean, variance=var, epsilon=1e-3,
                                                 is_training=False)
                return y

            h = tf.cond(is_training, train_bn, infer_bn)
        h = tf.nn.relu6(h)
        h = tf.cond(is_training, lambda: tf.nn.dropout(h, rate=0.5), lambda: h)
        h = tf.reduce_mean(h, axis=[1, 2])
        with v1.variable_scope("dense"):
            wd = v1.get_variable("kernel", [16, 5], partitioner=v1.fixed_size_partitioner(2))
            bd = v1.get_variable("bias", [5], initializer=v1.random_normal_initializer())
            logits = tf.matmul(h, wd) + bd
        probs = tf.nn.softmax(logits, name="probs")
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits))
        feeds = {}
        if ref_variables:
            learning_rate = v1.placeholder(tf.float32, [], name="learning_rate")
            feeds[learning_rate] = 0.01
            with v1.variable_scope("metrics"):
                tf.shape(labels, name="labels_shape")  # read by nothing, as in a metric's assert_broadcastable
            # read by nothing, as tf.layers.batch_normalization(training=is_training) leaves its moving-mean
            # update: a cond whose false branch is the variable itself
            tf.cond(is_training, lambda: batch_mean, lambda: tf.identity(mean), name="moving_mean_update")
        else:
            learning_rate = 0.01
        with tf.control_dependencies(v1.get_collection(v1.GraphKeys.UPDATE_OPS)):
            train_op = v1.train.AdamOptimizer(learning_rate).minimize(loss)
        saver = v1.train.Saver()
        xs = image_batch((4, 16, 16, 3), seed=5)
        ys = np.eye(5, dtype="float32")[rng.integers(0, 5, 4)]
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            fresh = sess.run(mean)
            for _ in range(3):
                sess.run(train_op, {x: xs, labels: ys, is_training: True, **feeds})
            moving = sess.run(mean)
            assert not np.allclose(fresh, moving)  # the update ops ran
            inputs = image_batch()
            reference = sess.run(probs, {x: inputs, is_training: False})
            directory.mkdir(parents=True, exist_ok=True)
            prefix = saver.save(sess, str(directory / "model.ckpt"), global_step=3)
            frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["probs"])
    (directory / "frozen.pb").write_bytes(frozen.SerializeToString())
    _stale_meta(Path(prefix + ".meta"))
    (directory / "checkpoint").write_text(f'model_checkpoint_path: "{FOREIGN_PREFIX}"\n'
                                          f'all_model_checkpoint_paths: "{FOREIGN_PREFIX}"\n')
    return {"dir": directory, "prefix": prefix, "inputs": inputs, "reference": reference, "moving_mean": moving}


def _stale_meta(path: Path) -> None:
    """Give one op an ``_output_shapes`` attribute that no longer matches, as TF 1.x writers left them."""
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    meta.ParseFromString(path.read_bytes())
    for node in meta.graph_def.node:
        if node.name == "conv1/Conv2D":
            shape = node.attr["_output_shapes"].list.shape.add()
            for size in (7, 3, 3, 1):
                shape.dim.add().size = size
    path.write_bytes(meta.SerializeToString())


def input_pipeline_frozen_graph(directory: Path) -> dict:
    """A frozen TF 1.x graph fed by a ``tf.data`` iterator, as deepbrain's 2018 ``graph.pb`` (in its PyPI
    package): ``img`` is a ``placeholder_with_default`` whose default is the iterator's next image, ``training``
    one that defaults to True and gates a dropout; ``prob`` is the model's output and ``pred`` compares it with
    a tensor shaped like the iterator's labels. TensorFlow's own ``prob``, fed ``img`` and ``training=False``."""
    import tensorflow as tf

    v1 = tf.compat.v1
    v1.disable_control_flow_v2()
    try:
        graph = tf.Graph()
        with graph.as_default():
            images = np.zeros((4, 8, 8, 1), "float32")
            labels = np.zeros((4, 8, 8, 2), "float32")
            handle = v1.placeholder(tf.string, [])
            dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
            iterator = v1.data.Iterator.from_string_handle(handle, v1.data.get_output_types(dataset),
                                                           v1.data.get_output_shapes(dataset))
            next_image, next_labels = iterator.get_next()
            img = v1.placeholder_with_default(next_image, [None, 8, 8, 1], name="img")
            training = v1.placeholder_with_default(True, [], name="training")
            rng = np.random.default_rng(3)
            kernel = tf.constant(rng.standard_normal((3, 3, 1, 2)).astype("float32"))
            h = tf.nn.conv2d(img, kernel, 1, "SAME")
            h = tf.cond(training, lambda: tf.nn.dropout(h, rate=0.5), lambda: h)
            prob = tf.nn.sigmoid(h, name="prob")
            tf.greater(prob, 0.5 * tf.ones_like(next_labels), name="pred")
            inputs = image_batch((2, 8, 8, 1), seed=7)
            with v1.Session(graph=graph) as sess:
                reference = sess.run(prob, {img: inputs, training: False})
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "graph.pb").write_bytes(graph.as_graph_def().SerializeToString())
    finally:
        v1.enable_control_flow_v2()
    return {"path": directory / "graph.pb", "inputs": inputs, "reference": reference}


def tf_module_saved_model(directory: Path) -> dict:
    import tensorflow as tf

    class Classifier(tf.Module):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.standard_normal((3, 3, 3, 4)).astype("float32"), name="conv/w")
            self.scale = tf.Variable(rng.uniform(0.5, 1.5, 4).astype("float32"))
            self.d = tf.Variable(rng.standard_normal((4, 5)).astype("float32"))

        @tf.function(input_signature=[tf.TensorSpec([None, 9, 9, 3], tf.float32, name="image")])
        def __call__(self, x):
            h = tf.nn.conv2d(x, self.w, 2, "SAME")
            h = tf.nn.elu(h * self.scale)
            h = tf.nn.max_pool2d(h, 2, 2, "SAME")
            h = tf.reduce_mean(h, axis=[1, 2])
            return {"probs": tf.nn.softmax(tf.matmul(h, self.d)), "features": h}

    module = Classifier()
    tf.saved_model.save(module, str(directory), signatures=module.__call__)
    inputs = image_batch((2, 9, 9, 3))
    out = module(inputs)
    return {"dir": directory, "inputs": inputs, "reference": [out["features"].numpy(), out["probs"].numpy()]}


def small_cnn(k):
    inputs = k.Input((12, 12, 3), name="image")
    h = k.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv1")(inputs)
    h = k.layers.BatchNormalization(name="bn1")(h)
    h = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = k.layers.MaxPooling2D(name="pool")(h)
    h = k.layers.Flatten(name="flatten")(h)
    outputs = k.layers.Dense(4, activation="softmax", name="head")(h)
    return k.Model(inputs, outputs, name="small_cnn")


def randomize_batch_norms(model) -> None:
    """Moving statistics that differ from their initial values, as after training."""
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if i != 1 else
                               rng.standard_normal(w.shape).astype("float32")
                               for i, w in enumerate(layer.get_weights())])


def custom_layer_model(k):
    """A tf_keras model with a custom layer whose class is local to this function: nothing can import it."""
    import tensorflow as tf

    class GatedScale(k.layers.Layer):
        def build(self, shape):
            self.gate = self.add_weight(name="gate", shape=(shape[-1],), initializer="random_normal")

        def call(self, x):
            return x * tf.sigmoid(self.gate) + tf.square(x) * 0.1

    inputs = k.Input((10, 10, 3), name="image")
    h = k.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    h = GatedScale(name="gated")(h)
    h = k.layers.GlobalAveragePooling2D(name="gap")(h)
    return k.Model(inputs, k.layers.Dense(3, name="head")(h))


def nested_recurrent(k):
    """A nested model and an LSTM: in a SavedModel the LSTM is taken from the Keras metadata, not its traced
    While loop."""
    inner_in = k.Input((6, 4), name="inner_in")
    inner = k.Model(inner_in, k.layers.Dense(5, activation="tanh", name="inner_dense")(inner_in), name="inner")
    inputs = k.Input((6, 4), name="sequence")
    h = inner(inputs)
    h = k.layers.LSTM(7, name="lstm")(h)
    return k.Model(inputs, k.layers.Dense(3, name="head")(h), name="nested_recurrent")


def while_loop_module(directory: Path, unsupported_in_body: bool = False) -> dict:
    """A ``tf.Module`` SavedModel whose signature runs a ``tf.while_loop`` (a hand-written recurrence over the
    time axis, with a captured weight, a data-dependent trip count and a TensorArray of the steps)."""
    import tensorflow as tf

    class Recurrence(tf.Module):
        def __init__(self):
            rng = np.random.default_rng(2)
            self.w = tf.Variable(rng.standard_normal((4, 4)).astype("float32") * 0.5, name="recurrent")
            self.u = tf.Variable(rng.standard_normal((3, 4)).astype("float32"), name="input_kernel")

        @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32, name="sequence")])
        def __call__(self, x):
            steps = tf.shape(x)[1]
            outputs = tf.TensorArray(tf.float32, size=steps)
            h = tf.zeros([tf.shape(x)[0], 4])

            def body(t, h, outputs):
                h = tf.tanh(tf.matmul(x[:, t], self.u) + tf.matmul(h, self.w))
                if unsupported_in_body:
                    h = tf.math.bessel_i0(h)
                return t + 1, h, outputs.write(t, h)

            _, h, outputs = tf.while_loop(lambda t, h, o: t < steps, body, [0, h, outputs])
            return {"last": h, "sequence": tf.transpose(outputs.stack(), [1, 0, 2])}

    module = Recurrence()
    tf.saved_model.save(module, str(directory), signatures=module.__call__)
    inputs = image_batch((2, 6, 3), seed=4)
    out = module(inputs)
    return {"dir": directory, "inputs": inputs, "reference": [out["last"].numpy(), out["sequence"].numpy()]}


def recurrent_model(k, cell: str, return_sequences: bool, steps: int | None):
    inputs = k.Input((steps, 3), name="sequence")
    h = getattr(k.layers, cell)(5, return_sequences=return_sequences, name="rnn")(inputs)
    return k.Model(inputs, k.layers.Dense(2, name="head")(h), name="recurrent")


def bidirectional_rnn(k):
    inputs = k.Input((6, 3), name="sequence")
    return k.Model(inputs, k.layers.Bidirectional(k.layers.LSTM(4, return_sequences=True), name="bidi")(inputs))


def stacked_backwards_rnn(k):
    inputs = k.Input((6, 3), name="sequence")
    h = k.layers.GRU(4, return_sequences=True, name="gru")(inputs)
    return k.Model(inputs, k.layers.LSTM(3, go_backwards=True, name="lstm")(h))


def masked_rnn(k):
    """Token ids with padding: Embedding(mask_zero) → LSTM, whose traced body selects with the mask."""
    inputs = k.Input((6,), dtype="int32", name="tokens")
    h = k.layers.Embedding(8, 3, mask_zero=True, name="embedding")(inputs)
    return k.Model(inputs, k.layers.LSTM(4, name="lstm")(h))


TOKENS = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 6, 7, 1, 0]], dtype="int32")
