"""Layers that keras.applications defines for its own models: ``LayerScale`` and ``StochasticDepth`` (ConvNeXt),
``CustomScaleLayer`` (InceptionResNetV2). They run in whatever layout their inputs arrive in."""

from __future__ import annotations

from .. import layout as L
from ..nn.noise import Dropout
from ..nn.scale import ChannelScale, ScaledAdd
from .registry import Converted, LayerSpec, converter, to_tensor


@converter("LayerScale")
def convert_layer_scale(spec: LayerSpec) -> Converted:
    """``x * gamma`` over the last Keras axis; ``init_values`` only set gamma's starting value."""
    (gamma,) = spec.weights(expected=1)
    dim = int(spec.config.get("projection_dim", gamma.shape[0]))
    if gamma.shape != (dim,):
        spec.fail(f"gamma has shape {gamma.shape}, projection_dim is {dim}")
    spec.config.get("init_values")
    rank = len(spec.input_shape)
    layout = spec.input_layout if isinstance(spec.input_layout, str) else L.KERAS
    module = ChannelScale(dim, L.keras_axis_in_layout(-1, rank, layout), rank)
    module.gamma.data.copy_(to_tensor(gamma))
    return Converted(module, input_layouts=layout, output_layouts=layout)


@converter("CustomScaleLayer", "Custom>CustomScaleLayer")
def convert_custom_scale_layer(spec: LayerSpec) -> Converted:
    """tf_keras registers it as ``Custom>CustomScaleLayer`` (its ``.keras`` files record that name)."""
    if len(spec.input_shapes) != 2:
        spec.fail(f"expected two inputs, got {len(spec.input_shapes)}")
    layouts = set(spec.input_layouts)
    layout = layouts.pop() if len(layouts) == 1 else L.KERAS
    return Converted(ScaledAdd(float(spec.config["scale"])), input_layouts=layout, output_layouts=layout)


@converter("StochasticDepth", training_sensitive=True)
def convert_stochastic_depth(spec: LayerSpec) -> Converted:
    """Drops a whole residual branch per sample while training, the identity at inference ([K3]/[TFK]
    ``applications/convnext.py``: ``x / keep * floor(keep + uniform(batch, 1, ...))``, ``keep = 1 - rate``). That
    is Dropout of ``drop_path_rate`` with one draw per sample, shared over every other axis."""
    rate = float(spec.config["drop_path_rate"])
    if not 0 <= rate < 1:
        spec.fail(f"drop_path_rate {rate} is outside [0, 1)")
    return Converted(Dropout(rate, shared_dims=range(1, len(spec.input_shape))))
