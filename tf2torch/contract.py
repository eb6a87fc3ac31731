"""The contract between the assembler and a converter: what a converter receives (``LayerSpec``: the call's
config, call arguments, input shapes, layouts and dtypes, and access to the stored weights) and what it returns
(``Converted``), the weight helpers every converter uses, and the ONE strictness check (``run_converter``): a
config key, a call argument or an operation argument that no converter read is refused by name unless it holds
the value its converter declared as the default.

The trap it guards: Keras options nobody implemented used to be dropped silently (a converted model that differs
from Keras without a word). It imports nothing of tf2torch but the leaf modules ``graph``, ``errors``,
``stand_ins`` and ``layout``; the facts a converter declares (``Facts``) come from the registry
(``tf2torch/registry.py``), which passes them in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import ConversionError
from .graph import Weight, keras_major
from .layout import Layout
from .stand_ins import EXAMPLE_BATCH

MAX_DECLARED_ELEMENTS = 1 << 30  # one layer output of the example batch: 4 GiB of float32, past real models

# Config keys that never change what a layer computes at inference: names, training-time settings
# (initializers, regularizers, constraints, seeds) and the shapes Keras records for building. ``dtype`` is read
# by the assembler (the layer's compute dtype), not by converters.
INFERENCE_NEUTRAL_KEYS = frozenset({
    "name", "trainable", "dtype", "autocast", "seed", "build_config", "batch_input_shape", "batch_shape",
    "input_shape", "input_dim", "input_length", "_keras_op", "supports_masking",
})
INFERENCE_NEUTRAL_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


class TrackedConfig(dict):
    """A layer config that records which keys its converter read, so an option nobody implemented is refused
    instead of silently ignored. Reading a key (``cfg[k]``, ``cfg.get(k)``, iterating items/values) counts;
    asking ``k in cfg`` does not."""

    def __init__(self, data: Any = (), owner: str = "", is_config: bool = True):
        super().__init__(data)
        self.read: set[str] = set()
        self.owner = owner
        self.is_config = is_config
        ledger = _LEDGER[-1] if _LEDGER else None
        if ledger is not None:
            ledger.append(self)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def items(self):  # type: ignore[override]
        self.read.update(self.keys())
        return super().items()

    def values(self):  # type: ignore[override]
        self.read.update(self.keys())
        return super().values()

    def pop(self, key: str, *default: Any) -> Any:
        self.read.add(key)
        return super().pop(key, *default)

    def unread(self) -> list[str]:
        return [k for k in self.keys() if k not in self.read]


_LEDGER: list[list[TrackedConfig]] = []


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
    _load: Callable[..., Any] | None = None  # (weight, lazy=False) -> np.ndarray, or a StoredArray when lazy
    # The example tensors the layer is being built with, per input one per stand-in size (as delivered, before
    # layout changes): for converters of graph functions (a TF ``While`` body) that build their own sub-module
    # on the values their inputs take.
    input_examples: list[list[torch.Tensor]] = field(default_factory=list, repr=False)
    # ``assemble.assemble_subgraph``, given by the assembler: how such a converter builds an IR sub-graph (a loop's
    # body, a traced call) on those values without importing the assembler.
    assemble_subgraph: Callable[..., Any] | None = field(default=None, repr=False)
    # The raw TF attributes a converter has read (``ops.tf_raw.attr``): the rest are refused by name afterwards.
    attributes_read: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.config, TrackedConfig):
            self.config = TrackedConfig(self.config, self.class_name)
        if not isinstance(self.call_kwargs, TrackedConfig):
            self.call_kwargs = TrackedConfig(self.call_kwargs, self.class_name, is_config=False)

    @property
    def keras_major(self) -> int:
        return keras_major(self.keras_version)

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        return self.input_shapes[0]

    @property
    def input_layout(self) -> Layout:
        return self.input_layouts[0]

    def weights(self, expected: int | None = None, lazy: bool = False) -> list[Any]:
        """The layer's stored weights in Keras order (``layer.weights``), read from the file now; ``lazy=True``:
        ``graph.StoredArray``s the converter reads in blocks of rows (a large kernel transformed without a second
        whole copy), each counted as read once all the same."""
        if expected is not None and len(self.weight_handles) != expected:
            self.fail(f"expected {expected} stored weights, found {len(self.weight_handles)} "
                      f"({', '.join(w.name for w in self.weight_handles) or 'none'})")
        assert self._load is not None
        return [self._load(w, lazy=True) if lazy else self._load(w) for w in self.weight_handles]

    def check_shapes(self, arrays: Sequence[np.ndarray], expected: Sequence[tuple[int | None, ...] | None],
                     names: Sequence[str] | None = None) -> None:
        """Refuse weights whose shape disagrees with what the config implies (None: any size on that axis;
        an entry None: not checked). Keras itself refuses to load such a file."""
        for i, (array, shape) in enumerate(zip(arrays, expected)):
            if shape is None:
                continue
            ok = array.ndim == len(shape) and all(s is None or int(s) == d for s, d in zip(shape, array.shape))
            if not ok:
                name = names[i] if names else (self.weight_handles[i].name if i < len(self.weight_handles)
                                               else f"weight {i}")
                wanted = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
                self.fail(f"the config implies {name} of shape {wanted}, the file stores {tuple(array.shape)}; "
                          "the config and the weights disagree (Keras refuses to load this file)")

    def fail(self, message: str) -> "NoReturn":  # type: ignore[name-defined]  # noqa: F821
        raise ConversionError(self.name, self.class_name, message)

    def check_declared_size(self, expansion: float) -> None:
        """Refuse, before anything is built or run, a config that makes the layer's output ``expansion`` times
        its input (an open dimension counted as 1) beyond ``MAX_DECLARED_ELEMENTS`` for the example batch: a
        hostile ``UpSampling2D(size=100000)`` would otherwise allocate it while the model is assembled."""
        elements = EXAMPLE_BATCH * float(np.prod([d if d is not None else 1 for d in self.input_shape[1:]]))
        if elements * expansion > MAX_DECLARED_ELEMENTS:
            self.fail(f"its config makes an output of {elements * expansion:,.0f} values for a batch of "
                      f"{EXAMPLE_BATCH} (more than {MAX_DECLARED_ELEMENTS:,}); the file is damaged, or the "
                      "model is too large to build here")


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
    # (``Facts.mask``), ``"propagate"``, ``"merge"``, ``"none"``, or a module computing the
    # mask from the layer's inputs; a list gives one of "propagate"/"none" per output (missing ones: "none").
    takes_mask: bool | str = False
    output_mask: str | nn.Module | list[str] | None = None
    # [K3] MultiHeadAttention removes the masks of the tensors it is called on (``set_keras_mask(query, None)``),
    # so later layers reading those same tensors see no mask; True repeats that for Keras 3 files.
    clears_input_masks: bool = False


def _neutral(key: str) -> bool:
    return key in INFERENCE_NEUTRAL_KEYS or key.endswith(INFERENCE_NEUTRAL_SUFFIXES)


class AnyOf(tuple):
    """A ``defaults`` entry that accepts any of several values (``AnyOf((None, "linear"))``)."""


class _NoEffect:
    """A ``defaults`` entry for a key whose value cannot change the converted model (a build shape Keras records,
    a dropout rate at inference); say why next to it."""

    def __repr__(self) -> str:
        return "NO_EFFECT"


NO_EFFECT = _NoEffect()


def _accepts(value: Any, default: Any) -> bool:
    """``value`` is what ``default`` (a declared default, ``AnyOf`` or ``NO_EFFECT``) accepts; an array never is
    (its truth is ambiguous), nor a value that cannot be compared."""
    if default is NO_EFFECT:
        return True
    if isinstance(value, np.ndarray):
        return False
    if isinstance(default, AnyOf):
        return any(_accepts(value, d) for d in default)
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    try:
        return bool(value == default)
    except Exception:  # a value that refuses comparison is not the default
        return False


# Call arguments every converter may leave unread when they hold these values.
NEUTRAL_CALL_ARGS = {"training": AnyOf((None, False))}


@dataclass
class Facts:
    """What a converter declares about the classes or operations it is registered for, besides its function.

    ``defaults``: config keys (or, for an operation, arguments) it does not read, each with the only value it
    accepts. ``training_sensitive``: a ``training=True`` call computes something else than inference (dropout,
    noise, batch statistics, augmentation). ``binds_arguments``: an operation, whose converter checks its own
    arguments, attributes or options with ``refuse_unread``; its node config is bookkeeping. ``mask``: how the
    outputs carry the first input's Keras mask when the converter does not say (``"propagate"``, ``"merge"``,
    ``"merge_axis"``: a merge along the config's ``axis``; None drops it). ``regularizers``: regularizer key → the
    endings of the torch parameter names it applies to; ``several_parameters``: the keys that may apply to more
    than one parameter. ``theano_flip``: the weight kinds Keras 2.3 flipped for a Theano-trained file
    (``"kernel"``, ``"recurrent_kernel"``), or ``"inner"`` for a wrapper whose inner layer (``config["layer"]``)
    decides.

    Facts that verify and transfer read (through ``tf2torch.api.layer_facts``), so that they hold no table of
    Keras class names (issue #21): ``arithmetic``: the config keys that decide what the layer computes, shown for
    the first layer a verify report finds wrong (empty: every short scalar key). ``vocabulary``: the config key
    bounding the integer ids the layer takes (``Embedding.input_dim``); verify's random ids stay below it, since
    Keras checks nothing and torch raises. ``weight_kind``: what ``tf2torch.transfer`` calls the layer's weights
    (``"conv"``, ``"dense"``, ``"lstm"``...; None: transfer matches them by shape alone). ``flattens``: the layer
    flattens every axis but the batch in its ``data_format``'s order, so a Dense after it reads its rows in that
    order (transfer permutes them)."""

    defaults: dict[str, Any] = field(default_factory=dict)
    training_sensitive: bool = False
    binds_arguments: bool = False
    mask: str | None = None
    regularizers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    several_parameters: frozenset[str] = frozenset()
    theano_flip: tuple[str, ...] | str = ()
    activity_penalty: bool = False  # the layer is an activity regularizer itself (``l1`` / ``l2`` in its config)
    arithmetic: tuple[str, ...] = ()
    vocabulary: str | None = None
    weight_kind: str | None = None
    flattens: bool = False


NO_FACTS = Facts()
FactsOf = Callable[[str], Facts]  # class or op spelling → its converter's facts (NO_FACTS when none)


def run_converter(fn: Callable[[LayerSpec], Converted], spec: LayerSpec, facts_of: FactsOf) -> Converted:
    """Run ``fn`` on ``spec`` and refuse the result if it left a config key, a call argument or an operation
    argument unread that is not at its declared default (``Facts.defaults``): a Keras option no converter
    implements must never be dropped silently. Every config made while converting (inner layers, cells) is
    checked the same way, against its own class's declared defaults."""
    created: list[TrackedConfig] = []
    _LEDGER.append(created)
    try:
        spec.config.read.clear()
        spec.call_kwargs.read.clear()
        converted = fn(spec)
    finally:
        _LEDGER.pop()
    facts = facts_of(spec.class_name)
    if facts.binds_arguments:  # an operation checks its own arguments, attributes or options (refuse_unread)
        return converted
    for cfg in [spec.config, *(c for c in created if c.is_config and c is not spec.config)]:
        owner = cfg.owner or spec.class_name
        refuse_unread(spec, cfg, facts_of(owner).defaults, "config key", owner)
    _refuse_unread_call_arguments(spec, facts)
    return converted


def refuse_unread(spec: LayerSpec, values: TrackedConfig, defaults: dict[str, Any], what: str,
                  owner: str | None = None) -> None:
    """The one check, for every domain: a key of ``values`` nobody read must be at its declared default (or, for
    a layer's config key, inference-neutral), else the conversion is refused naming it. ``what``: ``"config key"``
    (with the ``owner`` class), or an operation's ``"argument"`` (``ops/registry.py``), ``"attribute"`` (raw TF
    ops) or ``"option"`` (TFLite builtins)."""
    for key in values.unread():
        if what == "config key" and _neutral(key):
            continue
        value = dict.__getitem__(values, key)
        if key in defaults and _accepts(value, defaults[key]):
            continue
        if owner is None:  # an operation's argument, attribute or option
            spec.fail(f"{what} {key}={value!r} is not supported")
        spec.fail(f"config key {key!r} = {value!r} is not supported by tf2torch's {owner} converter "
                  "(it would be ignored, so the converted model would differ from Keras)")


def _refuse_unread_call_arguments(spec: LayerSpec, facts: Facts) -> None:
    """Call arguments of a layer (``training``, ``mask``, constants among the inputs) its converter left unread."""
    for key in spec.call_kwargs.unread():
        if key == "__args__":
            _refuse_constant_inputs(spec, dict.__getitem__(spec.call_kwargs, key))
        if key.startswith("__"):
            continue
        value = dict.__getitem__(spec.call_kwargs, key)
        if key in NEUTRAL_CALL_ARGS and _accepts(value, NEUTRAL_CALL_ARGS[key]):
            continue
        if key == "training" and not facts.training_sensitive:
            continue
        if key == "training" and spec.keras_major >= 3:
            # Keras 3 replaces a recorded training value with the caller's whenever the caller passes one, and
            # predict() passes False ([K3] models/functional.py ``operation_fn``): its augmentation layers record
            # their default training=True, and even Dropout(x, training=True) drops nothing in predict()
            continue
        if key == "training" and value is True:
            spec.fail("the layer is called with training=True in the saved model, so Keras runs its training "
                      "behaviour (dropout, noise, batch statistics) even when predicting; tf2torch converts "
                      "inference only: rebuild the model without training=True in that call and save it again")
        spec.fail(f"the layer is called with {key}={value!r}, which tf2torch's {spec.class_name} converter does "
                  "not implement")


def _refuse_constant_inputs(spec: LayerSpec, template: Any) -> None:
    """A Keras 3 layer called with a constant among its positional inputs (``Add()([x, ops.convert_to_tensor(c)])``:
    the reader keeps it in ``__args__``, ``{"__tensor__": i}`` standing for each tensor input) that its converter
    did not read: it would be dropped (``Add`` of ``x`` alone is ``x``), so it is refused. ``None`` is an argument
    not given."""
    if isinstance(template, list):
        for value in template:
            _refuse_constant_inputs(spec, value)
    elif template is not None and not (isinstance(template, dict) and "__tensor__" in template):
        if isinstance(template, dict) and template.get("class_name") in ("__tensor__", "__numpy__"):
            template = (template.get("config") or {}).get("value")
        spec.fail(f"the layer is called with the constant {str(template)[:80]} among its inputs (a tensor made "
                  "outside the model), which tf2torch's converter would drop: make it a weight of a layer, or "
                  "an input of the model")


_WEIGHT_DTYPE: list[torch.dtype] = [torch.float32]


@contextlib.contextmanager
def weight_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Floating weights made by ``to_tensor`` while converting a layer are in ``dtype`` (its compute dtype)."""
    _WEIGHT_DTYPE.append(dtype)
    try:
        yield
    finally:
        _WEIGHT_DTYPE.pop()


_CONV_CHANNELS_LAST: list[bool] = [False]


@contextlib.contextmanager
def conv_weights_channels_last(flag: bool) -> Iterator[None]:
    """2-D convolution weights made by ``as_conv_weight`` while converting are in channels-last memory (the
    module runs its conv trunk channels-last, ``tf2torch/memory_format.py``)."""
    _CONV_CHANNELS_LAST.append(flag)
    try:
        yield
    finally:
        _CONV_CHANNELS_LAST.pop()


_NUMPY_FLOAT = {torch.float16: np.dtype(np.float16), torch.float32: np.dtype(np.float32),
                torch.float64: np.dtype(np.float64)}


def weight_array_dtype(stored: np.dtype) -> np.dtype:
    """The dtype ``to_tensor`` gives a weight stored as ``stored`` (the converting layer's floating dtype for a
    float, integers as they are), for a transform that builds its result in that dtype from the start."""
    stored = np.dtype(stored)
    return _NUMPY_FLOAT[_WEIGHT_DTYPE[-1]] if stored.kind == "f" else stored


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """A contiguous tensor in the converting layer's floating dtype (float32 unless the layer computes in
    float64), or the array's integer type; shares the array's memory when it already has that dtype, so no extra
    copy of a large weight is made."""
    array = np.ascontiguousarray(array)
    root = array
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.nbytes > array.nbytes:  # a slice of a larger array: copy, or the whole array would stay alive
        array = array.copy()
    tensor = torch.from_numpy(array)
    if tensor.is_floating_point() and tensor.dtype != _WEIGHT_DTYPE[-1]:
        tensor = tensor.to(_WEIGHT_DTYPE[-1])
    return tensor


def as_parameter(array: np.ndarray) -> nn.Parameter:
    return nn.Parameter(to_tensor(array), requires_grad=True)


def as_conv_weight(weight: np.ndarray) -> nn.Parameter:
    """A convolution's (out, in, *spatial) weight. A 2-D one in a module that runs channels-last is laid out in
    memory as (out, H, W, in), torch's ``channels_last`` (the same shape and values): oneDNN takes it as it is,
    where a contiguous weight is first copied to channels-last on every call (ResNet50 at batch 1: 20% of the
    time). Made in the one copy that turns Keras's (H, W, in, out) kernel around anyway."""
    if (weight.ndim != 4 or not _CONV_CHANNELS_LAST[-1] or weight.shape[1] == 1
            or weight.shape[2] * weight.shape[3] == 1):
        return as_parameter(weight)  # 1x1 and depthwise weights are channels-last as they are (equal strides)
    return nn.Parameter(to_tensor(weight.transpose(0, 2, 3, 1)).permute(0, 3, 1, 2), requires_grad=True)
