"""A real pair from a .tflite file: MediaPipe's published BlazeFace (``face_detection_short_range.tflite``, shipped
in the mediapipe 0.10.14 wheel) into face-alignment's independently written PyTorch BlazeFace (face-alignment 1.5.0,
``face_alignment/detection/blazeface/net_blazeface.py``, from hollance/BlazeFace-PyTorch), with no map; prints
each output's relative error against TensorFlow Lite's own interpreter.

Nothing is installed; the two wheels are unpacked and the one module file is imported by path:
    pip download --no-deps mediapipe==0.10.14 face-alignment==1.5.0 -d WHEELS
    cd WHEELS && unzip -qo mediapipe-*.whl \
        mediapipe/modules/face_detection/face_detection_short_range.tflite -d mp && \
        unzip -qo face_alignment-*.whl -d fa
    python docs/transfer_real_pair_blazeface.py WHEELS
"""

import importlib.util
import sys
import warnings

import numpy as np
import torch

import tf2torch

WHEELS = sys.argv[1]
spec = importlib.util.spec_from_file_location(
    "net_blazeface", f"{WHEELS}/fa/face_alignment/detection/blazeface/net_blazeface.py")
net_blazeface = importlib.util.module_from_spec(spec)
spec.loader.exec_module(net_blazeface)
path = f"{WHEELS}/mp/mediapipe/modules/face_detection/face_detection_short_range.tflite"

net = net_blazeface.BlazeFace().eval()  # the front (128x128) model, random weights until the transfer
x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype("float32")
tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
report = tf2torch.transfer(path, net, example_inputs=(tx,))
print(report.to_markdown())

import tensorflow as tf  # noqa: E402  (only for the reference: the transfer read the file without it)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    interpreter = tf.lite.Interpreter(model_path=path)
interpreter.allocate_tensors()
interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
interpreter.invoke()
with torch.no_grad():
    regressors, classificators = net(tx)
for detail in interpreter.get_output_details():
    ref = interpreter.get_tensor(detail["index"])
    got = (regressors if ref.shape[-1] == 16 else classificators).numpy()
    print(detail["name"], ref.shape, "max relative error", float(np.abs(ref - got).max() / np.abs(ref).max()))
