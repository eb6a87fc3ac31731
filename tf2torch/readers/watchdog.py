"""Read a model file's structure where it can be stopped.

A damaged HDF5 file can make the HDF5 library loop inside one C call (one duplicated byte in a Keras 3 nested
model's ``.h5`` does it while the ``model_config`` attribute is read): Python never regains control, so neither
Ctrl-C nor a timer in the same process can stop it. The structure is therefore read in a forked child process
that the parent waits for with a deadline, polling, so Ctrl-C works too; the child's result (a plain-data
``KerasGraph``, or the exception it raised) comes back pickled over a pipe. The deadline grows with the file:
``READ_TIMEOUT_FLOOR_S`` plus ``READ_TIMEOUT_S_PER_MB`` per MB (a 26 KB file that makes HDF5 loop was waited on
for 120 s before it was called damaged), or ``TF2TORCH_READ_TIMEOUT`` seconds when that is set.

No reader outlives the process that started it (issue 20: Ctrl-C during ``python -m tf2torch convert``'s torch
import left the forked reader looping at 100 % CPU for ever): every reader still running is killed at exit
(``atexit``; the command line runs the exit handlers before its quick ``os._exit``), a reader asks Linux to kill
it when its parent dies however it dies (``PR_SET_PDEATHSIG``), and it ignores SIGINT, so that a terminal's Ctrl-C,
sent to the whole process group, stops the parent, which then kills the reader, instead of killing the reader
first and making a crash of it. Where ``fork`` does not exist, or with ``TF2TORCH_NO_WATCHDOG=1`` (for a host process
whose threads make forking unsafe), the read runs in-process.

A forked child inherits everything of a busy host (TensorFlow's and torch's threads, half-held locks, garbage
whose finalizers call into them): once in a full test run a forked reader died of a segmentation fault on a
sound file. The child therefore turns off the garbage collector and faulthandler first thing, and a child that
dies without a result is not yet taken as proof of a damaged file: the read is run once more in a fresh
interpreter (``python -c``, the host's ``sys.path``, nothing inherited), under a deadline of the same length. Only
when that one dies too is the file called damaged. The retry needs ``read`` to pickle: a module-level function or a
``functools.partial`` of one.
"""

from __future__ import annotations

import atexit
import ctypes
import faulthandler
import gc
import math
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

READ_TIMEOUT_FLOOR_S = 10.0  # a small file's structure reads in well under a second, even on a busy machine
READ_TIMEOUT_S_PER_MB = 1.0  # a .keras file's weights are unpacked by the reader: generous at 1 MB/s
T = TypeVar("T")
_SIGNALLED: list[int] = []  # signals that asked this process to stop (``interrupted``)
_READERS: set[int] = set()  # forked readers not yet waited for
_FRESH: set[subprocess.Popen[bytes]] = set()  # second-opinion interpreters running


def read_timeout(path: str | os.PathLike[str] | None = None) -> float:
    """Seconds a read of ``path``'s structure may take: ``TF2TORCH_READ_TIMEOUT`` when set (a positive number),
    else the floor plus so much per MB of the file (the floor alone for a directory or a path that is no file)."""
    value = os.environ.get("TF2TORCH_READ_TIMEOUT")
    try:
        seconds = float(value) if value else math.nan
    except ValueError:
        seconds = math.nan
    if seconds > 0 and math.isfinite(seconds):
        return seconds
    try:
        size = os.path.getsize(path) if path is not None and os.path.isfile(path) else 0
    except (OSError, TypeError, ValueError):
        size = 0
    return READ_TIMEOUT_FLOOR_S + READ_TIMEOUT_S_PER_MB * size / 2**20


def interrupted(number: int) -> None:
    """Remember that signal ``number`` asked this process to stop (the command line's handler calls this before it
    raises): a library's bare ``except:`` met while torch is imported can swallow the ``KeyboardInterrupt``, and
    the wait for a reader then raises it again instead of waiting out the deadline."""
    _SIGNALLED.append(number)


def _raise_if_interrupted() -> None:
    if _SIGNALLED:
        number = _SIGNALLED[0]
        raise KeyboardInterrupt if number == signal.SIGINT else SystemExit(128 + number)


def stop_readers() -> None:
    """Kill every reader still running (registered with ``atexit``): none may outlive this process."""
    for pid in list(_READERS):
        _kill(pid)
    for proc in list(_FRESH):
        _stop(proc)


atexit.register(stop_readers)


def _die_with(parent: int) -> None:
    """In a reader: ignore SIGINT (the parent decides; a terminal sends Ctrl-C to the whole process group), let
    SIGTERM and SIGHUP kill (a Python handler inherited from the parent never runs while HDF5 loops), and die when
    ``parent`` dies (Linux ``PR_SET_PDEATHSIG``; elsewhere the parent's exit handler kills it)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
    except ValueError:  # not the main thread of this interpreter: the parent's handlers still apply
        pass
    if _PRCTL is not None:
        _PRCTL(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request was made
        os._exit(1)


def _find_prctl() -> Any:
    """libc's ``prctl``, looked up before any fork (loading a library in a forked child can deadlock)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()


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
            data, status = _collect(self.rfd, self.pid, self.timeout, self.what)
        finally:
            os.close(self.rfd)
        try:
            kind, value = pickle.loads(data)  # our own child's bytes, not the file's
        except Exception:  # noqa: BLE001  (the child died without a result: killed for memory, a crash in HDF5)
            assert self.read is not None
            kind, value = _in_fresh_interpreter(self.read, self.what, self.timeout, _death(status))
        if kind == "raise":
            raise value
        return value


def start(read: Callable[[], Any], what: str, timeout: float | None = None) -> Pending:
    """Start ``read()`` in a child process and return at once: the caller may work meanwhile (the command line
    imports torch while the structure is read). In-process (at ``result()``) where ``fork`` does not exist or
    with ``TF2TORCH_NO_WATCHDOG=1``. ``what`` is the file read: named in errors, its size sets the deadline."""
    timeout = read_timeout(what) if timeout is None else timeout
    if not hasattr(os, "fork") or os.environ.get("TF2TORCH_NO_WATCHDOG"):
        return Pending(what, timeout, read=read)
    rfd, wfd = os.pipe()
    parent = os.getpid()
    pid, mask = _fork()
    if pid == 0:  # the child: read, send the result, leave without running any cleanup of the parent's
        os.close(rfd)
        code = 0
        try:
            _die_with(parent)
            _unblock(mask)
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


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _fork() -> tuple[int, Any]:
    """``os.fork()`` with the stop signals held back until the parent has recorded the reader (a Ctrl-C between
    the two would leave a reader no exit handler knows of) and the child has set its own handlers. Returns the pid
    and the signal mask to restore (the parent's restored already)."""
    sys.stdout.flush()
    sys.stderr.flush()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS) if hasattr(signal, "pthread_sigmask") else None
    try:
        with warnings.catch_warnings():  # Python 3.12 warns on fork() in a threaded process; the child reads only
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid:
            _READERS.add(pid)
    except BaseException:
        _unblock(mask)
        raise
    if pid:
        _unblock(mask)
    return pid, mask


def _unblock(mask: Any) -> None:
    if mask is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _collect(rfd: int, pid: int, timeout: float, what: str) -> tuple[bytes, int]:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            _raise_if_interrupted()
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
    _READERS.discard(pid)
    return b"".join(chunks), status


def _too_slow(what: str, timeout: float) -> ModelFileError:
    seconds = f"{timeout:.0f}" if timeout >= 10 else f"{timeout:g}"
    return ModelFileError(f"{what}: reading the file's structure did not finish within {seconds} s (HDF5 loops on "
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
         "from tf2torch.readers.watchdog import serve; serve(sys.stdin.buffer, out, int(sys.argv[1]))")


def serve(source: Any, out: Any, parent: int | None = None) -> None:
    """The fresh interpreter's side of ``_in_fresh_interpreter``: unpickle ``read`` (our own bytes, sent by the
    parent), run it, send back ``("ok", result)`` or ``("raise", exception)``."""
    if parent is not None:
        _die_with(parent)
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


def _in_fresh_interpreter(read: Callable[[], Any], what: str, timeout: float, first_death: str) -> tuple[str, Any]:
    """Run ``read`` once more in a new Python process (nothing inherited from the host but ``sys.path``), under a
    deadline of its own (a fresh interpreter first imports h5py); the forked reader died ``first_death``. Either
    of the two dying means nothing until both have."""
    crashed = ModelFileError(f"{what}: reading the file crashed the reader ({first_death}); the file is damaged")
    try:
        request = pickle.dumps(read, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001  (a closure: no second opinion to be had)
        raise crashed from None
    if not sys.executable:
        raise crashed
    _raise_if_interrupted()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p or os.getcwd() for p in sys.path)}
    try:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, str(os.getpid())], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    except OSError:
        raise crashed from None
    _FRESH.add(proc)
    try:
        data, _ = proc.communicate(request, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise _too_slow(what, timeout) from None
    finally:
        _stop(proc)
    try:
        return pickle.loads(data)  # our own child's bytes, not the file's
    except Exception:  # noqa: BLE001
        code = proc.returncode
        second = _killed_by(-code) if code < 0 else f"exit status {code}"
        raise ModelFileError(f"{what}: reading the file crashed the reader twice ({first_death}; in a fresh "
                             f"process, {second}); the file is damaged") from None


def _kill(pid: int) -> None:
    _READERS.discard(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    _FRESH.discard(proc)
    if proc.poll() is None:
        proc.kill()
    proc.wait()
