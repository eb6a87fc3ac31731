"""Run-time image ops with TensorFlow's own arithmetic (``tf2torch/ops/tf_raw.py`` builds them): ``ResizeBilinear``
/ ``ResizeNearestNeighbor`` / ``ResizeBicubic`` / ``ResizeArea`` with TF's source-coordinate rules, crop-and-resize,
image patches, max pooling with argmax, and non-max suppression. Formulas follow [TF] ``core/kernels/image/``
(cited per function).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .padding import tf_same_padding

CUBIC_TABLE_SIZE = 1024


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
