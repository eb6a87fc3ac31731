"""TensorFlow checkpoints as a transfer source: TF 2 object checkpoints (``tf.train.Checkpoint``, tf_keras
``save_weights`` without ``.h5``) and TF 1 checkpoints without a ``.meta``, read by variable name.

Names: ``layer_with_weights-3/cell/kernel/.ATTRIBUTES/VARIABLE_VALUE`` (object graph paths, numbered in
``model.layers`` order: [TF] ``tensorflow/python/checkpoint/``) or ``conv2d_1/kernel`` (TF 1 scopes). Weights are
grouped by scope, sorted naturally (``-10`` after ``-9``), the kind told by the names (``named_kind``); optimizer
slots, ``save_counter`` and the object graph itself are not weights. TensorFlow is imported here, lazily, as every
TF-format reader does.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from ..errors import ModelFileError
from ..readers import MAX_WEIGHT_RANK, Budget, checkpoint_prefix, import_tensorflow
from .layers import ATTENTION_PARTS, SourceLayer, attention_roles, named_kind, natural

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
NOT_WEIGHTS = re.compile(r"(^|/)(_CHECKPOINTABLE_OBJECT_GRAPH|save_counter|optimizer|global_step|keras_api)"
                         r"|\.OPTIMIZER_SLOT|/\.ATTRIBUTES/(?!VARIABLE_VALUE)")


class CheckpointArray:
    """A checkpoint variable, read when asked for (whole: checkpoints store no row blocks)."""

    def __init__(self, reader: Any, name: str, shape: tuple[int, ...], dtype: np.dtype):
        self._reader, self.name, self.shape, self.dtype = reader, name, shape, dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def read(self) -> np.ndarray:
        try:
            array = np.asarray(self._reader.get_tensor(self.name))
        except Exception as exc:  # TF raises its own kinds for damaged data
            raise ModelFileError(f"cannot read checkpoint variable {self.name}: {exc}; the file is damaged") from None
        if array.shape != self.shape:
            raise ModelFileError(f"checkpoint variable {self.name}: read {array.shape}, the index declared "
                                 f"{self.shape}; the file is damaged")
        return array

    def __getitem__(self, rows: slice) -> np.ndarray:
        return self.read()[rows]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.read()
        return array if dtype is None else array.astype(dtype, copy=False)


def checkpoint_layers(path: str | os.PathLike) -> list[SourceLayer]:
    prefix = checkpoint_prefix(path)
    if prefix is None:
        raise ModelFileError(f"{path}: not a TF checkpoint")
    tf = import_tensorflow()
    try:  # (not tf.train.load_checkpoint: it reads a prefix that is a directory as "the latest in it")
        reader = tf.compat.v1.train.NewCheckpointReader(prefix)
        shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    except Exception as exc:
        raise ModelFileError(f"{prefix}: cannot read the checkpoint ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})") from None
    budget, scopes = Budget(max(1, _data_size(prefix))), {}
    for name in sorted(shapes, key=natural):
        if NOT_WEIGHTS.search(name):
            continue
        dtype = np.dtype(dtypes[name].as_numpy_dtype)
        shape = tuple(int(d) for d in shapes[name])
        if dtype.kind not in "fiub" or len(shape) > MAX_WEIGHT_RANK:
            continue
        budget.add(int(np.prod(shape, dtype=object)) * dtype.itemsize, f"{prefix}: variable {name}")
        scope, _, role = name.removesuffix(SUFFIX).rpartition("/")
        if scope.endswith(("/cell", "_cell")):
            scope = scope.rsplit("/", 1)[0]
        parent, _, last = scope.rpartition("/")
        if last in ATTENTION_PARTS:  # a MultiHeadAttention's sub-layer (``_query_dense``): one layer, its parent
            scope, role = parent, f"{last}/{role}"
        scopes.setdefault(scope or role, {})[role] = CheckpointArray(reader, name, shape, dtype)
    return [_layer(scope, weights) for scope, weights in scopes.items()]


def _layer(scope: str, weights: dict[str, CheckpointArray]) -> SourceLayer:
    roles = attention_roles(list(weights)) if any("/" in role for role in weights) else None
    if roles is not None:
        return SourceLayer(scope, "attention", "", dict(zip(roles, weights.values())))
    return SourceLayer(scope, named_kind(weights), "", weights)


def _data_size(prefix: str) -> int:
    """The bytes of the checkpoint's data shards, which bound what its variables may declare."""
    directory, base = os.path.split(prefix)
    directory = directory or "."
    return sum(os.path.getsize(os.path.join(directory, f)) for f in os.listdir(directory)
               if f.startswith(f"{base}.data-"))
