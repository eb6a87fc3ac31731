"""Merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot.

Traps ([K3] ``keras/src/layers/merging/``, [TFK] ``tf_keras/src/layers/merging/``):
- every input must be held in one layout. A channels-first input wins, so a conv trunk merged with a small
  Keras-layout tensor (Squeeze-and-Excitation: ``Reshape((1, 1, C))`` then ``Multiply``) permutes only the small
  one; a flattened channels-first input makes everything Keras-layout, unless all inputs share that same flatten;
- inputs of lower rank are expanded at axis 1 first ((B, C) with (B, H, W, C) → (B, 1, 1, C)), in Keras's
  layout: a channels-first merge then moves their channel axis to 1 (``KerasRankBroadcast``);
- ``Concatenate(axis)`` names a Keras axis: on channels-first 4-D features axis -1 is ``torch.cat(dim=1)``;
- Keras 3 ``Multiply``, ``Maximum`` and ``Minimum`` read their inputs' masks (masked entries count as 1, or never
  win); tf.keras ignores them;
- ``Dot(normalize=True)`` floors the L2 norm differently in Keras 3 and tf.keras (``nn.merge.l2_normalize``).
"""

from __future__ import annotations

from torch import nn

from ..layout import CHANNELS_FIRST, KERAS, FlatChannelsFirst, Layout, keras_axis_in_layout, normalize
from ..nn import merge as merging
from .registry import Converted, LayerSpec, converter

ELEMENTWISE = {"Add": merging.Add, "Subtract": merging.Subtract, "Multiply": merging.Multiply,
               "Average": merging.Average, "Maximum": merging.Maximum, "Minimum": merging.Minimum}
# Keras 3 merges whose VALUES depend on the input masks ([K3] ``merging/multiply.py``, ``base_merge.py``).
KERAS3_MASKED = {"Multiply": merging.Keras3MaskedMultiply, "Maximum": merging.Keras3MaskedMaximum,
                 "Minimum": merging.Keras3MaskedMinimum}

# Square-sum floors of the L2 normalization in ``Dot(normalize=True)``, by the Keras major version that wrote the
# file: [K3] ``ops.nn.normalize`` (norm ≥ ``backend.epsilon()`` = 1e-7), [TFK] ``tf.linalg.l2_normalize`` (1e-12).
DOT_SQUARE_SUM_FLOOR = {3: 1e-14, 2: 1e-12}


def common_layout(spec: LayerSpec) -> Layout:
    """The one layout every full-rank input is brought to: the shared layout when all inputs already agree,
    else Keras's after a flatten of channels-first features (feature order matters), else channels-first when any
    input is channels-first (the trunk stays unpermuted), else Keras's."""
    ranks = [len(s) for s in spec.input_shapes]
    full = [normalize(layout, r) for layout, r in zip(spec.input_layouts, ranks) if r == max(ranks)]
    if len(set(ranks)) == 1 and all(layout == full[0] for layout in full):
        return full[0]
    if any(isinstance(layout, FlatChannelsFirst) for layout in full):
        return KERAS
    return CHANNELS_FIRST if CHANNELS_FIRST in full else KERAS


@converter("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", mask="merge")
def convert_elementwise_merge(spec: LayerSpec) -> Converted:
    """Elementwise merges with Keras broadcasting: same-rank inputs broadcast as usual ((B,H,W,C) with
    (B,1,1,C)); lower-rank inputs are expanded at axis 1 as in [K3]/[TFK] ``Merge.call``."""
    count = len(spec.input_shapes)
    if spec.class_name == "Subtract" and count != 2:
        spec.fail(f"Subtract takes exactly 2 inputs, this one has {count}")
    layout = common_layout(spec)
    ranks = [len(s) for s in spec.input_shapes]
    rank = max(ranks)
    channels_first = normalize(layout, rank) == CHANNELS_FIRST
    if len(set(ranks)) == 1 and spec.keras_major == 3 and spec.class_name in KERAS3_MASKED:
        module = KERAS3_MASKED[spec.class_name](channel_dim=1 if channels_first else -1)
        return Converted(module, input_layouts=[layout] * count, output_layouts=layout, takes_mask="per_input")
    module: nn.Module = ELEMENTWISE[spec.class_name]()
    if len(set(ranks)) == 1:
        return Converted(module, input_layouts=[layout] * count, output_layouts=layout)
    module = merging.KerasRankBroadcast(module, rank, channels_first)
    wanted = [layout if r == rank else KERAS for r in ranks]
    return Converted(module, input_layouts=wanted, output_layouts=layout)


@converter("Concatenate", mask="merge_axis", arithmetic=("axis",))  # the masks join along the concatenation axis
def convert_concatenate(spec: LayerSpec) -> Converted:
    """``torch.cat`` along the Keras ``axis`` (default -1) as placed in the common layout: channels of
    channels-first features concatenate along dim 1 with no permute."""
    layout = common_layout(spec)
    if isinstance(layout, FlatChannelsFirst):  # several equal flattens: their concatenation is none of them
        layout = KERAS
    rank = len(spec.input_shapes[0])
    dim = keras_axis_in_layout(int(spec.config.get("axis", -1)), rank, layout)
    return Converted(merging.Concatenate(dim), input_layouts=[layout] * len(spec.input_shapes), output_layouts=layout)


def dot_axes(spec: LayerSpec) -> tuple[int, int]:
    """The contracted axis of each input, non-negative: an int applies to both, negatives count from each
    input's own rank ([K3]/[TFK] ``Dot._merge_function``)."""
    axes = spec.config["axes"]
    pair = (axes, axes) if isinstance(axes, int) else tuple(axes)
    if len(pair) != 2:
        spec.fail(f"axes must be an int or a pair, got {axes!r}")
    return tuple(int(a) % len(shape) for a, shape in zip(pair, spec.input_shapes))  # type: ignore[return-value]


@converter("Dot")
def convert_dot(spec: LayerSpec) -> Converted:
    """Keras ``batch_dot`` of two Keras-layout inputs; output (B, rest of x, rest of y), or (B, 1) for two
    vectors. ``normalize=True`` L2-normalizes each input along its axis first ([K3]/[TFK] ``merging/dot.py``)."""
    if len(spec.input_shapes) != 2:
        spec.fail(f"Dot takes exactly 2 inputs, this one has {len(spec.input_shapes)}")
    dims = dot_axes(spec)
    if 0 in dims:
        spec.fail("Dot cannot contract the batch axis (axis 0)")
    x_rank, y_rank = (len(s) for s in spec.input_shapes)
    equation = merging.batch_dot_equation(x_rank, y_rank, dims)
    normalize_first = bool(spec.config.get("normalize", False))
    module = merging.Dot(equation, dims, normalize_first, DOT_SQUARE_SUM_FLOOR[spec.keras_major])
    return Converted(module, input_layouts=KERAS, output_layouts=KERAS)
