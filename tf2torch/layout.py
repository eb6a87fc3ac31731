"""Which tensors run channels-first, and how to move between layouts.

A tensor's layout is one of:
- ``KERAS``: exactly as Keras holds it (channels last for ``channels_last`` models);
- ``CHANNELS_FIRST``: Keras's last axis moved to position 1 (N,C,H,W / N,C,L / N,C,D,H,W);
- ``FlatChannelsFirst``: the output of a Flatten applied to a channels-first tensor, features in C,H,W order.
  Keras flattens in H,W,C order always ([K3] ``reshaping/flatten.py``); a Dense right after reorders its
  kernel rows at conversion instead of permuting at run time.
For rank ≤ 2 ``KERAS`` and ``CHANNELS_FIRST`` are the same and are written ``KERAS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

KERAS = "keras"
CHANNELS_FIRST = "channels_first"


@dataclass(frozen=True)
class FlatChannelsFirst:
    """Features in (C, *spatial) order; Keras has them in (*spatial, C) order."""

    channels: int
    spatial: tuple[int, ...]


Layout = Union[str, FlatChannelsFirst]


def normalize(layout: Layout, rank: int) -> Layout:
    if layout == CHANNELS_FIRST and rank <= 2:
        return KERAS
    return layout


def to_channels_first_perm(rank: int) -> tuple[int, ...]:
    return (0, rank - 1, *range(1, rank - 1))


def to_keras_perm(rank: int) -> tuple[int, ...]:
    return (0, *range(2, rank), 1)


def keras_axis_in_layout(axis: int, rank: int, layout: Layout) -> int:
    """Where Keras axis ``axis`` (may be negative) lives in a tensor held in ``layout``."""
    axis = axis % rank
    if normalize(layout, rank) != CHANNELS_FIRST:
        return axis
    if axis == 0:
        return 0
    return 1 if axis == rank - 1 else axis + 1


def keras_shape(shape: tuple[int | None, ...], layout: Layout) -> tuple[int | None, ...]:
    """The Keras shape of a tensor held in ``layout``."""
    if normalize(layout, len(shape)) == CHANNELS_FIRST:
        return (shape[0], *shape[2:], shape[1])
    return tuple(shape)
