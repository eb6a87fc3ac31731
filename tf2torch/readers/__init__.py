"""Readers turn a model file into a ``KerasGraph``. They use h5py and json only and know nothing of torch;
the TensorFlow formats (SavedModel, TF1 checkpoint, frozen GraphDef) import TensorFlow lazily, inside their
readers, so converting ``.h5`` / ``.keras`` never does."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from ..graph import KerasGraph, WeightFunction
from . import policy, watchdog
from .h5 import dataset_loader, h5_config_text, open_h5, parse_json, read_h5
from .keras_zip import WeightsSpan, keras_zip_config, make_workdir, open_weights, read_keras_zip
from .tf_paths import tf_kind

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
TFLITE_IDENTIFIER = b"TFL3"  # a FlatBuffer's file_identifier, bytes 4..8


SOURCE_FORMATS = ("a Keras .h5 or .keras file, a SavedModel directory, a TF1 checkpoint (its .meta, .index or "
                  "prefix), a frozen graph (.pb) or a TensorFlow Lite model (.tflite)")


def file_kind(path: str | os.PathLike) -> str:
    """``h5`` or ``keras``, told by the file's first bytes, not its name; ``savedmodel``, ``checkpoint`` or
    ``graphdef`` for the TensorFlow formats (a checkpoint prefix need not exist as a file); ``tflite`` for a
    FlatBuffer with TFLite's identifier."""
    p = Path(path)
    kind = tf_kind(p)
    if kind is not None:
        return kind
    if not p.exists():
        raise ModelFileError(f"{p}: no such file")
    if p.is_dir():
        raise ModelFileError(f"{p}: is a directory, not a model; expected {SOURCE_FORMATS}")
    with open(p, "rb") as f:
        head = f.read(8)
    if head.startswith(HDF5_SIGNATURE):
        return "h5"
    if head.startswith(ZIP_SIGNATURE):
        return "keras"
    if head[4:8] == TFLITE_IDENTIFIER:
        return "tflite"
    if not head:
        raise ModelFileError(f"{p}: the file is empty; expected {SOURCE_FORMATS}")
    raise ModelFileError(f"{p}: not a Keras model file (neither HDF5 nor a .keras zip) nor a TensorFlow one; "
                         f"expected {SOURCE_FORMATS}")


_PREFETCHED: dict[tuple[Any, ...], tuple[watchdog.Pending, Path | None]] = {}


def file_identity(path: str | os.PathLike) -> tuple[Any, ...]:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def prefetch(path: str | os.PathLike) -> None:
    """Start reading a ``.h5`` / ``.keras`` file's structure now, in the watchdog's child process, for a later
    ``open_model(path)`` of the same, unchanged file: the command line imports torch meanwhile, one core each.
    Anything unusual (a TF format, a missing file) is left to ``open_model`` to read and report."""
    try:
        kind = file_kind(path)
        key = file_identity(path)
    except (ModelFileError, OSError):
        return
    if kind not in ("h5", "keras") or key in _PREFETCHED:
        return
    workdir = make_workdir() if kind == "keras" else None
    if workdir is not None:
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)  # in case no open_model takes it
    _PREFETCHED[key] = (watchdog.start(functools.partial(read_structure, kind, str(path), workdir), str(path)), workdir)


@contextlib.contextmanager
def open_model(path: str | os.PathLike, tf_options: dict[str, Any] | None = None,
               convertible: Callable[[str], bool] | None = None) -> Iterator[KerasGraph]:
    """Read the graph and keep the file open so weights stream in one at a time while converting.
    ``tf_options`` (TensorFlow formats only): ``signature``, ``inputs``, ``outputs``, ``constants``; for
    ``.tflite`` only ``dequantize`` (a quantized model read as a float one).
    ``convertible`` (Keras SavedModels only): whether a layer class converts, as the caller decides (a layer it
    refuses converts from its traced call function); readers never look converters up themselves.

    The structure (config, weight names, shapes, the reading policy's checks) is read under the watchdog; the
    weight values are read afterwards, one at a time, each checked again by the policy.
    """
    kind = file_kind(path)
    if kind in ("savedmodel", "checkpoint", "graphdef"):
        from .tf_graph import open_tf_model

        options = {k: v for k, v in (tf_options or {}).items() if k != "dequantize"}
        with open_tf_model(path, kind, options, convertible) as graph:
            yield graph
        return
    if kind == "tflite":
        from .tflite import open_tflite

        with open_tflite(path, bool((tf_options or {}).get("dequantize"))) as graph:
            yield graph
        return
    path = str(path)
    pending, workdir = _PREFETCHED.pop(file_identity(path), (None, None))
    if pending is None:
        workdir = make_workdir() if kind == "keras" else None
    file = raw = member = None
    try:
        if pending is None:
            pending = watchdog.start(functools.partial(read_structure, kind, path, workdir), path)
        graph, weights = pending.result()
        if isinstance(weights, WeightsSpan):  # a .keras archive's model.weights.h5, in place or unpacked
            file, member = open_weights(weights, path)
            raw = os.open(weights.path, os.O_RDONLY)
            graph.weight_source = WeightFunction(dataset_loader(file, raw, weights.start, weights.size))
        elif weights is not None:
            file = open_h5(str(weights))
            raw = os.open(weights, os.O_RDONLY)
            graph.weight_source = WeightFunction(dataset_loader(file, raw))
        yield graph
    finally:
        if raw is not None:
            os.close(raw)
        if file is not None:
            file.close()
        if member is not None:
            member.close()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


def read_config(path: str | os.PathLike) -> object:
    """The raw (JSON-decoded) model config of a model file, read under the policy and the watchdog."""
    kind = file_kind(path)
    path = str(path)
    if kind == "tflite":
        raise ModelFileError(f"{path}: a TensorFlow Lite model has no Keras config (tf2torch inspect lists its "
                             "operators)")

    if kind == "savedmodel":  # a Keras SavedModel: the root model's entry in keras_metadata.pb (no TensorFlow)
        from .savedmodel_keras import keras_metadata_config

        return keras_metadata_config(Path(path))

    try:
        return watchdog.guarded(functools.partial(_config_of, kind, path), path)
    except (OSError, RuntimeError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ModelFileError(f"{path}: cannot read the model config ({exc}); the file is damaged") from None


def _config_of(kind: str, path: str) -> object:
    if kind == "h5":
        file = open_h5(path)
        try:
            text = h5_config_text(file, path)
        finally:
            file.close()
        return parse_json(text, f"{path}: the model config")
    return keras_zip_config(path)


def read_structure(kind: str, path: str, workdir: Path | None) -> tuple[KerasGraph, str | WeightsSpan | None]:
    """The graph of a model file (no weight values) and the HDF5 file its weights are in (a ``.keras`` archive's:
    where its ``model.weights.h5`` lies)."""
    try:
        if kind == "h5":
            file = open_h5(path)
            try:
                return read_h5(file, path), path
            finally:
                file.close()
        assert workdir is not None
        return read_keras_zip(path, workdir)
    except RecursionError:
        raise ModelFileError(f"{path}: the model nests too deeply (tf2torch reads at most {policy.MAX_NESTING} "
                             "levels of nested models)") from None
    except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
        what = "the HDF5 structure" if kind == "h5" else "model.weights.h5"
        raise ModelFileError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc}); the file is "
                             "damaged") from None


# -- the door for the rooms above (verify, transfer): what they use of the readers, named here so that they never
# import a reader's own module (issue #21). The reading policy for weights-only HDF5 files (transfer's sources):
from .h5 import read_attr_list  # noqa: E402, F401
from .policy import (  # noqa: E402, F401
    MAX_NESTING,
    MAX_WEIGHT_RANK,
    Budget,
    check_dataset,
    contiguous_offset,
    group_child,
    layers_with_code,
)
from .policy import attribute as h5_attribute  # noqa: E402, F401
from .policy import child as h5_child  # noqa: E402, F401
from .tf_paths import checkpoint_prefix, import_tensorflow  # noqa: E402, F401
from .tf_sources import parse_constant  # noqa: E402, F401  (light: json and re; the CLI's --constant)
from .watchdog import guarded  # noqa: E402, F401


def list_placeholders(path: str | os.PathLike, options: dict[str, Any]) -> list[str]:
    """Lines for ``tf2torch inspect``: a TF graph's placeholders (name, dtype, shape, default), fed ones marked."""
    from .tf_graph import list_placeholders as placeholders

    return placeholders(path, options)


def runnable_tf_graph(path: str | os.PathLike, options: dict[str, Any], graph: KerasGraph) -> tuple[Any, Any]:
    """(tensorflow, a GraphDef) of the TensorFlow graph in ``path`` as its conversion to ``graph`` read it (the same
    ``options``: signature, inputs, outputs, constants), resolved the same way and runnable op by op: what ``verify``
    runs on TensorFlow to compare each converted op with TensorFlow's own kernel."""
    from .tf_graph import prepare, runnable_graph_def
    from .tf_sources import TFOptions, read_source

    tf = import_tensorflow()
    opts = TFOptions.from_dict(dict(options))
    walker, _ = prepare(tf, read_source(tf, Path(path), file_kind(path), opts), opts)
    return tf, runnable_graph_def(walker, graph)
