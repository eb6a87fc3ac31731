"""Run-time modules for TensorFlow control flow and lists: ``While`` loops over converted condition and body
modules, and TensorList ops on a list held as one stacked tensor (``tf2torch/ops/tf_control.py`` builds them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .shapes import Operands


class TFTensorList(Operands):
    """TensorList ops ([TF] ``list_kernels.h``) on a list held as one stacked tensor ``[n, *element_shape]``:
    ``TensorListReserve`` (zeros; an element shape TF leaves open is taken from the first item set),
    ``TensorListFromTensor`` / ``TensorListStack`` (the tensor itself), ``TensorListGetItem``,
    ``TensorListSetItem`` (out of place, as TF's value semantics), ``TensorListLength``."""

    def __init__(self, op: str, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor],
                 dtype: torch.dtype = torch.float32):
        super().__init__(slots, consts)
        self.op = op
        self.dtype = dtype

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        args = self.gather(inputs)
        op = self.op
        if op == "TensorListReserve":
            shape = [int(s) for s in args[0].reshape(-1).tolist()]
            if args[0].dim() == 0:  # unknown rank: shaped by the first item set
                shape = [0]
            return torch.zeros((int(args[1]), *[max(s, 0) for s in shape]), dtype=self.dtype)
        if op in ("TensorListFromTensor", "TensorListStack"):
            return args[0]
        if op == "TensorListLength":
            return torch.tensor(args[0].shape[0], dtype=torch.int32)
        index = args[1].reshape(1).long()
        if op == "TensorListGetItem":
            return torch.index_select(args[0], 0, index).squeeze(0)
        stacked, item = args[0], args[2]
        if stacked.shape[1:] != item.shape and stacked.numel() == 0:  # an open element shape, now known
            stacked = stacked.new_zeros((stacked.shape[0], *item.shape))
        if stacked.is_floating_point() and item.is_floating_point() and stacked.dtype != item.dtype:
            stacked = stacked.to(item.dtype)  # a module moved to float64 computes its items in float64
        return stacked.index_put((index,), item.unsqueeze(0).to(stacked.dtype))

    def extra_repr(self) -> str:
        return self.op


class TFTensorListIndexed(TFTensorList):
    """The TensorList ops TF 1 TensorArrays become (``readers/tf_frames.py``), on the same stacked list.
    ``TensorListGather(list, indices, element_shape)``: the items at ``indices``, stacked.
    ``TensorListScatterIntoExistingList(list, tensor, indices)``: item ``indices[i]`` set to ``tensor[i]``, out
    of place (TF's value semantics); a list reserved with an open element shape takes the tensor's.
    ``TensorListSetItem`` with ``resize_if_index_out_of_bounds`` (``TensorListSetItemResize`` here: a TF 1
    ``TensorArray(dynamic_size=True)`` written past its end): the list grows with zeros to hold the item."""

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        args = self.gather(inputs)
        stacked = args[0]
        if self.op == "TensorListGather":
            if stacked.numel() == 0 and args[2].dim() == 1:  # nothing written: empty, of the element's rank
                dims = [max(int(d), 0) for d in args[2].tolist()]
                return stacked.new_zeros((args[1].numel(), *dims))
            return torch.index_select(stacked, 0, args[1].reshape(-1).long())
        if self.op == "TensorListSetItemResize":  # (list, index, item): one item, the list grown to hold it
            tensor, index = args[2].unsqueeze(0), args[1].reshape(-1).long()
        else:
            tensor, index = args[1], args[2].reshape(-1).long()
        if stacked.shape[1:] != tensor.shape[1:] and stacked.numel() == 0:  # an open element shape, now known
            stacked = stacked.new_zeros((stacked.shape[0], *tensor.shape[1:]))
        grow = int(index.max()) + 1 - stacked.shape[0] if self.op == "TensorListSetItemResize" else 0
        if grow > 0:
            stacked = torch.cat([stacked, stacked.new_zeros((grow, *stacked.shape[1:]))])
        if stacked.is_floating_point() and tensor.is_floating_point() and stacked.dtype != tensor.dtype:
            stacked = stacked.to(tensor.dtype)  # a module moved to float64 computes its items in float64
        return stacked.index_put((index,), tensor.to(stacked.dtype))


class TFWhile(Operands):
    """``While`` / ``StatelessWhile``: ``body`` runs while ``cond`` is true on the loop variables ([TF]
    ``ops/while_v2.py``; ``maximum_iterations`` is part of ``cond`` there). ``slots`` hold each loop variable's
    initial value: a run-time input, a constant buffer, or ``("fed", 0)`` for a constant the functions were built
    with. ``cond`` and ``body`` take the other variables in order; ``body`` returns the new values of the
    variables listed in ``changing`` (the rest are invariant). Returns every variable (fed ones as empty
    tensors: the graph reads their constant directly)."""

    def __init__(self, cond: nn.Module, body: nn.Module, slots: Sequence[tuple[str, int]],
                 consts: Sequence[torch.Tensor], changing: Sequence[int]):
        super().__init__([s for s in slots if s[0] != "fed"], consts)
        self.cond = cond
        self.body = body
        self.fed = [i for i, s in enumerate(slots) if s[0] == "fed"]
        self.count = len(slots)
        self.changing = [int(i) for i in changing]

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        given = iter(self.gather(inputs))
        values: list[Any] = [None if i in self.fed else next(given) for i in range(self.count)]
        live = [i for i in range(self.count) if i not in self.fed]
        while True:
            args = [values[i] for i in live]
            if not bool(self.cond(*args)):
                break
            out = self.body(*args)
            for i, value in zip(self.changing, out if isinstance(out, (tuple, list)) else (out,)):
                values[i] = value
        return tuple(torch.empty(0) if v is None else v for v in values)
