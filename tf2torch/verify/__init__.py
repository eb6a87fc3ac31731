"""Layer-by-layer verification of a conversion against the original Keras model.

``tf2torch.verify(path, module)`` runs Keras and the converted module on the same inputs, compares every layer
call's output and returns a ``Report`` (``ok``, ``max_rel_error``, ``first_divergence``, ``layers``) that writes
itself as JSON, Markdown, HTML or a terminal table. TensorFlow/Keras are imported only when a verification runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .compare import LayerResult, Metrics
    from .report import SCHEMA, Report
    from .run import verify

__all__ = ["verify", "Report", "LayerResult", "Metrics", "SCHEMA"]
_LAZY = {"verify": ".run", "Report": ".report", "SCHEMA": ".report", "LayerResult": ".compare", "Metrics": ".compare",
         "report_kind": ".report",  # for the CLI, which checks --report paths before converting
         # the Keras reference side, for ``tf2torch.transfer``'s check (the door it uses; not in __all__)
         "load_keras_model": ".keras_side", "input_names": ".keras_side", "run_layers": ".keras_side"}


def __getattr__(name: str) -> Any:  # imported on first use, like the top-level package (torch loads late)
    if name not in _LAZY:
        raise AttributeError(f"module 'tf2torch.verify' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
