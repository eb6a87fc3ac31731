"""The real pair of docs/transfer.md, re-runnable: ipazc/mtcnn's published Keras P/R/O-Net weights into
facenet-pytorch's independently written PNet/RNet/ONet, with no map; prints each output's relative error.

Needs the wheels unpacked in one directory (nothing is installed):
    pip download --no-deps mtcnn==1.0.0 facenet-pytorch==2.6.0 joblib lz4 cloudpickle -d WHEELS
    cd WHEELS && unzip -qo mtcnn-*.whl -d mt && unzip -qo facenet_pytorch-*.whl -d fp && \
        for w in joblib-*.whl lz4-*.whl cloudpickle-*.whl; do unzip -qo $w -d libs; done
    python docs/transfer_real_pair_mtcnn.py WHEELS OUT_DIR
mtcnn's weights are joblib pickles, unpickled here as mtcnn itself does: run it on wheels you trust.
"""

import pathlib
import sys
import types

import numpy as np
import torch

import tf2torch

PK, OUT = sys.argv[1], pathlib.Path(sys.argv[2])
sys.path[:0] = [f"{PK}/libs", f"{PK}/mt"]
import joblib  # noqa: E402
from mtcnn.network.onet import ONet  # noqa: E402
from mtcnn.network.pnet import PNet  # noqa: E402
from mtcnn.network.rnet import RNet  # noqa: E402

# facenet-pytorch's mtcnn.py as it is, less its import of the detection helpers (torchvision, cv2)
source = open(f"{PK}/fp/facenet_pytorch/models/mtcnn.py").read().replace(
    "from .utils.detect_face import detect_face, extract_face", "")
fp = types.ModuleType("facenet_mtcnn")
exec(compile(source, "facenet_pytorch/models/mtcnn.py", "exec"), fp.__dict__)
OUT.mkdir(parents=True, exist_ok=True)
for name, keras_class, torch_class, size in (("pnet", PNet, fp.PNet, 12), ("rnet", RNet, fp.RNet, 24),
                                             ("onet", ONet, fp.ONet, 48)):
    keras_net = keras_class()
    keras_net.build((None, size, size, 3))
    keras_net.set_weights(joblib.load(f"{PK}/mt/mtcnn/assets/weights/{name}.lz4"))
    path = OUT / f"{name}.weights.h5"
    keras_net.save_weights(str(path))
    net = torch_class(pretrained=False)
    x = np.random.default_rng(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    report = tf2torch.transfer(path, net, example_inputs=(tx,))
    with torch.no_grad():
        got = net.eval()(tx)
    for ref, out in zip(keras_net(x), got):
        ref, out = np.asarray(ref), out.numpy()
        out = out.transpose(0, 2, 3, 1) if out.ndim == 4 else out
        print(name, ref.shape, "max relative error", float(np.abs(ref - out).max() / np.abs(ref).max()))
