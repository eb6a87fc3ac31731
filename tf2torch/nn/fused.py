"""A 2-D convolution with its activation fused and its weight prepacked for oneDNN, for ``optimize=True``.

Eager PyTorch runs a conv as: reorder the weight into oneDNN's blocked format, convolve, write the output, then
read and write it again for the activation. ``torch.ops.mkldnn._convolution_pointwise`` (the op
``torch.compile``'s CPU backend emits) takes a weight packed once (``mkldnn_reorder_conv2d_weight``) and applies
the activation in the same pass; the values are the same convolution's (oneDNN computes both). Measured on the
2-core benchmark machine: a 1×1 conv + ReLU at 56×56 runs 2-3× faster. The packed weight is a cache, rebuilt
when the input size or the weight changes (``weight._version``); ``state_dict`` holds the plain weight, so the
module saves and loads like ``nn.Conv2d``. Anything the fused op does not cover (autograd, other dtypes or
devices, tracing by ``torch.compile``) runs the plain ``F.conv2d`` + activation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .activations import Hardswish, ReLU, ReLU6, SiLU
from .padding import TFSamePad2d, tf_same_padding

# torch activation module (or its ``activations`` subclass) → (oneDNN post-op name, its scalars)
POST_OPS = {nn.ReLU: ("relu", lambda m: [None]), nn.ReLU6: ("hardtanh", lambda m: [0.0, 6.0]),
            nn.Hardtanh: ("hardtanh", lambda m: [float(m.min_val), float(m.max_val)]),
            nn.SiLU: ("swish", lambda m: [None]), nn.Hardswish: ("hardswish", lambda m: [None])}
POST_OPS.update({ours: POST_OPS[torchs] for ours, torchs in ((ReLU, nn.ReLU), (ReLU6, nn.ReLU6), (SiLU, nn.SiLU),
                                                                (Hardswish, nn.Hardswish))})
MAX_CACHED_SHAPES = 4


def fused_conv_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def _compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling())


class FusedConv2d(nn.Module):
    """``activation(conv2d(x))`` with the parameters of ``conv`` (zero padding given as numbers)."""

    def __init__(self, conv: nn.Conv2d, activation: nn.Module | None = None):
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias if conv.bias is not None else nn.Parameter(torch.zeros(conv.out_channels))
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.activation = activation
        self.post_op, self.scalars = ("none", [None]) if activation is None else (
            POST_OPS[type(activation)][0], POST_OPS[type(activation)][1](activation))
        self._packed: dict[tuple[int, ...], tuple[int, torch.Tensor]] = {}

    def __getstate__(self) -> dict:
        """Without the packed-weight cache: oneDNN's opaque tensors have no storage to copy or pickle
        (``copy.deepcopy`` of a module that has run raised "Cannot access storage of OpaqueTensorImpl")."""
        state = dict(super().__getstate__())
        state["_packed"] = {}
        return state

    def plain(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)
        return y if self.activation is None else self.activation(y)

    def packed_weight(self, size: Sequence[int], weight_pads: Sequence[int] = (),
                      padding: Sequence[int] | None = None) -> torch.Tensor:
        """The weight (zero-padded by ``weight_pads``, ``F.pad``'s order) packed for an input of ``size`` and a
        convolution padded by ``padding`` (default: the module's); both follow from the size, the cache key."""
        key = tuple(size)
        cached = self._packed.get(key)
        if cached is None or cached[0] != self.weight._version:
            if len(self._packed) >= MAX_CACHED_SHAPES:
                self._packed.clear()
            weight = self.weight.detach()
            weight = F.pad(weight, list(weight_pads)).contiguous() if any(weight_pads) else weight
            packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                weight.to_mkldnn(), list(padding or self.padding), self.stride, self.dilation, self.groups, list(key))
            cached = self._packed[key] = (self.weight._version, packed)
        return cached[1]

    def runs_fused(self, x: torch.Tensor) -> bool:
        """Eager float32 inference on CPU: the oneDNN op; else (autograd, other dtypes or devices, tracing) the
        plain one."""
        return not (_compiling() or x.dim() != 4 or x.dtype != torch.float32 or x.device.type != "cpu"
                    or x.shape[1] != self.weight.shape[1] * self.groups  # torch's own error names the mismatch
                    or self.weight.dtype != torch.float32 or (torch.is_grad_enabled() and self.weight.requires_grad))

    def on_one_pixel(self, x: torch.Tensor) -> torch.Tensor | None:
        """A 1×1 convolution of 1×1 maps (squeeze-excite's two, on the pooled channels) as a plain matrix product
        of (N, C): ``_convolution_pointwise`` costs ~20 µs a call whatever its size (oneDNN's descriptors and
        thread fork per call), MKL's GEMM a few; the same sums. None where it does not apply."""
        if (x.dim() != 4 or x.shape[2] != 1 or x.shape[3] != 1 or self.weight.shape[2:] != (1, 1)
                or self.padding != [0, 0] or self.groups != 1 or x.shape[1] != self.weight.shape[1]):
            return None
        y = F.linear(x.reshape(x.shape[0], -1), self.weight.reshape(self.weight.shape[0], -1), self.bias)
        y = y.reshape(x.shape[0], -1, 1, 1)
        return y if self.activation is None else self.activation(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixel = self.on_one_pixel(x)
        if pixel is not None:
            return pixel
        if not self.runs_fused(x):
            return self.plain(x)
        return torch.ops.mkldnn._convolution_pointwise(x, self.packed_weight(x.shape), self.bias.detach(),
                                                       self.padding, self.stride, self.dilation, self.groups,
                                                       self.post_op, self.scalars, "")

    def extra_repr(self) -> str:
        return (f"{self.weight.shape[1] * self.groups}, {self.weight.shape[0]}, "
                f"kernel_size={tuple(self.weight.shape[2:])}, stride={tuple(self.stride)}, "
                f"padding={tuple(self.padding)}, groups={self.groups}, post_op={self.post_op}")


class FusedConvAdd2d(FusedConv2d):
    """``activation(conv2d(x) + other)``: a residual connection's add (and the activation after it) applied in the
    convolution's own pass, with oneDNN's binary ``add`` post-op (``_convolution_pointwise.binary``, as
    ``torch.compile``'s CPU backend emits it). ``other`` is read, never written."""

    def plain(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups) + other
        return y if self.activation is None else self.activation(y)

    def output_shape(self, x: torch.Tensor) -> tuple[int, ...]:
        spatial = ((size + 2 * p - d * (k - 1) - 1) // s + 1 for size, k, s, p, d in
                   zip(x.shape[2:], self.weight.shape[2:], self.stride, self.padding, self.dilation))
        return (x.shape[0], self.weight.shape[0], *spatial)

    def forward(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        same_format = (x.is_contiguous(memory_format=torch.channels_last)
                       == other.is_contiguous(memory_format=torch.channels_last))
        if (_compiling() or x.dim() != 4 or other.dim() != 4 or x.dtype != torch.float32
                or other.dtype != torch.float32 or x.device.type != "cpu" or self.weight.dtype != torch.float32
                or not same_format or x.shape[1] != self.weight.shape[1] * self.groups
                or not (other.is_contiguous() or other.is_contiguous(memory_format=torch.channels_last))
                or other.shape != self.output_shape(x)
                or torch.is_grad_enabled() and (self.weight.requires_grad or other.requires_grad)):
            return self.plain(x, other)
        post_op = None if self.post_op == "none" else self.post_op
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, self.packed_weight(x.shape), self.bias.detach(), self.padding, self.stride, self.dilation,
            self.groups, "add", None, post_op, self.scalars, "")


class PooledPointwiseConv2d(FusedConv2d):
    """``activation(conv1x1(avg_pool(x)))`` (InceptionV3's pooling branches) computed as
    ``activation(avg_pool(conv1x1_without_bias(x)) + bias)``. The 1×1 convolution mixes channels pixel by pixel
    and the average pooling averages pixels channel by channel with the same divisor for every channel (no
    padding, or padding left out of the count, Keras's ``SAME``), so the two commute, and the bias, averaged over
    a window, is the bias. The pooling then runs on the convolution's output channels (InceptionV3: 32-192) rather
    than its input's (192-2048): torch's CPU ``avg_pool2d`` took 8.3 ms of the -O module's 229 ms at batch 8 where
    ONNX Runtime's AveragePool took 3.0. The same sums in another order: float32 round-off apart."""

    def __init__(self, conv: FusedConv2d, pool: nn.AvgPool2d):
        super().__init__(conv, conv.activation)  # type: ignore[arg-type]  # the same parameters
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.runs_fused(x):
            y = torch.ops.mkldnn._convolution_pointwise(x, self.packed_weight(x.shape), None, self.padding,
                                                        self.stride, self.dilation, self.groups, "none", [None], "")
        else:
            y = F.conv2d(x, self.weight)
        y = self.pool(y) + self.bias.view(1, -1, 1, 1)
        return y if self.activation is None else self.activation(y)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, after {self.pool}"


class ZeroPaddedDepthwiseConv2d(FusedConv2d):
    """A zero padding (Keras ``ZeroPadding2D``, or TF ``SAME`` computed from the input's size) and the depthwise
    convolution that reads it, as one convolution: no padded copy of the input. The trap: torch's convolutions
    (and ``_convolution_pointwise``) pad each axis symmetrically, while TF ``SAME`` with stride 2 on an even size
    pads (0, 1) (MobileNetV2's and EfficientNet's ``ZeroPadding2D(((0, 1), (0, 1)))`` and TF ``SAME`` alike,
    ``nn/padding.py``). A side padded one more than the other is the kernel with a zero row (column) added on
    the other side and the larger padding on both: with ``K' = [0, K]`` and padding ``p + 1``,
    ``out[i] = sum_j K'[j] x[s*i - p - 1 + j] = sum_j K[j] x[s*i - p + j]``, TF's sum plus one exact zero term,
    with the same output size. Only for depthwise convolutions (one more tap per kernel row costs less than
    copying the input: MobileNetV2's 96×112×112 stride-2 3×3 at batch 1, 144 → 87 µs with the pad; a
    3-channel stem conv gains nothing) without dilation; paddings that differ by more than one, or sizes only
    known symbolically (export), pad first. One difference from TF: an infinite input value next to the added
    zero tap gives NaN (0 × inf) where TF never reads that pixel."""

    def __init__(self, conv: FusedConv2d, pads: Sequence[int] | None):
        super().__init__(conv, conv.activation)  # type: ignore[arg-type]  # the same parameters
        self.pads = None if pads is None else list(pads)  # F.pad's order; None: TF SAME for the input's size

    def pads_for(self, x: torch.Tensor) -> list[int]:
        if self.pads is not None:
            return list(self.pads)
        return [p for size, k, s, d in zip(reversed(x.shape[2:]), reversed(self.weight.shape[2:]),
                                           reversed(self.stride), reversed(self.dilation))
                for p in tf_same_padding(size, k, s, d)]

    @staticmethod
    def folded(pads: Sequence[int]) -> tuple[list[int], list[int]] | None:
        """(the zeros added around the kernel, ``F.pad``'s order; the convolution's padding per axis) for the
        input padding ``pads``, or None where no kernel of one more tap per axis covers it."""
        weight_pads, padding = [0, 0, 0, 0], [0, 0]
        for axis, (before, after) in enumerate(((pads[2], pads[3]), (pads[0], pads[1]))):
            if not (isinstance(before, int) and isinstance(after, int)) or abs(after - before) > 1:
                return None
            padding[axis] = max(before, after)
            weight_pads[2 - 2 * axis + (1 if before > after else 0)] = abs(after - before)
        return weight_pads, padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = self.pads_for(x) if x.dim() == 4 else None
        fold = self.folded(pads) if pads is not None and self.dilation == [1, 1] else None
        if fold is None:
            return super().forward(F.pad(x, pads) if pads is not None else x)
        weight_pads, padding = fold
        if self.runs_fused(x):
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.packed_weight(x.shape, weight_pads, padding), self.bias.detach(), padding, self.stride,
                self.dilation, self.groups, self.post_op, self.scalars, "")
        weight = F.pad(self.weight, weight_pads)  # a constant a frozen compile folds
        y = F.conv2d(x, weight, self.bias, self.stride, padding, self.dilation, self.groups)
        return y if self.activation is None else self.activation(y)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, pads={'TF SAME' if self.pads is None else tuple(self.pads)}"


def fused_linear_available() -> bool:
    return (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
            and hasattr(torch.ops.mkldnn, "_reorder_linear_weight"))


def packed_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, cache: dict[str, Any],
                  key: str, source: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)`` by oneDNN with ``weight`` packed once into ``cache[key]`` (rebuilt when
    ``source``, the parameter ``weight`` is or is a view of, changes: ``_version``); autograd, other dtypes or
    devices and tracing by ``torch.compile`` run the plain ``F.linear``. The trap: torch's own ``F.linear`` is
    MKL's GEMM, which on the AMD EPYC benchmark machine ran a (1024, 256) × (256, 1024) product in 8.5 ms against
    oneDNN's 2.3-3.1 ms (the transformer's matrix products were 18.6 of its 28 ms at batch 8), and its attention
    projections (128, 256) × (256, 768) in 182 µs."""
    source = weight if source is None else source
    if (_compiling() or x.dim() < 1 or x.dtype != torch.float32 or x.device.type != "cpu" or x.numel() == 0
            or x.shape[-1] != weight.shape[1] or weight.dtype != torch.float32
            or torch.is_grad_enabled() and (source.requires_grad or x.requires_grad)):
        return F.linear(x, weight, bias)
    cached = cache.get(key)
    if cached is None or cached[0] is not source or cached[1] != source._version:
        cached = cache[key] = (source, source._version,
                               torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous()))
    y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, weight.shape[1]), cached[2],
                                           bias.detach() if bias is not None else None, "none", [None], "")
    return y.reshape(*x.shape[:-1], weight.shape[0])


class FusedLinear(nn.Module):
    """``nn.Linear`` run by oneDNN with its weight packed once (``packed_linear``: ``mkldnn._linear_pointwise``, the
    op ``torch.compile``'s CPU backend emits for a frozen linear, in place of MKL's GEMM). Same parameters and
    ``state_dict`` as the ``nn.Linear``."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        self._packed: dict[str, Any] = {}

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state["_packed"] = {}  # a cache: nothing to copy or pickle
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return packed_linear(x, self.weight, self.bias, self._packed, "weight")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def pad_zero_border(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """``F.pad(x, (left, right, top, bottom))`` of an N,C,H,W tensor as one copy of ``x`` into an uninitialised
    tensor and zeros written on its border only. The trap: ``F.pad`` fills the whole padded tensor with zeros,
    then copies ``x`` over it: two passes over memory where one does (MobileNetV2's five zero paddings before its
    stride-2 convolutions took 0.8-1.0 ms of the -O module's 5.3 ms at batch 1, docs/performance.md). The same
    values bit for bit; a channels-last ``x`` gives a channels-last result, as ``F.pad``'s is."""
    n, c, h, w = x.shape
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    out = torch.empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    out[:, :, top:top + h, left:left + w] = x
    for rows, columns in ((slice(0, top), slice(None)), (slice(top + h, None), slice(None)),
                          (slice(top, top + h), slice(0, left)), (slice(top, top + h), slice(left + w, None))):
        region = out[:, :, rows, columns]
        if region.numel():
            region.zero_()
    return out


def border_pad_applies(x: torch.Tensor, pads: Sequence[int]) -> bool:
    """Eager inference on a 4-D tensor with padding only (no cropping): else ``F.pad`` (compiled or exported
    graphs see the one op they know; autograd records ``F.pad``'s backward)."""
    return (not _compiling() and x.dim() == 4 and len(pads) == 4 and min(pads) >= 0
            and not (torch.is_grad_enabled() and x.requires_grad))


class BorderZeroPad2d(nn.ZeroPad2d):
    """``nn.ZeroPad2d`` (Keras ``ZeroPadding2D``) for ``optimize=True``: ``pad_zero_border`` in eager inference."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = list(self.padding)
        return pad_zero_border(x, *pads) if border_pad_applies(x, pads) else super().forward(x)


class TFSameZeroPad2d(TFSamePad2d):
    """``TFSamePad2d`` with zeros for ``optimize=True``: TF ``SAME``'s padding (computed from the input's size) by
    ``pad_zero_border`` in eager inference."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = self.pads_for(x)
        return pad_zero_border(x, *pads) if border_pad_applies(x, pads) else super().forward(x)
