"""Readers turn a model file into a ``KerasGraph``. They use h5py and json only and know nothing of torch;
the TensorFlow formats (SavedModel, TF1 checkpoint, frozen GraphDef) import TensorFlow lazily, inside their
readers, so converting ``.h5`` / ``.keras`` never does."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from ..graph import KerasGraph
from .h5 import dataset_loader, open_h5, read_h5
from .keras_zip import make_workdir, read_keras_zip
from .tf_paths import tf_kind

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"


def file_kind(path: str | os.PathLike) -> str:
    """``h5`` or ``keras``, told by the file's first bytes, not its name; ``savedmodel``, ``checkpoint`` or
    ``graphdef`` for the TensorFlow formats (a checkpoint prefix need not exist as a file)."""
    p = Path(path)
    kind = tf_kind(p)
    if kind is not None:
        return kind
    if not p.exists():
        raise ModelFileError(f"{p}: no such file")
    if p.is_dir():
        raise ModelFileError(f"{p}: is a directory, not a model (.h5, .keras, a SavedModel directory or a "
                             "directory holding a TF checkpoint)")
    with open(p, "rb") as f:
        head = f.read(8)
    if head.startswith(HDF5_SIGNATURE):
        return "h5"
    if head.startswith(ZIP_SIGNATURE):
        return "keras"
    if not head:
        raise ModelFileError(f"{p}: the file is empty; expected a Keras .h5 or .keras model file")
    raise ModelFileError(f"{p}: not a Keras model file (neither HDF5 nor a .keras zip); expected .h5 or .keras")


@contextlib.contextmanager
def open_model(path: str | os.PathLike, tf_options: dict[str, Any] | None = None) -> Iterator[KerasGraph]:
    """Read the graph and keep the file open so weights stream in one at a time while converting.
    ``tf_options`` (TensorFlow formats only): ``signature``, ``inputs``, ``outputs``, ``constants``."""
    kind = file_kind(path)
    if kind in ("savedmodel", "checkpoint", "graphdef"):
        from .tf_graph import open_tf_model

        with open_tf_model(path, kind, tf_options or {}) as graph:
            yield graph
        return
    if kind == "h5":
        file = open_h5(str(path))
        try:
            try:
                graph = read_h5(file, str(path))
            except (OSError, RuntimeError) as exc:
                raise ModelFileError(f"{path}: cannot read the HDF5 structure ({exc}); the file is damaged") from None
            graph._loader = dataset_loader(file)
            yield graph
        finally:
            file.close()
        return
    workdir = make_workdir()
    file = None
    try:
        try:
            graph, file = read_keras_zip(str(path), workdir)
        except (OSError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: cannot read model.weights.h5 ({exc}); the file is damaged") from None
        if file is not None:
            graph._loader = dataset_loader(file)
        yield graph
    finally:
        if file is not None:
            file.close()
        shutil.rmtree(workdir, ignore_errors=True)
