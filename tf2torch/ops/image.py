"""Image resizing: ``tf.image.resize`` and Keras 3 ``ops.image.resize`` (half-pixel centres, no corner
alignment). Runs on channels-first tensors (torch's ``interpolate`` wants N,C,H,W)."""

from __future__ import annotations

from .. import layout as L
from ..contract import Converted
from ..nn.ops import Op, Slot
from .common import op_result
from .registry import OpCall, operation, spelling

spelling("keras.ops.Resize", "resize",
         "images:x, size, interpolation:method='bilinear', antialias=False, crop_to_aspect_ratio=False, "
         "pad_to_aspect_ratio=False, fill_mode='constant', fill_value=0.0, data_format=None")
spelling("tf.image.resize", "resize",
         "images:x, size, method='bilinear', preserve_aspect_ratio=False, antialias=False, name=None")

METHODS = {"bilinear": "bilinear", "nearest": "nearest"}


@operation("resize")
def convert_resize(call: OpCall) -> Converted:
    """Bilinear and nearest match TF exactly (nearest as torch's ``nearest-exact``). TF's bicubic uses Keys'
    a = -0.5 and torch a = -0.75; area and antialiased kernels differ too: refused."""
    x = call.tensor("x")
    if call.rank(x) != 4:
        call.fail("resize of a tensor that is not a batch of images (rank 4) is not supported")
    method = str(call.constant("method"))
    if method not in METHODS:
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
    size = [int(s) for s in call.constant("size")]
    module = Op("resize", [Slot(x.index), size, METHODS[method], False], label=call.spelling.name)
    return op_result(call, module, L.CHANNELS_FIRST)
