"""``tf2torch.compile`` on a small conv net (conv + BN + ReLU, depthwise, a residual add, squeeze-excite's
sigmoid-multiply), both layouts: the route it picks matches Keras within the suite's tolerance, compiles without
a graph break (``fullgraph=True``: a break would refuse the inductor route), and keeps the converted module's names
and output shapes; a route that is not exact, or unknown, is refused. Speed is measured in ``benchmarks/``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from harness import LAYOUTS, assert_matches, keras_module, keras_outputs, random_inputs, to_torch_input

import tf2torch
from tf2torch import compiled


def small_net(k):
    inp = k.Input((16, 15, 3))
    x = k.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    x = k.layers.BatchNormalization(name="stem_bn")(x)
    x = k.layers.ReLU(name="stem_relu")(x)
    y = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = k.layers.Activation("swish", name="dw_swish")(y)
    se = k.layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(y)
    se = k.layers.Conv2D(8, 1, activation="sigmoid", name="se_gate")(se)
    y = k.layers.Multiply(name="se_mul")([y, se])
    y = k.layers.Conv2D(8, 1, name="project")(y)
    x = k.layers.ReLU(name="out_relu")(k.layers.Add(name="add")([x, y]))
    x = k.layers.ZeroPadding2D(((0, 1), (0, 1)), name="down_pad")(x)  # MobileNetV2's stride-2 depthwise
    x = k.layers.DepthwiseConv2D(3, strides=2, name="down")(x)
    return k.Model(inp, k.layers.Dense(5, name="head")(k.layers.GlobalAveragePooling2D(name="pool")(x)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, model, inputs, Keras outputs) of the small net, saved as .keras."""
    keras = keras_module("keras3")
    model = small_net(keras)
    path = tmp_path_factory.mktemp("compile") / "model.keras"
    model.save(str(path))
    inputs = random_inputs(model)
    return path, inputs, keras_outputs(model, inputs)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_compiled_module_matches_keras_and_keeps_names(saved, layout):
    path, inputs, ref = saved
    module = tf2torch.convert(path, layout=layout)
    optimized = tf2torch.convert(path, layout=layout, optimize=True)
    x = to_torch_input(inputs[0], layout)
    fast = tf2torch.compile(module, x, rounds=1)
    assert "refused" not in fast.report["inductor"], fast.report  # fullgraph: a graph break would refuse it
    assert fast.route in compiled.ROUTES and fast.report["inductor"]["rel_error"] <= compiled.TOLERANCE
    got = fast(x)
    assert not got.requires_grad and got.shape == optimized(x).shape
    out = got.numpy() if layout == "keras" or got.dim() != 4 else got.permute(0, 2, 3, 1).numpy()
    assert_matches([out], ref, what=f"compile {layout} ({fast.route})")
    assert list(dict(fast.named_children())) == list(dict(optimized.named_children()))
    assert list(fast.state_dict()) == list(optimized.state_dict())
    assert fast.tf2torch_meta["compiled"] == fast.route and "compiled" not in module.tf2torch_meta
    assert fast.keeps_freed_memory  # glibc here (compiled.retain_freed_memory)


def test_the_inductor_route_holds_frozen_weights_and_recompiles_for_a_new_shape(saved, tmp_path):
    """Freezing is in effect (``compiled.frozen``): ``options={"freezing": True}`` alone left the weights graph
    inputs, unpacked and unfused; frozen, a weight changed after compiling does not reach the compiled code.
    Dynamo's guards on the module's attributes are dropped, those on the inputs stay: a batch of 2 compiles
    again and is right; another model (other weights) compiled at the same shape gets code of its own (one
    model's code once ran for the other's input)."""
    path, inputs, _ = saved
    other_path = tmp_path / "other.keras"
    small_net(keras_module("keras3")).save(str(other_path))  # the same net, other random weights
    base, other = tf2torch.convert(path, optimize=True), tf2torch.convert(other_path, optimize=True)
    x = to_torch_input(inputs[0], "channels_first")
    pair = torch.cat([x, x.flip(0)])
    runners, other_runners, report = {}, {}, {}
    with torch.no_grad():
        compiled.runners_for("inductor", base, (x,), base(x), compiled.TOLERANCE, runners, report)
        compiled.runners_for("inductor", other, (x,), other(x), compiled.TOLERANCE, other_runners, report)
        assert "inductor" in runners and "inductor" in other_runners, report
        before = runners["inductor"](x)
        assert not torch.allclose(other(x), before, atol=1e-3)
        torch.testing.assert_close(other_runners["inductor"](x), other(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(runners["inductor"](pair), base(pair), rtol=0, atol=1e-5)
        next(p for p in base.parameters() if p.dim() == 4).mul_(2.0)
        assert not torch.allclose(base(x), before, atol=1e-3)  # the eager module sees the change
        torch.testing.assert_close(runners["inductor"](x), before, rtol=0, atol=0)


def test_freed_activations_stay_in_the_process():
    """A 64 MB tensor is served by a fresh ``mmap`` (glibc's mmap threshold is at most 32 MB by default), unmapped
    when freed and faulted in again on the next call: the page faults MobileNetV2 paid at batch 8. After
    ``retain_freed_memory`` it comes from the heap, whose freed memory stays with the process. Counted by glibc
    itself (``mallinfo2().hblkhd``, the bytes in mmapped blocks, while the tensor lives): page-fault counts also
    move with the kernel's own reclaim of idle pages. In a fresh interpreter's main thread: glibc's other threads
    allocate from per-thread arenas, which the thresholds do not keep (pytest-xdist runs tests in such a thread)."""
    script = (
        "import ctypes, torch\n"
        "from tf2torch import compiled\n"
        "class MallInfo2(ctypes.Structure):\n"
        "    _fields_ = [(n, ctypes.c_size_t) for n in ('arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks',\n"
        "                                                'fsmblks', 'uordblks', 'fordblks', 'keepcost')]\n"
        "libc = ctypes.CDLL('libc.so.6')\n"
        "libc.mallinfo2.restype = MallInfo2\n"
        "def mapped_mb():\n"
        "    x = torch.ones(16 << 20)\n"
        "    return libc.mallinfo2().hblkhd >> 20\n"
        "first = mapped_mb()\n"
        "print(first, compiled.retain_freed_memory(), mapped_mb())\n")
    env = dict(os.environ, PYTHONPATH=str(Path(tf2torch.__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    before, retained, after = done.stdout.split()
    assert int(before) >= 64 and retained == "True" and int(after) < 64, done.stdout




def test_inexact_route_is_refused_and_the_optimized_module_stands(saved):
    """A negative tolerance refuses every compiled output; the example input comes from the declared shape; an
    optimized module that has already run (its oneDNN packed weights cached) copies."""
    path, inputs, _ = saved
    module = tf2torch.convert(path, optimize=True)
    x = to_torch_input(inputs[0], "channels_first")
    with torch.no_grad():  # the fused oneDNN pass, as the compiled module runs it
        expected = module(x)
    fast = tf2torch.compile(module, rounds=1, tolerance=-1.0)
    assert fast.route == "optimized" and "differs" in fast.report["inductor"]["refused"]
    torch.testing.assert_close(fast(x), expected, rtol=0, atol=0)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"routes": ("optimized", "jit")}, "unknown compile routes"),
    ({}, "pass example_inputs"),
])
def test_bad_requests_say_what_to_do(kwargs, message, tmp_path):
    keras = keras_module("keras3")
    inp = keras.Input((None, None, 3))
    path = tmp_path / "open.keras"
    keras.Model(inp, keras.layers.Conv2D(4, 3, name="c")(inp)).save(str(path))
    with pytest.raises(ValueError, match=message):
        tf2torch.compile(tf2torch.convert(path), **kwargs)
