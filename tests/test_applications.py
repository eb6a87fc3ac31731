"""Whole keras.applications models (weights=None, nothing downloaded) with randomized BatchNormalization
statistics, saved in both formats, converted in both layouts and compared on logits with Keras.

Every family, at its smallest variant and the smallest input it accepts (32×32; 75 for the Inceptions, 71 for
Xception), one test per model doing every format and layout. Keras 3 writes op nodes (MobileNetV3's
``relu6(x + 3) / 6``), ConvNeXt's ``LayerScale`` and InceptionResNetV2's ``CustomScaleLayer``. Keras 3 has no
RegNet: tf_keras's is tested, with tf_keras's own ConvNeXt and InceptionResNetV2 (``Custom>CustomScaleLayer``).
Every model is also written as Python, .pt2 and ONNX: the first two run without tf2torch (``standalone.py``, one
process for the whole module), the Python within 1e-6 of the converted module, the .pt2 program and the ONNX
model (in onnxruntime) within the suite's tolerance of Keras. The first format is also converted with
``optimize=True`` and held to the same tolerance."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from harness import RTOL, assert_matches, keras_module, keras_outputs, max_rel_error, to_torch_input, torch_outputs
from standalone import STANDALONE_TOL, StandaloneRunner, channels_last, onnx_outputs

import tf2torch
from tf2torch.emit import emit

SMALLEST = 32
APPLICATIONS = {  # name → input size
    "ResNet50": SMALLEST,
    "ResNet50V2": SMALLEST,
    "VGG16": SMALLEST,
    "InceptionV3": 75,
    "InceptionResNetV2": 75,
    "Xception": 71,
    "MobileNet": SMALLEST,
    "MobileNetV2": SMALLEST,
    "MobileNetV3Small": SMALLEST,
    "MobileNetV3Large": SMALLEST,
    "DenseNet121": SMALLEST,
    "NASNetMobile": SMALLEST,
    "EfficientNetB0": SMALLEST,
    "EfficientNetV2B0": SMALLEST,
    "ConvNeXtTiny": SMALLEST,
    "RegNetX002": SMALLEST,  # tf_keras only
}
KERAS3_APPLICATIONS = [name for name in APPLICATIONS if name != "RegNetX002"]
TF_KERAS_APPLICATIONS = ("MobileNetV2", "MobileNetV3Small", "ConvNeXtTiny", "RegNetX002", "InceptionResNetV2")
# Channels-first graphs whose convolution trunk must run without a single permute (ops included).
NO_PERMUTES = ("ResNet50", "MobileNetV3Small")


def randomize_batchnorm(model, seed: int = 0) -> None:
    """Keras initializes moving mean 0 / variance 1, which would hide a wrong epsilon or axis."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            new = []
            for w in layer.weights:
                name = w.name.split("/")[-1].split(":")[0]
                shape = tuple(w.shape)
                if "variance" in name:
                    new.append(rng.uniform(0.5, 1.5, shape))
                elif "gamma" in name:
                    new.append(rng.uniform(0.7, 1.3, shape))
                else:
                    new.append(rng.normal(0.0, 0.1, shape))
            layer.set_weights([a.astype("float32") for a in new])


def shape_of(name: str) -> tuple[int, int, int]:
    return (APPLICATIONS[name], APPLICATIONS[name], 3)


def build(flavour: str, name: str):
    k = keras_module(flavour)
    model = getattr(k.applications, name)(weights=None, input_shape=shape_of(name), classifier_activation=None)
    randomize_batchnorm(model)
    return model


def image_batch(shape, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (2, *shape)).astype("float32")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """The process without tf2torch that runs every emitted model of this module (torch imported once)."""
    with StandaloneRunner(tmp_path_factory.mktemp("standalone")) as runner:
        yield runner


def check_emitted(module, name: str, x: np.ndarray, ref: list[np.ndarray], tmp_path, standalone) -> dict:
    """Emit python, pt2 and onnx; run the first two without tf2torch, the last in onnxruntime. The exports were
    traced with batch 2: they run on batch 3 (the images, then the first again), the batch being dynamic."""
    root = tmp_path / "emitted"
    emit(module, root / name, ("python", "pt2", "onnx"))
    x = np.concatenate([x, x[:1]])
    ref = [np.concatenate([r, r[:1]]) for r in ref]  # inference: each image's logits do not depend on the others
    inputs = [to_torch_input(x, "channels_first").contiguous()]  # as the other process gets it: same conv kernels
    with torch.no_grad():
        expected = module(*inputs).double().numpy()
    got = standalone.run(root, {name: inputs})[name]
    errors = {"python": max_rel_error(got["python"][0].double().numpy(), expected)}
    assert errors["python"] <= STANDALONE_TOL, f"{name} python: {errors['python']:.3g} from the converted module"
    # the exported program holds torch's own 1×1 convolutions where the module runs matrix products: like ONNX,
    # it is held to the suite's tolerance of Keras
    errors["pt2"] = assert_matches(channels_last([got["pt2"][0].double().numpy()]), ref, RTOL,
                                   f"{name} pt2 vs Keras")
    errors["onnx"] = assert_matches(channels_last(onnx_outputs(root / name / "model.onnx", inputs)), ref, RTOL,
                                    f"{name} onnxruntime vs Keras")
    return errors


def check_application(flavour: str, name: str, tmp_path, formats, standalone) -> dict:
    model = build(flavour, name)
    x = image_batch(shape_of(name))
    ref = keras_outputs(model, [x])
    errors = {}
    for fmt in formats:
        path = tmp_path / f"{name}.{fmt}"
        model.save(str(path))
        # The layout is the assembler's, whichever reader built the IR: both layouts from the first format, the
        # default one from the second (its reader is what that conversion proves).
        for layout in ("channels_first", "keras") if fmt == formats[0] else ("channels_first",):
            module = tf2torch.convert(path, layout=layout)
            got = torch_outputs(module, [x], layout)
            errors[(fmt, layout)] = assert_matches(got, ref, RTOL, f"{flavour} {name} .{fmt} {layout}")
            if layout == "channels_first" and name in NO_PERMUTES:
                permutes = [n for n in module.graph.nodes if n.op == "call_method" and n.target == "permute"]
                assert permutes == [], f"{name}: channels-first graph permutes at {permutes}"
            if name == "ResNet50":
                assert module.get_submodule("conv1_conv").weight.shape == (64, 3, 7, 7)  # HWIO → OIHW once
            if fmt == formats[0] and layout == "channels_first":
                optimized = tf2torch.convert(path, layout=layout, optimize=True)
                errors[(fmt, "optimized")] = assert_matches(torch_outputs(optimized, [x], layout), ref, RTOL,
                                                            f"{flavour} {name} .{fmt} optimized")
                del optimized
                # a family the Keras 3 row emits is not emitted again: the same nn modules, written the same way
                if flavour == "keras3" or name not in KERAS3_APPLICATIONS:
                    started = time.perf_counter()
                    emitted = check_emitted(module, name, x, ref, tmp_path, standalone)
                    errors.update({(kind, "emitted"): e for kind, e in emitted.items()})
                    print(f"{name} {flavour}: emitted and checked in {time.perf_counter() - started:.0f} s")
            del module
        path.unlink()
    print(name, flavour, {f"{f}/{lay}": f"{e:.2e}" for (f, lay), e in errors.items()})
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("name", KERAS3_APPLICATIONS)
def test_keras3_application(name, tmp_path, standalone):
    check_application("keras3", name, tmp_path, ("keras", "h5"), standalone)


@pytest.mark.slow
@pytest.mark.parametrize("name", TF_KERAS_APPLICATIONS)
def test_tf_keras_application(name, tmp_path, standalone):
    check_application("tf_keras", name, tmp_path, ("h5", "keras"), standalone)
