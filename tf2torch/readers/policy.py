"""The reading policy, in one place: what a model file may contain and how much it may ask for.

People convert files they downloaded, so a model file is treated as hostile input:
- Nothing outside the given file is ever opened. HDF5 can point elsewhere in four ways and each is refused by
  name: external links, soft links (Keras never writes either), datasets with external storage
  (``create_dataset(..., external=[...])`` reads any file as the weight) and virtual datasets (mapping other
  HDF5 files).
- A weight is a numeric dataset (float, or integer for counters and seed states) of rank <= ``MAX_WEIGHT_RANK``.
- Declared sizes are checked before anything is allocated. An uncompressed weight cannot be larger than the file
  that stores it; a compressed (filtered) one may expand at most ``MAX_EXPANSION`` times its stored bytes, the
  ratio Keras 3 itself uses against zip bombs ([K3] ``saving/saving_lib.py`` ``_ZIP_MEMBER_MAX_EXPANSION``), once
  past ``EXPANSION_FLOOR_BYTES``. The same holds for all weights together and for zip members, which are streamed
  with a byte count. ``MAX_WEIGHT_BYTES`` and ``MAX_TOTAL_BYTES`` bound everything absolutely.
- Model configs and attributes are bounded (``MAX_CONFIG_BYTES``), and so is nesting (``MAX_NESTING``).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np

from ..errors import ModelFileError

MAX_EXPANSION = 100                     # stored bytes -> declared bytes, for compressed data (Keras's own ratio)
EXPANSION_FLOOR_BYTES = 256 << 20       # below this, no ratio check (Keras's extraction floor)
MAX_WEIGHT_BYTES = 16 << 30             # one weight
MAX_TOTAL_BYTES = 64 << 30              # all weights of a model, and an unpacked model.weights.h5
MAX_WEIGHT_RANK = 8
MAX_CONFIG_BYTES = 1 << 30              # model_config / config.json
MAX_METADATA_BYTES = 1 << 20            # metadata.json
MAX_NESTING = 64                        # nested models inside nested models (enforced in config.py)
MAX_GROUP_DEPTH = 64                    # HDF5 groups below a layer's weight group


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} bytes"


def expansion_allowed(declared: int, stored: int) -> bool:
    """Whether ``declared`` bytes may come out of ``stored`` bytes of compressed data."""
    return declared <= EXPANSION_FLOOR_BYTES or declared <= MAX_EXPANSION * stored


# -- links ---------------------------------------------------------------------------------------------------
def child(group: h5py.Group, name: str, where: str) -> h5py.Group | h5py.Dataset | None:
    """``group[name]`` if it is a hard link inside this file; None if absent; refused if it is any other link."""
    try:
        link = group.get(name, getlink=True)
    except (KeyError, ValueError, TypeError):
        return None
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise ModelFileError(f"{where}: {name!r} is an external link to {link.filename}:{link.path}; tf2torch never "
                             "opens files other than the model (Keras never writes links)")
    if isinstance(link, h5py.SoftLink):
        raise ModelFileError(f"{where}: {name!r} is a soft link to {link.path}; tf2torch does not follow links "
                             "(Keras never writes them)")
    if not isinstance(link, h5py.HardLink):
        raise ModelFileError(f"{where}: {name!r} is a user-defined link; tf2torch does not follow links")
    return group[name]


def group_child(group: h5py.Group, name: str, where: str) -> h5py.Group | None:
    obj = child(group, name, where)
    if obj is not None and not isinstance(obj, h5py.Group):
        raise ModelFileError(f"{where}: {name!r} should be a group, the file holds a {type(obj).__name__}; "
                             "the file is damaged")
    return obj


# -- attributes ----------------------------------------------------------------------------------------------
def attribute(obj: h5py.HLObject, name: str, where: str) -> object:
    """One attribute, its declared storage checked before it is read; None if absent."""
    if name not in obj.attrs:
        return None
    try:
        attr_id = obj.attrs.get_id(name)
        try:
            stored = attr_id.get_storage_size()
        except RuntimeError:  # HDF5 reports 0 as an error: variable-length strings live in the global heap
            stored = 0
        if stored > MAX_CONFIG_BYTES:
            raise ModelFileError(f"{where}: attribute {name} declares {_size(stored)}, over the limit of "
                                 f"{_size(MAX_CONFIG_BYTES)}")
        return obj.attrs[name]
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{where}: attribute {name} cannot be read ({exc}); the file is damaged") from None


def text(value: object, what: str) -> str:
    """A string attribute (bytes, str or a one-element array of them) as text."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, bytes):
        try:
            return value.decode("utf8")
        except UnicodeDecodeError:
            raise ModelFileError(f"{what} is not UTF-8 text; the file is damaged") from None
    if isinstance(value, str):
        return value
    raise ModelFileError(f"{what} should be text, the file holds {type(value).__name__}; the file is damaged")


# -- weights -------------------------------------------------------------------------------------------------
@dataclass
class Budget:
    """The bytes all weights of one file may declare together."""

    file_size: int
    declared: int = 0

    @classmethod
    def for_file(cls, path: str | os.PathLike) -> "Budget":
        return cls(os.path.getsize(path))

    def limit(self) -> int:
        return min(MAX_TOTAL_BYTES, max(EXPANSION_FLOOR_BYTES, MAX_EXPANSION * self.file_size))

    def add(self, nbytes: int, where: str) -> None:
        self.declared += nbytes
        if self.declared > self.limit():
            raise ModelFileError(f"{where}: the weights declare {_size(self.declared)} in all, more than this "
                                 f"{_size(self.file_size)} file can hold (limit {_size(self.limit())})")


def check_dataset(obj: object, where: str, budget: Budget) -> tuple[tuple[int, ...], str]:
    """Shape and dtype of a weight dataset, after the policy: in this file, numeric, bounded."""
    if not isinstance(obj, h5py.Dataset):
        raise ModelFileError(f"{where}: a weight should be a dataset, the file holds a {type(obj).__name__}; the "
                             "file is damaged")
    try:
        if obj.is_virtual:
            raise ModelFileError(f"{where}: a virtual dataset (mapping other HDF5 files); tf2torch never opens "
                                 "files other than the model")
        if obj.external:
            files = ", ".join(str(e[0]) for e in obj.external)
            raise ModelFileError(f"{where}: a dataset with external storage ({files}); tf2torch never opens files "
                                 "other than the model")
        shape, dtype = obj.shape, obj.dtype
        compressed = obj.id.get_create_plist().get_nfilters() > 0
        stored = obj.id.get_storage_size()
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{where}: cannot read the dataset's header ({exc}); the file is damaged") from None
    if shape is None:
        raise ModelFileError(f"{where}: a weight without a shape (empty dataspace); the file is damaged")
    if len(shape) > MAX_WEIGHT_RANK:
        raise ModelFileError(f"{where}: a weight of rank {len(shape)}; Keras weights have at most "
                             f"{MAX_WEIGHT_RANK} dimensions")
    if dtype.kind not in "fiub" or dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFileError(f"{where}: a weight of type {dtype}; weights are numbers (float or integer)")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if declared > MAX_WEIGHT_BYTES:
        raise ModelFileError(f"{where}: shape {tuple(shape)} declares {_size(declared)}, over the limit of "
                             f"{_size(MAX_WEIGHT_BYTES)} per weight")
    if compressed:
        if not expansion_allowed(declared, stored):
            raise ModelFileError(f"{where}: {_size(stored)} of compressed data declare {_size(declared)} (more "
                                 f"than {MAX_EXPANSION}x); refusing a decompression bomb")
    elif declared > budget.file_size:
        raise ModelFileError(f"{where}: shape {tuple(shape)} declares {_size(declared)}, more than the whole "
                             f"file ({_size(budget.file_size)}); the file is damaged or hostile")
    budget.add(declared, where)
    return tuple(int(d) for d in shape), str(dtype)


class StoredWeight:
    """A weight the policy accepted, not read yet: ``shape``, ``dtype`` and blocks of leading-axis rows
    (``stored[a:b]``), each read checked; ``np.asarray(stored)`` reads it whole. A converter can fill a large
    transformed weight block by block from it, so the stored and the transformed copies are never both whole
    in memory (VGG16's fc1 kernel is 411 MB)."""

    def __init__(self, dataset: h5py.Dataset | None, where: str, shape: tuple[int, ...], dtype: np.dtype,
                 rows_per_chunk: int = 1):
        self._dataset = dataset
        self.where = where
        self.shape = shape
        self.dtype = dtype
        # Rows of one HDF5 chunk (1: contiguous, as Keras writes). Blocks of fewer rows would decompress each
        # chunk once per block that touches it, so readers of blocks take at least this many rows at a time.
        self.rows_per_chunk = rows_per_chunk

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a scalar weight")
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        """Stored rows ``rows.start`` to ``rows.stop`` (leading axis, step 1), clipped to the weight as numpy does."""
        if not isinstance(rows, slice) or rows.step not in (None, 1) or not self.shape:
            raise TypeError(f"weight {self.where}: a stored weight reads blocks of leading-axis rows (w[a:b])")
        start, stop, _ = rows.indices(self.shape[0])
        if stop <= start:
            return np.empty((0, *self.shape[1:]), dtype=self.dtype)
        return self._read(np.s_[start:stop], (stop - start, *self.shape[1:]))

    def read(self) -> np.ndarray:
        """All the values."""
        return self._read((), self.shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.read()
        return array if dtype is None else array.astype(dtype, copy=False)

    def _read(self, selection: Any, shape: tuple[int, ...]) -> np.ndarray:
        try:
            array = np.asarray(self._dataset[selection])
        except (OSError, RuntimeError, ValueError, TypeError) as exc:
            raise ModelFileError(f"cannot read weight {self.where}: {exc}; the file is truncated or damaged") from None
        if array.shape != shape:  # the header changed under us (the file was rewritten while converting)
            raise ModelFileError(f"cannot read weight {self.where}: read {array.shape}, the header declared "
                                 f"{shape}; the file is damaged")
        return array


class ContiguousStoredWeight(StoredWeight):
    """A ``StoredWeight`` whose values lie contiguous at ``offset`` in the file (``contiguous_offset``): blocks of
    rows are read with ``os.preadv`` straight into their array, with no HDF5 call (which costs more than the
    copy for the hundreds of small weights of a model: 0.25 s of ResNet50's conversion)."""

    def __init__(self, fd: int, offset: int, where: str, shape: tuple[int, ...], dtype: np.dtype):
        super().__init__(None, where, shape, dtype)
        self._fd, self._offset = fd, offset

    def _read(self, selection: Any, shape: tuple[int, ...]) -> np.ndarray:
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        start = selection.start if isinstance(selection, slice) else 0
        array = np.empty(shape, dtype=self.dtype)
        view, position, done = memoryview(array.reshape(-1).view(np.uint8)), self._offset + start * row_bytes, 0
        while done < array.nbytes:  # a read may return less than asked (Linux stops at 2 GiB)
            try:
                got = os.preadv(self._fd, [view[done:]], position + done)
            except OSError as exc:
                raise ModelFileError(f"cannot read weight {self.where}: {exc}; the file is damaged") from None
            if got <= 0:
                raise ModelFileError(f"cannot read weight {self.where}: the file ends before its values; the file is "
                                     "truncated")
            done += got
        return array


def contiguous_offset(obj: h5py.Dataset, file_size: int) -> int | None:
    """Where a dataset the policy accepted keeps its values in the file, when they are stored contiguous,
    unfiltered and whole (every weight Keras writes); None when anything else holds (chunked, compressed,
    compact or unwritten storage), and the values are read through HDF5."""
    try:
        plist = obj.id.get_create_plist()
        if plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_nfilters() > 0:
            return None
        offset = obj.id.get_offset()
        stored = obj.id.get_storage_size()
        declared = int(np.prod(obj.shape, dtype=np.int64)) * obj.dtype.itemsize
    except (OSError, RuntimeError, ValueError, TypeError):
        return None
    if offset is None or declared == 0 or stored != declared or not 0 <= offset <= file_size - declared:
        return None
    return int(offset)


def stored_weight(obj: object, where: str, file_size: int) -> StoredWeight:
    """A weight the policy accepted (re-checked: the key is looked up again), to be read when and as needed."""
    shape, _ = check_dataset(obj, where, Budget(file_size))
    assert isinstance(obj, h5py.Dataset)
    try:
        chunks = obj.chunks
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise ModelFileError(f"{where}: cannot read the dataset's header ({exc}); the file is damaged") from None
    return StoredWeight(obj, where, shape, obj.dtype, int(chunks[0]) if chunks and shape else 1)



# -- zip members ---------------------------------------------------------------------------------------------
def check_zip_member(info: zipfile.ZipInfo, limit: int, where: str) -> None:
    """A member's declared size, before it is read: under ``limit`` and not a decompression bomb."""
    if info.file_size > limit:
        raise ModelFileError(f"{where}: {info.filename} declares {_size(info.file_size)}, over the limit of "
                             f"{_size(limit)}")
    if not expansion_allowed(info.file_size, info.compress_size):
        raise ModelFileError(f"{where}: {info.filename} declares {_size(info.file_size)} from "
                             f"{_size(info.compress_size)} stored (more than {MAX_EXPANSION}x); refusing a "
                             "decompression bomb")


def read_zip_member(archive: zipfile.ZipFile, name: str, limit: int, where: str, dst: Any = None) -> bytes:
    """Stream a member, counting bytes: never more than it declared (and the policy allowed)."""
    info = archive.getinfo(name)
    check_zip_member(info, limit, where)
    allowed = info.file_size
    parts, count = [], 0
    with archive.open(info) as src:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            count += len(chunk)
            if count > allowed:
                raise ModelFileError(f"{where}: {name} inflates past its declared {_size(allowed)}; the archive is "
                                     "damaged or hostile")
            if dst is not None:
                dst.write(chunk)
            else:
                parts.append(chunk)
    return b"".join(parts)


# -- code in configs -----------------------------------------------------------------------------------------
CODE_CLASSES = frozenset({"Lambda", "__lambda__"})


def layers_with_code(config: Any) -> list[tuple[str, str]]:
    """(name, class) of everything in a raw model config that carries Python code Keras would execute on load or
    call: ``Lambda`` layers (marshalled bytecode), Keras 3 ``__lambda__`` objects, ``function_type: lambda``.
    Walks the whole config, reachable or not (Keras builds every layer in it), without recursion."""
    found: dict[str, str] = {}
    stack = [config]
    while stack:
        value = stack.pop()
        if isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            class_name = value.get("class_name")
            cfg = value.get("config")
            if class_name in CODE_CLASSES or value.get("function_type") == "lambda":
                name = value.get("name") or (cfg.get("name") if isinstance(cfg, dict) else None) or "?"
                found.setdefault(str(name), str(class_name or "Lambda"))
            stack.extend(value.values())
    return list(found.items())
