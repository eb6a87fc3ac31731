"""Reshaping layers: Flatten, ZeroPadding, Cropping, UpSampling, Reshape, Permute, RepeatVector, and the identities
(ActivityRegularization, Identity).

Traps:
- Flatten flattens in H,W,C order always, even for ``channels_first`` data ([K3] ``reshaping/flatten.py``). A
  channels-first tensor is flattened as it is and tagged ``FlatChannelsFirst``; the next Dense reorders its rows,
  any other consumer gets the Keras order back by one reshape+permute.
- ZeroPadding/Cropping configs give ``((top, bottom), (left, right))``; ``F.pad`` wants the last axis first.
  Cropping never slices with ``-0`` ([K3] ``reshaping/cropping2d.py`` special-cases it).
- UpSampling nearest is ``np.repeat`` ([K3] ``ops.repeat``, [TFK] ``repeat_elements`` / TF2 half-pixel nearest);
  torch's ``'nearest'`` computes ``floor(dst * (1/s))`` in float and picks the wrong pixel for some factors
  (s = 41, 47, 55, ...), ``'nearest-exact'`` computes ``floor((dst + 0.5) / s)`` and never does.
- Reshape and Permute act on the Keras tensor (row-major, batch excluded, Permute 1-indexed).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from torch import nn

from ..layout import (
    CHANNELS_FIRST,
    KERAS,
    FlatChannelsFirst,
    keras_axis_in_layout,
    normalize,
    to_channels_first_perm,
    to_keras_perm,
)
from ..nn.reshaping import (
    ChannelsFirstFlatten,
    Crop,
    LegacyBilinearUpsample2d,
    Permute,
    Repeat,
    RepeatVector,
    Reshape,
)
from .conv import as_tuple, channels_first_data, conv_layout, spatial_rank
from .registry import Converted, LayerSpec, converter

ZERO_PAD_BY_COUNT = {1: nn.ZeroPad1d, 2: nn.ZeroPad2d, 3: nn.ZeroPad3d}
Pairs = tuple[tuple[int, int], ...]


# -- pure helpers ------------------------------------------------------------------------------------------------
def keras_pairs(value: Any, n: int) -> Pairs:
    """Keras ``padding``/``cropping`` in any accepted form → one (before, after) pair per spatial axis.

    1-D layers take ``int`` or ``(before, after)``; 2-D/3-D take ``int``, one symmetric ``int`` per axis, or one
    pair per axis ([K3] ``reshaping/zero_padding2d.py``)."""
    if isinstance(value, int):
        return ((value, value),) * n
    items = list(value)
    if n == 1 and len(items) == 2 and all(isinstance(v, int) for v in items):
        return ((int(items[0]), int(items[1])),)
    return tuple((int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1])) for v in items)


def torch_pad_order(pairs: Pairs, trailing_dims: int = 0) -> tuple[int, ...]:
    """Pairs for consecutive dims, first dim first → ``F.pad``'s order (last dim first), with zero pairs for the
    ``trailing_dims`` dims after them."""
    flat: list[int] = [0, 0] * trailing_dims
    for before, after in reversed(pairs):
        flat.extend((before, after))
    return tuple(flat)


def compose_permutation(keras_perm: tuple[int, ...]) -> tuple[int, ...]:
    """The one ``permute`` that maps a channels-first tensor to the channels-first form of
    ``keras_tensor.permute(keras_perm)``: to Keras layout, the Keras permutation, back to channels first."""
    rank = len(keras_perm)
    to_keras, to_cf = to_keras_perm(rank), to_channels_first_perm(rank)
    return tuple(to_keras[keras_perm[j]] for j in to_cf)


# -- where the spatial axes are -----------------------------------------------------------------------------------
def time_dim(spec: LayerSpec) -> int:
    """The held tensor's dim for the steps axis of a 1-D layer (Keras axis 1, or 2 for ``channels_first``)."""
    axis = 2 if channels_first_data(spec) else 1
    return keras_axis_in_layout(axis, 3, spec.input_layout)


def spatial_placement(spec: LayerSpec, n: int) -> tuple[Any, int]:
    """(layout to request, first spatial dim in it). 1-D layers take the tensor as it comes (sequence models
    hold it in Keras layout, conv trunks channels first); 2-D/3-D layers want their spatial axes last."""
    if "dim_ordering" in spec.config:  # Keras 1: 'th'/'tf' orderings and 4-int paddings
        spec.fail("Keras 1 configs (dim_ordering) are not supported; re-save the model with Keras 2 or later")
    if n == 1:
        return None, time_dim(spec)
    return conv_layout(spec), 2


# -- converters ---------------------------------------------------------------------------------------------------
@converter("Flatten", arithmetic=("data_format",), flattens=True)
def convert_flatten(spec: LayerSpec) -> Converted:
    """Keras orders features (*spatial, C) even for ``channels_first`` data: a static channels-first tensor is
    flattened as held and tagged ``FlatChannelsFirst`` so the next Dense reorders its rows instead."""
    shape = spec.input_shape
    rank = len(shape)
    layout = normalize(spec.input_layout, rank)
    static = all(d is not None for d in shape[1:])
    channels_first = channels_first_data(spec)  # no matter for a tensor already flat
    if isinstance(layout, FlatChannelsFirst) or rank <= 2:
        return Converted(nn.Flatten())
    if channels_first:
        if not static:
            return Converted(ChannelsFirstFlatten(), input_layouts=KERAS, output_layouts=KERAS)
        flat = FlatChannelsFirst(int(shape[1]), tuple(int(d) for d in shape[2:]))
        return Converted(nn.Flatten(), input_layouts=KERAS, output_layouts=flat)
    if layout == CHANNELS_FIRST and static:
        flat = FlatChannelsFirst(int(shape[-1]), tuple(int(d) for d in shape[1:-1]))
        return Converted(nn.Flatten(), output_layouts=flat)
    return Converted(nn.Flatten(), input_layouts=KERAS, output_layouts=KERAS)


@converter("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
def convert_zero_padding(spec: LayerSpec) -> Converted:
    """``nn.ZeroPad{n}d`` with Keras's ((top, bottom), (left, right)) turned into ``F.pad``'s last-axis-first
    order. A 1-D layer on a (N, L, C) tensor pads dim 1 with ``ZeroPad2d((0, 0, before, after))``."""
    n = spatial_rank(spec)
    pairs = keras_pairs(spec.config.get("padding", 1), n)
    wanted, first = spatial_placement(spec, n)
    trailing = len(spec.input_shape) - first - n
    pads = torch_pad_order(pairs, trailing)
    spec.check_declared_size(float(np.prod([((spec.input_shape[first + i] or 1) + sum(pair))
                                            / (spec.input_shape[first + i] or 1) for i, pair in enumerate(pairs)])))
    return Converted(ZERO_PAD_BY_COUNT[len(pads) // 2](pads), input_layouts=wanted, output_layouts=wanted)


@converter("Cropping1D", "Cropping2D", "Cropping3D")
def convert_cropping(spec: LayerSpec) -> Converted:
    """``Crop``: each spatial axis narrowed to ``[before, size - after)`` (no ``-0`` slice)."""
    n = spatial_rank(spec)
    default = (1, 1) if n == 1 else 0
    pairs = keras_pairs(spec.config.get("cropping", default), n)
    wanted, first = spatial_placement(spec, n)
    return Converted(Crop(pairs, first), input_layouts=wanted, output_layouts=wanted)


def tf1_bilinear(spec: LayerSpec) -> bool:
    """Standalone Keras ≤ 2.3 (no ``-tf`` suffix) resized with TF1 ``resize_bilinear`` (no half-pixel centres);
    tf.keras in TF2 and Keras 3 use ``tf.image.resize`` (half-pixel centres)."""
    if spec.keras_major != 2 or spec.keras_version.endswith("-tf"):
        return False
    parts = [int(p) for p in re.findall(r"\d+", spec.keras_version)[:2]]
    return len(parts) == 2 and tuple(parts) < (2, 4)


def upsample_module(spec: LayerSpec, size: tuple[int, ...]) -> nn.Module:
    """The torch module for UpSampling2D's ``interpolation`` on N,C,H,W (integer factors only)."""
    interpolation = str(spec.config.get("interpolation", "nearest")).lower()
    if interpolation in ("nearest", "area"):  # area over 1/s of one input pixel is that pixel
        return nn.Upsample(scale_factor=size, mode="nearest-exact")
    if interpolation == "bilinear":
        if tf1_bilinear(spec):
            return LegacyBilinearUpsample2d(size)
        return nn.Upsample(scale_factor=size, mode="bilinear", align_corners=False)
    spec.fail(f"interpolation {interpolation!r} has no exact torch equivalent (TF's {interpolation} kernel "
              "differs from torch's, e.g. bicubic uses a = -0.5 where torch uses -0.75); only 'nearest', "
              "'bilinear' and 'area' are supported")


@converter("UpSampling1D", "UpSampling2D", "UpSampling3D")
def convert_upsampling(spec: LayerSpec) -> Converted:
    """Integer-factor upsampling: nearest is ``np.repeat`` (``nn.Upsample('nearest-exact')``, or ``Repeat`` on a
    (N, L, C) tensor); UpSampling2D bilinear uses TF2 half-pixel centres = torch ``align_corners=False``."""
    n = spatial_rank(spec)
    size = as_tuple(spec.config.get("size", 2), n)
    spec.check_declared_size(float(np.prod(size)))
    wanted, first = spatial_placement(spec, n)
    if n == 2:
        module = upsample_module(spec, size)
    elif first == len(spec.input_shape) - n:
        module = nn.Upsample(scale_factor=size, mode="nearest-exact")
    else:
        module = Repeat(size[0], first)
    return Converted(module, input_layouts=wanted, output_layouts=wanted)


@converter("Reshape", arithmetic=("target_shape",))
def convert_reshape(spec: LayerSpec) -> Converted:
    """Row-major reshape of the Keras tensor; ``target_shape`` excludes the batch axis, may hold one -1."""
    return Converted(Reshape(spec.config["target_shape"]), input_layouts=KERAS, output_layouts=KERAS)


@converter("Permute", arithmetic=("dims",))
def convert_permute(spec: LayerSpec) -> Converted:
    """``x.permute(0, *dims)`` on the Keras tensor (``dims`` 1-indexed). A channels-first input stays channels
    first: the Keras permutation is composed with the layout moves into one ``permute``; when the held tensor
    already is the Keras result (``Permute((3, 1, 2))`` after a Conv2D), nothing runs."""
    keras_perm = (0, *(int(d) for d in spec.config["dims"]))
    rank = len(keras_perm)
    identity = tuple(range(rank))
    if normalize(spec.input_layout, rank) != CHANNELS_FIRST:
        module = nn.Identity() if keras_perm == identity else Permute(keras_perm)
        return Converted(module, input_layouts=KERAS, output_layouts=KERAS)
    if tuple(to_keras_perm(rank)[p] for p in keras_perm) == identity:
        return Converted(nn.Identity(), output_layouts=KERAS)
    composed = compose_permutation(keras_perm)
    return Converted(nn.Identity() if composed == identity else Permute(composed))


@converter("RepeatVector")
def convert_repeat_vector(spec: LayerSpec) -> Converted:
    """(N, F) → (N, n, F)."""
    spec.check_declared_size(float(spec.config["n"]))
    return Converted(RepeatVector(spec.config["n"]), input_layouts=KERAS, output_layouts=KERAS)


@converter("ActivityRegularization", mask="propagate", activity_penalty=True)
@converter("Identity", mask="propagate")
def convert_identity(spec: LayerSpec) -> Converted:
    """Identity: ActivityRegularization only adds a loss (``tf2torch.regularization_loss``); any layout passes
    through. Dropout and the noise layers are in ``regularization.py``."""
    if len(spec.input_shapes) != 1:
        spec.fail(f"expected one input tensor, got {len(spec.input_shapes)}")
    spec.config.get("l1"), spec.config.get("l2")  # ActivityRegularization's loss: ``training.py``
    return Converted(nn.Identity())
