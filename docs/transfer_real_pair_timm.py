"""keras.applications models into timm's independently written PyTorch implementations, with no map.

The weights are random (``weights=None``; no checkpoint is downloaded), BatchNorm statistics included: what is
real is the pair of implementations. Each Keras model is saved whole (``.keras``), so the transfer also runs the
verification (each matched layer's output against Keras's) and prints its verdict:

- EfficientNetV2B0 -> timm ``tf_efficientnetv2_b0`` (TF SAME padding, eps 1e-3, fused BatchNorm+SiLU modules):
  loads and agrees.
- MobileNetV3Large -> timm ``tf_mobilenetv3_large_100`` (Keras's classifier is a 1x1 ``Conv2D``, timm's a
  ``Linear``): loads and agrees.
- MobileNetV2 -> timm ``mobilenetv2_100`` (symmetric padding): loads; the verification names the padding trap at
  the stem.
- InceptionV3 -> timm ``inception_v3`` (Keras's BatchNorms have ``scale=False``: ones loaded): loads; diverges at
  the first ``branch_pool`` (its average pool counts the padding, Keras's does not), named as upstream of a layer
  without weights.
- Xception -> timm ``legacy_xception`` (torch's BatchNorm eps 1e-5): loads; the epsilon is named.

timm (1.0.11) is not installed: its wheel unpacked into PKGS with pillow (timm imports it), and a stand-in for
torchvision (timm imports it for its data transforms; none of these models uses it) in STUB:
    pip install --no-deps --target PKGS timm==1.0.11 pillow pyyaml huggingface_hub==0.26.2 safetensors
    python docs/transfer_real_pair_timm.py PKGS STUB OUT_DIR
"""

import os
import sys

import numpy as np
import torch

import tf2torch

PKGS, STUB, OUT = sys.argv[1:4]
sys.path[:0] = [STUB, PKGS]
import keras  # noqa: E402
import timm  # noqa: E402

PAIRS = {  # keras.applications class, timm name, input size
    "efficientnetv2_b0": (lambda **kw: keras.applications.EfficientNetV2B0(include_preprocessing=False, **kw),
                          "tf_efficientnetv2_b0", 64),
    "mobilenetv3_large": (lambda **kw: keras.applications.MobileNetV3Large(include_preprocessing=False, **kw),
                          "tf_mobilenetv3_large_100", 64),
    "mobilenetv2": (keras.applications.MobileNetV2, "mobilenetv2_100", 64),
    "inceptionv3": (keras.applications.InceptionV3, "inception_v3", 96),
    "xception": (keras.applications.Xception, "legacy_xception", 96),
}
os.makedirs(OUT, exist_ok=True)
for name, (build, timm_name, size) in PAIRS.items():
    model = build(weights=None, input_shape=(size, size, 3), classes=10, classifier_activation=None)
    rng = np.random.default_rng(0)
    model.set_weights([(rng.uniform(0.5, 1.5, w.shape) if "variance" in w.path else rng.standard_normal(w.shape)
                        * 0.1 + ("gamma" in w.path)).astype("float32") for w in model.weights])
    path = f"{OUT}/{name}.keras"
    model.save(path)
    net = timm.create_model(timm_name, pretrained=False, num_classes=10).eval()
    x = rng.uniform(-1, 1, (2, size, size, 3)).astype("float32")
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    report = tf2torch.transfer(path, net, example_inputs=(tx,))
    with torch.no_grad():
        error = float(np.abs(np.asarray(model(x)) - net(tx).numpy()).max() / np.abs(np.asarray(model(x))).max())
    first = report.first_divergence
    verdict = "agrees layer by layer" if first is None else \
        f"first divergence at {first['target']} (from {first['source']}): {'; '.join(first['diagnosis'])}"
    print(f"{name} -> {timm_name}: {len(report.mapping)} tensors loaded={report.loaded}; output max relative "
          f"error {error:.2e}; {verdict}")
