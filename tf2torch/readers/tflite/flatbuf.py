"""A checked reader of FlatBuffer tables: every offset, vtable and vector is bounds-checked against the buffer
before it is followed, so a damaged or hostile ``.tflite`` file ends in one ``ModelFileError``, never in an
``IndexError``, a negative slice that wraps around, or a huge allocation.

Why not ``flatbuffers.table.Table``: the ``flatbuffers`` package's accessors trust the buffer (its ``Vector``
and ``Indirect`` follow any offset, its ``VectorLen`` returns any length), which is right for files one wrote
oneself and wrong for downloaded ones. The layout follows the FlatBuffers binary format
(flatbuffers.dev/internals): a table starts with an ``soffset32`` back to its vtable; the vtable is
``uint16`` [vtable size, object size, field offsets...]; references (``uoffset32``) point forward from where
they are stored, so no chain of references can loop.
"""

from __future__ import annotations

import struct
from typing import Any

from ...errors import ModelFileError

SCALARS = {"b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "q": 8, "Q": 8, "f": 4, "d": 8, "?": 1}


class Buffer:
    """The bytes of one FlatBuffer (a ``bytes`` or an ``mmap``) and the file they came from, for messages."""

    def __init__(self, data: Any, where: str):
        self.data = data
        self.size = len(data)
        self.where = where

    def damaged(self, what: str) -> ModelFileError:
        return ModelFileError(f"{self.where}: {what}; the .tflite file is damaged (truncated or not written by the "
                              "TFLite converter)")

    def read(self, fmt: str, pos: int, what: str) -> Any:
        if pos < 0 or pos + SCALARS[fmt] > self.size:
            raise self.damaged(f"{what} lies outside the file (byte {pos} of {self.size})")
        return struct.unpack_from("<" + fmt, self.data, pos)[0]

    def follow(self, pos: int, what: str) -> int:
        """The position a ``uoffset32`` stored at ``pos`` points to."""
        return pos + self.read("I", pos, what)

    def root(self, what: str) -> "Table":
        return Table(self, self.follow(0, f"{what} root"), what)


class Table:
    """One table: scalar fields, sub-tables, vectors and strings by their vtable slot (4, 6, 8...: the ids of
    the schema's ``.fbs``, ``4 + 2 * id``)."""

    def __init__(self, buf: Buffer, pos: int, what: str):
        self.buf, self.pos, self.what = buf, pos, what
        self.vtable = pos - buf.read("i", pos, what)
        self.vt_size = buf.read("H", self.vtable, f"{what} vtable")
        if self.vt_size < 4 or self.vt_size % 2 or self.vtable + self.vt_size > buf.size:
            raise buf.damaged(f"{what}: vtable of {self.vt_size} bytes at byte {self.vtable}")
        self.obj_size = buf.read("H", self.vtable + 2, f"{what} vtable")

    def _field(self, slot: int, size: int) -> int:
        """The position of the field in ``slot`` (0: absent)."""
        if slot + 2 > self.vt_size:
            return 0
        off = self.buf.read("H", self.vtable + slot, f"{self.what} vtable")
        if off == 0:
            return 0
        if off + size > self.obj_size or self.pos + off + size > self.buf.size:
            raise self.buf.damaged(f"{self.what}: field {slot} at offset {off} lies outside its table")
        return self.pos + off

    def scalar(self, slot: int, fmt: str, default: Any = 0) -> Any:
        p = self._field(slot, SCALARS[fmt])
        return default if p == 0 else self.buf.read(fmt, p, f"{self.what} field {slot}")

    def table(self, slot: int, what: str) -> "Table | None":
        p = self._field(slot, 4)
        return None if p == 0 else Table(self.buf, self.buf.follow(p, what), what)

    def vector(self, slot: int, elem_size: int, what: str) -> tuple[int, int]:
        """(position of the first element, count) of a vector field; (0, 0) when absent."""
        p = self._field(slot, 4)
        if p == 0:
            return 0, 0
        start = self.buf.follow(p, what)
        count = self.buf.read("I", start, what)
        if start + 4 + count * elem_size > self.buf.size:
            raise self.buf.damaged(f"{what}: {count} elements of {elem_size} bytes run past the end of the file")
        return start + 4, count

    def scalars(self, slot: int, fmt: str, what: str) -> list[Any]:
        start, count = self.vector(slot, SCALARS[fmt], what)
        return list(struct.unpack_from(f"<{count}{fmt}", self.buf.data, start)) if count else []

    def tables(self, slot: int, what: str) -> list["Table"]:
        start, count = self.vector(slot, 4, what)
        return [Table(self.buf, self.buf.follow(start + 4 * i, what), f"{what}[{i}]") for i in range(count)]

    def string(self, slot: int, what: str, limit: int = 1 << 16) -> str:
        start, count = self.vector(slot, 1, what)
        if count > limit:
            raise self.buf.damaged(f"{what}: a string of {count} bytes")
        return bytes(self.buf.data[start:start + count]).decode("utf-8", "replace")
