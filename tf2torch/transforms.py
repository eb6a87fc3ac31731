"""Weight transforms from Keras/TF storage to torch parameters: pure named functions of arrays, shared by the
converters (which build tf2torch's own modules) and ``tf2torch.transfer`` (which fills a module the user wrote).

Traps, each with its source: Keras convolution kernels are stored ``kernel_size + (in, out)`` (HWIO) for every
``data_format`` ([K3] ``layers/convolutional/base_conv.py``); depthwise kernels are (*k, in, depth_multiplier) and
transposed ones (*k, out, in); Dense kernels are (in, out) against torch's (out, in), and after a Flatten of a
channels-last tensor the rows are in H,W,C order ([K3] ``reshaping/flatten.py``) where torch flattens C,H,W;
LSTM gates i, f, c, o are torch's i, f, g, o with one bias where torch has two; GRU gates z, r, h are torch's
r, z, n and ``reset_after`` stores (input, recurrent) bias rows ([K3] ``layers/rnn/gru.py``); BatchNormalization
stores ``[gamma] [beta] moving_mean moving_variance``, torch's ``weight, bias`` parameters and running buffers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .graph import StoredArray

BLOCK_BYTES = 8 << 20  # stored rows read (and transposed) at a time by ``kernel_to_linear``


# -- convolutions ----------------------------------------------------------------------------------------------
def hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    """Keras conv kernel (*spatial, in, out) → torch (out, in, *spatial), any spatial rank."""
    n = kernel.ndim - 2
    return kernel.transpose(n + 1, n, *range(n))


def depthwise_kernel_to_oihw(kernel: np.ndarray) -> np.ndarray:
    """Keras depthwise kernel (*spatial, in, depth_multiplier) → torch grouped-conv weight (in * dm, 1, *spatial).

    TF's output channel ``c * dm + m`` reads input channel ``c`` with ``kernel[..., c, m]``: a C-order reshape of
    (in, dm), and torch's ``groups=in`` gives output channel ``o`` input channel ``o // dm``."""
    *spatial, channels, multiplier = kernel.shape
    return hwio_to_oihw(kernel.reshape(*spatial, 1, channels * multiplier))


def transposed_kernel_to_iohw(kernel: np.ndarray) -> np.ndarray:
    """Keras transposed-conv kernel (*spatial, out, in) → torch ``ConvTranspose`` weight (in, out, *spatial).
    No spatial flip: both are the adjoint of their cross-correlation."""
    n = kernel.ndim - 2
    return kernel.transpose(n + 1, n, *range(n))


# -- dense -----------------------------------------------------------------------------------------------------
def kernel_to_linear(kernel: StoredArray, channels: int, spatial: tuple[int, ...] = (),
                     dtype: np.dtype | None = None, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """Keras (H*W*C, units) kernel → torch ``Linear.weight`` (units, C*H*W) that consumes a C,H,W-ordered flatten;
    with ``spatial=()`` a plain (in, units) → (units, in) transpose. The result is allocated once, in ``dtype``
    (default: the kernel's), and filled from blocks of stored rows of at most ``block_bytes``, read from ``kernel``
    as they are needed: no whole-size temporary exists besides the result (a block is larger only where the
    file's HDF5 chunks span more rows: ``rows_per_chunk``). VGG16's fc1 kernel is 411 MB."""
    rows, units = kernel.shape
    positions = math.prod(spatial)
    if rows != positions * channels:
        raise ValueError(f"a kernel of {rows} rows cannot take a flatten of {channels} channels x {spatial}")
    out = np.empty((units, rows), dtype=dtype or kernel.dtype)
    if out.size == 0:
        return out
    by_position = out.reshape(units, channels, positions)  # a view: column c*positions + s
    row_bytes = units * max(out.itemsize, np.dtype(kernel.dtype).itemsize)
    # stored rows per block; at least one HDF5 chunk's rows, so a chunk is decompressed at most a few times
    step = max(1, block_bytes // row_bytes, getattr(kernel, "rows_per_chunk", 1))
    with np.errstate(over="ignore"):  # float64 past float32's range becomes inf, silently, as torch's cast does
        if step >= channels:  # whole spatial positions per block (stored row s*channels + c)
            per = step // channels
            for s0 in range(0, positions, per):
                s1 = min(positions, s0 + per)
                block = kernel[s0 * channels:s1 * channels].reshape(s1 - s0, channels, units)
                by_position[:, :, s0:s1] = block.transpose(2, 1, 0)
        else:  # a block holds part of one position's channels
            for s in range(positions):
                for c0 in range(0, channels, step):
                    c1 = min(channels, c0 + step)
                    by_position[:, c0:c1, s] = kernel[s * channels + c0:s * channels + c1].T
    return out


# -- recurrent -------------------------------------------------------------------------------------------------
def keras_lstm_to_torch(kernel: np.ndarray, recurrent_kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras (in, 4u) / (u, 4u) with gates i, f, c, o → torch ``weight_ih`` (4u, in), ``weight_hh`` (4u, u) with
    gates i, f, g, o: the same order, transposed."""
    return kernel.T, recurrent_kernel.T


def keras_gru_gates_to_torch(matrix: np.ndarray) -> np.ndarray:
    """Reorder the last axis (3u) from Keras's z, r, h to torch's r, z, n."""
    z, r, h = np.split(matrix, 3, axis=-1)
    return np.concatenate([r, z, h], axis=-1)


def keras_gru_to_torch(kernel: np.ndarray, recurrent_kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras GRU kernels (in, 3u) / (u, 3u) → torch ``weight_ih`` (3u, in), ``weight_hh`` (3u, u), gates r, z, n."""
    return keras_gru_gates_to_torch(kernel).T, keras_gru_gates_to_torch(recurrent_kernel).T


def input_and_recurrent_bias(bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A two-part bias → (input bias, recurrent bias): GRU ``reset_after`` (2, 3u) rows, or CuDNNLSTM (8u) /
    CuDNNGRU (6u) halves ([TFK] ``cudnn_lstm.py``/``cudnn_gru.py``: input half first)."""
    if bias.ndim == 2:
        return bias[0], bias[1]
    half = bias.shape[0] // 2
    return bias[:half], bias[half:]


# -- attention ------------------------------------------------------------------------------------------------
def einsum_heads_to_linear(kernel: np.ndarray) -> np.ndarray:
    """A MultiHeadAttention projection kernel (D, H, dk) → ``nn.Linear``-style weight (H·dk, D); head h is rows
    h·dk … h·dk+dk-1, the contiguous split ``nn.MultiheadAttention`` makes."""
    return kernel.reshape(kernel.shape[0], -1).T


def output_heads_to_linear(kernel: np.ndarray) -> np.ndarray:
    """The MultiHeadAttention output kernel (H, dv, Do) → ``out_proj.weight`` (Do, H·dv)."""
    return kernel.reshape(-1, kernel.shape[-1]).T


# -- normalization ---------------------------------------------------------------------------------------------
def keras_bn_to_torch_params(arrays: Sequence[np.ndarray], scale: bool = True,
                             center: bool = True) -> dict[str, np.ndarray]:
    """Keras BatchNormalization weights ``[gamma] [beta] moving_mean moving_variance`` → torch's ``weight``,
    ``bias``, ``running_mean``, ``running_var``. Torch's affine is all or nothing: a missing gamma becomes ones,
    a missing beta zeros; without both there is no ``weight``/``bias``."""
    rest = list(arrays)
    gamma = rest.pop(0) if scale else None
    beta = rest.pop(0) if center else None
    mean, variance = rest[0], rest[1]
    params = {"running_mean": mean, "running_var": variance}
    if scale or center:
        params["weight"] = gamma if gamma is not None else np.ones_like(mean)
        params["bias"] = beta if beta is not None else np.zeros_like(mean)
    return params
