"""Read a model file's structure where it can be stopped.

A damaged HDF5 file can make the HDF5 library loop inside one C call (one duplicated byte in a Keras 3 nested
model's ``.h5`` does it while the ``model_config`` attribute is read): Python never regains control, so neither
Ctrl-C nor a timer in the same process can stop it. The structure is therefore read in a forked child process
that the parent waits for with a deadline (``TF2TORCH_READ_TIMEOUT`` seconds, default ``READ_TIMEOUT_S``),
polling, so Ctrl-C works too; the child's result (a plain-data ``KerasGraph``, or the exception it raised) comes
back pickled over a pipe. Where ``fork`` does not exist, or with ``TF2TORCH_NO_WATCHDOG=1`` (for a host process
whose threads make forking unsafe), the read runs in-process.

A forked child inherits everything of a busy host (TensorFlow's and torch's threads, half-held locks, garbage
whose finalizers call into them): once in a full test run a forked reader died of a segmentation fault on a
sound file. The child therefore turns off the garbage collector and faulthandler first thing, and a child that
dies without a result is not yet taken as proof of a damaged file: the read is run once more in a fresh
interpreter (``python -c``, the host's ``sys.path``, nothing inherited), under the same deadline. Only when that
one dies too is the file called damaged. The retry needs ``read`` to pickle: a module-level function or a
``functools.partial`` of one.
"""

from __future__ import annotations

import faulthandler
import gc
import os
import pickle
import select
import signal
import subprocess
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
        started = time.monotonic()
        try:
            data, status = _collect(self.rfd, self.pid, self.timeout, self.what)
        finally:
            os.close(self.rfd)
        try:
            kind, value = pickle.loads(data)  # our own child's bytes, not the file's
        except Exception:  # noqa: BLE001  (the child died without a result: killed for memory, a crash in HDF5)
            assert self.read is not None
            kind, value = _in_fresh_interpreter(self.read, self.what, self.timeout,
                                                self.timeout - (time.monotonic() - started), _death(status))
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
            gc.disable()  # the parent's garbage may hold objects of libraries whose threads did not survive fork
            faulthandler.disable()  # a crash is reported by the parent in one line, not as a stack dump
            data = _outcome(read)
            with os.fdopen(wfd, "wb") as out:
                out.write(data)
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    return Pending(what, timeout, pid=pid, rfd=rfd, read=read)


def _collect(rfd: int, pid: int, timeout: float, what: str) -> tuple[bytes, int]:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _too_slow(what, timeout)
            ready, _, _ = select.select([rfd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(rfd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
    except BaseException:
        _kill(pid)
        raise
    _, status = os.waitpid(pid, 0)
    return b"".join(chunks), status


def _too_slow(what: str, timeout: float) -> ModelFileError:
    return ModelFileError(f"{what}: reading the file's structure did not finish within {timeout:g} s (HDF5 loops on "
                          "damaged files); the file is damaged. If it is a very large model, raise "
                          "TF2TORCH_READ_TIMEOUT")


def _death(status: int) -> str:
    """How a forked child ended, in words, from ``waitpid``'s status."""
    if os.WIFSIGNALED(status):
        return _killed_by(os.WTERMSIG(status))
    return f"exit status {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"status {status}"


def _killed_by(number: int) -> str:
    try:
        return f"killed by {signal.Signals(number).name}"
    except ValueError:
        return f"killed by signal {number}"


SERVE = ("import os, sys; out = os.fdopen(os.dup(1), 'wb'); os.dup2(2, 1); "
         "from tf2torch.readers.watchdog import serve; serve(sys.stdin.buffer, out)")


def serve(source: Any, out: Any) -> None:
    """The fresh interpreter's side of ``_in_fresh_interpreter``: unpickle ``read`` (our own bytes, sent by the
    parent), run it, send back ``("ok", result)`` or ``("raise", exception)``."""
    out.write(_outcome(pickle.load(source)))
    out.flush()


def _outcome(read: Callable[[], Any]) -> bytes:
    """``read()``'s result or exception, pickled for the parent (which re-raises an exception)."""
    try:
        result = ("ok", read())
    except BaseException as exc:  # noqa: BLE001  (sent to the parent, which re-raises it)
        result = ("raise", exc)
    try:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001
        return pickle.dumps(("raise", RuntimeError(f"{type(result[1]).__name__}: {exc}")))


def _in_fresh_interpreter(read: Callable[[], Any], what: str, timeout: float, left: float,
                          first_death: str) -> tuple[str, Any]:
    """Run ``read`` once more in a new Python process (nothing inherited from the host but ``sys.path``); the
    forked reader died ``first_death``. Either of the two dying means nothing until both have."""
    crashed = ModelFileError(f"{what}: reading the file crashed the reader ({first_death}); the file is damaged")
    try:
        request = pickle.dumps(read, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001  (a closure: no second opinion to be had)
        raise crashed from None
    if not sys.executable or left <= 0:
        raise crashed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
    try:
        proc = subprocess.Popen([sys.executable, "-c", SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=env)
    except OSError:
        raise crashed from None
    try:
        data, _ = proc.communicate(request, timeout=left)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise _too_slow(what, timeout) from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    try:
        return pickle.loads(data)  # our own child's bytes, not the file's
    except Exception:  # noqa: BLE001
        code = proc.returncode
        second = _killed_by(-code) if code < 0 else f"exit status {code}"
        raise ModelFileError(f"{what}: reading the file crashed the reader twice ({first_death}; in a fresh "
                             f"process, {second}); the file is damaged") from None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
