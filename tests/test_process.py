"""The tool as a process (issue 20): Ctrl-C and signals leave no reader behind, the read deadline scales with the
file, outputs honour the umask, and stderr holds only tf2torch's own lines.

Each case runs the real command line (``python -m tf2torch`` or the ``tf2torch`` console script) in a subprocess:
what is tested is what a user's terminal sees.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tf2torch.readers import watchdog

ROOT = Path(__file__).parent.parent
DATA = Path(__file__).parent / "data"
LOOP_H5 = DATA / "hdf5_attribute_loop.h5"  # reading its model_config makes HDF5 loop, ignoring SIGINT
SEED_H5 = DATA / "nested_keras3.h5"
CONSOLE_SCRIPT = Path(sys.executable).with_name("tf2torch")
WAIT_S = 240  # the longest any bounded wait here may take on a busy machine; normally seconds
OWN_LINE_PREFIXES = ("error: ", "notice: ", "converted ", "report written", "OK: ", "FAIL")


def env(**extra: str) -> dict[str, str]:
    """The environment of a user who set nothing: no TF log level, no read deadline; this checkout first."""
    base = {k: v for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "TF2TORCH_READ_TIMEOUT")}
    return {**base, "PYTHONPATH": os.pathsep.join([str(ROOT), base.get("PYTHONPATH", "")]), **extra}


def command(entry: str, *args: str | Path) -> list[str]:
    head = [sys.executable, "-m", "tf2torch"] if entry == "python -m" else [str(CONSOLE_SCRIPT)]
    return head + [str(a) for a in args]


def reader_of(pid: int) -> int | None:
    """The first child process of ``pid`` (the forked reader), or None."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    text = children.read_text().split() if children.exists() else []
    return int(text[0]) if text else None


def is_running(pid: int, cmdline: bytes) -> bool:
    """``pid`` is alive and still the same program (not a zombie, not a reused pid)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        return "zombie" not in status and Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline
    except OSError:
        return False


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


needs_proc = pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                                reason="finds the reader process through /proc/<pid>/task/<pid>/children")


# -- Ctrl-C and signals: no reader is left behind ------------------------------------------------------------
# (entry point, how the signal is sent, signal, seconds after the reader appears): at 0 s the parent is still
# importing torch (the reader was forked first); at 3 s it is usually waiting for the reader.
SIGNAL_CASES = [(entry, to, sig, delay)
                for entry in ("python -m", "console script")
                for to, sig, delay in [("parent", signal.SIGINT, 0.0), ("group", signal.SIGINT, 0.0),
                                       ("parent", signal.SIGTERM, 0.0), ("parent", signal.SIGINT, 3.0),
                                       ("group", signal.SIGTERM, 3.0), ("parent", signal.SIGKILL, 0.0)]]


@needs_proc
@pytest.mark.parametrize(("entry", "to", "sig", "delay"), SIGNAL_CASES,
                         ids=[f"{e}-{t}-{s.name}-{d:g}s" for e, t, s, d in SIGNAL_CASES])
def test_a_signal_leaves_no_reader_behind(tmp_path, entry, to, sig, delay):
    """Issue 20: Ctrl-C on ``python -m tf2torch convert`` of a file that makes HDF5 loop ended the command and
    left the forked reader looping at 100 % CPU for ever. SIGKILL of the parent tests the reader's own
    ``PR_SET_PDEATHSIG``: no exit handler runs then."""
    if entry == "console script" and not CONSOLE_SCRIPT.exists():
        pytest.skip("the tf2torch console script is not installed next to this python")
    proc = subprocess.Popen(command(entry, "convert", LOOP_H5, tmp_path / "out.pt"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env(TF2TORCH_READ_TIMEOUT="600"), cwd=tmp_path,
                            start_new_session=True)
    reader, cmdline = None, b""
    try:
        assert wait_until(lambda: reader_of(proc.pid) is not None or proc.poll() is not None, WAIT_S)
        reader = reader_of(proc.pid)
        assert reader is not None, f"the reader never started: {proc.communicate()}"
        cmdline = Path(f"/proc/{reader}/cmdline").read_bytes()
        time.sleep(delay)
        (os.killpg if to == "group" else os.kill)(proc.pid, sig)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within 60 s: tf2torch {'alive' if proc.poll() is None else 'exited'}, reader "
                        f"{'alive' if is_running(reader, cmdline) else 'gone'}")
        assert proc.returncode not in (0, 3), (proc.returncode, err)
        assert b"Traceback" not in err, err.decode()
        assert wait_until(lambda: not is_running(reader, cmdline), 10), "the reader was left running"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if reader is not None and is_running(reader, cmdline):
            os.kill(reader, signal.SIGKILL)


# -- the read deadline scales with the file ------------------------------------------------------------------
@pytest.mark.parametrize(("size", "override", "expected"), [
    (26 * 1024, None, watchdog.READ_TIMEOUT_FLOOR_S + watchdog.READ_TIMEOUT_S_PER_MB * 26 / 1024),
    (100 << 20, None, watchdog.READ_TIMEOUT_FLOOR_S + 100 * watchdog.READ_TIMEOUT_S_PER_MB),
    (4 << 30, None, watchdog.READ_TIMEOUT_FLOOR_S + 4096 * watchdog.READ_TIMEOUT_S_PER_MB),
    ("directory", None, watchdog.READ_TIMEOUT_FLOOR_S),
    ("missing", None, watchdog.READ_TIMEOUT_FLOOR_S),
    (100 << 20, "7.5", 7.5),  # the override wins over the scaling
    (26 * 1024, "nonsense", watchdog.READ_TIMEOUT_FLOOR_S + watchdog.READ_TIMEOUT_S_PER_MB * 26 / 1024),
    (26 * 1024, "-1", watchdog.READ_TIMEOUT_FLOOR_S + watchdog.READ_TIMEOUT_S_PER_MB * 26 / 1024),
])
def test_the_read_deadline_scales_with_the_file(tmp_path, monkeypatch, size, override, expected):
    path = tmp_path / "model.h5"
    if size == "directory":
        path.mkdir()
    elif size != "missing":
        with open(path, "wb") as f:
            f.truncate(size)  # sparse: the size is what counts
    if override is None:
        monkeypatch.delenv("TF2TORCH_READ_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("TF2TORCH_READ_TIMEOUT", override)
    assert watchdog.read_timeout(path) == pytest.approx(expected)


def test_the_floor_is_seconds_and_a_large_file_gets_minutes():
    """What the scaling is for: a small hostile file is called damaged in seconds, a large real model (VGG16's
    .h5 is 528 MB) still has minutes."""
    assert 2 <= watchdog.READ_TIMEOUT_FLOOR_S <= 15
    assert watchdog.READ_TIMEOUT_FLOOR_S + 528 * watchdog.READ_TIMEOUT_S_PER_MB >= 300


def test_a_small_looping_file_is_called_damaged_in_seconds(tmp_path):
    """Issue 20: the 26 KB file that makes HDF5 loop was waited on for the whole 120 s."""
    t = time.monotonic()
    proc = subprocess.run(command("python -m", "inspect", LOOP_H5), capture_output=True, text=True,
                          env=env(), cwd=tmp_path, timeout=WAIT_S)
    elapsed = time.monotonic() - t
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    floor = f"{watchdog.READ_TIMEOUT_FLOOR_S:.0f}"
    assert proc.stderr.startswith("error: ") and f"did not finish within {floor} s" in proc.stderr, proc.stderr
    assert elapsed < 60, elapsed  # the floor plus start-up on a busy machine; 120 s and more before


# -- files honour the umask ----------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002], ids=lambda m: f"umask{m:03o}")
@pytest.mark.parametrize("emit", [None, "python"], ids=["pt", "emit-python"])
def test_outputs_honour_the_umask(tmp_path, umask, emit):
    """Issue 20: outputs were written 0600 (``mkstemp``; safetensors too) and directories 0700 (``mkdtemp``)
    whatever the umask. Umask 002 tells honouring it apart from a fixed 0644."""
    out = tmp_path / ("out" if emit else "out.pt")
    args = ["convert", SEED_H5, out] + (["--emit", emit] if emit else [])
    proc = subprocess.run(command("python -m", *args), capture_output=True, text=True, env=env(), cwd=tmp_path,
                          timeout=WAIT_S, umask=umask)
    assert proc.returncode == 0, proc.stderr
    files = [out] if not emit else sorted(out.iterdir())
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, (path.name, oct(path.stat().st_mode))
    if emit:
        assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask, oct(out.stat().st_mode)


# -- stderr holds only tf2torch's own lines ------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    from tf_graph_fixtures import tf_module_saved_model

    directory = tmp_path_factory.mktemp("sm") / "model"
    tf_module_saved_model(directory)
    return directory


@pytest.fixture(scope="module")
def recurrent_h5(tmp_path_factory) -> Path:
    """LSTM, bidirectional GRU: torch.export warns about nn.LSTM's / nn.GRU's ``_flat_weights`` for these."""
    from harness import keras_module

    k = keras_module("keras3")
    inputs = k.Input((5, 4))
    x = k.layers.LSTM(3, return_sequences=True)(inputs)
    model = k.Model(inputs, k.layers.Bidirectional(k.layers.GRU(2))(x))
    path = tmp_path_factory.mktemp("rnn") / "rnn.h5"
    model.save(path)
    return path


NOISE_CASES = {
    "verify .h5 (imports Keras, TF)": ["verify", SEED_H5, "-q"],
    "verify with a report": ["verify", SEED_H5, "-q", "--report", "{tmp}/report.json"],
    "convert SavedModel (imports TF)": ["convert", "{sm}", "{tmp}/sm.pt"],
    "inspect SavedModel": ["inspect", "{sm}"],
    "emit onnx and pt2": ["convert", SEED_H5, "{tmp}/emitted", "--emit", "onnx", "--emit", "pt2"],
    "emit a recurrent model": ["convert", "{rnn}", "{tmp}/emitted", "--emit", "onnx", "--emit", "pt2"],
}


# TF_CPP_MIN_LOG_LEVEL=3 again for the commands that import TensorFlow: absl's lines before its logging starts
# ignore the level; the emit commands' noise is torch's, whatever TF's level.
LEVEL_3_CASES = ("verify with a report", "convert SavedModel (imports TF)", "inspect SavedModel")


@pytest.mark.parametrize("case, level", [(case, None) for case in NOISE_CASES]
                         + [(case, "3") for case in LEVEL_3_CASES])
def test_stderr_holds_only_tf2torchs_lines(tmp_path, saved_model, recurrent_h5, case, level):
    """Issue 20: every command that loads TensorFlow printed absl / oneDNN / "Could not find cuda drivers" lines,
    twice, even with TF_CPP_MIN_LOG_LEVEL=3; ``--emit`` printed torchvision and FutureWarning lines and "No
    complete tensor found in the group!"."""
    args = [str(a).format(tmp=tmp_path, sm=saved_model, rnn=recurrent_h5) for a in NOISE_CASES[case]]
    extra = {} if level is None else {"TF_CPP_MIN_LOG_LEVEL": level}
    proc = subprocess.run(command("python -m", *args), capture_output=True, text=True, env=env(**extra),
                          cwd=tmp_path, timeout=WAIT_S, umask=0o002)
    assert proc.returncode == 0, proc.stderr
    foreign = [line for line in proc.stderr.splitlines() if not line.startswith(OWN_LINE_PREFIXES)]
    assert not foreign, "\n".join(foreign)
    if "report" in case:  # verify's report honours the umask too
        assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o664


def test_a_users_own_tf_log_level_is_honoured(tmp_path, saved_model):
    """The filter drops only what the level asks to drop: with TF_CPP_MIN_LOG_LEVEL=0 TensorFlow's info lines
    are the user's to see (and so this test can tell the filter apart from a stderr thrown away)."""
    proc = subprocess.run(command("python -m", "inspect", saved_model), capture_output=True, text=True,
                          env=env(TF_CPP_MIN_LOG_LEVEL="0"), cwd=tmp_path, timeout=WAIT_S)
    assert proc.returncode == 0, proc.stderr
    assert "cuda" in proc.stderr.lower() or "oneDNN" in proc.stderr, proc.stderr
