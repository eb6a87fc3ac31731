"""Keras's random image augmentation layers at inference.

Keras applies them only in training: at inference each returns its input (cast to the layer's compute dtype),
except tf_keras's ``RandomCrop``, which resizes to its size as ``smart_resize`` does (crop to the target aspect
ratio, then bilinear). The random transformations themselves (flips, rotations, zooms, colour jitter...) are
not reproduced: in train mode the module refuses, as the other layers whose training Keras does differently.
"""

from __future__ import annotations

import torch
from torch import nn


class AugmentationAtInference(nn.Module):
    """What a Keras augmentation layer computes at inference: ``inference`` (None: the input itself), after
    casting an integer input to ``dtype``. Train mode raises: the Keras layer would augment."""

    def __init__(self, layer_class: str, dtype: torch.dtype = torch.float32, inference: nn.Module | None = None):
        super().__init__()
        self.layer_class = layer_class
        self.dtype = dtype
        self.inference = inference

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise RuntimeError(f"train mode is not supported: Keras's {self.layer_class} augments images at training "
                               "and tf2torch converts its inference behaviour only; remove the layer for fine-tuning "
                               "and augment the data instead (e.g. torchvision.transforms.v2)")
        if not x.is_floating_point():
            x = x.to(self.dtype)
        return x if self.inference is None else self.inference(x)

    def extra_repr(self) -> str:
        return f"{self.layer_class!r}"
