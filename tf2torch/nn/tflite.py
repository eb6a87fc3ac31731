"""Run-time modules for TensorFlow Lite operators that no TF op shares: the fused activation TFLite applies
after an operator, and ``FULLY_CONNECTED``'s flattening. Source: tensorflow/lite/kernels/internal/common.h
(``ActivationFunctionWithMinMax``) and kernels/fully_connected.cc."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "RELU": lambda x: torch.relu(x),
    "RELU6": lambda x: torch.clamp(x, 0.0, 6.0),
    "RELU_N1_TO_1": lambda x: torch.clamp(x, -1.0, 1.0),
    "TANH": lambda x: torch.tanh(x),
}


class FusedActivation(nn.Module):
    """An operator followed by its ``fused_activation_function`` (``RELU``, ``RELU6``, ``RELU_N1_TO_1``,
    ``TANH``): TFLite folds the activation into the op before it, the module keeps both."""

    def __init__(self, op: nn.Module, activation: str):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"fused activation {activation} is not supported")
        self.op = op
        self.activation = activation

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.activation](self.op(*inputs))

    def extra_repr(self) -> str:
        return f"activation={self.activation}"


class FullyConnected(nn.Module):
    """TFLite's ``FULLY_CONNECTED``: the input flattened to (-1, in_features), multiplied by the (out, in) weight;
    ``keep_num_dims`` keeps the leading axes instead of flattening them into one."""

    def __init__(self, linear: nn.Linear, keep_num_dims: bool):
        super().__init__()
        self.linear = linear
        self.keep_num_dims = keep_num_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x.reshape(-1, self.linear.in_features))
        return y.reshape(*x.shape[:-1], -1) if self.keep_num_dims else y


class PReLU(nn.Module):
    """TFLite's ``PRELU``: ``x`` where ``x >= 0``, else ``alpha * x``, ``alpha`` broadcast against ``x`` (already
    in ``x``'s layout)."""

    def __init__(self, alpha: torch.Tensor):
        super().__init__()
        self.alpha = nn.Parameter(alpha, requires_grad=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x >= 0, x, self.alpha * x)
