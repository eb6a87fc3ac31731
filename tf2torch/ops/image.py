"""Image resizing: ``tf.image.resize`` and Keras 3 ``ops.image.resize`` (half-pixel centres, no corner
alignment) and the raw TF resize ops (``ops/tf_raw.py``). Runs on channels-first tensors."""

from __future__ import annotations

from .. import layout as L
from ..contract import Converted
from ..nn.image import TFImageResize
from .common import op_result
from .registry import OpCall, TensorArg, operation, spelling

spelling("keras.ops.Resize", "resize",
         "images:x, size, interpolation:method='bilinear', antialias=False, crop_to_aspect_ratio=False, "
         "pad_to_aspect_ratio=False, fill_mode='constant', fill_value=0.0, data_format=None")
spelling("tf.image.resize", "resize",
         "images:x, size, method='bilinear', preserve_aspect_ratio=False, antialias=False, name=None")

METHODS = ("bilinear", "nearest")
GRAPH_METHODS = ("bilinear", "nearest", "bicubic", "area")  # a raw TF resize op's spelling fixes its method


@operation("resize")
def convert_resize(call: OpCall) -> Converted:
    """``nn/image.py`` ``TFImageResize``, TF's own arithmetic: half-pixel centres for ``tf.image.resize`` and
    Keras 3, TF 1's ``align_corners`` / ``half_pixel_centers`` for the raw ops, whose bicubic and area kernels
    it computes as TF does; through ``tf.image.resize`` (and its antialiased kernels) they are refused."""
    x = call.tensor("x")
    if call.rank(x) != 4:
        call.fail("resize of a tensor that is not a batch of images (rank 4) is not supported")
    method = str(call.constant("method"))
    if method not in (GRAPH_METHODS if "method" in call.spelling.fixed else METHODS):
        call.fail(f"resize method {method!r} is not supported (bilinear, nearest)")
    if call.constant("antialias", False):
        call.fail("antialiased resizing is not supported")
    for flag in ("preserve_aspect_ratio", "crop_to_aspect_ratio", "pad_to_aspect_ratio"):
        if call.constant(flag, False):
            call.fail(f"resize with {flag}=True is not supported")
    call.constant("fill_mode", "constant")
    call.constant("fill_value", 0.0)
    if call.constant("data_format", None) not in (None, "channels_last"):
        call.fail("resize of channels_first images is not supported")
    corners, centres = bool(call.constant("align_corners", False)), bool(call.constant("half_pixel_centers", True))
    size = call.arg("size")
    if isinstance(size, TensorArg):  # computed at run time (a raw TF graph), in TF's layout
        module = TFImageResize(None, method, corners, centres)
        return Converted(module, input_layouts=[L.CHANNELS_FIRST, L.KERAS], output_layouts=L.CHANNELS_FIRST,
                         output_mask="none")
    module = TFImageResize([int(s) for s in call.constant("size")], method, corners, centres)
    return op_result(call, module, L.CHANNELS_FIRST)
