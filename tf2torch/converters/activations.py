"""Activation layers and the string activations other layers carry in their config (``activation='relu'``).

Traps ([K3] ``activations/activations.py``, [TFK] ``activations.py``): ``hard_sigmoid`` is
``clip(0.2x + 0.5, 0, 1)`` in Keras 2 but ``relu6(x + 3) / 6`` in Keras 3, so it is chosen by the file's Keras
version; the ``leaky_relu`` string has slope 0.2 (torch's default is 0.01) but the ``LeakyReLU`` layer 0.3;
``gelu`` is exact, not tanh; softmax, log_softmax, glu and sparsemax act on the Keras last axis, which is dim 1
of a channels-first tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from ..layout import CHANNELS_FIRST, KERAS, FlatChannelsFirst, Layout, keras_axis_in_layout, normalize
from ..nn.activations import (
    BroadcastPReLU,
    Exponential,
    Hardswish,
    KerasHardSigmoid,
    KerasReLU,
    KerasSparsemax,
    MultiAxisSoftmax,
    ReLU,
    ReLU6,
    SiLU,
    SparsePlus,
    SparseSigmoid,
    Squareplus,
)
from .registry import Converted, LayerSpec, as_parameter, converter

# Every name ``keras.activations.get`` accepts in Keras 3.15 and tf_keras 2.x, with its default parameters.
ACTIVATIONS: dict[str, Callable[[int, int], nn.Module]] = {
    "relu": lambda major, dim: ReLU(),
    "relu6": lambda major, dim: ReLU6(),
    "sigmoid": lambda major, dim: nn.Sigmoid(),
    "tanh": lambda major, dim: nn.Tanh(),
    "softmax": lambda major, dim: nn.Softmax(dim=dim),
    "log_softmax": lambda major, dim: nn.LogSoftmax(dim=dim),
    "elu": lambda major, dim: nn.ELU(),
    "selu": lambda major, dim: nn.SELU(),
    "celu": lambda major, dim: nn.CELU(),
    "softplus": lambda major, dim: nn.Softplus(),
    "softsign": lambda major, dim: nn.Softsign(),
    "swish": lambda major, dim: SiLU(),
    "silu": lambda major, dim: SiLU(),
    "gelu": lambda major, dim: nn.GELU(),
    "glu": lambda major, dim: nn.GLU(dim=dim),
    "exponential": lambda major, dim: Exponential(),
    "hard_sigmoid": lambda major, dim: nn.Hardsigmoid() if major >= 3 else KerasHardSigmoid(),
    "hard_silu": lambda major, dim: Hardswish(),
    "hard_swish": lambda major, dim: Hardswish(),
    "hard_tanh": lambda major, dim: nn.Hardtanh(),
    "hard_shrink": lambda major, dim: nn.Hardshrink(0.5),
    "soft_shrink": lambda major, dim: nn.Softshrink(0.5),
    "tanh_shrink": lambda major, dim: nn.Tanhshrink(),
    "squareplus": lambda major, dim: Squareplus(4.0),
    "sparse_plus": lambda major, dim: SparsePlus(),
    "sparse_sigmoid": lambda major, dim: SparseSigmoid(),
    "sparsemax": lambda major, dim: KerasSparsemax(dim=dim),
    "log_sigmoid": lambda major, dim: nn.LogSigmoid(),
    "mish": lambda major, dim: nn.Mish(),
    "leaky_relu": lambda major, dim: nn.LeakyReLU(0.2),
}
# Activations whose result depends on the order of the features along the channel axis (not just the set).
ORDER_SENSITIVE = frozenset({"glu"})
UNCALLABLE = {
    "threshold": "Keras's `threshold` activation needs `threshold` and `default_value` arguments that an "
                 "activation name cannot carry; Keras itself fails when it calls this layer",
}


def relu_module(max_value: float | None = None, negative_slope: float = 0.0, threshold: float = 0.0) -> nn.Module:
    """Keras ``ReLU`` layer / ``relu`` with arguments: the plain torch module when one fits exactly."""
    if negative_slope == 0 and threshold == 0 and max_value is None:
        return ReLU()
    if negative_slope == 0 and threshold == 0 and max_value == 6:
        return ReLU6()
    if negative_slope != 0 and threshold == 0 and max_value is None:
        return nn.LeakyReLU(negative_slope)
    if negative_slope == 0 and max_value is None:
        return nn.Threshold(float(threshold), 0.0)
    return KerasReLU(max_value, negative_slope, threshold)


def leaky_relu_slope(config: dict[str, Any]) -> float:
    """The ``LeakyReLU`` layer's slope: ``alpha`` in Keras 2, ``negative_slope`` in Keras 3, default 0.3 in both."""
    return float(config.get("negative_slope", config.get("alpha", 0.3)))


def layer_activation(class_name: str, config: dict[str, Any], channel_dim: int) -> nn.Module:
    """An activation given as a layer object (``activation=keras.layers.LeakyReLU(0.1)``), config-only layers."""
    if class_name == "ReLU":
        return relu_module(config.get("max_value"), config.get("negative_slope", 0.0), config.get("threshold", 0.0))
    if class_name == "LeakyReLU":
        return nn.LeakyReLU(leaky_relu_slope(config))
    if class_name == "ELU":
        return nn.ELU(float(config.get("alpha", 1.0)))
    if class_name == "ThresholdedReLU":
        return nn.Threshold(float(config.get("theta", 1.0)), 0.0)
    if class_name == "Softmax" and config.get("axis", -1) in (-1, [-1]):
        return nn.Softmax(dim=channel_dim)
    raise KeyError(class_name)


def activation_module(name: Any, keras_major: int, channel_dim: int = -1) -> nn.Module | None:
    """The torch module for a Keras activation name, or None for ``linear``. ``channel_dim`` is where the
    Keras last axis lives in the tensor the activation will see (for softmax)."""
    if name is None or name == "linear":
        return None
    if isinstance(name, dict):  # a serialized activation object, e.g. {"class_name": "ReLU", "config": {...}}
        if name.get("class_name") != "function":
            return layer_activation(str(name.get("class_name")), name.get("config") or {}, channel_dim)
        name = name.get("config", {}).get("name")
    key = str(name).lower()
    if key == "linear":
        return None
    if key not in ACTIVATIONS:
        raise KeyError(UNCALLABLE.get(key, name))
    return ACTIVATIONS[key](keras_major, channel_dim)


def activation_for(spec: LayerSpec, key: str = "activation", channel_dim: int = -1) -> nn.Module | None:
    """``activation_module`` for ``spec.config[key]``, failing with the layer's name when unknown."""
    name = spec.config.get(key)
    try:
        return activation_module(name, spec.keras_major, channel_dim)
    except KeyError:
        shown = name.get("class_name") if isinstance(name, dict) else name
        spec.fail(UNCALLABLE.get(str(shown).lower()) or f"activation {shown!r} is not supported")


@converter("Activation", mask="propagate", arithmetic=("activation",))
def convert_activation(spec: LayerSpec) -> Converted:
    """``Activation('relu')``: elementwise, except the ones acting on the last axis (softmax, glu...), which
    follow the channel axis; glu splits the features in halves, so a channels-first flatten goes back to Keras
    order first."""
    rank = len(spec.input_shape)
    to_keras = (isinstance(spec.input_layout, FlatChannelsFirst)
                and str(spec.config.get("activation")).lower() in ORDER_SENSITIVE)
    layout = KERAS if to_keras else spec.input_layout
    module = activation_for(spec, channel_dim=keras_axis_in_layout(-1, rank, layout))
    wanted = KERAS if to_keras else None
    return Converted(module if module is not None else nn.Identity(), input_layouts=wanted, output_layouts=wanted)


@converter("ReLU", mask="propagate", arithmetic=("max_value", "negative_slope", "threshold"))
def convert_relu(spec: LayerSpec) -> Converted:
    """``ReLU(max_value, negative_slope, threshold)``: [K3] ``ReLU.static_call`` / [TFK] ``backend.relu``."""
    cfg = spec.config
    return Converted(relu_module(cfg.get("max_value"), cfg.get("negative_slope", 0.0), cfg.get("threshold", 0.0)))


@converter("LeakyReLU", mask="propagate", arithmetic=("alpha", "negative_slope"))
def convert_leaky_relu(spec: LayerSpec) -> Converted:
    """``LeakyReLU``: slope 0.3 by default (the ``leaky_relu`` string's is 0.2); key ``alpha`` in Keras 2."""
    return Converted(nn.LeakyReLU(leaky_relu_slope(spec.config)))


@converter("ELU", mask="propagate", arithmetic=("alpha",))
def convert_elu(spec: LayerSpec) -> Converted:
    """``ELU(alpha)``: ``alpha * expm1(x)`` below zero ([K3]/[TFK] ``backend.elu``)."""
    return Converted(nn.ELU(float(spec.config.get("alpha", 1.0))))


@converter("ThresholdedReLU", mask="propagate")
def convert_thresholded_relu(spec: LayerSpec) -> Converted:
    """tf.keras ``ThresholdedReLU(theta)``: ``x * (x > theta)`` = ``nn.Threshold(theta, 0)``."""
    return Converted(nn.Threshold(float(spec.config.get("theta", 1.0)), 0.0))


@converter("Softmax", mask="propagate", arithmetic=("axis",))
def convert_softmax(spec: LayerSpec) -> Converted:
    """``Softmax(axis)``: the Keras axis (or axes) mapped to the tensor's layout; several axes normalize jointly
    (``exp(x - logsumexp(x, axes))``). An explicit ``mask=`` in the call goes to ``MaskedSoftmax``."""
    axis = spec.config.get("axis", -1)
    if axis is None:
        spec.fail("Softmax(axis=None) is not supported")
    rank = len(spec.input_shape)
    if "mask" in spec.tensor_kwarg_names:
        return convert_masked_softmax(spec, axis, rank)
    dims = [keras_axis_in_layout(int(a), rank, spec.input_layout) for a in (axis if isinstance(axis, list) else [axis])]
    if len(dims) == 1:
        return Converted(nn.Softmax(dim=dims[0]))
    return Converted(MultiAxisSoftmax(dims))


def convert_masked_softmax(spec: LayerSpec, axis: object, rank: int) -> Converted:
    """``Softmax()(x, mask=m)``: [K3] ``where(m, x, -1e9)``, softmax, ``where(m, p, 0)``; [TFK]
    ``x + (1 - m) * -1e9``, softmax ([K3]/[TFK] ``activations/softmax.py``). On the last Keras axis."""
    from ..nn.attention import KERAS3_SOFTMAX, TF_KERAS_SOFTMAX, MaskedSoftmax

    axes = axis if isinstance(axis, list) else [axis]
    if len(axes) != 1 or int(axes[0]) % rank != rank - 1:
        spec.fail("Softmax with a mask is supported on the last axis only")
    style = KERAS3_SOFTMAX if spec.keras_major >= 3 else TF_KERAS_SOFTMAX
    return Converted(MaskedSoftmax(style), input_layouts=KERAS, output_layouts=KERAS)


def keras_alpha_to_layout(alpha: np.ndarray, layout: Layout) -> np.ndarray:
    """PReLU ``alpha`` (Keras input shape without batch, shared axes 1) for a tensor held in ``layout``:
    channel axis first for a channels-first tensor, C,H,W feature order after a channels-first Flatten."""
    if isinstance(layout, FlatChannelsFirst) and alpha.size > 1:
        return np.moveaxis(alpha.reshape(*layout.spatial, layout.channels), -1, 0).reshape(-1)
    if normalize(layout, alpha.ndim + 1) == CHANNELS_FIRST:
        return np.moveaxis(alpha, -1, 0)
    return alpha


@converter("PReLU", mask="propagate", weight_kind="prelu")
def convert_prelu(spec: LayerSpec) -> Converted:
    """``PReLU``: ``alpha`` has the input's shape without batch (shared axes 1). ``nn.PReLU`` fits when alpha,
    in the tensor's layout, varies along dim 1 only (channels-first with all other axes shared, or 2-D);
    otherwise a broadcast alpha in the tensor's layout."""
    (alpha,) = spec.weights(expected=1)
    shared = spec.config.get("shared_axes") or []
    shared = {int(a) for a in ([shared] if isinstance(shared, int) else shared)}
    expected = tuple(1 if axis in shared else size for axis, size in enumerate(spec.input_shape) if axis > 0)
    spec.check_shapes([alpha], [tuple(None if d is None else d for d in expected)], ["alpha"])
    alpha = keras_alpha_to_layout(alpha, spec.input_layout)
    if all(d == 1 for d in alpha.shape[1:]):
        module = nn.PReLU(int(alpha.size))
        module.weight = as_parameter(alpha.reshape(-1))
        return Converted(module)
    module = BroadcastPReLU(alpha.shape)
    module.alpha = as_parameter(alpha)
    return Converted(module)
