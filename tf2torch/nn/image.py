"""Run-time image ops with TensorFlow's own arithmetic: the Keras ``Resizing`` layer's ``TFResize`` (static size,
every ``tf.image.resize`` method and antialiasing, below), and what ``tf2torch/ops`` builds: ``ResizeBilinear``
/ ``ResizeNearestNeighbor`` / ``ResizeBicubic`` / ``ResizeArea`` with TF's source-coordinate rules, crop-and-resize,
image patches, max pooling with argmax, and non-max suppression. Formulas follow [TF] ``core/kernels/image/``
(cited per function).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .padding import tf_same_padding

CUBIC_TABLE_SIZE = 1024
FLOAT_MIN = np.finfo(np.float32).tiny
F32 = np.float32


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Integer images become float32 as in Keras; float64 stays float64 (``model.double()`` for verification)."""
    return x if x.is_floating_point() else x.float()


def _cubic_table(a: float) -> torch.Tensor:
    """[TF] resize_bicubic_op.cc ``InitCoeffsTable``: the cubic kernel at 1025 offsets, for |x| in [0, 1] (column 0)
    and [1, 2] (column 1), in float32 as TF computes it."""
    x = torch.arange(CUBIC_TABLE_SIZE + 1, dtype=torch.float32) / CUBIC_TABLE_SIZE
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    x = x + 1.0
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.stack([near, far], 1)


def _cubic_axis(x: torch.Tensor, axis: int, n_out: int, scale: float, half_pixel: bool) -> torch.Tensor:
    """``ResizeBicubic`` along one axis as TF's kernel: the fractional offset rounded to 1/1024 and looked up in
    the table; half-pixel centers use Keys' a = -0.5, drop taps outside the input and renormalize, legacy
    (a = -0.75) clamps the taps ([TF] ``GetWeightsAndIndices``)."""
    n_in = x.shape[axis]
    table = _cubic_table(-0.5 if half_pixel else -0.75)
    out = torch.arange(n_out, dtype=torch.float32)
    src = (out + 0.5) * scale - 0.5 if half_pixel else out * scale
    base = torch.floor(src)
    offset = torch.round((src - base) * CUBIC_TABLE_SIZE).long()  # (lrintf: half to even, as torch.round)
    weights = torch.stack([table[offset, 1], table[offset, 0], table[CUBIC_TABLE_SIZE - offset, 0],
                           table[CUBIC_TABLE_SIZE - offset, 1]], 1)  # [n_out, 4]
    taps = base.long().unsqueeze(1) + torch.arange(-1, 3)
    clamped = taps.clamp(0, n_in - 1)
    if half_pixel:
        weights = torch.where(clamped == taps, weights, torch.zeros_like(weights))
        total = weights.sum(1, keepdim=True)
        weights = torch.where(total.abs() >= 1000 * torch.finfo(torch.float32).tiny, weights / total, weights)
    picked = torch.index_select(x, axis, clamped.reshape(-1))
    shape = list(x.shape)
    shape[axis:axis + 1] = [n_out, 4]
    picked = picked.reshape(shape)
    w_shape = [1] * len(shape)
    w_shape[axis:axis + 2] = [n_out, 4]
    return (picked * weights.reshape(w_shape).to(x.dtype)).sum(axis + 1)


def _area_weights(n_in: int, n_out: int, scale: float) -> torch.Tensor:
    """``ResizeArea`` along one axis ([TF] resize_area_op.cc): output i averages the input over
    [i scale, (i+1) scale), each input cell weighted by the part of it covered (indices past the end clamped)."""
    weights = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        lo, hi = i * scale, (i + 1) * scale
        for j in range(int(lo // 1), int(-(-hi // 1))):
            weights[i, min(j, n_in - 1)] += (min(j + 1, hi) - max(j, lo)) / scale
    return weights


class TFImageResize(nn.Module):
    """``ResizeBilinear`` / ``ResizeNearestNeighbor`` (``ResizeBicubic``, ``ResizeArea``: ``_cubic_axis``,
    ``_area_weights``) on the last two axes of an N,C,H,W tensor with TF's own
    source-coordinate rules ([TF] ``image_resizer_state.h``): ``align_corners`` scales by (in-1)/(out-1);
    ``half_pixel_centers`` samples at (out + 0.5) * scale - 0.5 (bilinear) or floor((out + 0.5) * scale)
    (nearest); legacy TF1 samples at out * scale (bilinear) or floor(out * scale) (nearest)."""

    def __init__(self, size: Sequence[int] | None, method: str, align_corners: bool, half_pixel_centers: bool):
        super().__init__()
        self.size = tuple(int(s) for s in size) if size is not None else None  # None: given on each call
        self.method = method
        self.align_corners = align_corners
        self.half_pixel_centers = half_pixel_centers

    def _scale(self, n_in: int, n_out: int) -> float:
        if self.align_corners and n_out > 1:
            return (n_in - 1) / (n_out - 1)
        return n_in / n_out

    def _axis(self, x: torch.Tensor, axis: int, n_out: int) -> torch.Tensor:
        n_in = x.shape[axis]
        scale = self._scale(n_in, n_out)
        out = torch.arange(n_out, dtype=torch.float64)
        if self.method == "bicubic":
            return _cubic_axis(x, axis, n_out, scale, self.half_pixel_centers)
        if self.method == "area":
            return torch.tensordot(x, _area_weights(n_in, n_out, scale).to(x.dtype), dims=([axis], [1])).movedim(
                -1, axis)
        if self.method == "nearest":
            if self.half_pixel_centers:
                src = torch.floor((out + 0.5) * scale)
            elif self.align_corners:  # TF's roundf: halves away from zero (torch.round rounds them to even)
                src = torch.floor(out * scale + 0.5)
            else:
                src = torch.floor(out * scale)
            idx = src.clamp(0, n_in - 1).long()
            return torch.index_select(x, axis, idx)
        src = (out + 0.5) * scale - 0.5 if self.half_pixel_centers else out * scale
        floor = torch.floor(src)
        lower = floor.clamp(min=0).clamp(max=n_in - 1).long()
        upper = torch.ceil(src).clamp(min=0, max=n_in - 1).long()
        lerp = (src - floor).to(x.dtype)
        shape = [1] * x.dim()
        shape[axis] = n_out
        lerp = lerp.reshape(shape)
        a = torch.index_select(x, axis, lower)
        b = torch.index_select(x, axis, upper)
        return a + (b - a) * lerp

    def forward(self, x: torch.Tensor, size: torch.Tensor | None = None) -> torch.Tensor:
        height, width = self.size if size is None else (int(s) for s in size.reshape(-1).tolist())
        x = self._axis(x, x.dim() - 2, height)
        return self._axis(x, x.dim() - 1, width)

    def extra_repr(self) -> str:
        return (f"size={self.size}, {self.method}, align_corners={self.align_corners}, "
                f"half_pixel_centers={self.half_pixel_centers}")


def _crop_and_resize(image: torch.Tensor, boxes: torch.Tensor, box_index: torch.Tensor, size: torch.Tensor,
                     method: str, extrapolation: float) -> torch.Tensor:
    """``CropAndResize`` on NHWC images ([TF] crop_and_resize_op.cc): box ``(y1, x1, y2, x2)`` in [0, 1] of
    ``image[box_index]`` sampled on a ``size`` grid at ``y1 (H-1) + i (y2-y1)(H-1)/(h-1)`` (the middle when
    h = 1), bilinear or nearest (rounded); samples outside the image are ``extrapolation``."""
    height, width = image.shape[1], image.shape[2]
    crop_h, crop_w = (int(v) for v in size.reshape(-1).tolist())

    def coords(lo: torch.Tensor, hi: torch.Tensor, n_out: int, n_in: int) -> torch.Tensor:
        if n_out == 1:
            return (0.5 * (lo + hi) * (n_in - 1)).unsqueeze(-1)
        steps = torch.arange(n_out, dtype=image.dtype)
        return lo.unsqueeze(-1) * (n_in - 1) + steps * ((hi - lo) * (n_in - 1) / (n_out - 1)).unsqueeze(-1)

    ys, xs = coords(boxes[:, 0], boxes[:, 2], crop_h, height), coords(boxes[:, 1], boxes[:, 3], crop_w, width)
    picked = image[box_index.long()]  # [boxes, H, W, C]
    batch = torch.arange(picked.shape[0]).reshape(-1, 1, 1)

    def sample(yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return picked[batch, yi.long().clamp(0, height - 1).unsqueeze(-1), xi.long().clamp(0, width - 1).unsqueeze(1)]

    if method == "nearest":
        out = sample(torch.round(ys), torch.round(xs))
    else:
        y0, x0 = torch.floor(ys), torch.floor(xs)
        dy, dx = (ys - y0).reshape(*ys.shape, 1, 1), (xs - x0).reshape(xs.shape[0], 1, -1, 1)
        top = sample(y0, x0) + (sample(y0, torch.ceil(xs)) - sample(y0, x0)) * dx
        bottom = sample(torch.ceil(ys), x0) + (sample(torch.ceil(ys), torch.ceil(xs)) - sample(torch.ceil(ys), x0)) * dx
        out = top + (bottom - top) * dy
    inside = ((ys >= 0) & (ys <= height - 1)).unsqueeze(-1) & ((xs >= 0) & (xs <= width - 1)).unsqueeze(1)
    return torch.where(inside.unsqueeze(-1), out, torch.full_like(out, extrapolation))


def _extract_patches(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], rate: Sequence[int],
                     same: bool) -> torch.Tensor:
    """``ExtractImagePatches`` on N,C,H,W: each output position holds its window as (row, column, channel),
    channel fastest, as TF's N,H,W,(kh kw C) does ([TF] extract_image_patches_op.cc); SAME pads with zeros."""
    if same:
        pads = [tf_same_padding(x.shape[2 + i], kernel[i], stride[i], rate[i]) for i in range(2)]
        x = F.pad(x, (*pads[1], *pads[0]))
    n, c = x.shape[:2]
    cols = F.unfold(x, tuple(kernel), dilation=tuple(rate), stride=tuple(stride))
    out_h = (x.shape[2] - (kernel[0] - 1) * rate[0] - 1) // stride[0] + 1
    cols = cols.reshape(n, c, kernel[0] * kernel[1], -1).permute(0, 2, 1, 3)
    return cols.reshape(n, kernel[0] * kernel[1] * c, out_h, -1)


def _max_pool_with_argmax(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int], same: bool,
                          with_batch: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``MaxPoolWithArgmax`` on NHWC: the maxima and where each was, flattened as ``((b H + y) W + x) C + c``
    (``b`` only with ``include_batch_in_index``) ([TF] maxpooling_op.cc)."""
    n, height, width, c = x.shape
    planes = x.permute(0, 3, 1, 2)
    top = left = 0
    if same:
        (top, bottom), (left, right) = (tf_same_padding(height, kernel[0], stride[0]),
                                        tf_same_padding(width, kernel[1], stride[1]))
        planes = F.pad(planes, (left, right, top, bottom), value=float("-inf"))
    values, index = F.max_pool2d(planes, tuple(kernel), tuple(stride), return_indices=True)
    y, xs = index // planes.shape[3] - top, index % planes.shape[3] - left
    flat = (y * width + xs) * c + torch.arange(c).reshape(1, c, 1, 1)
    if with_batch:
        flat = flat + torch.arange(n).reshape(n, 1, 1, 1) * (height * width * c)
    return values.permute(0, 2, 3, 1), flat.permute(0, 2, 3, 1)


def _iou(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """IoU of one box with many, corners in either order ([TF] non_max_suppression_op.cc ``IOU``: 0 when
    either area is empty)."""
    def span(b: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return (torch.minimum(b[..., 0], b[..., 2]), torch.minimum(b[..., 1], b[..., 3]),
                torch.maximum(b[..., 0], b[..., 2]), torch.maximum(b[..., 1], b[..., 3]))

    y1, x1, y2, x2 = span(box)
    ys1, xs1, ys2, xs2 = span(boxes)
    area, areas = (y2 - y1) * (x2 - x1), (ys2 - ys1) * (xs2 - xs1)
    inter = (torch.minimum(y2, ys2) - torch.maximum(y1, ys1)).clamp(min=0) * \
        (torch.minimum(x2, xs2) - torch.maximum(x1, xs1)).clamp(min=0)
    union = area + areas - inter
    return torch.where((area <= 0) | (areas <= 0), torch.zeros_like(union), inter / union)


def non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, max_out: int, iou_threshold: float,
                        score_threshold: float) -> torch.Tensor:
    """Greedy hard NMS as TF's ``NonMaxSuppressionV3``: candidates above ``score_threshold`` by descending score
    (ties: lower index first), each kept unless its IoU with a kept box exceeds ``iou_threshold``."""
    order = torch.sort(scores, descending=True, stable=True).indices
    order = order[scores[order] > score_threshold]
    kept: list[int] = []
    for i in order.tolist():
        if len(kept) >= max_out:
            break
        if not kept or not bool((_iou(boxes[i], boxes[kept]) > iou_threshold).any()):
            kept.append(i)
    return torch.tensor(kept, dtype=torch.int32)


def combined_non_max_suppression(boxes: torch.Tensor, scores: torch.Tensor, per_class: int, total: int,
                                 iou_threshold: float, score_threshold: float, pad_per_class: bool,
                                 clip_boxes: bool) -> tuple[torch.Tensor, ...]:
    """``CombinedNonMaxSuppression`` ([TF] combined_non_max_suppression_op.cc): per image, hard NMS per class
    (boxes ``[N, q, 4]``, q = 1 shared by every class), the survivors of all classes by descending score, the
    first ``total`` kept (``pad_per_class``: at most ``per_class * classes``), zero-padded, with their count."""
    size = min(total, per_class * scores.shape[-1]) if pad_per_class else total
    out_boxes, out_scores, out_classes, counts = [], [], [], []
    for b in range(boxes.shape[0]):
        found = []
        for c in range(scores.shape[-1]):
            class_boxes = boxes[b, :, 0 if boxes.shape[2] == 1 else c]
            kept = non_max_suppression(class_boxes, scores[b, :, c], per_class, iou_threshold, score_threshold)
            found += [(float(scores[b, i, c]), c, class_boxes[i]) for i in kept.tolist()]
        found = sorted(found, key=lambda f: -f[0])[:size]
        picked = torch.zeros(size, 4, dtype=boxes.dtype)
        for j, (_, _, box) in enumerate(found):
            picked[j] = box.clamp(0.0, 1.0) if clip_boxes else box
        out_boxes.append(picked)
        out_scores.append(torch.tensor([f[0] for f in found] + [0.0] * (size - len(found)), dtype=scores.dtype))
        out_classes.append(torch.tensor([float(f[1]) for f in found] + [0.0] * (size - len(found)),
                                        dtype=scores.dtype))
        counts.append(len(found))
    return (torch.stack(out_boxes), torch.stack(out_scores), torch.stack(out_classes),
            torch.tensor(counts, dtype=torch.int32))


# -- the Keras Resizing layer: ``tf.image.resize`` at a static size --------------------------------------------
# Resizing follows ``tf.image.resize`` ([TF] ``python/ops/image_ops_impl.py``, ``core/kernels/image/``), which both
# Keras 3 (TF backend) and tf_keras call. Where torch has the same arithmetic, ``F.interpolate`` runs it:
# ``bilinear`` (half-pixel centres), ``nearest`` (``floor((dst + 0.5) * in / out)`` = ``'nearest-exact'``) and the
# antialiased ``bilinear``/``bicubic`` (TF ``scale_and_translate`` with the triangle / Keys a = -0.5 kernel, the
# same separable filter as torch's ``antialias=True``). The others (``area``, table-based ``bicubic``, ``lanczos3``,
# ``lanczos5``, ``gaussian``, ``mitchellcubic``) are separable linear maps: one (out, in) weight matrix per axis,
# built by the pure functions below with TF's float32 index arithmetic and applied as two matmuls.

# -- resampling weights ---------------------------------------------------------------------------------------
def triangle_kernel(x: np.ndarray) -> np.ndarray:
    return np.where(x < 1, 1 - x, F32(0))


def keys_cubic_kernel(x: np.ndarray) -> np.ndarray:
    far = ((F32(-0.5) * x + F32(2.5)) * x - F32(4)) * x + F32(2)
    near = ((F32(1.5) * x - F32(2.5)) * x) * x + F32(1)
    return np.where(x >= 2, F32(0), np.where(x >= 1, far, near))


def mitchell_cubic_kernel(x: np.ndarray) -> np.ndarray:
    far = ((F32(-7 / 18) * x + F32(2)) * x - F32(10 / 3)) * x + F32(16 / 9)
    near = ((F32(7 / 6) * x - F32(2)) * x) * x + F32(8 / 9)
    return np.where(x >= 2, F32(0), np.where(x >= 1, far, near))


def gaussian_kernel(x: np.ndarray) -> np.ndarray:
    """Radius 1.5, sigma 0.5; the exponent is evaluated in double as in [TF] ``sampling_kernels.h``."""
    value = np.exp(-(x * x).astype(np.float64) / (2.0 * 0.5 * 0.5)).astype(F32)
    return np.where(x >= F32(1.5), F32(0), value)


def lanczos_kernel(radius: int) -> Callable[[np.ndarray], np.ndarray]:
    def kernel(x: np.ndarray) -> np.ndarray:
        pi, r = F32(3.14159265359), F32(radius)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = r * np.sin(pi * x) * np.sin(pi * x / r) / (pi * pi * x * x)
        return np.where(x > r, F32(0), np.where(x <= 1e-3, F32(1), value)).astype(F32)

    return kernel


# name → (kernel function, radius) of TF ``scale_and_translate`` ([TF] ``core/kernels/image/sampling_kernels.h``)
SAMPLING_KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]] = {
    "triangle": (triangle_kernel, 1.0),
    "keyscubic": (keys_cubic_kernel, 2.0),
    "mitchellcubic": (mitchell_cubic_kernel, 2.0),
    "gaussian": (gaussian_kernel, 1.5),
    "lanczos3": (lanczos_kernel(3), 3.0),
    "lanczos5": (lanczos_kernel(5), 5.0),
}


def normalized_rows(weights: np.ndarray) -> np.ndarray:
    """Divide each row by its float32 sum unless the sum is (nearly) zero, as TF does for its taps."""
    total = weights.sum(axis=1, dtype=F32)
    usable = np.abs(total) >= F32(1000) * FLOAT_MIN
    inverse = np.where(usable, F32(1) / np.where(usable, total, F32(1)), F32(0))
    return (weights * inverse[:, None]).astype(F32)


def scale_and_translate_weights(kernel_name: str, in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """(out, in) weights of TF ``ScaleAndTranslate`` with zero translation ([TF]
    ``core/kernels/image/scale_and_translate_op.cc::ComputeSpansCore``): sample at ``(x + 0.5) * in / out``, the
    kernel stretched by ``in / out`` when antialiasing a downscale, taps renormalized to sum to 1."""
    kernel, radius = SAMPLING_KERNELS[kernel_name]
    inv_scale = F32(1.0 / float(F32(out_size) / F32(in_size)))
    kernel_scale = max(inv_scale, F32(1)) if antialias else F32(1)
    sample = (np.arange(out_size, dtype=F32) + F32(0.5)) * inv_scale
    reach = F32(radius) * kernel_scale
    start = np.clip(np.ceil(sample - reach - F32(0.5)), 0, in_size - 1)
    end = np.clip(np.floor(sample + reach - F32(0.5)), 0, in_size - 1) + 1
    source = np.arange(in_size, dtype=F32)
    position = (source[None, :] + F32(0.5)) - sample[:, None]
    weights = kernel(np.abs(position * (F32(1) / kernel_scale))).astype(F32)
    taps = (source[None, :] >= start[:, None]) & (source[None, :] < end[:, None])
    return normalized_rows(np.where(taps, weights, F32(0)))


def area_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of TF ``ResizeArea`` ([TF] ``core/kernels/image/resize_area_op.cc``): each output cell
    averages the input cells ``[y * s, (y + 1) * s)`` overlaps (``s = in / out``, float32), by overlap length."""
    scale = F32(in_size) / F32(out_size)
    weights = np.zeros((out_size, in_size), dtype=F32)
    for y in range(out_size):
        low, high = F32(y) * scale, F32(y + 1) * scale
        for i in range(int(math.floor(low)), int(math.ceil(high))):
            if i < low:
                part = scale if F32(i + 1) > high else F32(i + 1) - low
            else:
                part = high - F32(i) if F32(i + 1) > high else F32(1)
            weights[y, min(max(i, 0), in_size - 1)] += part
    return weights / scale


def bicubic_table(a: float = -0.5, size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """TF's precomputed cubic weights at distances ``i / size`` (near taps) and ``1 + i / size`` (far taps)
    ([TF] ``core/kernels/image/resize_bicubic_op.cc::InitCoeffsTable``, computed in double, stored as float)."""
    t = np.arange(size + 1, dtype=np.float64) / size
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    t = t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return near.astype(F32), far.astype(F32)


def bicubic_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of TF ``ResizeBicubic(half_pixel_centers=True)``: Keys a = -0.5 read from a 1024-entry
    table at ``round(frac * 1024)``, taps outside the image dropped and the rest renormalized."""
    near, far = bicubic_table()
    scale = F32(in_size) / F32(out_size)
    location = (np.arange(out_size, dtype=F32) + F32(0.5)) * scale - F32(0.5)
    floor = np.floor(location)
    offset = np.rint((location - floor) * F32(1024)).astype(np.int64)
    floor = floor.astype(np.int64)
    weights = np.zeros((out_size, in_size), dtype=F32)
    rows = np.arange(out_size)
    for shift, tap in ((-1, far[offset]), (0, near[offset]), (1, near[1024 - offset]), (2, far[1024 - offset])):
        index = floor + shift
        inside = (index >= 0) & (index < in_size)
        weights[rows[inside], index[inside]] = tap[inside]
    return normalized_rows(weights)


@lru_cache(maxsize=64)
def resample_weights(method: str, in_size: int, out_size: int, antialias: bool) -> np.ndarray:
    """The (out, in) matrix of a ``tf.image.resize`` method without a torch equivalent."""
    if method == "area":
        return area_weights(in_size, out_size)
    if method == "bicubic":
        return bicubic_weights(in_size, out_size)
    return scale_and_translate_weights(method, in_size, out_size, antialias)


# -- resizing modules ---------------------------------------------------------------------------------------
TORCH_MODES = {"bilinear": "bilinear", "nearest": "nearest-exact"}
MATRIX_METHODS = ("area", "bicubic", "lanczos3", "lanczos5", "gaussian", "mitchellcubic")


class TFResize(nn.Module):
    """``tf.image.resize(images, (height, width), method, antialias)`` on an N,C,H,W tensor (float32 out).

    ``bilinear``/``nearest`` and antialiased ``bicubic`` run ``F.interpolate``; the methods in
    ``MATRIX_METHODS`` multiply by per-axis weight matrices built from the input size at run time."""

    def __init__(self, height: int, width: int, method: str = "bilinear", antialias: bool = False):
        super().__init__()
        self.size = (int(height), int(width))
        self.method = method
        self.antialias = antialias and method != "nearest"  # TF ignores antialias for nearest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_float(x)
        if self.method in TORCH_MODES or (self.method == "bicubic" and self.antialias):
            mode = TORCH_MODES.get(self.method, self.method)
            extra = {} if mode == "nearest-exact" else {"align_corners": False, "antialias": self.antialias}
            return F.interpolate(x, size=self.size, mode=mode, **extra)
        rows = self.weights(x.shape[-2], self.size[0], x)
        columns = self.weights(x.shape[-1], self.size[1], x)
        return torch.matmul(torch.matmul(rows, x), columns.transpose(0, 1))

    def weights(self, in_size: int, out_size: int, like: torch.Tensor) -> torch.Tensor:
        matrix = resample_weights(self.method, int(in_size), out_size, self.antialias)
        return torch.from_numpy(matrix).to(like.device)

    def extra_repr(self) -> str:
        return f"size={self.size}, method={self.method!r}, antialias={self.antialias}"
