"""Operations inside Keras graphs, one converter per operation (see ``registry``), reached through front doors:
Keras 3 op nodes (``keras.ops.<OpClass>``) and tf_keras ``TFOpLambda`` / ``SlicingOpLambda`` nodes
(``tf.<symbol>``), raw TF graph ops (``tf.raw>Op``, ``tf_raw.py``) and TFLite builtins (``tflite>OP``,
``tflite.py``). Importing this package registers every module in it into the one registry
(``tf2torch/registry.py``, domains ``keras.ops``, ``tf``, ``tflite``); ``assemble``, ``support`` and ``api`` import it
before their first lookup."""

import importlib
import pkgutil

from .registry import OPS, SPELLINGS, converter_for, is_op

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["OPS", "SPELLINGS", "converter_for", "is_op"]
