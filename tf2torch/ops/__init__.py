"""Operations inside Keras graphs, one converter per operation (see ``registry``), reached through front doors:
Keras 3 op nodes (``keras.ops.<OpClass>``) and tf_keras ``TFOpLambda`` / ``SlicingOpLambda`` nodes
(``tf.<symbol>``). Importing this package registers every module in it, so a new front door (raw TF graph ops)
is a new module here that calls ``registry.spelling``."""

import importlib
import pkgutil

from .registry import OPS, SPELLINGS, converter_for, is_op

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["OPS", "SPELLINGS", "converter_for", "is_op"]
