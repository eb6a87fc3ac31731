"""Own the result: a converted module as standalone PyTorch source (``to_python``), a ``torch.export`` program
(``to_pt2``) or an ONNX model (``to_onnx``)."""

from .api import EMIT_KINDS, emit, emitted_files, to_onnx, to_pt2, to_python

__all__ = ["EMIT_KINDS", "emit", "emitted_files", "to_python", "to_pt2", "to_onnx"]
