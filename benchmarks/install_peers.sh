#!/bin/sh
# The other routes the benchmarks compare with, installed in a separate virtual environment (build/benchenv) that
# sees the project's packages; never dependencies of tf2torch. onnx2torch imports torchvision only for its NMS and
# RoIAlign converters; no CPU torchvision build matches torch 2.13.0 here, so a stub that raises stands in for it.
set -e
PYTHON=${PYTHON:-python3}
ENV=${BENCH_ENV:-build/benchenv}
$PYTHON -m venv --system-site-packages "$ENV"
"$ENV/bin/pip" install -q --no-deps tf2onnx==1.17.0 onnx2torch==1.5.15 onnxruntime coloredlogs humanfriendly \
    sympy mpmath
SITE=$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$SITE/torchvision/ops"
: > "$SITE/torchvision/__init__.py"
cat > "$SITE/torchvision/ops/__init__.py" <<'PY'
"""Stub for onnx2torch's import only (benchmarks): the models benchmarked use none of these."""


def nms(*args, **kwargs):
    raise NotImplementedError("torchvision stub (tf2torch benchmarks)")


roi_align = box_convert = nms
PY
"$ENV/bin/python" -c "import tf2onnx, onnx2torch, onnxruntime; print('peers installed in $ENV')"
