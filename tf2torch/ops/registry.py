"""The operations registry: one converter per operation, reached through front doors (spellings).

An op node's ``Layer.class_name`` is its spelling: ``keras.ops.<OpClass>`` for a Keras 3 op node
(``keras.ops.Add``), ``tf.<symbol>`` for a tf_keras ``TFOpLambda`` / ``SlicingOpLambda`` (``tf.math.multiply``,
``tf.__operators__.add``). A Keras class name never holds a dot, so a dotted name is always an op, and a user
layer called ``Add`` never reaches an op converter (nor an op a layer converter). Another front door — raw TF
graph ops, say ``tf.raw.AddV2`` — is one more module under ``tf2torch/ops/`` calling ``spelling(...)``.

A spelling declares the front door's signature: parameter names in positional order, renamed to the operation's
own names (``input_tensor:x``), with their defaults. Every argument of a call is bound by name; a converter
reads what it implements through ``OpCall.arg``; an argument nobody read whose value is not its default refuses
the conversion, by name (``contract.refuse_unread``, the one check of every domain). Each spelling whose
operation has a converter is an entry of the one registry (``tf2torch/registry.py``, domain ``keras.ops``).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .. import layout as L
from ..contract import Converted, LayerSpec, TrackedConfig, refuse_unread
from ..registry import register

OpFn = Callable[["OpCall"], Converted]
OPS: dict[str, OpFn] = {}
_NO_DEFAULT = object()


@dataclass
class Spelling:
    """One front door's name for an operation."""

    name: str
    op: str
    params: list[str]  # operation parameter names, in the front door's positional order
    renames: dict[str, str]  # front-door name → operation parameter name
    defaults: dict[str, Any]  # operation parameter name → default (absent: required)
    fixed: dict[str, Any] = field(default_factory=dict)  # arguments implied by the spelling (reduce="mean")
    varargs: str | None = None  # the parameter that collects the positional arguments (``*operands``)


SPELLINGS: dict[str, Spelling] = {}


def is_op(class_name: str) -> bool:
    """Op nodes are spelled ``keras.ops.Name`` or ``tf.…``; a user's own class may be spelled ``module.Name``."""
    return class_name.startswith(("keras.ops.", "tf."))


def _parse_signature(signature: str) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    params, renames, defaults = [], {}, {}
    for part in [p.strip() for p in signature.split(",") if p.strip()]:
        name, _, default = part.partition("=")
        outer, _, inner = name.strip().lstrip("*").partition(":")
        op_name = inner or outer
        if inner:
            renames[outer] = inner
        params.append(op_name)
        if default:
            defaults[op_name] = ast.literal_eval(default.strip())
    return params, renames, defaults


def spelling(name: str, op: str, signature: str, **fixed: Any) -> None:
    """Declare that the op node spelled ``name`` is operation ``op`` called with ``signature``
    (``"input_tensor:x, axis=None, keepdims=False, name=None"``: positional order, renames, defaults)."""
    if name in SPELLINGS:
        raise ValueError(f"the op spelling {name} is already registered (operation {SPELLINGS[name].op})")
    params, renames, defaults = _parse_signature(signature)
    varargs = params[0] if signature.strip().startswith("*") else None
    SPELLINGS[name] = Spelling(name, op, params, renames, defaults, fixed, varargs)
    if op in OPS:
        _register(SPELLINGS[name])


def _register(sp: Spelling) -> None:
    """The spelling's entry in the one registry (domain ``keras.ops``), once its operation has a converter."""
    register(sp.name, convert_op, op=sp.op)


def operation(key: str) -> Callable[[OpFn], OpFn]:
    """Register ``fn`` as the converter of operation ``key`` (whatever front door the node came through)."""

    def register(fn: OpFn) -> OpFn:
        if key in OPS:
            raise ValueError(f"operation {key} already has a converter ({OPS[key].__name__})")
        OPS[key] = fn
        for sp in SPELLINGS.values():
            if sp.op == key:
                _register(sp)
        return fn

    return register


class TensorArg:
    """An argument that is the ``index``-th input tensor of the node."""

    def __init__(self, index: int):
        self.index = index

    def __repr__(self) -> str:
        return f"<tensor {self.index}>"


def decode(value: Any) -> Any:
    """A call template (from the reader) → Python values: tensors, slices as ``(start, stop, step)``, ``...``."""
    if isinstance(value, dict):
        if "__tensor__" in value:
            return TensorArg(int(value["__tensor__"]))
        if "__slice__" in value:
            return tuple(decode(v) for v in value["__slice__"])
        if "__ellipsis__" in value:
            return Ellipsis
        if "__array__" in value:
            return np.asarray(value["__array__"], dtype=value.get("dtype"))
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def has_tensor(value: Any) -> bool:
    if isinstance(value, TensorArg):
        return True
    if isinstance(value, (list, tuple)):
        return any(has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(has_tensor(v) for v in value.values())
    return False


# Keys of the op node's own config that are bookkeeping, not arguments.
IGNORED_CONFIG = {"name", "trainable", "function", "_keras_op"}


@dataclass
class OpCall:
    """One op node as its converter sees it: bound arguments by the operation's parameter names."""

    spec: LayerSpec
    spelling: Spelling
    args: dict[str, Any]
    read: set[str] = field(default_factory=set)

    # -- arguments ---------------------------------------------------------------------------------------
    def arg(self, name: str, default: Any = _NO_DEFAULT) -> Any:
        self.read.add(name)
        if name in self.args:
            return self.args[name]
        if name in self.spelling.defaults:
            return self.spelling.defaults[name]
        if default is not _NO_DEFAULT:
            return default
        self.fail(f"argument {name} is missing")

    def has(self, name: str) -> bool:
        return name in self.args

    def constant(self, name: str, default: Any = _NO_DEFAULT) -> Any:
        """An argument that must be a constant (an axis, a shape...)."""
        value = self.arg(name, default)
        if has_tensor(value):
            self.fail(f"argument {name} is a tensor computed in the model; only constants are supported there")
        return value

    def tensor(self, name: str) -> TensorArg:
        value = self.arg(name)
        if not isinstance(value, TensorArg):
            self.fail(f"argument {name} is {value!r}, a tensor was expected")
        return value

    @property
    def op(self) -> str:
        return self.spelling.op

    @property
    def keras_major(self) -> int:
        return self.spec.keras_major

    # -- the node's tensors ------------------------------------------------------------------------------
    def rank(self, t: TensorArg) -> int:
        return len(self.spec.input_shapes[t.index])

    def layout(self, t: TensorArg) -> L.Layout:
        return L.normalize(self.spec.input_layouts[t.index], self.rank(t))

    def dtype(self, t: TensorArg) -> torch.dtype:
        return self.spec.input_dtypes[t.index]

    def shape(self, t: TensorArg) -> tuple[int | None, ...]:
        """The Keras shape (batch None)."""
        return self.spec.input_shapes[t.index]

    @property
    def n_inputs(self) -> int:
        return len(self.spec.input_shapes)

    def fail(self, message: str) -> Any:
        self.spec.fail(message)


def bind(spec: LayerSpec, sp: Spelling) -> OpCall:
    """Bind positional arguments, keyword arguments and (Keras 3) the op's config to parameter names."""
    args: dict[str, Any] = {}
    positional = decode(spec.call_kwargs.get("__args__") or [])
    keywords = decode(spec.call_kwargs.get("__kwargs__") or {})
    if sp.varargs:
        positional = [positional]
    if len(positional) > len(sp.params):
        spec.fail(f"{len(positional)} positional arguments given, the operation takes {len(sp.params)}")
    for name, value in zip(sp.params, positional):
        args[name] = value
    sources = [("argument", keywords)]
    if sp.name.startswith("keras.ops."):
        sources.append(("config key", {k: decode(v) for k, v in spec.config.items() if k not in IGNORED_CONFIG}))
    for what, values in sources:
        for key, value in values.items():
            if key == "name":
                continue
            name = sp.renames.get(key, key)
            if name not in sp.params:
                spec.fail(f"{what} {key}={value!r} is not supported by tf2torch's {sp.op} operation")
            args[name] = value
    args.update(sp.fixed)
    return OpCall(spec, sp, TrackedConfig(args, sp.op, is_config=False))


def convert_op(spec: LayerSpec) -> Converted:
    """The converter of every op node: bind the call, run the operation's converter, refuse unread arguments."""
    sp = SPELLINGS[spec.class_name]
    call = bind(spec, sp)
    if spec.class_name.startswith("tf.") and spec.config.get("dtype") not in (None, "float32"):
        spec.fail(f"dtype policy {spec.config.get('dtype')!r} is not supported")
    converted = OPS[sp.op](call)
    call.args.read.update(call.read)
    call.args.read.update(sp.fixed)
    refuse_unread(spec, call.args, sp.defaults, "argument")
    if converted.output_mask is None:
        converted.output_mask = "none"
    return converted


def converter_for(class_name: str) -> Callable[[LayerSpec], Converted] | None:
    """The converter of an operation's spelling (``convert_op``), or None when it has none."""
    sp = SPELLINGS.get(class_name)
    if sp is None or sp.op not in OPS:
        return None
    return convert_op
