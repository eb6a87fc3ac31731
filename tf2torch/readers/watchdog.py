"""Read a model file's structure where it can be stopped.

A damaged HDF5 file can make the HDF5 library loop inside one C call (one duplicated byte in a Keras 3 nested
model's ``.h5`` does it while the ``model_config`` attribute is read): Python never regains control, so neither
Ctrl-C nor a timer in the same process can stop it. The structure is therefore read in a forked child process
that the parent waits for with a deadline (``TF2TORCH_READ_TIMEOUT`` seconds, default ``READ_TIMEOUT_S``),
polling, so Ctrl-C works too; the child's result (a plain-data ``KerasGraph``, or the exception it raised) comes
back pickled over a pipe. Where ``fork`` does not exist, or with ``TF2TORCH_NO_WATCHDOG=1`` (for a host process
whose threads make forking unsafe), the read runs in-process.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ModelFileError

READ_TIMEOUT_S = 120.0
T = TypeVar("T")


def read_timeout() -> float:
    value = os.environ.get("TF2TORCH_READ_TIMEOUT")
    try:
        return float(value) if value else READ_TIMEOUT_S
    except ValueError:
        return READ_TIMEOUT_S


def guarded(read: Callable[[], T], what: str, timeout: float | None = None) -> T:
    """``read()``, run in a child process that is killed when it outlives ``timeout`` or on Ctrl-C."""
    return start(read, what, timeout).result()


class Pending:
    """A read started in a child process (``start``); ``result()`` waits for it under the deadline."""

    def __init__(self, what: str, timeout: float, pid: int | None = None, rfd: int | None = None,
                 read: Callable[[], Any] | None = None):
        self.what, self.timeout, self.pid, self.rfd, self.read = what, timeout, pid, rfd, read

    def result(self) -> Any:
        if self.pid is None:
            assert self.read is not None
            return self.read()
        assert self.rfd is not None
        try:
            data = _collect(self.rfd, self.pid, self.timeout, self.what)
        finally:
            os.close(self.rfd)
        try:
            kind, value = pickle.loads(data)  # our own child's bytes, not the file's
        except Exception:  # noqa: BLE001  (the child died without a result: killed for memory, a crash in HDF5)
            raise ModelFileError(f"{self.what}: reading the file crashed the reader; the file is damaged") from None
        if kind == "raise":
            raise value
        return value


def start(read: Callable[[], Any], what: str, timeout: float | None = None) -> Pending:
    """Start ``read()`` in a child process and return at once: the caller may work meanwhile (the command line
    imports torch while the structure is read). In-process (at ``result()``) where ``fork`` does not exist or
    with ``TF2TORCH_NO_WATCHDOG=1``."""
    timeout = read_timeout() if timeout is None else timeout
    if not hasattr(os, "fork") or os.environ.get("TF2TORCH_NO_WATCHDOG"):
        return Pending(what, timeout, read=read)
    rfd, wfd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():  # Python 3.12 warns on fork() in a threaded process; the child runs h5py only
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: read, send the result, leave without running any cleanup of the parent's
        os.close(rfd)
        code = 0
        try:
            try:
                result = ("ok", read())
            except BaseException as exc:  # noqa: BLE001  (sent to the parent, which re-raises it)
                result = ("raise", exc)
            try:
                data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001
                data = pickle.dumps(("raise", RuntimeError(f"{type(result[1]).__name__}: {exc}")))
            with os.fdopen(wfd, "wb") as out:
                out.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    return Pending(what, timeout, pid=pid, rfd=rfd)


def _collect(rfd: int, pid: int, timeout: float, what: str) -> bytes:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ModelFileError(f"{what}: reading the file's structure did not finish within {timeout:g} s "
                                     "(HDF5 loops on damaged files); the file is damaged. If it is a very large "
                                     "model, raise TF2TORCH_READ_TIMEOUT")
            ready, _, _ = select.select([rfd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(rfd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    except BaseException:
        _kill(pid)
        raise
    os.waitpid(pid, 0)
    return b"".join(chunks)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
