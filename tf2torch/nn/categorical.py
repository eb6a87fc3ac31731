"""Keras's categorical preprocessing layers inside models: ``Discretization`` (bucket indices) and
``CategoryEncoding`` (one-hot, multi-hot and count vectors of integer tokens)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Bucketize(nn.Module):
    """``tf.raw_ops.Bucketize``: the number of boundaries ``<= x`` (int64), as Keras's ``Discretization``
    with ``output_mode='int'`` returns it."""

    def __init__(self, bin_boundaries: Sequence[float]):
        super().__init__()
        self.bin_boundaries = [float(b) for b in bin_boundaries]
        self.register_buffer("boundaries", torch.tensor(self.bin_boundaries, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        boundaries = self.boundaries if x.is_floating_point() else self.boundaries.double()
        return torch.bucketize(x.to(boundaries.dtype), boundaries, right=True)

    def extra_repr(self) -> str:
        return f"{self.bin_boundaries!r}"


class CategoryEncoding(nn.Module):
    """``output_mode`` ``one_hot``, ``multi_hot`` or ``count`` vectors of ``num_tokens`` entries, float32.

    A 1-D input (batch,) or a (..., 1) input encodes one token per sample; ``multi_hot``/``count`` encode the
    tokens along the last axis of a 2-D input; ``one_hot`` of an (..., n) input adds an axis. Token values outside
    ``[0, num_tokens)`` raise: tf_keras refuses them, Keras 3 drops some and fails on others."""

    def __init__(self, num_tokens: int, output_mode: str = "multi_hot"):
        super().__init__()
        self.num_tokens = int(num_tokens)
        self.output_mode = output_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.long()
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.num_tokens):
            raise ValueError(f"CategoryEncoding: token values must be in [0, {self.num_tokens}); got "
                             f"{int(tokens.min())}..{int(tokens.max())}")
        if self.output_mode == "one_hot":
            if tokens.dim() > 1 and tokens.shape[-1] == 1:
                tokens = tokens.squeeze(-1)
            return nn.functional.one_hot(tokens, self.num_tokens).to(torch.float32)
        if tokens.dim() == 1:
            tokens = tokens.unsqueeze(-1)
        counts = torch.zeros(*tokens.shape[:-1], self.num_tokens, dtype=torch.float32, device=x.device)
        counts.scatter_add_(-1, tokens, torch.ones(tokens.shape, dtype=torch.float32, device=x.device))
        return counts if self.output_mode == "count" else (counts > 0).to(torch.float32)

    def extra_repr(self) -> str:
        return f"{self.num_tokens}, output_mode={self.output_mode!r}"
