"""Whole keras.applications models (weights=None, nothing downloaded) with randomized BatchNormalization
statistics, saved in every format, converted in both layouts and compared on logits with Keras. Each converted
model is also emitted as Python, .pt2 and ONNX: the first two run without tf2torch (``standalone.py``) within
1e-6 of the converted module, the ONNX model runs in onnxruntime within the suite's tolerance of Keras."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import RTOL, assert_matches, keras_module, keras_outputs, max_rel_error, to_torch_input, torch_outputs
from standalone import STANDALONE_TOL, channels_last, onnx_outputs, run_standalone

import tf2torch
from tf2torch.emit import emit

APPLICATIONS = {
    "ResNet50": (224, 224, 3),
    "MobileNetV2": (224, 224, 3),
    "EfficientNetB0": (224, 224, 3),
    "InceptionV3": (299, 299, 3),
    "VGG16": (224, 224, 3),
    "DenseNet121": (224, 224, 3),
}


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


def build(flavour: str, name: str):
    k = keras_module(flavour)
    model = getattr(k.applications, name)(weights=None, input_shape=APPLICATIONS[name],
                                          classifier_activation=None)
    randomize_batchnorm(model)
    return model


def image_batch(shape, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (2, *shape)).astype("float32")


def check_emitted(module, name: str, x: np.ndarray, ref: list[np.ndarray], tmp_path) -> dict:
    """Emit python, pt2 and onnx; run the first two without tf2torch, the last in onnxruntime."""
    root = tmp_path / "emitted"
    emit(module, root / name, ("python", "pt2", "onnx"))
    inputs = [to_torch_input(x, "channels_first").contiguous()]  # as the other process gets it: same conv kernels
    with torch.no_grad():
        expected = module(*inputs).double().numpy()
    got = run_standalone(root, {name: inputs}, tmp_path)[name]
    errors = {kind: max_rel_error(got[kind][0].double().numpy(), expected) for kind in ("python", "pt2")}
    for kind, err in errors.items():
        assert err <= STANDALONE_TOL, f"{name} {kind}: {err:.3g} from the converted module"
    errors["onnx"] = assert_matches(channels_last(onnx_outputs(root / name / "model.onnx", inputs)), ref, RTOL,
                                    f"{name} onnxruntime vs Keras")
    return errors


def check_application(flavour: str, name: str, tmp_path, formats, emit_too: bool = True) -> dict:
    model = build(flavour, name)
    x = image_batch(APPLICATIONS[name])
    ref = keras_outputs(model, [x])
    errors = {}
    for fmt in formats:
        path = tmp_path / f"{name}.{fmt}"
        model.save(str(path))
        for layout in ("channels_first", "keras"):
            module = tf2torch.convert(path, layout=layout)
            got = torch_outputs(module, [x], layout)
            errors[(fmt, layout)] = assert_matches(got, ref, RTOL, f"{flavour} {name} .{fmt} {layout}")
            if emit_too and fmt == formats[0] and layout == "channels_first":
                emitted = check_emitted(module, name, x, ref, tmp_path)
                errors.update({(kind, "emitted"): e for kind, e in emitted.items()})
            del module
        path.unlink()
    print(name, flavour, {f"{f}/{lay}": f"{e:.2e}" for (f, lay), e in errors.items()})
    return errors


@pytest.mark.slow
@pytest.mark.parametrize("name", APPLICATIONS)
def test_keras3_application(name, tmp_path):
    check_application("keras3", name, tmp_path, ("keras", "h5"))


@pytest.mark.slow
def test_tf_keras_mobilenet_v2(tmp_path):
    check_application("tf_keras", "MobileNetV2", tmp_path, ("h5", "keras"))


@pytest.mark.slow
def test_conv_trunk_has_no_permutes(tmp_path):
    """Channels-first ResNet50: the only layout changes are none at all (input N,C,H,W, logits 2-D)."""
    model = build("keras3", "ResNet50")
    path = tmp_path / "resnet.keras"
    model.save(str(path))
    module = tf2torch.convert(path)
    permutes = [n for n in module.graph.nodes if n.op == "call_method" and n.target == "permute"]
    assert permutes == []
    assert module.get_submodule("conv1_conv").weight.shape == (64, 3, 7, 7)
