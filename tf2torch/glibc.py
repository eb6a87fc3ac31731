"""glibc's malloc tuning (a leaf: imports nothing of tf2torch). Where there is no glibc (macOS, Windows, musl)
every call does nothing and says so (False). Callers: the command line's fixed mmap threshold
(``cli.return_freed_memory_to_the_os``), the assembler's ``malloc_trim`` between weights (``assemble.FreedHeap``)
and ``tf2torch.compile``'s kept memory (``compiled.retain_freed_memory``)."""

from __future__ import annotations

import ctypes
import functools
from typing import Any

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)


@functools.cache
def _libc() -> Any:
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None  # glibc, not another libc


def mallopt(parameter: int, value: int) -> bool:
    """``mallopt(parameter, value)``; True when glibc took it. ``value`` is a C ``int``: one past it raises
    (ctypes would otherwise wrap 2**31 to a negative threshold)."""
    if not -2**31 <= value < 2**31:
        raise ValueError(f"mallopt value {value} does not fit a C int")
    libc = _libc()
    return bool(libc is not None and libc.mallopt(parameter, value))


def malloc_trim() -> bool:
    """``malloc_trim(0)``: whole free pages anywhere in the heap back to the OS (glibc >= 2.8)."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
