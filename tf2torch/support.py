"""What converts, decided after reading (issue #21: readers read, they never consult converters).

A reader returns the IR of everything it read: a TF graph's ops, the ``cond`` and ``body`` of each ``While``
(sub-IRs in the node's ``loop`` config, ``readers/tf_loops.py``), a traced Keras layer's call function (a
sub-IR in its ``function`` config, ``readers/savedmodel_traced.py``), a ``.tflite`` file's operators. This pass
names every node, at any depth, that has no converter, with the same entries and reasons the readers used to
raise while reading; ``assemble.check_supported`` still refuses the model's own layers (a Keras model's) before
anything is built. ``has_converter`` is the one choice a reader needs while reading (the Keras SavedModel
reader converts a layer without a converter from its traced call): ``api`` passes it in.
"""

from __future__ import annotations

from typing import Any

from . import converters as _converters  # noqa: F401  (every shipped converter registered before the first lookup)
from . import ops as _ops  # noqa: F401
from . import registry
from .errors import UnsupportedLayerError
from .graph import TRACED_LAYER, KerasGraph

FUNCTION_CALL = "a function call left in the graph"
QUANTIZED = ("quantized tensors ({}); tf2torch converts float32 and float16-weight .tflite models; --dequantize "
             "(dequantize=True) converts a quantized one to a float model")
CUSTOM_TFLITE = "a custom operator (not a TFLite builtin): tf2torch has no converter for it"


def has_converter(class_name: str) -> bool:
    """The predicate the readers are given: does ``class_name`` convert?"""
    return registry.lookup(class_name) is not None


def refuse_unsupported(graph: KerasGraph) -> None:
    """Raise, naming them all at once, the nodes the reader's own refusals named: a ``.tflite`` file's operators
    without a converter or on quantized tensors; a TF graph's ops when a function call is left in it or a loop
    body or traced call holds an op without a converter (then every op without one, at every depth)."""
    tflite = tflite_refusals(graph)
    if tflite[0]:
        raise UnsupportedLayerError(*tflite)
    missing, reasons = unsupported_in(graph, "")
    own = sum(layer.class_name != "InputLayer" and not has_converter(layer.class_name)
              for layer in graph.layers.values())
    calls = any(layer.config.get("function_call") for layer in graph.layers.values())
    if missing and (calls or len(missing) > own):
        raise UnsupportedLayerError(missing, reasons)


def unsupported_in(graph: KerasGraph, prefix: str) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``graph``'s nodes without a converter (its own, then its sub-graphs', each under its path), with reasons."""
    missing: list[tuple[str, str]] = []
    reasons: dict[str, str] = {}
    for key, layer in graph.layers.items():
        if layer.class_name != "InputLayer" and not has_converter(layer.class_name):
            missing.append((prefix + key, layer.class_name))
        if layer.config.get("function_call"):
            reasons[prefix + key] = FUNCTION_CALL
    for sub_prefix, sub in sub_graphs(graph, prefix):
        sub_missing, sub_reasons = unsupported_in(sub, sub_prefix)
        missing.extend(sub_missing)
        reasons.update(sub_reasons)
    return missing, reasons


def sub_graphs(graph: KerasGraph, prefix: str) -> list[tuple[str, KerasGraph]]:
    """The IR sub-graphs ``graph``'s nodes carry, in node order, with the path prefix of their nodes: a loop's
    ``<while>/cond/`` and ``<while>/body/``, a traced layer's ``<layer>/``."""
    subs: list[tuple[str, KerasGraph]] = []
    for key, layer in graph.layers.items():
        loop: Any = layer.config.get("loop")
        if layer.class_name.startswith("tf.raw>") and isinstance(loop, dict):
            subs.extend((f"{prefix}{key}/{part}/", KerasGraph.from_json(loop[part])) for part in ("cond", "body"))
        elif layer.class_name == TRACED_LAYER:
            subs.append((f"{prefix}{key}/", KerasGraph.from_json(layer.config["function"])))
    return subs


def tflite_refusals(graph: KerasGraph) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Every ``.tflite`` operator without a converter, custom operators, and operators on quantized (int8 /
    uint8 / int16) tensors (the ``quantized`` tensors the reader lists in the node's config)."""
    from .readers.tflite import CLASS_PREFIX

    missing, reasons = [], {}
    for key, layer in graph.layers.items():
        if not layer.class_name.startswith(CLASS_PREFIX):
            continue
        quantized = layer.config.get("quantized")
        if quantized:
            missing.append((key, layer.class_name))
            reasons[key] = QUANTIZED.format(f"{', '.join(quantized[:3])}{', ...' if len(quantized) > 3 else ''}")
        elif not has_converter(layer.class_name):
            missing.append((key, layer.class_name))
            if layer.class_name.startswith(CLASS_PREFIX + "custom:"):
                reasons[key] = CUSTOM_TFLITE
    return missing, reasons
