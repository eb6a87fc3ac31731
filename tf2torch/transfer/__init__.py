"""Weights of a TensorFlow/Keras file into a PyTorch module the user wrote: matched, transformed, reported.

``tf2torch.transfer(source, model, example_inputs=None, mapping=None, strict=True)`` loads in place and returns a
``TransferReport``. Torch is imported only when a transfer runs, so ``import tf2torch`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .api import TransferError, transfer
    from .report import TransferReport

__all__ = ["transfer", "TransferReport", "TransferError"]
_LAZY = {"transfer": ".api", "TransferError": ".api", "TransferReport": ".report",
         "transfer_command": ".command"}  # the CLI's ``tf2torch transfer`` (not in __all__)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tf2torch.transfer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
