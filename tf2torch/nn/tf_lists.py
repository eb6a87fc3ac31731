"""TensorList ops that TF 1 TensorArrays become (``readers/tf_frames.py``), on a list held as one stacked
tensor ``[n, *element_shape]`` like ``TFTensorList``: ``TensorListGather`` (``TensorArray.stack()`` /
``gather``) and ``TensorListScatterIntoExistingList`` (``TensorArray.unstack()`` / ``scatter``) ([TF]
``list_kernels.h``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .shapes import Operands


class TFTensorListIndexed(Operands):
    """``TensorListGather(list, indices, element_shape)``: the items at ``indices``, stacked.
    ``TensorListScatterIntoExistingList(list, tensor, indices)``: item ``indices[i]`` set to ``tensor[i]``, out
    of place (TF's value semantics); a list reserved with an open element shape takes the tensor's.
    ``TensorListSetItem`` with ``resize_if_index_out_of_bounds`` (``TensorListSetItemResize`` here: a TF 1
    ``TensorArray(dynamic_size=True)`` written past its end): the list grows with zeros to hold the item."""

    def __init__(self, op: str, slots: Sequence[tuple[str, int]], consts: Sequence[torch.Tensor],
                 dtype: torch.dtype = torch.float32):
        super().__init__(slots, consts)
        self.op = op
        self.dtype = dtype

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

    def extra_repr(self) -> str:
        return self.op
