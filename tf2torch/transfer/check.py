"""Verification of a transfer: the Keras model and the loaded target run on the same input, each matched layer's
output compared (forward hooks), and the first divergence diagnosed with the traps shapes cannot see.

Traps named ([TF] ``kernel_shape_util.cc``, [K3] ``layers/normalization/batch_normalization.py``): TF ``SAME``
padding with stride > 1 pads ``total // 2`` before and the rest after, so for some input sizes it is asymmetric
where a torch ``padding=p`` is symmetric; Keras BatchNormalization's epsilon is 1e-3, torch's 1e-5 (LayerNorm:
Keras 1e-3, torch 1e-5). Keras 3 files run with Keras 3, Keras 2 files with tf_keras (``verify.keras_side``).
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch
from torch import nn

from ..readers import open_model
from ..verify import input_names, load_keras_model, run_layers
from .layers import SourceLayer
from .match import Assignment
from .target import TargetModule

RTOL = 1e-4  # a matched layer diverges when max|Δ| / max|reference| exceeds this
CHANNELS_FIRST_KINDS = ("conv", "depthwise", "conv_transpose", "batchnorm", "prelu")  # torch keeps channels on axis 1
ACTIVATIONS = {"linear": lambda t: t, "relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh}


def keras_inputs(specs: list[Any], example_inputs: tuple) -> list[np.ndarray] | None:
    """The example inputs in Keras's layout: as they are when the shapes agree, else channels moved last
    (torch's (N, C, *spatial) → Keras's (N, *spatial, C)); None when neither fits the declared shape."""
    arrays = []
    for spec, tensor in zip(specs, example_inputs):
        x = tensor.detach().cpu().numpy()
        candidates = [x, np.moveaxis(x, 1, -1)] if x.ndim > 2 else [x]
        fits = [a for a in candidates if a.ndim == len(spec.shape) + 1
                and all(d is None or d == s for d, s in zip(spec.shape, a.shape[1:]))]
        if not fits:
            return None
        arrays.append(fits[0])
    return arrays if len(arrays) == len(specs) else None


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF ``SAME``: (before, after) for one spatial axis of ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def diagnose(target: TargetModule, source: SourceLayer, input_shape: tuple[int, ...] | None) -> list[str]:
    """The known traps at one matched layer, each with its one-line fix."""
    module, config, found = target.module, source.config, []
    if target.kind in ("conv", "depthwise") and str(config.get("padding", "")).lower() == "same" and input_shape:
        spatial = input_shape[2:]
        pads = [same_padding(n, k, s, d) for n, k, s, d in zip(spatial, module.kernel_size, module.stride,
                                                                 module.dilation)]
        torch_pads = module.padding if isinstance(module.padding, tuple) else None
        if torch_pads is not None and any(p != (t, t) for p, t in zip(pads, torch_pads)):
            lr = [x for before, after in reversed(pads) for x in (before, after)]
            found.append(f"padding: TF SAME with stride {tuple(module.stride)} pads (before, after) = {pads} on "
                         f"input {tuple(spatial)}, torch pads {torch_pads} on both sides. Fix: padding=0 and "
                         f"nn.ZeroPad{len(spatial)}d({tuple(lr)}) before the conv")
    if target.kind in ("batchnorm", "layernorm", "groupnorm") and isinstance(getattr(module, "eps", None), float):
        keras_eps = float(config.get("epsilon", 1e-3))
        if not math.isclose(keras_eps, module.eps, rel_tol=1e-6):
            found.append(f"epsilon: Keras {keras_eps:g}, torch {module.eps:g}. Fix: "
                         f"{type(module).__name__}(..., eps={keras_eps:g})")
    return found


def verify_transfer(path: str | os.PathLike, model: nn.Module, example_inputs: tuple,
                    pairs: list[tuple[TargetModule, SourceLayer]], assignments: list[Assignment]) -> dict[str, Any]:
    """Run both sides; the per-layer comparison in the target's execution order and the first divergence."""
    with open_model(path) as graph:
        specs, major, output = graph.input_specs, graph.keras_major, graph.outputs[0]
        feeds = {node.layer: node.inputs[0] for node in reversed(graph.nodes) if node.inputs}  # first calls
        after, before = followers(graph), weightless_before(graph)
    pairs = [(t, s) for t, s in pairs if t.kind != "tensor"]  # a loose tensor has no output of its own
    arrays = keras_inputs(specs, example_inputs)
    if arrays is None:
        return {"compared": False, "why": "the example inputs fit neither the Keras input shapes nor their "
                                          "channels-last form"}
    loaded = load_keras_model(str(path), major)
    reference = run_layers(loaded, dict(zip(input_names(loaded), arrays)))
    seen: dict[str, tuple[tuple[int, ...] | None, Any]] = {}
    hooks = [t.module.register_forward_hook(_recorder(seen, t.path)) for t, _ in pairs]
    try:
        with torch.no_grad():
            got = model.eval()(*example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    ran = {path: i for i, path in enumerate(seen)}  # the hooks fired in execution order; pairs come kind by kind
    pairs = sorted(pairs, key=lambda pair: ran.get(pair[0].path, len(ran)))
    layers = [_compare(t, s, seen.get(t.path), reference.get(s.output_layer),
                       _output_of(reference, feeds.get(_input_layer(s, feeds))),
                       {n: reference[n][0] for n in after.get(s.output_layer, []) if reference.get(n)})
              for t, s in pairs]
    first = next((entry for entry in layers if entry.get("diverges")), None)
    if first is not None and (first["diagnosis"][0].startswith("its input already differs")
                              or first["diagnosis"] == ["no known trap at this layer"]):
        t, s = pairs[layers.index(first)]
        first["diagnosis"] += weightless_traps(before.get(_input_layer(s, feeds) or "", []))
        first["diagnosis"] += upstream_traps(pairs[:layers.index(first)])
    expected = reference.get(output.node, [None] * (output.index + 1))[output.index]
    return {"compared": True, "layers": layers, "first_divergence": first,
            "output_max_rel_error": output_error(got, expected)}


def upstream_traps(pairs: list[tuple[TargetModule, SourceLayer]]) -> list[str]:
    """Traps at the matched layers before a divergence whose input already differed: each small enough to pass
    there (a BatchNorm's epsilon 1e-5 for Keras's 1e-3 moves each output by ~5e-4 of a unit variance, often under
    the tolerance), they add up downstream (timm's ``legacy_xception``, torch's default eps, against Keras's
    Xception). Those told by the configuration alone: the epsilons."""
    return [f"upstream at {t.path} (from {s.name}): {trap}" for t, s in pairs if t.kind in ("batchnorm", "layernorm")
            for trap in diagnose(t, s, None)]


def weightless_before(graph: Any, most: int = 8) -> dict[str, list[tuple[str, str, dict]]]:
    """Each layer → the layers without weights its input passed through since the last layer with weights
    (breadth first, at most ``most``): (name, class, config), where a divergence's upstream cause must be."""
    out: dict[str, list[tuple[str, str, dict]]] = {}
    for node in graph.nodes:
        found, queue = [], [ref.node for ref in node.all_inputs()]
        while queue and len(found) < most:
            before = graph.node(queue.pop(0))
            layer = graph.layers.get(before.layer)
            if layer is None or layer.weights or any(f[0] == before.layer for f in found):
                continue
            found.append((before.layer, layer.class_name, layer.config))
            queue += [ref.node for ref in before.all_inputs()]
        out.setdefault(node.layer, found)
    return out


def weightless_traps(chain: list[tuple[str, str, dict]]) -> list[str]:
    """The known traps among the weightless layers before a divergence ([K3] ``layers/pooling/``): Keras's
    average pooling with ``same`` padding averages the input positions only, torch's counts the zeros of its
    padding; TF ``SAME`` max pooling with stride > 1 pads (total // 2 before, the rest after)."""
    found = []
    for name, class_name, config in chain:
        same = str(config.get("padding", "")).lower() == "same"
        strides = config.get("strides") or config.get("pool_size") or 1
        if class_name.startswith("AveragePooling") and same:
            found.append(f"upstream at {name} ({class_name}, padding=\"same\"): Keras averages over the input "
                         "positions only, torch's AvgPool/avg_pool2d count the padding. Fix: count_include_pad=False")
        elif class_name.startswith("MaxPooling") and same and any(v > 1 for v in np.atleast_1d(strides)):
            found.append(f"upstream at {name} ({class_name}, padding=\"same\", strides {strides}): TF pads "
                         "(total // 2 before, the rest after), torch's padding is symmetric. Fix: pad with "
                         "F.pad(x, ..., value=-inf) as TF does, then pool with padding=0")
    return found


def followers(graph: Any, most: int = 3) -> dict[str, list[str]]:
    """Each node → the weightless one-input nodes that alone follow it, in a chain (``stem_bn`` →
    ``stem_activation``): a torch module may fuse them (timm's ``BatchNormAct2d`` applies the SiLU that Keras
    writes as a separate ``Activation`` layer), so its output is Keras's after them."""
    consumers: dict[str, list[str]] = {}
    for node in graph.nodes:
        for ref in node.all_inputs():
            consumers.setdefault(ref.node, []).append(node.id)
    chains: dict[str, list[str]] = {}
    for node in graph.nodes:
        chain, current = [], node.id
        while len(chain) < most and len(consumers.get(current, [])) == 1:
            after = graph.node(consumers[current][0])
            layer = graph.layers.get(after.layer)
            if layer is None or layer.weights or len(after.all_inputs()) != 1:
                break
            chain.append(after.id)
            current = after.id
        chains[node.id] = chain
    return chains


def output_error(got: Any, expected: np.ndarray | None) -> float | None:
    """The model's (first) output against Keras's, channels moved last when that is what makes the shapes agree;
    None when they cannot be compared."""
    got = got[0] if isinstance(got, (tuple, list)) else got
    if expected is None or not isinstance(got, torch.Tensor):
        return None
    out = got.detach().float().numpy()
    if out.shape != expected.shape and out.ndim > 2 and np.moveaxis(out, 1, -1).shape == expected.shape:
        out = np.moveaxis(out, 1, -1)
    if out.shape != expected.shape:
        return None
    return float(np.abs(out - expected).max() / max(float(np.abs(expected).max()), 1e-30))


def _output_of(reference: dict[str, list[np.ndarray]], ref: Any) -> np.ndarray | None:
    values = reference.get(ref.node) if ref is not None else None
    return values[ref.index] if values is not None and ref.index < len(values) else None


def _input_layer(source: SourceLayer, feeds: dict[str, Any]) -> str | None:
    """The Keras layer whose input is this source's input: its own, a stack's first layer's (or its
    Bidirectional's), a SeparableConv's for its depthwise part; None for its pointwise part."""
    if source.output_of is None:
        return source.name
    first = source.name.split("+")[0]
    if first.endswith("/pointwise"):
        return None
    return next((name for name in (first, first.rpartition("/")[0]) if name in feeds), None)


def rnn_output(module: nn.Module, output: Any, expected: np.ndarray) -> torch.Tensor | None:
    """A torch RNN's output as Keras gives it: the sequence (batch first) for ``return_sequences``, else the last
    step of a one-direction RNN; None where Keras's cannot be told from torch's (a bidirectional last state)."""
    if not isinstance(output, tuple) or not isinstance(output[0], torch.Tensor):
        return None
    sequence = output[0] if module.batch_first else output[0].transpose(0, 1)
    if expected.ndim == 3:
        return sequence
    return sequence[:, -1] if expected.ndim == 2 and not module.bidirectional else None


def _recorder(seen: dict, path: str) -> Any:
    def hook(module: nn.Module, args: tuple, output: Any) -> None:
        if path not in seen:
            x = args[0] if args and isinstance(args[0], torch.Tensor) else None
            seen[path] = (x, output)
    return hook


def channels_first(target: TargetModule) -> bool:
    """Whether the module keeps channels on axis 1: by kind, or a norm that says so (``nn.GroupNorm`` always;
    transformers' ``ConvNextLayerNorm`` by its ``data_format``), never by shape: (N, 4, 4, 4) fits either way."""
    module = target.module
    return (target.kind in CHANNELS_FIRST_KINDS or isinstance(module, nn.GroupNorm)
            or getattr(module, "data_format", None) == "channels_first")


def _error(target: TargetModule, source: SourceLayer, got: torch.Tensor, expected: np.ndarray) -> float | None:
    """max|Δ| / max|ref| of a torch tensor against Keras's, in Keras's layout; None when the shapes disagree."""
    out = got.detach().float().numpy()
    if channels_first(target) and out.ndim > 2 and source.config.get("data_format") != "channels_first":
        out = np.moveaxis(out, 1, -1)  # by kind, not by shape: (N, 8, 8, 8) fits either way
    elif out.shape != expected.shape and out.ndim > 2 and np.moveaxis(out, 1, -1).shape == expected.shape:
        out = np.moveaxis(out, 1, -1)  # a norm over channels first (nn.GroupNorm): told by the shapes alone
    if out.shape != expected.shape:
        return None
    return float(np.abs(out - expected).max() / max(float(np.abs(expected).max()), 1e-30))


def _compare(target: TargetModule, source: SourceLayer, got: Any, ref: list[np.ndarray] | None,
             keras_input: np.ndarray | None, fused: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"target": target.path, "source": source.name}
    if got is not None and target.kind in ("lstm", "gru") and ref:
        got = (got[0], rnn_output(target.module, got[1], ref[0]))
    if got is None or not ref or not isinstance(got[1], torch.Tensor):
        return {**entry, "compared": False}
    activation = source.config.get("activation", "linear") or "linear"
    if target.kind not in ("dense", "conv", "depthwise", "conv_transpose"):
        activation = "linear"  # an RNN's "activation" is its cell's, inside the module
    elif activation not in ACTIVATIONS:
        return {**entry, "compared": False}
    error = _error(target, source, ACTIVATIONS.get(activation, ACTIVATIONS["linear"])(got[1]), ref[0])
    if error is None:
        return {**entry, "compared": False}
    entry.update(compared=True, max_rel_error=error, diverges=error > RTOL)
    if error > RTOL:
        for name, expected in (fused or {}).items():  # the module applied the weightless layers after it too
            fused_error = _error(target, source, got[1], expected)
            if fused_error is not None and fused_error <= RTOL:
                return {**entry, "max_rel_error": fused_error, "diverges": False, "fused_through": name}
        entry["diagnosis"] = _diagnosis(target, source, got, keras_input)
    return entry


def _diagnosis(target: TargetModule, source: SourceLayer, got: Any, keras_input: np.ndarray | None) -> list[str]:
    input_error = None if got[0] is None or keras_input is None else _error(target, source, got[0], keras_input)
    if input_error is not None and input_error > RTOL:
        return [f"its input already differs from Keras's (max relative error {input_error:.3g}): the cause is "
                "upstream, in a layer without weights (pooling padding, an activation variant, a reshape order)"]
    shape = None if got[0] is None else tuple(got[0].shape)
    return diagnose(target, source, shape) or ["no known trap at this layer"]
