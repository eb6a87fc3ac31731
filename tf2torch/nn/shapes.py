"""Run-time modules for TensorFlow's shape and indexing ops (``tf2torch/ops/tf_raw.py`` builds them): shapes read
at run time, permutes, squeezes, strided slices with TF's masks, splits, space-to-batch; and ``Operands``, the
base of the modules whose operands mix run-time tensors and constant buffers. Formulas follow [TF]
``core/kernels/`` (cited per module).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Operands(nn.Module):
    """Base of ops taking a mix of run-time tensors and constants: ``slots[i]`` is ``("input", k)`` or
    ``("const", j)`` (buffer ``const{j}``)."""

    def __init__(self, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor]):
        super().__init__()
        self.slots = [tuple(s) for s in slots]
        self.n_consts = len(consts)
        for j, c in enumerate(consts):
            self.register_buffer(f"const{j}", c)

    @property
    def consts(self) -> list[torch.Tensor]:
        """The constants in the order given (what ``emit`` writes back as the constructor's argument)."""
        return [getattr(self, f"const{j}") for j in range(self.n_consts)]

    def gather(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [inputs[i] if kind == "input" else getattr(self, f"const{i}") for kind, i in self.slots]


class TFShape(nn.Module):
    """``Shape``, ``Size``, ``Rank``: the run-time shape as an integer tensor, in TF's axis order (``order`` reads
    a channels-first tensor's axes in that order), its element count or its rank; computed from the tensor on
    every call, so a size derived from the input follows the input."""

    def __init__(self, dtype: torch.dtype = torch.int32, order: Sequence[int] | None = None, what: str = "Shape"):
        super().__init__()
        self.dtype = dtype
        self.order = tuple(order) if order is not None else None
        self.what = what

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.what == "Size":
            return torch.tensor(x.numel(), dtype=self.dtype)
        if self.what == "Rank":
            return torch.tensor(x.dim(), dtype=self.dtype)
        shape = tuple(x.shape)
        if self.order is not None:
            shape = tuple(shape[i] for i in self.order)
        return torch.tensor(shape, dtype=self.dtype)

    def extra_repr(self) -> str:
        return self.what


class TFShapeN(nn.Module):
    """``ShapeN``: the run-time shape of each input (held in TF's layout)."""

    def __init__(self, dtype: torch.dtype = torch.int32):
        super().__init__()
        self.dtype = dtype

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.tensor(tuple(x.shape), dtype=self.dtype) for x in xs)


class TFSqueeze(nn.Module):
    """``Squeeze``: the given axes, or every axis of size 1 at run time."""

    def __init__(self, axes: Sequence[int]):
        super().__init__()
        self.axes = tuple(int(a) for a in axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.axes:
            return x.squeeze()
        return x.squeeze(self.axes)


class TFSlice(nn.Module):
    """``StridedSlice`` / ``Slice`` with constant bounds: ``spec`` is one entry per output axis step: ``("slice",
    begin, end, step)`` (None for open ends), ``("index", i)``, ``("new",)`` or ``("ellipsis",)``. Negative steps
    gather the indices Python's ``range`` gives, which is TF's rule too ([TF] ``strided_slice_op.cc``)."""

    def __init__(self, spec: Sequence[Sequence[Any]]):
        super().__init__()
        self.spec = [tuple(s) for s in spec]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index: list[Any] = []
        reversed_axes = []
        for entry in self.spec:
            kind = entry[0]
            if kind == "slice":
                _, begin, end, step = entry
                if step < 0:
                    reversed_axes.append((len(index), begin, end, step))
                    index.append(slice(None))
                else:
                    index.append(slice(begin, end, step))
            elif kind == "index":
                index.append(entry[1])
            elif kind == "new":
                index.append(None)
            else:
                index.append(Ellipsis)
        if reversed_axes:
            dims = _index_dims(index, x.dim())
            for position, begin, end, step in reversed_axes:
                axis = dims[position]
                picks = list(range(x.shape[axis]))[slice(begin, end, step)]
                x = torch.index_select(x, axis, torch.tensor(picks, dtype=torch.long, device=x.device))
        return x[tuple(index)]

    def extra_repr(self) -> str:
        return str(self.spec)


def strided_slice_spec(begin: Sequence[int], end: Sequence[int], strides: Sequence[int],
                       masks: dict[str, int]) -> list[Any]:
    """[TF] ``strided_slice`` masks → one entry per slicing axis (see ``TFSlice``)."""
    spec: list[Any] = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides)):
        bit = 1 << i
        if masks["ellipsis_mask"] & bit:
            spec.append(("ellipsis",))
        elif masks["new_axis_mask"] & bit:
            spec.append(("new",))
        elif masks["shrink_axis_mask"] & bit:
            spec.append(("index", int(b)))
        else:
            spec.append(("slice", None if masks["begin_mask"] & bit else int(b),
                         None if masks["end_mask"] & bit else int(e), int(s)))
    return spec


class TFDynamicSlice(Operands):
    """``StridedSlice`` whose begin / end / strides are computed at run time (``x[:, t]`` in a loop body): the
    slice is built from their values on each call, with TF's masks, as ``TFSlice`` does for constant bounds."""

    def __init__(self, masks: dict[str, int], slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor]):
        super().__init__(slots, consts)
        self.masks = dict(masks)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x, begin, end, strides = self.gather(inputs)
        bounds = [[int(v) for v in t.reshape(-1).tolist()] for t in (begin, end, strides)]
        if any(s == 0 for s in bounds[2]):
            raise ValueError("StridedSlice: stride 0")
        return TFSlice(strided_slice_spec(*bounds, self.masks))(x)

    def extra_repr(self) -> str:
        return str(self.masks)


def _index_dims(index: list[Any], rank: int) -> list[int]:
    """The input axis each entry of a basic index addresses (None / new axes address none)."""
    dims, axis = [], 0
    consumed = sum(1 for i in index if i is not None and i is not Ellipsis)
    for item in index:
        if item is Ellipsis:
            dims.append(-1)
            axis += rank - consumed
        elif item is None:
            dims.append(-1)
        else:
            dims.append(axis)
            axis += 1
    return dims


class TFSplit(nn.Module):
    """``Split`` / ``SplitV`` / ``Unpack``: a tuple of tensors. On an axis whose size is known only at run time,
    ``sizes`` is ``[-1] * num`` (``Split``: equal parts) or holds one ``-1`` (``SplitV``: the rest)."""

    def __init__(self, sizes: Sequence[int] | None, axis: int, unstack: bool = False):
        super().__init__()
        self.sizes = list(sizes) if sizes is not None else None
        self.axis = axis
        self.unstack = unstack

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.unstack or self.sizes is None:
            return tuple(torch.unbind(x, self.axis))
        sizes = self.sizes
        if sizes.count(-1) > 1:
            sizes = [x.shape[self.axis] // len(sizes)] * len(sizes)
        elif -1 in sizes:
            rest = x.shape[self.axis] - sum(s for s in sizes if s != -1)
            sizes = [rest if s == -1 else s for s in sizes]
        return tuple(torch.split(x, sizes, dim=self.axis))


class TFSpaceToBatch(nn.Module):
    """``SpaceToBatchND`` on a tensor in TF's layout ([TF] ``spacetobatch_functor.h``): the M spatial axes after
    the batch are zero-padded, cut into blocks of ``block``, and the block offsets moved in front of the batch:
    ``[B, H, W, C]`` → ``[b0*b1*B, (H+p)/b0, (W+p)/b1, C]``. TF's dilated convolutions run between this and
    ``TFBatchToSpace``."""

    def __init__(self, block: Sequence[int], pads: Sequence[Sequence[int]] | None):
        super().__init__()
        self.block = [int(b) for b in block]
        self.pads = [tuple(int(v) for v in p) for p in pads] if pads is not None else None  # None: per call

    def forward(self, x: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        m = len(self.block)
        pads = self.pads if given is None else [tuple(int(v) for v in p) for p in given.reshape(-1, 2).tolist()]
        flat: list[int] = [0, 0] * (x.dim() - 1 - m)
        for before, after in reversed(pads):
            flat.extend((before, after))
        x = F.pad(x, flat)
        batch, rest = x.shape[0], list(x.shape[1 + m:])
        split: list[int] = [batch]
        for i, b in enumerate(self.block):
            split.extend((x.shape[1 + i] // b, b))
        x = x.reshape(*split, *rest)
        perm = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)]
        perm += list(range(1 + 2 * m, x.dim()))
        x = x.permute(perm)
        return x.reshape(-1, *x.shape[1 + m:1 + 2 * m], *rest)

    def extra_repr(self) -> str:
        return f"block={self.block}, pads={self.pads}"


class TFBatchToSpace(nn.Module):
    """``BatchToSpaceND``, the inverse of ``TFSpaceToBatch`` ([TF] ``batchtospace_op.cc``): the block offsets in
    front of the batch are interleaved back into the M spatial axes, then each is cropped (before, after)."""

    def __init__(self, block: Sequence[int], crops: Sequence[Sequence[int]] | None):
        super().__init__()
        self.block = [int(b) for b in block]
        self.crops = [tuple(int(v) for v in c) for c in crops] if crops is not None else None  # None: per call

    def forward(self, x: torch.Tensor, given: torch.Tensor | None = None) -> torch.Tensor:
        m = len(self.block)
        crops = self.crops if given is None else [tuple(int(v) for v in c) for c in given.reshape(-1, 2).tolist()]
        spatial, rest = list(x.shape[1:1 + m]), list(x.shape[1 + m:])
        x = x.reshape(*self.block, -1, *spatial, *rest)
        perm = [m]
        for i in range(m):
            perm.extend((m + 1 + i, i))
        perm += list(range(1 + 2 * m, x.dim()))
        x = x.permute(perm)
        x = x.reshape(x.shape[0], *[s * b for s, b in zip(spatial, self.block)], *rest)
        for i, (before, after) in enumerate(crops):
            x = x.narrow(1 + i, before, x.shape[1 + i] - before - after)
        return x

    def extra_repr(self) -> str:
        return f"block={self.block}, crops={self.crops}"
