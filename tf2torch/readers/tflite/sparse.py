"""Sparse constants (``Tensor.sparsity``, what ``DENSIFY`` expands): the dense positions of the stored values,
computed and checked while reading, so loading a weight is one scatter. Source: tensorflow/lite/schema/schema.fbs
(``SparsityParameters``, ``DimensionMetadata``: DENSE levels of ``dense_size``, SPARSE_CSR levels of
``array_segments`` and ``array_indices``, in traversal order) and the interpreter's
``FormatConverter::SparseToDense`` (kernels/internal/utils/sparsity_format_converter.cc), which walks the levels
in traversal order and writes the values in the order they are stored.

Block-sparse tensors (``block_map``, a traversal order longer than the rank) are refused; TFLiteConverter's
``EXPERIMENTAL_SPARSITY`` and MediaPipe's sparse models store CSR rows without blocks.
"""

from __future__ import annotations

import numpy as np

from .. import policy
from .flatbuf import Buffer, Table

INDEX_VECTORS = {1: "i", 2: "H", 3: "B"}  # SparseIndexVector: Int32Vector, Uint16Vector, Uint8Vector


def _index_vector(dim: Table, slot: int, what: str, buf: Buffer) -> np.ndarray:
    kind = dim.scalar(slot, "B")
    table = dim.table(slot + 2, what)
    if kind not in INDEX_VECTORS or table is None:
        raise buf.damaged(f"{what}: index vector of type {kind}")
    return np.asarray(table.scalars(4, INDEX_VECTORS[kind], what), np.int64)


def _level(dim: Table, size: int, prev: np.ndarray, what: str, buf: Buffer
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One level of the walk: for each value under it, (the position it comes from, its index along this level,
    its position for the next level)."""
    rows = np.arange(len(prev))
    if dim.scalar(4, "b") == 0:  # DENSE: every index 0..size-1 under every position so far
        if dim.scalar(6, "i") != size:
            raise buf.damaged(f"{what}: a dense level of {dim.scalar(6, 'i')} for a dimension of {size}")
        return np.repeat(rows, size), np.tile(np.arange(size), len(prev)), \
            (prev[:, None] * size + np.arange(size)).reshape(-1)
    segments = _index_vector(dim, 8, f"{what} array_segments", buf)
    indices = _index_vector(dim, 12, f"{what} array_indices", buf)
    if len(segments) == 0 or np.any(np.diff(segments) < 0) or segments[0] < 0 or segments[-1] > len(indices) \
            or (len(prev) and prev.max() + 1 >= len(segments)) or np.any((indices < 0) | (indices >= size)):
        raise buf.damaged(f"{what}: CSR segments and indices that do not fit a dimension of {size}")
    starts, counts = segments[prev], segments[prev + 1] - segments[prev]
    total = int(counts.sum())
    positions = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
    return np.repeat(rows, counts), indices[positions], positions


def sparse_positions(sparsity: Table, shape: list[int], values: int, what: str, buf: Buffer) -> np.ndarray:
    """The flat (row-major) position in the dense tensor of each of the ``values`` stored values, in the order
    they are stored (the walk's order)."""
    order = sparsity.scalars(4, "i", f"{what} traversal_order")
    dims = sparsity.tables(8, f"{what} dim_metadata")
    if sparsity.vector(6, 4, f"{what} block_map")[1] or sorted(order) != list(range(len(shape))) \
            or len(dims) != len(shape):
        raise buf.damaged(f"{what}: traversal order {order} and {len(dims)} levels for a tensor of rank "
                          f"{len(shape)} (block-sparse tensors are not supported)")
    dense = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if dense > policy.MAX_WEIGHT_BYTES or values > dense:
        raise buf.damaged(f"{what}: {values} values of a sparse tensor of shape {shape}")
    prev = np.zeros(1, np.int64)
    coordinates: list[np.ndarray] = [np.zeros(1, np.int64)] * len(shape)
    for level, (axis, dim) in enumerate(zip(order, dims)):
        owner, index, prev = _level(dim, shape[axis], prev, f"{what} level {level}", buf)
        if len(prev) > dense:
            raise buf.damaged(f"{what}: more positions than the dense shape {shape} holds")
        coordinates = [c[owner] for c in coordinates]
        coordinates[axis] = index
    if len(prev) != values:
        raise buf.damaged(f"{what}: the sparsity describes {len(prev)} values, the buffer holds {values}")
    return np.ravel_multi_index(coordinates, shape) if shape else np.zeros(values, np.int64)
