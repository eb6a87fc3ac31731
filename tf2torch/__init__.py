"""tf2torch: convert TensorFlow/Keras models into PyTorch modules that match them to float32 round-off.

The public names are imported on first use: ``import tf2torch`` stays light, so the command line can start
reading a model file while torch is still being imported."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import ConversionError, ConversionNotice, ModelFileError, Tf2TorchError, UnsupportedLayerError
from .version import __version__  # noqa: F401  (in a leaf module: emit and verify record it without importing tf2torch)

if TYPE_CHECKING:
    from .api import convert, load, register, save
    from .compiled import compile
    from .contract import Converted, LayerSpec
    from .emit import to_onnx, to_pt2, to_python
    from .training import regularization_loss
    from .transfer import TransferError, TransferReport, transfer
    from .verify import verify

__all__ = ["convert", "compile", "verify", "transfer", "TransferReport", "TransferError",
           "save", "load", "register", "regularization_loss", "to_python", "to_pt2", "to_onnx",
           "LayerSpec", "Converted", "Tf2TorchError", "ModelFileError", "UnsupportedLayerError", "ConversionError",
           "ConversionNotice"]
_LAZY = {"convert": (".api", "convert"), "compile": (".compiled", "compile"), "load": (".api", "load"),
         "save": (".api", "save"),
         "Converted": (".contract", "Converted"), "LayerSpec": (".contract", "LayerSpec"),
         "register": (".api", "register"), "to_onnx": (".emit", "to_onnx"),
         "to_pt2": (".emit", "to_pt2"), "to_python": (".emit", "to_python"),
         "regularization_loss": (".training", "regularization_loss"), "verify": (".verify", "verify"),
         "transfer": (".transfer", "transfer"), "TransferReport": (".transfer", "TransferReport"),
         "TransferError": (".transfer", "TransferError")}


# ``tf2torch.verify`` is the function: the subpackage of that name is loaded now (it is light), so that importing
# it later cannot rebind the attribute to the subpackage; the name then resolves through __getattr__.
from . import transfer as _transfer_package  # noqa: E402, F401  (the same for ``tf2torch.transfer``)
from . import verify as _verify_package  # noqa: E402, F401

del verify  # noqa: F821  (bound by the import system to the subpackage)
del transfer  # noqa: F821


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'tf2torch' has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(module, __name__), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
