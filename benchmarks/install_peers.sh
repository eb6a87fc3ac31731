#!/bin/sh
# The other routes the benchmarks compare with, installed in a separate virtual environment (build/benchenv) that
# sees the project's packages; never dependencies of tf2torch. onnx2torch imports torchvision only for its NMS and
# RoIAlign converters; no CPU torchvision build matches torch 2.13.0 here, so a stub that raises stands in for it.
# PYTHON is the project's interpreter (make's .venv/bin/python); when it is itself a virtual environment,
# `venv --system-site-packages` would see the base interpreter's packages, not the project's (torch, tensorflow),
# so a .pth file in the new environment adds the project interpreter's site directories.
set -e
PYTHON=${PYTHON:-python3}
ENV=${BENCH_ENV:-build/benchenv}
$PYTHON -m venv --system-site-packages "$ENV"
SITE=$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
$PYTHON -c 'import site, sys; print("\n".join(p for p in site.getsitepackages() if p))' > "$SITE/tf2torch_project.pth"
"$ENV/bin/pip" install -q --no-deps tf2onnx==1.17.0 onnx2torch==1.5.15 onnxruntime coloredlogs humanfriendly \
    sympy mpmath
mkdir -p "$SITE/torchvision/ops"
: > "$SITE/torchvision/__init__.py"
cat > "$SITE/torchvision/ops/__init__.py" <<'PY'
"""Stub for onnx2torch's import only (benchmarks): the models benchmarked use none of these."""


def nms(*args, **kwargs):
    raise NotImplementedError("torchvision stub (tf2torch benchmarks)")


roi_align = box_convert = nms
PY
"$ENV/bin/python" -c "import torch, tensorflow, keras, onnx, tf2onnx, onnx2torch, onnxruntime; print('peers installed in $ENV')"
