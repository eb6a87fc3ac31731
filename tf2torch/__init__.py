"""tf2torch: convert TensorFlow/Keras models into PyTorch modules that match them to float32 round-off."""

from .api import convert, load, save
from .converters.registry import Converted, LayerSpec
from .converters.registry import converter as register
from .emit import to_onnx, to_pt2, to_python
from .errors import ConversionError, ConversionNotice, ModelFileError, Tf2TorchError, UnsupportedLayerError
from .training import regularization_loss
from .verify import verify

__version__ = "0.1.0"
__all__ = ["convert", "verify", "save", "load", "register", "regularization_loss", "to_python", "to_pt2", "to_onnx",
           "LayerSpec", "Converted", "Tf2TorchError", "ModelFileError", "UnsupportedLayerError", "ConversionError",
           "ConversionNotice"]
