"""Wrappers: TimeDistributed, the wrapped layer's own converter applied to every time step; SpectralNormalization,
the wrapped layer as it runs at inference.

A wrapped *model* is expanded by the reader into fold → the model's layers → unfold, so its layers keep their
own converters and names (``time_distributed.conv2d``); only a wrapped single layer comes here whole.

The inner layer's config is ``config["layer"]`` and its weights are the wrapper's weights. The inner converter
sees one step (B, ...) in Keras layout; if it wants channels-first (a convolution), the permutes run inside the
wrapper, around the folded (B*T, ...) tensor.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from torch import nn

from .. import layout as L
from ..nn.ops import Op, Slot
from ..nn.wrappers import FoldTime, TimeDistributed, UnfoldTime
from .registry import NO_EFFECT, Converted, LayerSpec, converter, converter_for


def inner_spec(spec: LayerSpec) -> LayerSpec:
    inner = spec.config.get("layer") or {}
    class_name = inner.get("class_name")
    if not isinstance(class_name, str):
        spec.fail("the wrapped layer has no class_name")
    shape = spec.input_shape
    return replace(spec, name=f"{spec.name}/{inner.get('config', {}).get('name', class_name)}",
                   class_name=class_name, config=inner.get("config") or {}, input_shapes=[(None, *shape[2:])],
                   input_layouts=[L.KERAS], call_kwargs={}, tensor_kwarg_names=[])


@converter("TimeDistributed", training_sensitive=True, mask="propagate", theano_flip="inner")
def convert_time_distributed(spec: LayerSpec) -> Converted:
    step = inner_spec(spec)
    fn = converter_for(step.class_name)
    if fn is None:
        spec.fail(f"the wrapped layer {step.class_name} has no converter")
    converted = fn(step)
    if converted.takes_mask:
        spec.fail(f"TimeDistributed around a mask-consuming {step.class_name} is not supported")
    wanted = converted.input_layouts
    wanted = wanted[0] if isinstance(wanted, (list, tuple)) else wanted
    produced = converted.output_layouts
    produced = produced[0] if isinstance(produced, (list, tuple)) else produced
    channels_first = L.normalize(wanted, len(step.input_shape)) == L.CHANNELS_FIRST
    if isinstance(produced, L.FlatChannelsFirst):
        spec.fail(f"TimeDistributed({step.class_name}) flattens a channels-first step; not supported")
    return Converted(TimeDistributed(converted.module, channels_first), input_layouts=L.KERAS,
                     output_layouts=L.KERAS)


@converter("TimeDistributedFold")
def convert_time_fold(spec: LayerSpec) -> Converted:
    """Synthetic layer made by the reader for ``TimeDistributed(model)``."""
    return Converted(FoldTime(), input_layouts=L.KERAS, output_layouts=L.KERAS)


@converter("TimeDistributedUnfold")
def convert_time_unfold(spec: LayerSpec) -> Converted:
    """Synthetic layer made by the reader for ``TimeDistributed(model)``."""
    return Converted(UnfoldTime(), input_layouts=L.KERAS, output_layouts=L.KERAS)


# -- SpectralNormalization ----------------------------------------------------------------------------------------
def split_spectral_weights(spec: LayerSpec) -> tuple[list, list, list]:
    """(the wrapped layer's weights, the wrapper's aliases of its kernel, ``vector_u``). ``.h5`` stores the layer's
    weights then ``vector_u``; ``.keras`` the wrapper's ``vars`` (the kernel it aliases, then ``vector_u``) and
    the layer's ``layer/vars``."""
    handles = spec.weight_handles
    if any(w.name.startswith("layer/") for w in handles):
        own = [w for w in handles if not w.name.startswith("layer/")]
        return [w for w in handles if w.name.startswith("layer/")], own[:-1], own[-1:]
    is_u = [w.name.split("/")[-1].split(":")[0] == "vector_u" for w in handles]
    return [w for w, u in zip(handles, is_u) if not u], [], [w for w, u in zip(handles, is_u) if u]


@converter("SpectralNormalization", defaults={"power_iterations": NO_EFFECT})  # the training-time power method
def convert_spectral_normalization(spec: LayerSpec) -> Converted:
    """At inference the wrapped layer runs with its stored kernel, the one the last training step normalized
    ([K3] ``normalization/spectral_normalization.py`` ``call``: ``if training:`` renormalize; [TFK] likewise):
    converted as the wrapped layer by its own converter. ``vector_u`` (the power method's state) only serves
    training; a ``.keras`` alias of the kernel must equal the layer's. Train mode would renormalize: not
    reproduced."""
    inner = spec.config.get("layer") or {}
    class_name = inner.get("class_name")
    if not isinstance(class_name, str):
        spec.fail("the wrapped layer has no class_name")
    fn = converter_for(class_name)
    if fn is None:
        spec.fail(f"the wrapped layer {class_name} has no converter")
    own, aliases, state = split_spectral_weights(spec)
    if len(state) != 1 or len(aliases) > 1 or not own:
        spec.fail(f"unexpected SpectralNormalization weights: {', '.join(w.name for w in spec.weight_handles)}")
    assert spec._load is not None
    load = spec._load
    read: dict[int, object] = {}

    def remembering(weight, lazy=False):  # the wrapped layer's reads, to compare the alias with its kernel
        read[id(weight)] = value = load(weight, lazy=lazy)
        return value

    layer = replace(spec, name=f"{spec.name}/{inner.get('config', {}).get('name', class_name)}",
                    class_name=class_name, config=inner.get("config") or {}, weight_handles=own, _load=remembering)
    converted = fn(layer)
    if not spec.input_dtypes[0].is_floating_point:  # [K3] ``ops.cast(output, inputs.dtype)``: an Embedding's
        # float vectors come out truncated to the integer dtype of its token ids, as Keras returns them
        cast = Op("cast", [Slot(0), spec.input_dtypes[0]])
        converted = replace(converted, module=nn.Sequential(converted.module, cast))
    load(state[0])  # vector_u: training only
    for alias in aliases:
        kernel = read.get(id(own[0]))
        if kernel is None or not np.array_equal(np.asarray(load(alias)), np.asarray(kernel)):
            spec.fail(f"the stored kernel alias {alias.name} differs from the wrapped layer's {own[0].name}")
    return converted
