"""``to_python``, ``to_pt2``, ``to_onnx`` and ``emit`` (several at once): each writes into a directory
atomically — everything is written into a temporary directory beside it and moved into place only when every
file succeeded, so a failure leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch.fx as fx

from ..errors import EmitError, Tf2TorchError
from ..io import conversion_meta, umask
from ..quiet import exporter_quiet

EMIT_KINDS = ("python", "pt2", "onnx")


def version() -> str:
    from ..version import __version__

    return __version__


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; on success its files move into ``path`` (created if missing), with the
    modes the umask gives (``mkdtemp`` makes 0700; some writers, safetensors among them, 0600)."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise Tf2TorchError(f"{target}: exists and is not a directory (with --emit the output is a directory)")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        _honour_umask(tmp)
        if not target.exists():
            os.replace(tmp, target)
        else:
            for item in sorted(tmp.iterdir()):
                os.replace(item, target / item.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _honour_umask(directory: Path) -> None:
    mask = umask()
    os.chmod(directory, 0o777 & ~mask)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def emitted_files(kinds: Sequence[str]) -> list[str]:
    """The names of the files ``emit`` writes for ``kinds`` (what ``--emit`` promises), in order."""
    from .export import ONNX_FILE, PT2_FILE
    from .python import MODEL_FILE, RUNTIME_FILE, WEIGHTS_FILE

    names = {"python": [MODEL_FILE, RUNTIME_FILE, WEIGHTS_FILE, "__init__.py"], "pt2": [PT2_FILE],
             "onnx": [ONNX_FILE]}
    return [name for kind in dict.fromkeys(kinds) for name in names[kind]]


def emit(module: fx.GraphModule, out_dir: str | os.PathLike, kinds: Sequence[str] = ("python",)) -> list[Path]:
    """Write ``module`` (from ``tf2torch.convert`` or ``load``) into ``out_dir`` in each of ``kinds``:
    ``python`` (model.py, runtime.py, model.safetensors, __init__.py), ``pt2`` (model.pt2), ``onnx``
    (model.onnx). Returns the paths written."""
    from .export import export_program, write_onnx, write_pt2
    from .python import write_python

    unknown = [k for k in kinds if k not in EMIT_KINDS]
    if unknown:
        raise Tf2TorchError(f"unknown emit kind(s) {unknown}; choose from {list(EMIT_KINDS)}")
    if not kinds:
        raise Tf2TorchError("nothing to emit")
    conversion_meta(module)
    written: list[Path] = []
    with atomic_directory(out_dir) as tmp:
        if "python" in kinds:
            written += write_python(module, tmp, version())
        if "pt2" in kinds or "onnx" in kinds:
            with exporter_quiet():  # torch.export's and the ONNX exporter's chatter about their own internals
                program = export_program(module)
                if "pt2" in kinds:
                    written += write_pt2(program, tmp)
                if "onnx" in kinds:
                    written += write_onnx(module, program, tmp)
    return [Path(out_dir) / p.name for p in written]


def to_python(module: fx.GraphModule, out_dir: str | os.PathLike) -> list[Path]:
    """Standalone PyTorch source: ``model.py`` (one class named after the Keras model, ``load()``), the
    ``runtime.py`` helpers it uses, ``model.safetensors`` and ``__init__.py``; nothing imports tf2torch."""
    return emit(module, out_dir, ("python",))


def to_pt2(module: fx.GraphModule, out_dir: str | os.PathLike) -> list[Path]:
    """``model.pt2``: a ``torch.export`` program, batch (and open dimensions) dynamic; ``torch.export.load``."""
    return emit(module, out_dir, ("pt2",))


def to_onnx(module: fx.GraphModule, out_dir: str | os.PathLike) -> list[Path]:
    """``model.onnx`` (opset ``ONNX_OPSET``), batch (and open dimensions) dynamic."""
    return emit(module, out_dir, ("onnx",))


__all__ = ["EMIT_KINDS", "emit", "to_python", "to_pt2", "to_onnx", "EmitError"]
