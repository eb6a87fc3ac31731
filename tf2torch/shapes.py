"""Output examples of common torch modules without running them, for the assembler's example runs.

The assembler learns shapes by running every converted module on example inputs at the model's declared size;
for a conv trunk that is most of a conversion's time (ResNet50: 3 s of convolutions, batch norms and ReLUs on
2×224×224 inputs; a BERT-large-sized stack: 9 s of its 144 dense layers and 49 layer norms). For torch's own
convolutions, linear layers, layer norms and shape-preserving layers the output shape and dtype follow from the
module's attributes alone (torch's documented formulas), so a zero expanded to that shape (no memory, no writes)
stands in for the output. The values of examples never reach a converter, only their shapes and dtypes do.
Anything not listed here runs for real; ``tests/test_shapes.py``
checks every rule against the real module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .nn import activations
from .nn.conv import Conv2d
from .nn.merge import Add, Average, Maximum, Minimum, Multiply, Subtract
from .nn.normalization import KerasBatchNorm1d, KerasBatchNorm2d, KerasBatchNorm3d

# Modules whose output has the input's shape and dtype (in eval mode).
SHAPE_PRESERVING = (
    nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Tanh, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.GELU, nn.ELU, nn.LeakyReLU,
    nn.Softplus, nn.Softsign, nn.Identity, nn.Dropout, nn.Softmax, activations.ReLU, activations.ReLU6,
    activations.SiLU, activations.Hardswish,
)
SAME_SHAPE_MERGES = (Add, Subtract, Multiply, Average, Maximum, Minimum)
BATCH_NORM_RANKS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,),  # exact classes only:
                    KerasBatchNorm1d: (2, 3), KerasBatchNorm2d: (4,), KerasBatchNorm3d: (5,)}  # not BatchNormOnAxis
CONV_RANKS = {nn.Conv1d: 1, nn.Conv2d: 2, Conv2d: 2, nn.Conv3d: 3}


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """torch's ``Conv{n}d`` output length: ``floor((L + 2p - d(k - 1) - 1) / s) + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def output_shape(module: nn.Module, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[int, ...] | None:
    """The output shape of ``module`` on one input of ``shape``, or None when this module is not covered (or the
    input would make it fail: the real run then reports the error)."""
    kind = type(module)
    if not dtype.is_floating_point:
        return None
    if kind in SHAPE_PRESERVING:
        return shape
    if kind in BATCH_NORM_RANKS:
        ok = len(shape) in BATCH_NORM_RANKS[kind] and shape[1] == module.num_features
        return shape if ok else None
    if kind in CONV_RANKS:
        n = CONV_RANKS[kind]
        if (len(shape) != n + 2 or shape[1] != module.in_channels or isinstance(module.padding, str)
                or module.padding_mode != "zeros"):
            return None
        spatial = tuple(conv_output_size(*a) for a in zip(shape[2:], module.kernel_size, module.stride,
                                                               module.padding, module.dilation))
        return (shape[0], module.out_channels, *spatial) if min(spatial) > 0 else None
    if kind is nn.Linear:  # a (2, 128, 1024) example through BERT-large's 144 Dense layers: 7 s of 20
        ok = len(shape) >= 1 and shape[-1] == module.in_features and module.weight.dtype == dtype
        return (*shape[:-1], module.out_features) if ok else None
    if kind is nn.LayerNorm:
        dims = tuple(module.normalized_shape)
        ok = shape[len(shape) - len(dims):] == dims and (module.weight is None or module.weight.dtype == dtype)
        return shape if ok and len(shape) > len(dims) else None
    if kind in (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d):
        pads = module.padding
        if len(pads) // 2 > len(shape) - 1:
            return None
        out = list(shape)
        for i in range(len(pads) // 2):
            out[-1 - i] += pads[2 * i] + pads[2 * i + 1]
        return tuple(out) if min(out[1:]) > 0 else None
    if kind is nn.Sequential:
        for part in module:
            shape = output_shape(part, shape, dtype)
            if shape is None:
                return None
        return shape
    return None


def predicted_output(module: nn.Module, args: list[Any], kwargs: dict[str, Any]) -> torch.Tensor | None:
    """Zeros shaped like ``module(*args, **kwargs)``, or None when the module has to run."""
    if kwargs or not args or not all(isinstance(a, torch.Tensor) for a in args):
        return None
    first = args[0]
    if isinstance(module, SAME_SHAPE_MERGES) and type(module) in SAME_SHAPE_MERGES:
        same = all(a.shape == first.shape and a.dtype == first.dtype for a in args)
        if not same or not first.dtype.is_floating_point or (isinstance(module, Subtract) and len(args) != 2):
            return None
        return zeros(first.shape, first.dtype)
    if len(args) != 1:
        return None
    shape = output_shape(module, tuple(first.shape), first.dtype)
    return None if shape is None else zeros(shape, first.dtype)


def zeros(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A read-only zero tensor of ``shape``: one element expanded (allocating the full tensor costs ResNet50's
    conversion more than a second of page faults)."""
    return torch.zeros((), dtype=dtype).expand(shape)
