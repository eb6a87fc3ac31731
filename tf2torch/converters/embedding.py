"""Embedding and Masking: the layers that create masks.

Embedding's weight ``embeddings`` (input_dim, output_dim) is ``nn.Embedding.weight`` as is; ``mask_zero`` does
not change the lookup, it creates the mask ``ids != 0`` that RNNs, attention and pooling consume ([K3]
``layers/core/embedding.py``). Masking zeroes the steps whose features all equal ``mask_value`` and masks them.
"""

from __future__ import annotations

from ..layout import KERAS
from ..nn.sequence import KerasEmbedding, Masking, MaskingMask, NonZeroMask
from .registry import Converted, LayerSpec, as_parameter, converter


@converter("Embedding", defaults={"embeddings_initializer": None, "sparse": False, "lora_rank": None,
                                   "lora_alpha": None, "quantization_config": None},
           regularizers={"embeddings_regularizer": ("weight",)}, weight_kind="embedding",
           vocabulary="input_dim", arithmetic=("input_dim", "output_dim", "mask_zero"))
def convert_embedding(spec: LayerSpec) -> Converted:
    (table,) = spec.weights(expected=1)
    spec.check_shapes([table], [(int(spec.config["input_dim"]), int(spec.config["output_dim"]))], ["embeddings"])
    module = KerasEmbedding(table.shape[0], table.shape[1])
    module.weight = as_parameter(table)
    mask = NonZeroMask() if spec.config.get("mask_zero") else "none"
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS, output_mask=mask)


@converter("Masking")
def convert_masking(spec: LayerSpec) -> Converted:
    value = float(spec.config.get("mask_value", 0.0))
    return Converted(Masking(value), input_layouts=KERAS, output_layouts=KERAS, output_mask=MaskingMask(value))
