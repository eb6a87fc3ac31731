"""Normalization layers: BatchNormalization, LayerNormalization, GroupNormalization, UnitNormalization and
Keras 3's RMSNormalization.

Traps ([K3] ``keras/src/layers/normalization/``, [TFK] ``tf_keras/src/layers/normalization/``):
- epsilons come from the config: Keras defaults to 1e-3 (RMSNormalization 1e-6), torch to 1e-5; torch's
  BatchNorm ``momentum`` is ``1 - keras_momentum``.
- tf.keras up to 2.15 ran BatchNormalization on 4-D/5-D inputs with one channel axis (1 or last) through
  ``fused_batch_norm``, whose Python wrapper raised epsilon to 1.001e-5 ([TF] ``python/ops/nn_impl.py``);
  TF 2.21's wrapper no longer does (the tests prove it against tf_keras 2.21) and Keras 3 never did.
- ``axis`` is a Keras axis: on a channels-first tensor axis -1 is dim 1 (``nn.BatchNorm2d``, ``nn.GroupNorm``);
  other axes move to dim 1 inside the module, so no permute runs between layers; after a Flatten of channels-first
  features the per-feature parameters are reordered from H,W,C to C,H,W once, here.
- parameters of an axis list are reshaped C-order into the broadcast shape (1 on the other axes) at call time
  ([K3] ``ops/nn.py`` ``_layer_normalization``, [TFK] ``_broadcast``), also when they were created in an order
  other than the axes' order; torch's ``LayerNorm``/``RMSNorm`` fit only when the axes end up trailing.
- LayerNormalization(rms_scaling=True) [K3] computes ``x * rsqrt(var + eps) * gamma``: centred variance,
  uncentred input; it is not RMS normalization. RMSNormalization [K3] multiplies by ``scale`` with plain
  broadcasting, i.e. aligned to the trailing axes.
- UnitNormalization floors the L2 norm at 1e-12 in Keras 3 and at 1e-6 in tf.keras (``Σx² ≥ 1e-12``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..layout import (
    CHANNELS_FIRST,
    KERAS,
    FlatChannelsFirst,
    Layout,
    keras_axis_in_layout,
    normalize,
    to_channels_first_perm,
)
from ..nn.normalization import (
    BatchNormOnAxis,
    BroadcastBatchNorm,
    GroupNormOnAxis,
    KerasBatchNorm1d,
    KerasBatchNorm2d,
    KerasBatchNorm3d,
    L2Normalize,
    LayerNormOnDims,
    RMSNormOnDims,
)
from ..transforms import keras_bn_to_torch_params
from .registry import NO_EFFECT, NORMALIZATION_WEIGHTS, Converted, LayerSpec, converter, to_tensor

BATCH_NORM_BY_RANK = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
KERAS_BATCH_NORM = {nn.BatchNorm1d: KerasBatchNorm1d, nn.BatchNorm2d: KerasBatchNorm2d,
                    nn.BatchNorm3d: KerasBatchNorm3d}
# [TF] ``nn_impl.fused_batch_norm``: ``min_epsilon = 1.001e-5`` (cuDNN's old CUDNN_BN_MIN_EPSILON plus a margin).
FUSED_EPSILON_FLOOR = 1.001e-5
# The last tf.keras release assumed to clamp (Keras 2 was TF's own Keras up to 2.15); 2.21 is proven not to.
LAST_CLAMPING_KERAS = (2, 15)
# UnitNormalization's L2-norm floor by the Keras major version that wrote the file.
UNIT_NORM_FLOOR = {3: 1e-12, 2: 1e-6}


# -- weight transforms ---------------------------------------------------------------------------------------
def hwc_vector_to_chw(vector: np.ndarray, channels: int, spatial: tuple[int, ...]) -> np.ndarray:
    """Per-feature values of a Keras Flatten (H,W,C order) → the C,H,W order of a flattened channels-first
    tensor."""
    n = len(spatial)
    return vector.reshape(*spatial, channels).transpose(n, *range(n)).reshape(-1)


def keras_param_to_broadcast(param: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A Keras normalization parameter → the input-rank shape Keras broadcasts it with (1 on non-normalized
    axes): a C-order reshape, exactly Keras's ``_broadcast`` (and it drops tf.keras's virtual-batch axis)."""
    return np.asarray(param).reshape(tuple(shape))


def broadcast_to_layout(array: np.ndarray, layout: Layout) -> np.ndarray:
    """A full-rank broadcast parameter in Keras axis order → the axis order of a tensor held in ``layout``."""
    if isinstance(layout, FlatChannelsFirst):
        return hwc_vector_to_chw(array.reshape(-1), layout.channels, layout.spatial).reshape(array.shape)
    if normalize(layout, array.ndim) == CHANNELS_FIRST:
        return array.transpose(to_channels_first_perm(array.ndim))
    return array


# -- config helpers ------------------------------------------------------------------------------------------
def keras_version_tuple(version: str) -> tuple[int, int]:
    """``"2.15.0"`` / ``"2.2.4-tf"`` → (major, minor)."""
    numbers = [int(n) for n in re.findall(r"\d+", version)[:2]] + [0, 0]
    return numbers[0], numbers[1]


def keras_axes(axis: int | Sequence[int], rank: int) -> list[int]:
    """Config ``axis`` (an int or a list, maybe negative) → sorted non-negative axes."""
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return sorted({int(a) % rank for a in axes})


def broadcast_shape(spec: LayerSpec, axes: Sequence[int]) -> tuple[int, ...]:
    """The Keras-layout shape parameters are broadcast with: the input size on ``axes``, 1 elsewhere."""
    shape = spec.input_shape
    if any(shape[a] is None for a in axes):
        spec.fail(f"normalized axes {list(axes)} of input shape {shape} must have known sizes")
    return tuple(int(shape[d]) if d in axes else 1 for d in range(len(shape)))


def normalization_layout(spec: LayerSpec, axes: Sequence[int]) -> tuple[Layout | None, Layout]:
    """(the layout to request, the layout the layer then works in). A flatten of channels-first features is
    kept when the layer normalizes the whole feature axis (the order does not change the statistics)."""
    layout = spec.input_layout
    if isinstance(layout, FlatChannelsFirst) and list(axes) != [1]:
        return KERAS, KERAS
    return None, layout


def shape_in_layout(shape: Sequence[int], layout: Layout) -> tuple[int, ...]:
    """A Keras-layout (broadcast) shape → the shape of the same tensor held in ``layout``."""
    if normalize(layout, len(shape)) == CHANNELS_FIRST:
        return tuple(shape[i] for i in to_channels_first_perm(len(shape)))
    return tuple(shape)


def affine_params(arrays: Sequence[np.ndarray], scale: bool, center: bool) -> dict[str, np.ndarray]:
    """Stored ``[gamma] [beta]`` → ``{"weight": gamma, "bias": beta}``, for those present."""
    rest = list(arrays)
    return {name: rest.pop(0) for name, present in (("weight", scale), ("bias", center)) if present}


def dims_in_layout(axes: Sequence[int], rank: int, layout: Layout) -> list[int]:
    return sorted(keras_axis_in_layout(a, rank, layout) for a in axes)


def trailing(dims: Sequence[int], rank: int) -> bool:
    return list(dims) == list(range(rank - len(dims), rank))


def freeze_placeholders(module: nn.Module, scale: bool, center: bool) -> None:
    """Torch's affine is weight and bias together: the one Keras does not have (``scale``/``center`` False) is a
    constant ones/zeros that training must not move."""
    for name, present in (("weight", scale), ("bias", center)):
        param = getattr(module, name, None)
        if param is not None and not present:
            param.requires_grad_(False)


def load_params(module: nn.Module, params: dict[str, np.ndarray]) -> nn.Module:
    """Copy arrays into the module's parameters/buffers of the same names (reshaped to their shapes)."""
    with torch.no_grad():
        for name, array in params.items():
            target = getattr(module, name)
            target.copy_(to_tensor(array).reshape(target.shape))
    return module


# -- BatchNormalization --------------------------------------------------------------------------------------
def fused_kernel_used(spec: LayerSpec, axes: Sequence[int], rank: int) -> bool:
    """Whether tf.keras ran this layer through ``fused_batch_norm``: [TFK] ``_fused_can_be_used`` (no renorm,
    virtual_batch_size or synchronization; float16/bfloat16/float32) and ``build`` (rank 4 or 5, one axis that
    is 1 or the last)."""
    cfg = spec.config
    if spec.keras_major != 2 or spec.class_name != "BatchNormalization":
        return False
    if cfg.get("renorm") or cfg.get("virtual_batch_size") is not None or cfg.get("synchronized"):
        return False
    if cfg.get("fused") is False or "float64" in str(cfg.get("dtype") or ""):
        return False
    return rank in (4, 5) and len(axes) == 1 and axes[0] in (1, rank - 1)


def fused_epsilon_applies(spec: LayerSpec, axes: Sequence[int], rank: int) -> bool:
    """The fused kernel's epsilon floor, in the tf.keras releases whose wrapper applied it."""
    clamping = keras_version_tuple(spec.keras_version) <= LAST_CLAMPING_KERAS
    return clamping and fused_kernel_used(spec, axes, rank)


def batch_norm_epsilon(spec: LayerSpec, axes: Sequence[int], rank: int) -> float:
    epsilon = float(spec.config.get("epsilon", 1e-3))
    return max(epsilon, FUSED_EPSILON_FLOOR) if fused_epsilon_applies(spec, axes, rank) else epsilon


def standalone_keras2(version: str) -> bool:
    """Files written by the standalone ``keras`` package before 2.4 (tf.keras wrote ``2.x.y-tf``)."""
    return keras_version_tuple(version)[0] == 2 and keras_version_tuple(version) < (2, 4) and "tf" not in version


def batch_norm_training(spec: LayerSpec, axes: Sequence[int], rank: int) -> dict[str, bool | str]:
    """How the layer trains, for ``KerasTrainingMixin``: TF's fused kernel (tf.keras, 4-D/5-D) updates the moving
    variance with the Bessel-corrected batch variance as torch does, [K3] and non-fused [TFK] with the biased
    one (both measured against Keras 3 and tf_keras 2.21); ``trainable=False`` runs in inference mode."""
    cfg = spec.config
    refusal = ""
    if cfg.get("renorm"):
        refusal = f"{spec.name}: batch renormalization (renorm=True)"
    elif cfg.get("virtual_batch_size") is not None:
        refusal = f"{spec.name}: ghost batch normalization (virtual_batch_size)"
    elif standalone_keras2(spec.keras_version):
        refusal = (f"{spec.name}: the moving-variance update of standalone Keras {spec.keras_version} (its own "
                   "sample-size correction) is not reproduced")
    return {"biased_moving_variance": not fused_kernel_used(spec, axes, rank),
            "frozen": cfg.get("trainable", True) is False, "training_refusal": refusal}


def batch_norm_axes(spec: LayerSpec, rank: int) -> list[int]:
    """tf.keras with ``virtual_batch_size`` saves its axes shifted by the extra virtual-batch axis
    ([TFK] ``build``: ``self.axis[idx] = x + 1``)."""
    axis = spec.config.get("axis", -1)
    if spec.config.get("virtual_batch_size") is not None and isinstance(axis, (list, tuple)):
        axis = [a - 1 if a > 0 else a for a in axis]
    return keras_axes(axis, rank)


def batch_norm_module(channels: int, dim: int, rank: int, eps: float, momentum: float, affine: bool,
                      training: dict[str, bool | str]) -> nn.Module:
    """``KerasBatchNorm{1,2,3}d`` (torch's ``BatchNorm{1,2,3}d`` with Keras's training rules, where they differ,
    and an eval pass of one cached ``x * scale + shift`` that can write in place: 6% faster than torch's own on
    ResNet50 at batch 8), or ``BatchNormOnAxis`` for channels off dim 1."""
    if dim == 1 and rank in BATCH_NORM_BY_RANK:
        torch_class = BATCH_NORM_BY_RANK[rank]
        return KERAS_BATCH_NORM[torch_class](channels, eps=eps, momentum=momentum, affine=affine, **training)
    return BatchNormOnAxis(channels, dim, eps=eps, momentum=momentum, affine=affine, **training)


def broadcast_batch_norm(spec: LayerSpec, axes: list[int], arrays: Sequence[np.ndarray], eps: float, scale: bool,
                         center: bool) -> Converted:
    """tf.keras axis lists: every parameter reshaped to the input-rank broadcast shape, in the tensor's layout."""
    shape = broadcast_shape(spec, axes)
    *affine, mean, variance = arrays
    params = {**affine_params(affine, scale, center), "running_mean": mean, "running_var": variance}
    params = {k: broadcast_to_layout(keras_param_to_broadcast(v, shape), spec.input_layout) for k, v in params.items()}
    module = BroadcastBatchNorm(shape_in_layout(shape, spec.input_layout), eps, scale=scale, center=center,
                                frozen=spec.config.get("trainable", True) is False)
    return Converted(load_params(module, params))


BATCH_NORM_NO_EFFECT = {
    "renorm_clipping": NO_EFFECT, "renorm_momentum": NO_EFFECT,  # renorm trains differently, infers the same
    "synchronized": NO_EFFECT,  # cross-replica batch statistics: training only
    "momentum": NO_EFFECT,  # moving-statistics update: read where train mode is supported
}


@converter("BatchNormalization", defaults=BATCH_NORM_NO_EFFECT, training_sensitive=True, mask="propagate",
           regularizers=NORMALIZATION_WEIGHTS, weight_kind="batchnorm",
           arithmetic=("axis", "epsilon", "center", "scale", "renorm"))
@converter("SyncBatchNormalization", defaults=BATCH_NORM_NO_EFFECT, training_sensitive=True)
def convert_batch_normalization(spec: LayerSpec) -> Converted:
    """Inference batch normalization with the moving statistics (renorm too: trap (b) of the semantics doc).
    One axis → ``nn.BatchNorm{1,2,3}d`` when it lands on dim 1, else ``BatchNormOnAxis``; tf.keras axis lists →
    ``BroadcastBatchNorm``. Epsilon follows the fused-kernel floor of old tf.keras (``batch_norm_epsilon``)."""
    cfg = spec.config
    rank = len(spec.input_shape)
    axes = batch_norm_axes(spec, rank)
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    stored = 2 + scale + center
    arrays = spec.weights(expected=stored + (3 if cfg.get("renorm") else 0))[:stored]
    eps = batch_norm_epsilon(spec, axes, rank)
    if len(axes) > 1:
        return broadcast_batch_norm(spec, axes, arrays, eps, scale, center)
    layout = spec.input_layout
    params = keras_bn_to_torch_params(arrays, scale=scale, center=center)
    params = {k: v.reshape(-1) for k, v in params.items()}
    if isinstance(layout, FlatChannelsFirst):
        params = {k: hwc_vector_to_chw(v, layout.channels, layout.spatial) for k, v in params.items()}
    dim = keras_axis_in_layout(axes[0], rank, layout)
    momentum = 1.0 - float(cfg.get("momentum", 0.99))
    module = batch_norm_module(params["running_mean"].size, dim, rank, eps, momentum, affine=scale or center,
                               training=batch_norm_training(spec, axes, rank))
    freeze_placeholders(module, scale, center)
    return Converted(load_params(module, params))


# -- LayerNormalization, RMSNormalization, UnitNormalization -------------------------------------------------
def layer_norm_module(dims: list[int], shape: tuple[int, ...], eps: float, scale: bool, center: bool,
                      rms_scaling: bool) -> nn.Module:
    rank = len(shape)
    if rms_scaling or not trailing(dims, rank):
        return LayerNormOnDims(dims, shape, eps, scale=scale, center=center, rms_scaling=rms_scaling)
    normalized = shape[rank - len(dims):]
    return nn.LayerNorm(normalized, eps=eps, elementwise_affine=scale or center, bias=center)


@converter("LayerNormalization", mask="propagate", regularizers=NORMALIZATION_WEIGHTS, weight_kind="layernorm",
           arithmetic=("axis", "epsilon", "center", "scale", "rms_scaling"))
def convert_layer_normalization(spec: LayerSpec) -> Converted:
    """``nn.LayerNorm`` when the normalized axes are the trailing dims of the tensor as held (axis=-1 on
    Keras-layout tensors, [1,2,3] on channels-first ones), else ``LayerNormOnDims`` (which also does [K3]'s
    ``rms_scaling``). [K3] creates gamma for ``rms_scaling`` even with ``scale=False`` and never beta."""
    cfg = spec.config
    rank = len(spec.input_shape)
    axes = keras_axes(cfg.get("axis", -1), rank)
    rms_scaling = bool(cfg.get("rms_scaling", False))
    scale = bool(cfg.get("scale", True)) or rms_scaling
    center = bool(cfg.get("center", True)) and not rms_scaling
    arrays = spec.weights(expected=scale + center)
    wanted, layout = normalization_layout(spec, axes)
    shape = broadcast_shape(spec, axes)
    params = {name: broadcast_to_layout(keras_param_to_broadcast(a, shape), layout)
              for name, a in affine_params(arrays, scale, center).items()}
    layout_shape = shape_in_layout(shape, layout)
    module = layer_norm_module(dims_in_layout(axes, rank, layout), layout_shape, float(cfg.get("epsilon", 1e-3)),
                               scale, center, rms_scaling)
    if center and not scale and isinstance(module, nn.LayerNorm):
        params["weight"] = np.ones(layout_shape, np.float32)  # torch's affine is weight and bias together
    freeze_placeholders(module, scale, center)
    return Converted(load_params(module, params), input_layouts=wanted)


@converter("RMSNormalization")
def convert_rms_normalization(spec: LayerSpec) -> Converted:
    """[K3] ``x * rsqrt(mean(x²) + eps) * scale`` with eps 1e-6 by default: ``nn.RMSNorm`` when the axes are
    trailing as held, else ``RMSNormOnDims``. ``scale`` broadcasts against the trailing axes, as numpy would."""
    rank = len(spec.input_shape)
    axes = keras_axes(spec.config.get("axis", -1), rank)
    (scale,) = spec.weights(expected=1)
    wanted, layout = normalization_layout(spec, axes)
    weight = broadcast_to_layout(scale.reshape((1,) * (rank - scale.ndim) + scale.shape), layout)
    dims = dims_in_layout(axes, rank, layout)
    eps = float(spec.config.get("epsilon", 1e-6))
    normalized = shape_in_layout(broadcast_shape(spec, axes), layout)[rank - len(dims):]
    if trailing(dims, rank) and weight.shape[rank - len(dims):] == normalized:
        module: nn.Module = nn.RMSNorm(normalized, eps=eps)
    else:
        module = RMSNormOnDims(dims, weight.shape, eps=eps)
    return Converted(load_params(module, {"weight": weight}), input_layouts=wanted)


@converter("UnitNormalization", mask="propagate", arithmetic=("axis",))
def convert_unit_normalization(spec: LayerSpec) -> Converted:
    """``x / max(‖x‖₂, floor)`` over the axes; the floor depends on the Keras that wrote the file
    ([K3] ``ops.normalize(epsilon=1e-12)``, [TFK] ``tf.linalg.l2_normalize``)."""
    rank = len(spec.input_shape)
    axes = keras_axes(spec.config.get("axis", -1), rank)
    wanted, layout = normalization_layout(spec, axes)
    module = L2Normalize(dims_in_layout(axes, rank, layout), eps=UNIT_NORM_FLOOR[spec.keras_major])
    return Converted(module, input_layouts=wanted)


# -- GroupNormalization --------------------------------------------------------------------------------------
@converter("GroupNormalization", mask="propagate", regularizers=NORMALIZATION_WEIGHTS, weight_kind="groupnorm",
           arithmetic=("groups", "axis", "epsilon", "center", "scale"))
def convert_group_normalization(spec: LayerSpec) -> Converted:
    """Contiguous channel groups in both ([K3]/[TFK] reshape (..., C) → (..., G, C/G)); ``groups=-1`` is one
    group per channel. ``nn.GroupNorm`` when the channel axis is dim 1 as held, else ``GroupNormOnAxis``."""
    cfg = spec.config
    rank = len(spec.input_shape)
    axis = int(cfg.get("axis", -1)) % rank
    channels = spec.input_shape[axis]
    if channels is None:
        spec.fail(f"the normalized axis {axis} of input shape {spec.input_shape} must have a known size")
    groups = channels if int(cfg.get("groups", 32)) == -1 else int(cfg.get("groups", 32))
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    arrays = spec.weights(expected=scale + center)
    wanted, layout = (KERAS, KERAS) if isinstance(spec.input_layout, FlatChannelsFirst) else (None, spec.input_layout)
    dim = keras_axis_in_layout(axis, rank, layout)
    eps = float(cfg.get("epsilon", 1e-3))
    affine = scale or center
    if dim == 1:
        module: nn.Module = nn.GroupNorm(groups, channels, eps=eps, affine=affine)
    else:
        module = GroupNormOnAxis(groups, channels, dim, eps=eps, affine=affine)
    if affine:  # torch's affine is weight and bias together: the missing one is ones / zeros
        params = {"weight": np.ones(channels, np.float32), "bias": np.zeros(channels, np.float32)}
        load_params(module, {**params, **affine_params(arrays, scale, center)})
        freeze_placeholders(module, scale, center)
    return Converted(module, input_layouts=wanted)
