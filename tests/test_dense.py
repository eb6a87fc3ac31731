"""Dense on 2-D and N-D input, with and without bias and activation, and after Flatten of conv features."""

import math
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from harness import check_conversion, keras_module

from tf2torch.converters import registry
from tf2torch.converters.dense import BLOCK_BYTES, kernel_to_linear
from tf2torch.readers import policy

CASES = {
    "plain": lambda k: k.Sequential([k.Input((7,)), k.layers.Dense(5)]),
    "no_bias_relu": lambda k: k.Sequential([k.Input((7,)), k.layers.Dense(5, use_bias=False, activation="relu")]),
    "softmax": lambda k: k.Sequential([k.Input((7,)), k.layers.Dense(4, activation="softmax")]),
    "3d_input": lambda k: k.Sequential([k.Input((3, 7)), k.layers.Dense(5, activation="tanh")]),
    "4d_input": lambda k: k.Sequential([k.Input((3, 4, 7)), k.layers.Dense(5)]),
    "after_conv_flatten": lambda k: k.Sequential([
        k.Input((6, 5, 3)), k.layers.Conv2D(4, 3), k.layers.Flatten(), k.layers.Dense(6)]),
    "flatten_conv1d": lambda k: k.Sequential([
        k.Input((9, 3)), k.layers.Conv1D(4, 3), k.layers.Flatten(), k.layers.Dense(6)]),
}


@pytest.mark.parametrize("case", CASES)
def test_dense(case, flavour, tmp_path):
    check_conversion(CASES[case], flavour, tmp_path)


# -- kernel_to_linear: the weight built in blocks, bit-identical to the whole-array transforms ------------------
def whole_kernel_to_linear(kernel: np.ndarray, channels: int, spatial: tuple[int, ...]) -> np.ndarray:
    """The transforms as they were before blocks: Keras (H*W*C, units) → torch (units, C*H*W), one whole copy
    (``kernel.T`` when ``spatial`` is empty)."""
    units = kernel.shape[1]
    k = kernel.reshape(*spatial, channels, units)
    order = (len(spatial) + 1, len(spatial), *range(len(spatial)))
    return np.ascontiguousarray(k.transpose(order)).reshape(units, -1)


# (channels, spatial, units): plain Dense has spatial () and channels = in; odd sizes so blocks do not divide.
SHAPES = {
    "plain_1x1": (1, (), 1),
    "plain_7x5": (7, (), 5),
    "plain_odd": (1031, (), 13),
    "flat_1d": (4, (9,), 6),
    "flat_2d": (5, (3, 4), 6),
    "flat_2d_odd": (3, (7, 7), 5),
    "flat_3d": (3, (2, 3, 5), 7),
    "flat_one_channel": (1, (5, 3), 4),
}
# (stored dtype, the converting layer's dtype)
DTYPES = [("float32", torch.float32), ("float32", torch.float64), ("float16", torch.float32),
          ("float16", torch.float64), ("float64", torch.float32), ("float64", torch.float64)]


def special_kernel(rows: int, units: int, dtype: str) -> np.ndarray:
    """Random values plus the ones a cast could get wrong: signed zeros, infinities, NaN, subnormals."""
    kernel = np.random.default_rng(rows * 31 + units).standard_normal((rows, units)).astype(dtype)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, np.finfo(dtype).smallest_subnormal,
                         -np.finfo(dtype).tiny, np.finfo(dtype).max], dtype=dtype)
    flat = kernel.reshape(-1)
    flat[:min(flat.size, specials.size)] = specials[:flat.size]
    return kernel


def block_sizes(channels: int, units: int, stored: str, target: torch.dtype) -> list[int]:
    """One row, less than one position's channels, an odd number of rows over two positions, the default."""
    row = units * max(np.dtype(stored).itemsize, torch.empty((), dtype=target).element_size())
    return [1, row * max(1, channels // 2 - 1), row * (2 * channels + 1), BLOCK_BYTES]


def bits(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.detach().numpy()
    return array.view(f"u{array.itemsize}")


@pytest.mark.parametrize("stored,target", DTYPES, ids=[f"{s}_to_{str(t)[6:]}" for s, t in DTYPES])
@pytest.mark.parametrize("shape", SHAPES)
def test_kernel_to_linear_equals_the_whole_transform(shape, stored, target, tmp_path):
    channels, spatial, units = SHAPES[shape]
    kernel = special_kernel(channels * math.prod(spatial), units, stored)
    path = tmp_path / "k.h5"
    with h5py.File(path, "w") as f:
        f["kernel"] = kernel
    with registry.weight_dtype(target), h5py.File(path, "r") as f:
        expected = registry.as_parameter(whole_kernel_to_linear(kernel, channels, spatial))
        sources = {"array": kernel, "h5": policy.stored_weight(f["kernel"], "kernel", os.path.getsize(path))}
        for source_name, source in sources.items():
            for block in block_sizes(channels, units, stored, target):
                weight = kernel_to_linear(source, channels, spatial, registry.weight_array_dtype(source.dtype),
                                          block_bytes=block)
                param = registry.as_parameter(weight)
                assert param.dtype == expected.dtype == target and param.shape == expected.shape
                assert np.array_equal(bits(param), bits(expected)), (source_name, block)
                assert param.data_ptr() == weight.ctypes.data  # the parameter is the block-built array, no copy


def test_whole_transform_definition():
    """The reference against the definition: torch column c*H*W + h*W + w is Keras row h*W*C + w*C + c."""
    kernel = np.random.default_rng(0).standard_normal((3 * 4 * 5, 6))  # (H*W*C, units) with H=3, W=4, C=5
    np.testing.assert_array_equal(whole_kernel_to_linear(kernel, 60, ()), kernel.T)
    weight = whole_kernel_to_linear(kernel, 5, (3, 4))
    for h in range(3):
        for w in range(4):
            for c in range(5):
                np.testing.assert_array_equal(weight[:, c * 12 + h * 4 + w], kernel[h * 20 + w * 5 + c])


class CountedReads:
    """An array that records the bytes of every block read from it (and may say its rows come in chunks)."""

    def __init__(self, array: np.ndarray, rows_per_chunk: int = 1):
        self.array, self.shape, self.dtype, self.ndim, self.blocks = array, array.shape, array.dtype, array.ndim, []
        self.rows_per_chunk = rows_per_chunk

    def __getitem__(self, rows: slice) -> np.ndarray:
        block = self.array[rows]
        self.blocks.append(block.nbytes)
        return block


@pytest.mark.parametrize("channels,spatial", [(512, (7, 7)), (4096, ())])
def test_kernel_to_linear_reads_bounded_blocks_once(channels, spatial):
    """Each stored row is read once, in blocks of at most ``block_bytes``; the result is the only whole array
    (tracemalloc sees numpy's allocations, h5py's reads included)."""
    kernel = CountedReads(np.ones((channels * math.prod(spatial), 64), "float32"))
    block = 1 << 20
    tracemalloc.start()
    try:
        weight = kernel_to_linear(kernel, channels, spatial, np.dtype("float32"), block_bytes=block)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sum(kernel.blocks) == kernel.array.nbytes and max(kernel.blocks) <= block
    assert peak <= weight.nbytes + 2 * block, (peak, weight.nbytes)


def test_kernel_to_linear_refuses_a_flatten_of_another_size():
    with pytest.raises(ValueError, match="cannot take a flatten"):
        kernel_to_linear(np.zeros((10, 2), "float32"), 3, (3,))


@pytest.mark.parametrize("channels,spatial", [(64, (7, 7)), (4096, ())])
def test_kernel_to_linear_reads_whole_chunks(channels, spatial):
    """A file chunked along the columns (chunks of 4096 rows x 1 column, say) is read in blocks of at least a
    chunk's rows: smaller blocks would decompress every chunk once per block (20x slower, measured)."""
    kernel = CountedReads(np.ones((channels * math.prod(spatial), 8), "float32"), rows_per_chunk=1000)
    weight = kernel_to_linear(kernel, channels, spatial, np.dtype("float32"), block_bytes=1)
    np.testing.assert_array_equal(weight, np.ones((8, kernel.shape[0]), "float32"))
    row = 8 * 4
    assert sum(kernel.blocks) == kernel.array.nbytes
    assert all(b >= min(1000, channels) // 2 * row for b in kernel.blocks[:-1]), kernel.blocks


def peak_rss_mb(*args: str) -> float:
    """Peak RSS of ``python *args`` as a process of its own (a fresh parent, so no other child counts)."""
    script = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL);"
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    done = subprocess.run([sys.executable, "-c", script, sys.executable, *args], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1]) / 1024


@pytest.mark.slow
def test_large_flattened_dense_converts_within_its_memory_bound(tmp_path):
    """Issue 12's bound, ``import torch`` + 1.5 x the weight bytes, on a VGG-like fc1 of 257 MB: a stored copy
    beside a whole transposed one took 2x (the bound VGG16's conversion broke)."""
    k = keras_module("keras3")
    model = k.Sequential([k.Input((7, 7, 512)), k.layers.Flatten(), k.layers.Dense(2560)])
    weights_mb = sum(int(np.prod(w.shape)) * 4 for w in model.weights) / 2**20
    path = tmp_path / "fc.h5"
    model.save(str(path))
    del model
    baseline = peak_rss_mb("-c", "import torch")
    peak = peak_rss_mb("-m", "tf2torch", "convert", str(path), str(tmp_path / "out.pt"))
    assert peak <= baseline + 1.5 * weights_mb, (peak, baseline, weights_mb)
