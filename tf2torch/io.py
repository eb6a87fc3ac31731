"""Save and load converted models safely: the IR (plain JSON) next to the state_dict.

``load`` uses ``torch.load(weights_only=True)``: no pickled code is ever executed. It rebuilds the module from
the IR with the same converters (weights as zeros of the stored shapes), then loads the state_dict strictly.
Files are written atomically: a failure leaves no file behind. They get the mode a plain ``open`` would give
(0644 under umask 022), not the temporary file's 0600 (issue 20).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import ModelFileError, Tf2TorchError

FORMAT = "tf2torch"
# 2: the run-time modules of TF graphs were regrouped (issue #21), so their state_dict names changed; a file of
# format 1 still loads where its names agree (every Keras model) and is told to convert again where they do not.
FORMAT_VERSION = 2


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``os.umask`` can only set it, and
    setting it briefly races with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def conversion_meta(module: nn.Module) -> dict[str, Any]:
    meta = getattr(module, "tf2torch_meta", None)
    if meta is None:
        raise Tf2TorchError("this module was not made by tf2torch.convert; save it with torch.save(state_dict)")
    return meta


def save(module: nn.Module, path: str | os.PathLike) -> None:
    """Write ``module`` (from ``tf2torch.convert`` or ``load``) as a safe ``.pt`` file."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": json.dumps(conversion_meta(module)),
        "state_dict": module.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_payload(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ModelFileError(f"{p}: no such file")
    try:
        payload = torch.load(p, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many kinds for damaged files
        raise ModelFileError(f"{p}: not a tf2torch .pt file or damaged ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{p}: not a file written by tf2torch.save")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{p}: written by a newer tf2torch (format {payload['format_version']}); upgrade")
    return payload


WEIGHT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
                           "uint16", "uint32", "uint64", "bool"})


def read_saved(path: str | os.PathLike) -> tuple[Any, dict[str, Any], dict[str, torch.Tensor]]:
    """(graph, meta, state_dict) of a ``.pt`` written by ``save``; a malformed file (missing keys,
    wrong types, weights larger than the file holds) is a ``ModelFileError``, never a bare ``KeyError``."""
    from .graph import KerasGraph

    payload = load_payload(path)
    try:
        meta = json.loads(payload["meta"])
        graph = KerasGraph.from_json(meta["graph"])
        layout, input_shapes, state_dict = meta["layout"], meta.get("input_shapes"), payload["state_dict"]
        if not isinstance(state_dict, dict) or not all(isinstance(t, torch.Tensor) for t in state_dict.values()):
            raise TypeError("state_dict is not a mapping of tensors")
        if meta.get("dtype") not in (None, "float32", "float64"):
            raise TypeError(f"dtype {meta.get('dtype')!r} is not float32, float64 or null")
        if layout not in ("channels_first", "keras"):
            raise TypeError(f"layout {layout!r} is not channels_first or keras")
        if input_shapes is not None and not (isinstance(input_shapes, list) and all(
                s is None or (isinstance(s, list) and all(d is None or type(d) is int and d >= 0 for d in s))
                for s in input_shapes)):
            raise TypeError(f"input_shapes {input_shapes!r} are not lists of dimensions")
        _check_declared_weights(graph, os.path.getsize(path))
        meta["format_version"] = payload.get("format_version", 0)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise ModelFileError(f"{path}: a damaged tf2torch file ({type(exc).__name__}: {exc})") from None
    return graph, meta, state_dict


def _check_declared_weights(graph: Any, file_size: int) -> None:
    """Weight shapes in the IR are allocated (as zeros) before the state_dict fills them: they must be shapes, of
    a known dtype, and no larger in all than the file could hold (counted at 8 bytes a value, float64's size)."""
    total = 0
    for layer in graph.layers.values():
        for w in layer.weights:
            if str(w.dtype) not in WEIGHT_DTYPES:
                raise TypeError(f"weight {w.key or w.name} has dtype {w.dtype!r}")
            if not all(type(d) is int and d >= 0 for d in w.shape):
                raise TypeError(f"weight {w.key or w.name} has shape {list(w.shape)!r}")
            count = 1
            for d in w.shape:
                count *= d
            total += count * 8
    if total > 2 * file_size + (64 << 20):
        raise ValueError(f"the saved graph declares weights of {total:,} bytes, more than the file could hold")
