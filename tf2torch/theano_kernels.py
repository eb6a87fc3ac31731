"""Convolution kernels of models trained with Keras's Theano backend.

The trap: Theano's convolution is a true convolution (it flips the kernel), TensorFlow's and torch's are
cross-correlations. Keras 2.0-2.3 therefore flipped the spatial axes of every ``Conv1D`` / ``Conv2D`` /
``Conv3D`` / ``Conv2DTranspose`` kernel (and a ``ConvLSTM2D``'s recurrent kernel) when it loaded an ``.h5`` file
whose ``backend`` attribute is ``theano`` into TensorFlow (keras 2.3.1 ``keras/engine/saving.py``:
``_need_convert_kernel`` and ``conv_utils.convert_kernel``). tf_keras and Keras 3 no longer do: they run such a
file with unflipped kernels, which is not the model that was trained.

tf2torch converts the file as today's Keras reads it (so that it matches Keras, and ``verify`` can show it) and
says so in a notice; ``flip_theano_kernels=True`` (``--flip-theano-kernels``) converts the model as it was
trained, flipping the same kernels Keras 2.3 flipped. Verification then flips them on the Keras side too, with
its own code (``verify/keras_side.py``: a second implementation, so that one cannot vouch for the other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import registry
from .errors import Tf2TorchError
from .graph import KerasGraph, Weight, WeightFunction


def flip_kernel(kernel: np.ndarray) -> np.ndarray:
    """Reverse every spatial axis of a Keras kernel (all but the last two, the channel axes): Keras 2.3's
    ``conv_utils.convert_kernel``, its own inverse."""
    if not 3 <= kernel.ndim <= 5:
        raise Tf2TorchError(f"a convolution kernel of shape {kernel.shape} cannot be flipped (expected 3 to 5 axes)")
    return np.ascontiguousarray(kernel[(slice(None, None, -1),) * (kernel.ndim - 2)])


def short_name(name: str) -> str:
    """``conv2d_1/kernel:0`` → ``kernel``."""
    return name.split("/")[-1].split(":")[0]


def flipped_kinds(layer_class: str, config: dict[str, Any]) -> tuple[str, ...]:
    """The kinds of weight Keras 2.3 flipped in a layer of ``layer_class`` (keras 2.3.1 saving.py
    ``conv_layers``, with the Keras 1 spellings Keras 2 still read), as its converter declares them
    (``theano_flip``); a wrapper declaring ``"inner"`` (TimeDistributed) flips what its inner layer would."""
    flip = registry.facts(layer_class).theano_flip
    if flip == "inner":
        inner = config.get("layer")
        return flipped_kinds(str(inner.get("class_name")), inner.get("config") or {}) if isinstance(inner, dict) else ()
    return tuple(flip)


def flipped_weights(graph: KerasGraph) -> list[tuple[str, Weight]]:
    """(layer key, weight) of every kernel Keras 2.3 flipped for a Theano-trained file: the ``kernel`` (its
    ``weights[0]``), and a ConvLSTM2D's ``recurrent_kernel`` (``weights[1]``)."""
    found = []
    for key, layer in graph.layers.items():
        kinds = flipped_kinds(layer.class_name, layer.config)
        found += [(key, weight) for weight in layer.weights if kinds and short_name(weight.name) in kinds]
    return found


def theano_notice(graph: KerasGraph, flip: bool) -> str | None:
    """What the user is told about a Theano-trained file; refuses ``flip`` for a file trained with another
    backend."""
    backend = (graph.trained_with or "").lower()
    if flip and backend not in ("", "theano"):
        raise Tf2TorchError(f"--flip-theano-kernels: the file says it was trained with the {backend} backend, whose "
                            "convolutions are cross-correlations like torch's; there is nothing to flip")
    kernels = flipped_weights(graph)
    if not kernels or (backend != "theano" and not flip):
        return None
    names = ", ".join(key for key, _ in kernels[:3]) + (", ..." if len(kernels) > 3 else "")
    if flip:
        return (f"flipped the spatial axes of {len(kernels)} convolution kernel(s) ({names}) as Keras 2.0-2.3 did "
                "for a model trained with Theano (true convolution); today's Keras runs them unflipped")
    return (f"the file was trained with Keras's Theano backend, whose convolutions flip the kernel: Keras 2.0-2.3 "
            f"flipped these {len(kernels)} kernel(s) ({names}) when loading it, tf_keras and Keras 3 do not, and "
            "this conversion matches them; pass --flip-theano-kernels (flip_theano_kernels=True) for the model as "
            "it was trained")


def with_flipped_kernels(graph: KerasGraph) -> None:
    """Make ``graph.load_weight`` return the Theano kernels flipped (the file is not changed)."""
    targets = {id(weight) for _, weight in flipped_weights(graph)}
    inner = graph.weight_source
    if inner is None or not targets:
        return

    def load(weight: Weight) -> Any:
        stored = inner.load(weight)
        return flip_kernel(np.asarray(stored)) if id(weight) in targets else stored

    graph.weight_source = WeightFunction(load)
