"""Other libraries' chatter kept off tf2torch's stderr: a tool's own output should be its own (issue 20).

- Importing TensorFlow 2.21 prints, twice, from C++ and before any log setting applies ("All log messages before
  absl::InitializeLog() is called are written to STDERR", "oneDNN custom operations are on", "Could not find cuda
  drivers on your machine"), even with ``TF_CPP_MIN_LOG_LEVEL=3``. ``import_quietly`` sets the level (unless the
  user has) and runs the import with file descriptor 2 caught; C++ log lines below the level are dropped, every
  other line is written back.
- ``torch.export`` and the ONNX exporter log "torchvision is not installed. Skipping torchvision::nms" (torch's
  own logging, at WARNING), warn ``FutureWarning``s about their own internals and "No complete tensor found in the
  group!" (torch/export/pt2_archive/_package_weights.py, for weights that share storage), and "The tensor
  attributes self.<rnn>._flat_weights[0], ... were assigned during export" for every nn.LSTM / nn.GRU (torch
  refreshes those views of the registered weights itself). ``exporter_quiet`` holds them back while tf2torch
  exports: none of them is about the user's model.

The import-time catch holds file descriptor 2 for the whole process for the length of the import: what another
thread writes there meanwhile comes out afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
CPP_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")  # absl / glog line prefix
CPP_LEVELS = {"I": 0, "W": 1, "E": 2, "F": 3}
RNN_FLAT_WEIGHTS = r"The tensor attributes (self\.[\w.]+\._flat_weights\[\d+\](, )?)+ were assigned during export"
EXPORT_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "torch._dynamo", "onnxscript")


def import_quietly(name: str) -> Any:
    """``importlib.import_module(name)`` for a module that imports TensorFlow, without its import-time C++ log
    lines (those under ``TF_CPP_MIN_LOG_LEVEL``, which is set to 3 unless the user set it) and with absl's Python
    logger at ERROR. An ``ImportError`` passes through."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if sys.modules.get(name) is not None:  # None there means "not importable": import_module raises for it
        return sys.modules[name]
    with _stderr_filtered(_min_cpp_level()):
        module = importlib.import_module(name)
    logging.getLogger("absl").setLevel(max(logging.ERROR, logging.getLogger("absl").level))
    return module


def _min_cpp_level() -> int:
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


@contextlib.contextmanager
def _stderr_filtered(min_level: int) -> Iterator[None]:
    """Catch file descriptor 2 (C++ writes there directly) for the block, then write back every line but the C++
    log lines under ``min_level`` and absl's preamble."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = [line for line in sink.read().decode(errors="replace").splitlines(keepends=True)
                    if not _is_noise(line, min_level)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def _is_noise(line: str, min_level: int) -> bool:
    if line.rstrip("\n") == ABSL_PREAMBLE:
        return min_level > 0
    match = CPP_LOG_LINE.match(line)
    return match is not None and CPP_LEVELS[match.group(1)] < min_level


@contextlib.contextmanager
def exporter_quiet() -> Iterator[None]:
    """Hold back torch.export's and the ONNX exporter's chatter about their own internals (module docstring); an
    exception still propagates, and any other warning still shows."""
    loggers = [logging.getLogger(name) for name in EXPORT_LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="No complete tensor found in the group")
        warnings.filterwarnings("ignore", message=RNN_FLAT_WEIGHTS)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)
