"""Keras 3 ``.keras`` zip files: ``config.json``, ``metadata.json`` and ``model.weights.h5``.

Weights are not keyed by layer name but by walking the model's attributes ([K3] ``saving/saving_lib.py``):
``layers/<snake_case(ClassName)>[_N]/vars/<i>``, numbered per container in ``model.layers`` order (a
Sequential's ``layers`` leaves out its InputLayer). Recent Keras also writes the layer name as an attribute of
each ``vars`` group; where present it is used. Sub-objects (``cell``, ``forward_layer``, ``query_dense``) are
groups of their own; they follow the layer's own vars, ``forward_layer`` before ``backward_layer``, the rest
alphabetically.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from ..errors import ModelFileError
from ..graph import KerasGraph, Weight
from ..naming import to_snake_case
from . import policy
from .config import ModelTree, parse_model_config
from .h5 import parse_json

CHILD_ORDER = {"forward_layer": 0, "backward_layer": 1}
WEIGHTS_MEMBER = "model.weights.h5"
LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature ... file name length, extra field length (APPNOTE 4.3.7)


@dataclass(frozen=True)
class WeightsSpan:
    """Where ``model.weights.h5`` lies: bytes ``start`` to ``start + size`` of ``path``. Keras writes the archive
    uncompressed ([K3] ``saving_lib.py``: ``zipfile.ZipFile(..., "w")``, ZIP_STORED), so the weights are read in
    place, from the archive itself: unpacking a 1.3 GB model's weights first cost a second copy on disk (in memory
    where /tmp is a tmpfs) and a third of its conversion time. A compressed member is unpacked (streamed,
    size-checked) into the work directory and read from there (``start`` 0)."""

    path: str
    start: int
    size: int


class MemberFile(io.RawIOBase):
    """A read-only file over ``span``'s bytes, for h5py's file-object driver: positions are relative to the member,
    and nothing before or past it can be read."""

    def __init__(self, span: WeightsSpan):
        super().__init__()
        self.span, self.position = span, 0
        self.fd = os.open(span.path, os.O_RDONLY)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.span.size}[whence]
        if base + offset < 0:
            raise OSError("seek before the start of model.weights.h5")
        self.position = base + offset
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self.span.size - self.position))
        done = 0
        while done < count:
            got = os.preadv(self.fd, [view[done:count]], self.span.start + self.position + done)
            if got <= 0:
                break
            done += got
        self.position += done
        return done

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def not_a_keras_zip(path: str, names: set[str]) -> str:
    """The error for a zip without ``config.json``. A ``torch.save`` file is a zip too (``<name>/data.pkl``): given
    back to tf2torch as SOURCE it is most likely tf2torch's own output, so say how to load that instead."""
    if any(n.endswith("/data.pkl") for n in names):
        return (f"{path}: a PyTorch file (torch.save), not a Keras model; if tf2torch wrote it, it is already "
                "converted: load it with tf2torch.load(path), or check it with tf2torch verify MODEL.h5 "
                f"{path}")
    return f"{path}: zip file without config.json; not a Keras .keras model file"


def read_keras_zip(path: str, workdir: Path) -> tuple[KerasGraph, WeightsSpan | None]:
    """Parse the archive; ``model.weights.h5`` is read in place when stored uncompressed, else streamed
    (size-checked) to ``workdir``, so h5py reads it lazily. Returns the graph and where the weights file lies
    (None without weights)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names:
                raise ModelFileError(not_a_keras_zip(path, names))
            config_text = policy.read_zip_member(archive, "config.json", policy.MAX_CONFIG_BYTES, path)
            metadata_text = (policy.read_zip_member(archive, "metadata.json", policy.MAX_METADATA_BYTES, path)
                             if "metadata.json" in names else None)
            span = _weights_span(archive, path, workdir) if WEIGHTS_MEMBER in names else None
            if span is None and "model.weights.npz" in names:
                raise ModelFileError(f"{path}: weights stored as .npz are not supported; re-save with Keras 3's "
                                     "default (model.weights.h5)")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise ModelFileError(f"{path}: the zip archive is truncated or damaged ({exc})") from None
    except (OSError, ValueError, RuntimeError) as exc:  # e.g. an encrypted member, a bad header
        raise ModelFileError(f"{path}: the zip archive cannot be read ({exc})") from None
    model_config = parse_json(config_text, f"{path}: config.json")
    metadata = parse_json(metadata_text, f"{path}: metadata.json") if metadata_text is not None else {}
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{path}: metadata.json is not a JSON object")
    keras_version = str(metadata.get("keras_version", "3"))
    graph, tree = parse_model_config(model_config, keras_version, "keras")
    if span is None:
        return graph, None
    file, member = open_weights(span, path)
    try:
        budget = policy.Budget(span.size)
        root = policy.group_child(file, "_layer_checkpoint_dependencies", WEIGHTS_MEMBER) or file
        layers = policy.group_child(root, "layers", WEIGHTS_MEMBER)
        if layers is not None:
            _attach(graph, tree, layers, budget)
    finally:
        file.close()
        if member is not None:
            member.close()
    return graph, span


def _weights_span(archive: zipfile.ZipFile, path: str, workdir: Path) -> WeightsSpan:
    """Where ``model.weights.h5``'s bytes lie: in the archive when stored uncompressed and unencrypted, its local
    header checked (name, extent inside the file); else unpacked to ``workdir``, counting bytes."""
    info = archive.getinfo(WEIGHTS_MEMBER)
    policy.check_zip_member(info, policy.MAX_TOTAL_BYTES, path)
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1 and info.compress_size == info.file_size:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            header = f.read(LOCAL_HEADER.size)
            signature, name_length, extra_length = LOCAL_HEADER.unpack(header.ljust(LOCAL_HEADER.size, b"\0"))
            name = f.read(name_length)
            start = info.header_offset + LOCAL_HEADER.size + name_length + extra_length
            if signature == b"PK\x03\x04" and name == WEIGHTS_MEMBER.encode() and \
                    start + info.file_size <= os.fstat(f.fileno()).st_size:
                return WeightsSpan(os.path.realpath(path), start, info.file_size)
        raise ModelFileError(f"{path}: the local header of {WEIGHTS_MEMBER} disagrees with the archive's directory; "
                             "the archive is damaged")
    unpacked = workdir / WEIGHTS_MEMBER
    with open(unpacked, "wb") as dst:
        policy.read_zip_member(archive, WEIGHTS_MEMBER, policy.MAX_TOTAL_BYTES, path, dst)
    return WeightsSpan(str(unpacked), 0, os.path.getsize(unpacked))


def open_weights(span: WeightsSpan, path: str) -> tuple[h5py.File, MemberFile | None]:
    """``model.weights.h5`` opened with h5py where ``span`` says it lies: inside the archive through a
    ``MemberFile`` (returned too: h5py never closes a file object it was given), else the unpacked file itself."""
    member = None
    try:
        if span.start == 0 and span.size == os.path.getsize(span.path):
            return h5py.File(span.path, "r"), None
        member = MemberFile(span)
        return h5py.File(member, "r"), member
    except (OSError, ValueError, RuntimeError) as exc:
        if member is not None:
            member.close()
        raise ModelFileError(f"{path}: {WEIGHTS_MEMBER} inside the archive is damaged ({exc})") from None


def keras_zip_config(path: str) -> object:
    """Only the decoded ``config.json`` of a ``.keras`` file."""
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                raise ModelFileError(not_a_keras_zip(path, set(archive.namelist())))
            text = policy.read_zip_member(archive, "config.json", policy.MAX_CONFIG_BYTES, path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, OSError,
            ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: the zip archive is truncated or damaged ({exc})") from None
    return parse_json(text, f"{path}: config.json")


def _attach(graph: KerasGraph, tree: ModelTree, container: h5py.Group, budget: policy.Budget) -> None:
    by_name_attr = {}
    present = set(container)  # one listing, not an HDF5 lookup per layer
    for key in present:
        group = policy.child(container, key, container.name)
        vars_group = policy.group_child(group, "vars", group.name) if isinstance(group, h5py.Group) else None
        if vars_group is not None and "name" in vars_group.attrs:
            by_name_attr[str(policy.attribute(vars_group, "name", vars_group.name))] = key
    used: dict[str, int] = {}
    for layer_key, class_name, sub in tree.layers:
        if tree.class_name == "Sequential" and class_name == "InputLayer":
            continue
        base = to_snake_case(class_name)
        if base in used:
            used[base] += 1
            counted = f"{base}_{used[base]}"
        else:
            used[base] = 0
            counted = base
        name = layer_key.split("/")[-1]
        group_key = by_name_attr.get(name, counted)
        if group_key not in present:
            continue
        group = policy.group_child(container, group_key, f"layer {layer_key}")
        if group is None:
            continue
        if sub is not None:
            if "layers" not in group and "layer" in group:  # TimeDistributed(model): the model is its `layer`
                group = policy.group_child(group, "layer", f"layer {layer_key}")
            layers = policy.group_child(group, "layers", f"layer {layer_key}")
            if layers is not None:
                _attach(graph, sub, layers, budget)
        elif layer_key in graph.layers:
            graph.layers[layer_key].weights = list(_layer_weights(group, "", layer_key, budget, 0))


def _layer_weights(group: h5py.Group, prefix: str, layer_key: str, budget: policy.Budget, depth: int):
    if depth > policy.MAX_GROUP_DEPTH:
        raise ModelFileError(f"layer {layer_key}: weight groups nested more than {policy.MAX_GROUP_DEPTH} deep "
                             "(a cycle of hard links?); the file is damaged")
    vars_group = policy.group_child(group, "vars", f"layer {layer_key}")
    if vars_group is not None:
        try:
            indices = sorted(vars_group, key=int)
        except ValueError:
            raise ModelFileError(f"layer {layer_key}: weight names in {vars_group.name} are not numbers; the file "
                                 "is damaged") from None
        for index in indices:
            ds = policy.child(vars_group, index, f"layer {layer_key}")
            shape, dtype = policy.check_dataset(ds, f"layer {layer_key}, weight {prefix}vars/{index}", budget)
            yield Weight(f"{prefix}vars/{index}", shape, dtype, ds.name, policy.contiguous_offset(ds, budget.file_size))
    children = []
    for k in group:
        if k == "vars":
            continue
        obj = policy.child(group, k, f"layer {layer_key}")
        if isinstance(obj, h5py.Group):
            children.append(k)
    for child in sorted(children, key=lambda k: (CHILD_ORDER.get(k, 2), k)):
        yield from _layer_weights(group[child], f"{prefix}{child}/", layer_key, budget, depth + 1)


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="tf2torch-"))
