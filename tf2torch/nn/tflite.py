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


class MaxPoolArgmax(nn.Module):
    """MediaPipe's ``MaxPoolingWithArgmax2D`` (mediapipe/util/tflite/operations/max_pool_argmax.cc) on N,C,H,W:
    the max of each window (padding never wins: the input is padded with -inf, ``pads`` = (top, bottom, left,
    right) as TFLite's ``ComputePadding`` puts them), clamped to ``clamp`` (the fused activation's range), and the
    position of the max inside its window, ``y * filter_w + x + 0.1``, as float32. Ties keep the first in row-major
    order, as the kernel's strict ``>`` does (and ``max_pool2d``'s indices)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int],
                 clamp: tuple[float, float] | None):
        super().__init__()
        self.kernel, self.stride, self.pads = tuple(kernel), tuple(stride), tuple(pads)
        self.clamp = None if clamp is None else (float(clamp[0]), float(clamp[1]))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top, bottom, left, right = self.pads
        padded = torch.nn.functional.pad(x, (left, right, top, bottom), value=float("-inf"))
        y, flat = torch.nn.functional.max_pool2d(padded, self.kernel, self.stride, return_indices=True)
        width = padded.shape[-1]
        oy = torch.arange(y.shape[-2], device=x.device).reshape(-1, 1) * self.stride[0]
        ox = torch.arange(y.shape[-1], device=x.device).reshape(1, -1) * self.stride[1]
        local = (torch.div(flat, width, rounding_mode="floor") - oy) * self.kernel[1] + (flat % width - ox)
        if self.clamp is not None:
            y = torch.clamp(y, self.clamp[0], self.clamp[1])
        return y, local.to(x.dtype) + 0.1

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, pads={self.pads}, clamp={self.clamp}"


class MaxUnpool(nn.Module):
    """MediaPipe's ``MaxUnpooling2D`` (mediapipe/util/tflite/operations/max_unpooling.cc) on N,C,H,W: an output of
    (H * filter_h, W * filter_w) of zeros; each input value is written at its window's origin (``in * stride -
    pad``) plus the position its index names (``int(index)``: ``y = idx / filter_w``, ``x = idx % filter_w``,
    C's truncating division); a position outside the output is skipped, and where windows overlap the last write
    in row-major order wins, as in the kernel's loop (a ``scatter_reduce`` of the writer's position keeps that
    deterministic)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int]):
        super().__init__()
        self.kernel, self.stride, self.pads = tuple(kernel), tuple(stride), tuple(pads)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        out_h, out_w = h * self.kernel[0], w * self.kernel[1]
        idx = indices.to(torch.int64)  # truncation toward zero, as C's float -> int
        dy = torch.div(idx, self.kernel[1], rounding_mode="trunc")
        dx = torch.fmod(idx, self.kernel[1])
        oy = torch.arange(h, device=x.device).reshape(-1, 1) * self.stride[0] - self.pads[0] + dy
        ox = torch.arange(w, device=x.device).reshape(1, -1) * self.stride[1] - self.pads[1] + dx
        inside = (oy >= 0) & (oy < out_h) & (ox >= 0) & (ox < out_w)
        target = torch.where(inside, oy * out_w + ox, out_h * out_w).reshape(n, c, h * w)  # outside: a spare slot
        source = torch.arange(h * w, device=x.device).expand(n, c, h * w)
        winner = torch.full((n, c, out_h * out_w + 1), -1, dtype=torch.int64, device=x.device)
        winner = winner.scatter_reduce(2, target, source, reduce="amax")[..., :-1]
        values = torch.gather(x.reshape(n, c, h * w), 2, winner.clamp(min=0))
        return torch.where(winner >= 0, values, torch.zeros_like(values)).reshape(n, c, out_h, out_w)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, pads={self.pads}"


class Reshape(nn.Module):
    """TFLite's ``RESHAPE`` to a shape the file holds as a constant (a ``-1`` inferred, as TF's): a fixed target
    the module keeps as numbers, so ``torch.export`` and ONNX see a static reshape, not one read from a tensor."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"
