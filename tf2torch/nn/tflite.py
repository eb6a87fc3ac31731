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


class SequenceLSTM(nn.Module):
    """TFLite's ``UNIDIRECTIONAL_SEQUENCE_LSTM`` without peepholes, projection or layer norm (what a Keras LSTM
    becomes): gates in TFLite's order input, forget, cell, output; sigmoid gates; the fused activation on the
    cell input and the output; the cell state clipped to ``[-cell_clip, cell_clip]`` when ``cell_clip > 0`` (the
    TFLite converter writes ``cell_clip=10`` for Keras LSTMs, kernels/lstm_eval.cc). Returns every step's output;
    the state starts at zero on every call (TFLite's variable tensors start at zero too, but keep their value
    between ``invoke`` calls)."""

    def __init__(self, w_ih: torch.Tensor, w_hh: torch.Tensor, bias: torch.Tensor, activation: str,
                 cell_clip: float, time_major: bool):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation} is not supported")
        self.w_ih = nn.Parameter(w_ih, requires_grad=True)
        self.w_hh = nn.Parameter(w_hh, requires_grad=True)
        self.bias = nn.Parameter(bias, requires_grad=True)
        self.activation, self.cell_clip, self.time_major = activation, float(cell_clip), bool(time_major)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_major:
            x = x.transpose(0, 1)
        act = ACTIVATIONS[self.activation]
        hidden = self.w_hh.shape[1]
        h = x.new_zeros(x.shape[0], hidden)
        c = x.new_zeros(x.shape[0], hidden)
        projected = torch.matmul(x, self.w_ih.t()) + self.bias
        outputs = []
        for t in range(x.shape[1]):
            i, f, g, o = (projected[:, t] + torch.matmul(h, self.w_hh.t())).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * act(g)
            if self.cell_clip > 0:
                c = torch.clamp(c, -self.cell_clip, self.cell_clip)
            h = torch.sigmoid(o) * act(c)
            outputs.append(h)
        y = torch.stack(outputs, dim=1)
        return y.transpose(0, 1) if self.time_major else y


class DepthToSpace(nn.Module):
    """TF's ``depth_to_space`` / ``space_to_depth`` (``inverse``) on N,C,H,W: channel ``(i * block + j) * C + c``
    of the depth side is pixel ``(i, j)`` of channel ``c`` in each block (TF's DCR order; torch's
    ``pixel_shuffle`` is CRD, (c * block + i) * block + j)."""

    def __init__(self, block: int, inverse: bool = False):
        super().__init__()
        self.block, self.inverse = int(block), bool(inverse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        b = self.block
        if self.inverse:
            y = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
            return y.reshape(n, b * b * c, h // b, w // b)
        y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
        return y.reshape(n, c // (b * b), h * b, w * b)
