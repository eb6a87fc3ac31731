"""In-place inference (``tf2torch/nn/inplace.py``): a layer that is the only reader of a fresh tensor writes over
it in the converted model's own eager no-grad calls, with the same numbers bit for bit, and never where anything
could see that tensor (hooks, autograd, training, an ``fx.Interpreter``, a layer replaced by the user)."""

import numpy as np
import pytest
import torch
import torch.fx as fx
from harness import keras_module
from torch import nn

import tf2torch
from tf2torch.nn import inplace
from tf2torch.nn.merge import Add

FLAVOURS = ["keras3", "tf_keras"]


def build(k):
    """conv→BN→ReLU, a conv with its own activation, Add→ReLU, conv→BN→swish, and a conv output read twice."""
    x = inp = k.Input((8, 8, 4))
    x = k.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv_a")(x)
    x = k.layers.BatchNormalization(name="bn_a")(x)
    a = k.layers.ReLU(name="relu_a")(x)
    b = k.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_b")(a)
    x = k.layers.Activation("relu", name="relu_add")(k.layers.Add(name="add")([a, b]))
    x = k.layers.Conv2D(6, 1, name="conv_c")(x)
    x = k.layers.Activation("swish", name="swish_c")(k.layers.BatchNormalization(name="bn_c")(x))
    shared = k.layers.Conv2D(6, 1, name="conv_d")(x)
    x = k.layers.Add(name="add_d")([k.layers.BatchNormalization(name="bn_d")(shared), shared])
    model = k.Model(inp, k.layers.Dense(3, name="dense")(k.layers.GlobalAveragePooling2D(name="pool")(x)))
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if "variance" in w.name
                           else rng.standard_normal(w.shape).astype("float32") for w in layer.weights])
    return model


@pytest.fixture(scope="module", params=FLAVOURS)
def converted(request, tmp_path_factory):
    k = keras_module(request.param)
    path = tmp_path_factory.mktemp(request.param) / ("model.keras" if request.param == "keras3" else "model.h5")
    build(k).save(str(path))
    return lambda: tf2torch.convert(path)


def writable_names(module):
    with torch.no_grad():
        ids = module._writable_layers()
    return {name for name, m in module.named_modules() if id(m) in ids}


def example():
    return torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.numerics
def test_sole_readers_of_fresh_tensors_write_over_them_with_the_same_numbers(converted):
    """Bit for bit on any CPU: each layer runs the same kernel in both calls, given its input as ``out=`` in one."""
    module, x = converted(), example()
    kept = x.clone()
    # every activation (conv_b's own too), batch norm but bn_d (whose input add_d reads too) and add (into conv_b's
    # output; relu_a's conv_b reads too)
    expected = {"bn_a", "relu_a", "conv_b.activation", "add", "relu_add", "bn_c", "swish_c", "add_d"}
    assert writable_names(module) == expected
    with torch.no_grad():
        in_place, faithful = module(x), module.forward(x)  # forward() bypasses the in-place call
    assert torch.equal(in_place, faithful)
    assert torch.equal(x, kept), "the model's input was written over"


def test_nothing_is_written_over_when_anything_could_see_it(converted):
    module, x = converted(), example()
    with torch.enable_grad():
        assert not module._writable_layers()
    module.train()
    assert not writable_names(module)
    module.eval()
    seen = []
    handle = module.conv_a.register_forward_hook(lambda m, i, o: seen.append(o))
    assert "bn_a" not in writable_names(module) and "relu_a" in writable_names(module)
    with torch.no_grad():
        module(x)
        assert torch.equal(seen[0], module.conv_a(x)), "a hook's tensor was written over"
    handle.remove()
    handle = module.relu_a.register_forward_pre_hook(lambda m, i: None)
    assert "relu_a" not in writable_names(module)
    handle.remove()
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        assert not writable_names(module)
    finally:
        handle.remove()
    assert "relu_a" in writable_names(module)


def test_an_interpreter_sees_every_layer_output_as_computed(converted):
    module, x = converted(), example()
    outputs = {}

    class Capture(fx.Interpreter):
        def run_node(self, n):
            outputs[n.name] = result = super().run_node(n)
            return result

    with torch.no_grad():
        Capture(module).run(x)
        conv_a = next(n.name for n in module.graph.nodes if n.target == "conv_a")
        assert torch.equal(outputs[conv_a], module.conv_a(x.contiguous(memory_format=torch.channels_last)))


def test_a_replaced_producer_is_not_trusted(converted):
    module, x = converted(), example()
    module.conv_a = nn.Identity()  # bn_a now reads the model's input
    kept = x.clone()
    assert "bn_a" not in writable_names(module)
    with torch.no_grad():
        assert torch.equal(module(x), module.forward(x))
    assert torch.equal(x, kept)


def test_copies_keep_or_drop_it_safely(converted):
    import copy
    import pickle

    module, x = converted(), example()
    copied = copy.deepcopy(module)
    assert writable_names(copied) == writable_names(module)
    restored = pickle.loads(pickle.dumps(module))
    with torch.no_grad():
        assert torch.equal(copied(x), module.forward(x)) and torch.equal(restored(x), module.forward(x))


ADD_CASES = [  # (shape of x0, shape of x1, dtype of x1, the input the call may write over, written over?)
    ((2, 3, 4), (2, 3, 4), torch.float32, 0, True),
    ((2, 3, 4), (2, 3, 4), torch.float32, 1, True),
    ((2, 3, 4), (1, 3, 1), torch.float32, 0, True),
    ((2, 3, 4), (1, 3, 1), torch.float32, 1, False),  # x1 cannot hold the broadcast sum
    ((2, 3, 4), (2, 3, 4), torch.float64, 0, False),  # the sum is float64
    ((2, 3, 4), (2, 3, 4), torch.float32, None, False),
]


@pytest.mark.numerics
@pytest.mark.parametrize("shape0, shape1, dtype1, position, written", ADD_CASES)
def test_add_writes_over_the_input_it_is_given_only_where_that_holds_the_sum(shape0, shape1, dtype1, position,
                                                                              written):
    """``b + a`` for ``a + b``: IEEE addition commutes exactly, so the sums are equal bit for bit on any CPU."""
    generator = torch.Generator().manual_seed(0)
    xs = [torch.randn(shape0, generator=generator), torch.randn(shape1, generator=generator).to(dtype1)]
    expected, kept = xs[0] + xs[1], [x.clone() for x in xs]
    add = Add()
    token = inplace._WRITABLE.set({} if position is None else {id(add): position})
    try:
        result = add(*xs)
    finally:
        inplace._WRITABLE.reset(token)
    assert torch.equal(result, expected) and result.dtype == expected.dtype
    for i, (x, before) in enumerate(zip(xs, kept)):
        assert (result is x) == (written and i == position)
        if result is not x:
            assert torch.equal(x, before)
