"""Preprocessing layers inside models: Rescaling, Normalization, Resizing, CenterCrop.

Traps ([K3] ``layers/preprocessing/``, [TFK] ``layers/preprocessing/``):
- Rescaling/Normalization constants broadcast against Keras's layout (a per-channel list acts on the LAST axis), so
  on a channels-first tensor they are rearranged once here, e.g. to (C, 1, 1).
- Normalization stores ``mean``, ``variance``, ``count`` when adapted (shapes = the kept axes) and no weights when
  given ``mean=``/``variance=`` in the config; the divisor is ``max(sqrt(variance), 1e-7)``.
- Resizing is ``tf.image.resize``: ``nearest`` is torch ``'nearest-exact'`` (not ``'nearest'``), and the
  crop/pad-to-aspect boxes use TF's float32 ``int(a / b)``; see ``tf2torch/nn/preprocessing.py``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from .. import layout as L
from ..nn.image import MATRIX_METHODS, TORCH_MODES, TFResize
from ..nn.preprocessing import CenterCrop2d, CropToAspect, KerasNormalization, PadToAspect, Rescale, RoundToInputDtype
from .registry import NO_EFFECT, Converted, LayerSpec, converter, to_tensor

RESIZE_METHODS = (*TORCH_MODES, *MATRIX_METHODS)


# -- constants from the config ------------------------------------------------------------------------------
def config_array(value: Any) -> np.ndarray:
    """A config number or nested list as float32; Keras 3 writes numpy values as ``{"class_name": "__numpy__",
    "config": {"value": ...}}`` ([K3] ``saving/serialization_lib.py``)."""
    if isinstance(value, dict) and isinstance(value.get("config"), dict) and "value" in value["config"]:
        value = value["config"]["value"]
    return np.asarray(value, dtype=np.float32)


def to_layout(array: np.ndarray, layout: L.Layout) -> np.ndarray:
    """Rearrange an array shaped to broadcast against a Keras tensor of the same rank for a tensor in ``layout``."""
    if L.normalize(layout, array.ndim) == L.CHANNELS_FIRST:
        return array.transpose(L.to_channels_first_perm(array.ndim))
    return array


def broadcast_for(spec: LayerSpec, array: np.ndarray, layout: L.Layout) -> np.ndarray:
    """``array`` padded with leading 1s to the input's rank (numpy broadcasting) and rearranged for ``layout``."""
    rank = len(spec.input_shape)
    if array.ndim > rank:
        spec.fail(f"a constant of shape {array.shape} cannot broadcast against inputs of rank {rank}")
    return to_layout(array.reshape((1,) * (rank - array.ndim) + array.shape), layout)


def layout_for_constants(spec: LayerSpec, *arrays: np.ndarray) -> L.Layout | None:
    """Scalars work on any layout (None: take the input as it comes); arrays on KERAS or CHANNELS_FIRST, and a
    flattened channels-first tensor is first put back in Keras order."""
    if all(a.size == 1 for a in arrays):
        return None
    return L.KERAS if isinstance(spec.input_layout, L.FlatChannelsFirst) else spec.input_layout


# -- Rescaling ----------------------------------------------------------------------------------------------
@converter("Rescaling", mask="propagate", arithmetic=("scale", "offset"))
def convert_rescaling(spec: LayerSpec) -> Converted:
    """``x * scale + offset``; list-valued ``scale``/``offset`` act on Keras's last axis. (Keras 3 reshapes a
    list ``scale`` to (C, 1, 1) only when the global ``image_data_format`` is channels_first, which the file does
    not record; files are read as channels_last.)"""
    scale = config_array(spec.config.get("scale", 1.0))
    offset = config_array(spec.config.get("offset", 0.0))
    wanted = layout_for_constants(spec, scale, offset)
    constants = [float(a.reshape(())) if a.size == 1 else to_tensor(broadcast_for(spec, a, wanted))
                 for a in (scale, offset)]
    return Converted(Rescale(*constants), input_layouts=wanted)


# -- Normalization ------------------------------------------------------------------------------------------
def kept_axes(spec: LayerSpec) -> tuple[int, ...]:
    """The sorted non-negative axes Normalization keeps statistics for (``axis=None`` keeps none)."""
    axis = spec.config.get("axis", -1)
    axes = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
    rank = len(spec.input_shape)
    return tuple(sorted(a % rank for a in axes))


def normalization_statistics(spec: LayerSpec, kept_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(mean, variance) shaped like the kept axes: the config values broadcast from the right
    ([K3] ``Normalization.build``; [TFK] ``mean * np.ones(shape)``), or the adapted weights."""
    if spec.config.get("mean") is not None:
        mean, variance = config_array(spec.config["mean"]), config_array(spec.config["variance"])
        return np.broadcast_to(mean, kept_shape), np.broadcast_to(variance, kept_shape)
    mean, variance, _count = spec.weights(expected=3)
    if mean.size != int(np.prod(kept_shape)) or variance.size != mean.size:
        spec.fail(f"stored mean {mean.shape} / variance {variance.shape} do not match the kept axes {kept_shape}")
    return mean.reshape(kept_shape), variance.reshape(kept_shape)


@converter("Normalization", defaults={"variance": None}, mask="propagate",
           arithmetic=("axis", "mean", "variance", "invert"))
def convert_normalization(spec: LayerSpec) -> Converted:
    """``(x - mean) / max(sqrt(variance), 1e-7)`` (or its inverse), statistics broadcast along ``axis``."""
    keep = kept_axes(spec)
    kept_shape = tuple(spec.input_shape[a] for a in keep)
    if any(d is None for d in kept_shape):
        spec.fail(f"axis {list(keep)} has a dynamic size in inputs of shape {spec.input_shape}")
    mean, variance = normalization_statistics(spec, kept_shape)
    rank = len(spec.input_shape)
    broadcast = [spec.input_shape[d] if d in keep else 1 for d in range(rank)]
    mean, variance = mean.reshape(broadcast), variance.reshape(broadcast)
    wanted = layout_for_constants(spec, mean, variance)
    target = wanted or spec.input_layout
    module = KerasNormalization(to_tensor(to_layout(mean, target)), to_tensor(to_layout(variance, target)),
                                invert=bool(spec.config.get("invert", False)))
    return Converted(module, input_layouts=wanted)


# -- Resizing and CenterCrop --------------------------------------------------------------------------------
def image_layout(spec: LayerSpec) -> str:
    """The layout in which the Keras image is N,C,H,W: as is for ``data_format='channels_first'`` (Keras 3)."""
    if len(spec.input_shape) != 4:
        spec.fail(f"expects batches of images (rank 4), got inputs of shape {spec.input_shape}")
    return L.KERAS if spec.config.get("data_format") == "channels_first" else L.CHANNELS_FIRST


def image_expansion(spec: LayerSpec, height: int, width: int) -> float:
    """How much larger a (height, width) output is than the layer's image input (open sizes counted as 1)."""
    shape = spec.input_shape
    h, w = (shape[2], shape[3]) if spec.config.get("data_format") == "channels_first" else (shape[1], shape[2])
    return height * width / ((h or 1) * (w or 1))


def resize_method(spec: LayerSpec) -> str:
    method = str(spec.config.get("interpolation", "bilinear")).lower()
    if method not in RESIZE_METHODS:
        spec.fail(f"interpolation {method!r} has no exact torch equivalent here "
                  f"(supported: {', '.join(RESIZE_METHODS)})")
    return method


@converter("Resizing", defaults={"pad_to_aspect_ratio": False,
                                 "fill_value": NO_EFFECT})  # fill_value: read whenever it pads
def convert_resizing(spec: LayerSpec) -> Converted:
    """``tf.image.resize`` to (height, width), after Keras's optional crop or pad to the target aspect ratio
    ([K3] ``backend/tensorflow/image.py::resize``, [TFK] ``image_utils.smart_resize``)."""
    cfg = spec.config
    height, width = int(cfg["height"]), int(cfg["width"])
    wanted = image_layout(spec)
    spec.check_declared_size(image_expansion(spec, height, width))
    if cfg.get("fill_mode", "constant") != "constant":
        spec.fail(f"fill_mode {cfg['fill_mode']!r} is not supported (Keras's TF backend only pads with a constant)")
    parts: list[nn.Module] = []
    if cfg.get("crop_to_aspect_ratio"):
        parts.append(CropToAspect(height, width, float32=True, at_least_one=spec.keras_major >= 3))
    elif cfg.get("pad_to_aspect_ratio"):
        parts.append(PadToAspect(height, width, float(cfg.get("fill_value", 0.0))))
    parts.append(TFResize(height, width, resize_method(spec), bool(cfg.get("antialias", False))))
    module: nn.Module = parts[0] if len(parts) == 1 else nn.Sequential(*parts)
    if spec.keras_major >= 3 and not spec.input_dtypes[0].is_floating_point:
        module = RoundToInputDtype(module)
    return Converted(module, input_layouts=wanted)


@converter("CenterCrop")
def convert_center_crop(spec: LayerSpec) -> Converted:
    """The centred window, or crop-to-aspect and bilinear resize when the input is smaller. Keras 3 computes that
    crop box in Python floats and keeps it at least 1 pixel; tf_keras in float32 without the floor at 1."""
    cfg = spec.config
    keras3 = spec.keras_major >= 3
    spec.check_declared_size(image_expansion(spec, int(cfg["height"]), int(cfg["width"])))
    module = CenterCrop2d(int(cfg["height"]), int(cfg["width"]), float32=not keras3, at_least_one=keras3)
    return Converted(module, input_layouts=image_layout(spec))
