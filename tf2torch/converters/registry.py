"""The converter registry: Keras class name → a function that builds the torch module for one layer.

A converter is a function of a ``LayerSpec`` (config, weights, input shapes and layouts) that returns a
``Converted`` (the module, the layouts it wants its inputs in, the layouts of its outputs, and how it
takes and gives masks). It never opens a
file and never imports TensorFlow. Registering the same class name twice is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConversionError
from ..graph import Weight, keras_major
from ..layout import Layout

ConverterFn = Callable[["LayerSpec"], "Converted"]
CONVERTERS: dict[str, ConverterFn] = {}


@dataclass
class LayerSpec:
    """Everything a converter may know about one Keras layer (at its first call)."""

    name: str
    class_name: str
    config: dict[str, Any]
    input_shapes: list[tuple[int | None, ...]]
    input_layouts: list[Layout]
    input_dtypes: list[torch.dtype]
    keras_version: str
    weight_handles: list[Weight] = field(default_factory=list)
    call_kwargs: dict[str, Any] = field(default_factory=dict)
    tensor_kwarg_names: list[str] = field(default_factory=list)
    _load: Callable[[Weight], np.ndarray] | None = None

    @property
    def keras_major(self) -> int:
        return keras_major(self.keras_version)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self.input_shapes[0]

    @property
    def input_layout(self) -> Layout:
        return self.input_layouts[0]

    def weights(self, expected: int | None = None) -> list[np.ndarray]:
        """The layer's stored weights in Keras order (``layer.weights``), read from the file now."""
        if expected is not None and len(self.weight_handles) != expected:
            self.fail(f"expected {expected} stored weights, found {len(self.weight_handles)} "
                      f"({', '.join(w.name for w in self.weight_handles) or 'none'})")
        assert self._load is not None
        return [self._load(w) for w in self.weight_handles]

    def fail(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        raise ConversionError(self.name, self.class_name, message)


@dataclass
class Converted:
    """A converter's result. ``input_layouts``: None takes the inputs as they come; a single layout applies to
    every input. ``output_layouts``: None means the layout of the (first) input as delivered."""

    module: nn.Module
    input_layouts: Layout | Sequence[Layout] | None = None
    output_layouts: Layout | Sequence[Layout] | None = None
    # Masks (Keras ``mask_zero`` / ``Masking``): ``takes_mask=True`` passes the first input's mask as
    # ``mask=`` (a bool tensor shaped like the Keras input without its last axis); ``"per_input"`` passes
    # ``masks=[...]`` aligned with the positional inputs. ``output_mask``: None follows the Keras class
    # (``assemble.PROPAGATES_MASK``), ``"propagate"``, ``"merge"``, ``"none"``, or a module computing the
    # mask from the layer's inputs; a list gives one of "propagate"/"none" per output (missing ones: "none").
    takes_mask: bool | str = False
    output_mask: str | nn.Module | list[str] | None = None
    # [K3] MultiHeadAttention removes the masks of the tensors it is called on (``set_keras_mask(query, None)``),
    # so later layers reading those same tensors see no mask; True repeats that for Keras 3 files.
    clears_input_masks: bool = False


def converter(*class_names: str, replace: bool = False) -> Callable[[ConverterFn], ConverterFn]:
    """Register ``fn`` as the converter of each Keras class in ``class_names``."""

    def register(fn: ConverterFn) -> ConverterFn:
        for name in class_names:
            if name in CONVERTERS and not replace:
                raise ValueError(f"a converter for {name} is already registered ({CONVERTERS[name].__name__})")
            CONVERTERS[name] = fn
        return fn

    return register


def converter_for(class_name: str) -> ConverterFn | None:
    """The converter of a layer class, or of an op node (a dotted name: ``tf2torch.ops``, unless the user
    registered a converter for that very spelling)."""
    if "." in class_name and class_name not in CONVERTERS:
        from .. import ops

        return ops.converter_for(class_name)
    return CONVERTERS.get(class_name)


def describe_converter(class_name: str) -> str | None:
    """Which converter handles ``class_name``: ``conv.convert_conv2d``, ``op add`` for an op node, or
    ``custom my_module.convert_scale`` for one registered outside tf2torch (None: no converter)."""
    if "." in class_name and class_name not in CONVERTERS:
        from .. import ops

        spelling = ops.SPELLINGS.get(class_name)
        return f"op {spelling.op}" if spelling is not None and spelling.op in ops.OPS else None
    fn = CONVERTERS.get(class_name)
    if fn is None:
        return None
    if is_custom(fn):
        return f"custom {fn.__module__}.{fn.__qualname__}"
    return f"{fn.__module__.rsplit('.', 1)[-1]}.{fn.__name__}"


def is_custom(fn: ConverterFn) -> bool:
    """A converter registered by the user (``@tf2torch.register``), not shipped with tf2torch."""
    return not str(getattr(fn, "__module__", "")).startswith("tf2torch.")


def custom_converters(class_names: Sequence[str]) -> dict[str, str]:
    """The classes among ``class_names`` converted by a user's converter → that converter's name."""
    used = {}
    for name in class_names:
        fn = CONVERTERS.get(name)
        if fn is not None and is_custom(fn):
            used[name] = f"{fn.__module__}.{fn.__qualname__}"
    return used


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """A float32 (or the array's integer type) contiguous tensor; shares the array's memory when it already is
    contiguous float32, so no extra copy of a large weight is made."""
    array = np.ascontiguousarray(array)
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.nbytes > array.nbytes:  # a slice of a larger array: copy, or the whole array would stay alive
        array = array.copy()
    tensor = torch.from_numpy(array)
    if tensor.is_floating_point() and tensor.dtype != torch.float32:
        tensor = tensor.float()
    return tensor


def as_parameter(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(to_tensor(array), requires_grad=True)
