"""The one converter registry, keyed by (domain, name): every converter tf2torch ships or a user registers.

Domains and the node spellings (``Layer.class_name`` in the IR) that reach them:

- ``keras``: Keras layer classes by their registered name (``Dense``, ``my_package>Scale``, a user's
  ``module.Name``): ``converters/``;
- ``keras.ops``: Keras 3 op nodes (``keras.ops.Add``) and tf_keras ``TFOpLambda`` symbols (``tf.math.add``),
  the name being the whole spelling: ``ops/registry.py``;
- ``tf``: raw TensorFlow graph ops (``tf.raw>Conv2D``) and traced layers (``tf.traced>KerasLayer``): ``ops/``;
- ``tflite``: TensorFlow Lite builtins (``tflite>CONV_2D``): ``ops/tflite.py``.

Each entry is a ``Declaration``: the converter function and the facts declared with it (``contract.Facts``: the
defaults of what it does not read, mask policy, training sensitivity, regularizers, Theano kernel flipping), so
no module outside the converters holds a table of Keras class names. ``lookup`` is the one way to find a
converter, ``describe`` the one way to name it. The trap handled: a user's class spelled ``module.Name`` that
shares its bare name with a Keras layer must never reach Keras's converter (``registered_key``).

The registry imports nothing of the converters, not even lazily: the modules that look converters up
(``assemble``, ``support``, ``api``, whose ``register`` is ``tf2torch.register``) import ``tf2torch.converters`` and
``tf2torch.ops`` first, downwards, so every shipped converter is registered before the first lookup and before a
user's converter, whose clash with a shipped one is refused when it is registered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .contract import NO_FACTS, Converted, Facts, LayerSpec, run_converter

ConverterFn = Callable[[LayerSpec], Converted]
DOMAINS = ("keras", "keras.ops", "tf", "tflite")
OP_PREFIXES = ("keras.ops.", "tf.", "tflite>")  # op nodes' spellings (``keras.ops.Add``, ``tf.math.cumsum``,
# ``tf.raw>Conv2D``, ``tflite>CONV_2D``)


@dataclass
class Declaration:
    """One registered converter and what it declared about the class or operation it converts."""

    fn: ConverterFn
    facts: Facts = field(default_factory=Facts)
    op: str | None = None  # an operation's own name, for the spellings of ``ops/registry.py``


REGISTRY: dict[tuple[str, str], Declaration] = {}


def key_of(spelling: str) -> tuple[str, str]:
    """A node's spelling → its (domain, name) key."""
    if spelling.startswith("tflite>"):
        return "tflite", spelling[len("tflite>"):]
    if spelling.startswith("tf.") and ">" in spelling:
        return "tf", spelling[len("tf."):]  # ``raw>Conv2D``, ``traced>KerasLayer``
    if spelling.startswith(("keras.ops.", "tf.")):
        return "keras.ops", spelling
    return "keras", spelling


def spelling_of(key: tuple[str, str]) -> str:
    """The inverse of ``key_of``."""
    domain, name = key
    return {"tflite": "tflite>" + name, "tf": "tf." + name}.get(domain, name)


def register(spelling: str, fn: ConverterFn, facts: Facts | None = None, replace: bool = False,
             op: str | None = None) -> None:
    """Register ``fn`` for the node spelled ``spelling``; registering one twice is an error (``replace``
    overrides), except a user's converter over a shipped operation's spelling, which wins as it always did."""
    key = key_of(spelling)
    facts = facts or Facts()
    if is_op_key(spelling):  # an operation checks its own arguments; its node config is bookkeeping
        facts.binds_arguments = True
    existing = REGISTRY.get(key)
    if existing is not None and op is not None and is_custom(existing.fn) and not is_custom(fn):
        return  # the user registered this operation's spelling first: theirs wins
    if existing is not None and not replace and not (existing.op is not None and is_custom(fn)):
        raise ValueError(f"a converter for {spelling} is already registered ({existing.fn.__name__})")
    REGISTRY[key] = Declaration(fn, facts, op)


def converter(*class_names: str, replace: bool = False, defaults: dict[str, Any] | None = None,
              **facts: Any) -> Callable[[ConverterFn], ConverterFn]:
    """Register ``fn`` as the converter of each spelling in ``class_names`` (a Keras class, ``tf.raw>Op``,
    ``tflite>OP``...), with its facts (``contract.Facts``: ``training_sensitive=True``, ``mask="propagate"``...).

    ``defaults``: config keys the converter does not read, each with the only value it accepts (Keras's default
    for it). Any other key it leaves unread refuses the conversion by name (``contract.run_converter``)."""

    def decorate(fn: ConverterFn) -> ConverterFn:
        for name in class_names:
            register(name, fn, Facts(defaults=dict(defaults or {}), **facts), replace=replace)
        return fn

    return decorate


def is_op_key(class_name: str) -> bool:
    """An op node's spelling, not a layer class: a user's unregistered class is spelled ``module.Name``
    (``readers/config.py`` ``class_identity``), so a dot alone does not tell."""
    return class_name.startswith(OP_PREFIXES)


def custom_class(class_name: str) -> str | None:
    """The bare class name of a user's unregistered class spelled ``module.Name`` (``__main__.Attention``,
    ``keras_hub.src.models.gemma.rms_normalization.RMSNormalization``); None for anything else."""
    if is_op_key(class_name) or "." not in class_name or ">" in class_name:
        return None
    return class_name.rsplit(".", 1)[1]


def is_custom(fn: ConverterFn) -> bool:
    """A converter registered by the user (``@tf2torch.register``), not shipped with tf2torch."""
    return not str(getattr(fn, "__module__", "")).startswith("tf2torch.")


def registered_key(class_name: str) -> tuple[str, str] | None:
    """The key whose converter converts ``class_name``, or None: the spelling's own key (a Keras class, a
    ``Package>Name``, a ``module.Name``, an op spelling); for a user's ``module.Name`` class, else the bare
    ``Name`` when the user registered that (``@tf2torch.register("Name")``), never a converter tf2torch ships for
    Keras's class of that name."""
    key = key_of(class_name)
    if key in REGISTRY:
        return key
    bare = custom_class(class_name)
    if bare is not None and ("keras", bare) in REGISTRY and is_custom(REGISTRY["keras", bare].fn):
        return "keras", bare
    return None


def declaration(class_name: str) -> Declaration | None:
    key = registered_key(class_name)
    return REGISTRY[key] if key is not None else None


def lookup(class_name: str) -> ConverterFn | None:
    """The one lookup: the converter of a node spelled ``class_name`` in any domain, or None."""
    found = declaration(class_name)
    return found.fn if found is not None else None


def facts(class_name: str) -> Facts:
    """What the converter of ``class_name`` declared (``NO_FACTS`` when there is none)."""
    found = declaration(class_name)
    return found.facts if found is not None else NO_FACTS


def convert(fn: ConverterFn, spec: LayerSpec) -> Converted:
    """``fn`` run on ``spec`` under the one strictness check, with the facts its declaration gives."""
    return run_converter(fn, spec, facts)


def describe(class_name: str) -> str | None:
    """Which converter handles ``class_name``: ``conv.convert_conv2d``, ``op add`` for an operation's spelling,
    or ``custom my_module.convert_scale`` for one registered outside tf2torch (None: no converter)."""
    found = declaration(class_name)
    if found is None:
        return None
    if is_custom(found.fn):
        return f"custom {found.fn.__module__}.{found.fn.__qualname__}"
    if found.op is not None:
        return f"op {found.op}"
    return f"{found.fn.__module__.rsplit('.', 1)[-1]}.{found.fn.__name__}"


def refusal_reason(class_name: str) -> str | None:
    """Why a user's class that shares its name with a Keras layer tf2torch converts gets no converter (None for
    any other class without one): the file says the class is the user's own, so Keras's converter would convert
    something else silently."""
    if lookup(class_name) is not None:
        return None
    bare = custom_class(class_name) or (class_name.split(">", 1)[1] if ">" in class_name else None)
    if bare is None or is_op_key(class_name) or ("keras", bare) not in REGISTRY:
        return None
    where = (f"registered as {class_name}" if ">" in class_name
             else f"defined in module {class_name.rsplit('.', 1)[0]}")
    return (f"the file says this is your own class ({where}), which shares its name with the Keras layer {bare}; "
            f"tf2torch does not know its arithmetic: register a converter for it with "
            f"@tf2torch.register({class_name!r}) (docs/custom-layers.md)")


def custom_converters(class_names: Sequence[str]) -> dict[str, str]:
    """The classes among ``class_names`` converted by a user's converter → that converter's name."""
    used = {}
    for name in class_names:
        fn = lookup(name)
        if fn is not None and is_custom(fn):
            used[name] = f"{fn.__module__}.{fn.__qualname__}"
    return used


def spellings(domain: str | None = None) -> list[str]:
    """Every registered spelling (of one domain), sorted."""
    return sorted(spelling_of(k) for k in REGISTRY if domain is None or k[0] == domain)


def with_fact(name: str) -> list[str]:
    """The Keras classes whose converter declares a fact ``name`` (``regularizers``...), sorted."""
    return sorted(n for (d, n), dec in REGISTRY.items() if d == "keras" and getattr(dec.facts, name))


class _SpellingView(MutableMapping):
    """``REGISTRY`` seen as spelling → one attribute of its declaration (``CONVERTERS``: the function,
    ``CONFIG_DEFAULTS``: the declared defaults), for code and tests written against the old tables."""

    def __init__(self, attribute: str):
        self.attribute = attribute

    def __getitem__(self, spelling: str) -> Any:
        found = REGISTRY[key_of(spelling)]
        return found.fn if self.attribute == "fn" else found.facts.defaults

    def __setitem__(self, spelling: str, value: Any) -> None:
        key = key_of(spelling)
        if self.attribute == "fn":
            old = REGISTRY.get(key)
            REGISTRY[key] = Declaration(value, old.facts if old else Facts(), old.op if old else None)
        else:
            REGISTRY[key].facts.defaults = dict(value)

    def __delitem__(self, spelling: str) -> None:
        if self.attribute != "fn":  # defaults go with their declaration
            return
        del REGISTRY[key_of(spelling)]

    def __iter__(self) -> Iterator[str]:
        return iter([spelling_of(k) for k in REGISTRY])

    def __len__(self) -> int:
        return len(REGISTRY)


CONVERTERS: MutableMapping[str, ConverterFn] = _SpellingView("fn")
CONFIG_DEFAULTS: MutableMapping[str, dict[str, Any]] = _SpellingView("defaults")
