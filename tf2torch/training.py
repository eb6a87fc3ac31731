"""Training like Keras: ``trainable=False`` layers and Keras's regularizers as a loss term.

``attach`` runs once per converted model (at ``convert`` and at ``load``): it sets ``requires_grad=False`` on the
parameters of layers saved with ``trainable=False`` and records each layer's kernel / bias / activity
regularizers (``L1``, ``L2``, ``L1L2``) on its submodule; ``regularization_loss(model)`` adds them up as Keras's
``model.losses`` does:

- a weight regularizer is ``l1 * Σ|w| + l2 * Σw²`` of the current torch parameter (a permutation of the Keras
  weight, so the sum is the same); Keras 3 counts trainable weights only, tf.keras every weight (both measured);
- an activity regularizer is the same penalty of each output of the layer's last call in train mode, divided by
  the batch size ([K3] ``Layer.__call__``, [TFK] ``_handle_activity_regularization``); ``ActivityRegularization``
  is one with the layer's ``l1``/``l2``;
- a regularizer tf2torch cannot place (another class, a layer family without a mapping, one nested inside a
  wrapper) is not dropped: ``regularization_loss`` refuses, naming the layer and the key.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import fx, nn

from . import registry
from .errors import ConversionError

if TYPE_CHECKING:
    from .graph import KerasGraph

PENALTY_CLASSES = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}
NESTED_KEYS = ("layer", "backward_layer", "cell")


@dataclass
class LayerRegularizers:
    """What ``regularization_loss`` needs of one converted layer; ``activity_losses`` fill in train mode."""

    layer: str
    class_name: str
    weights: list[tuple[str, float, float]] = field(default_factory=list)  # (parameter name, l1, l2)
    activity: tuple[float, float] | None = None
    unsupported: list[str] = field(default_factory=list)
    trainable_only: bool = True
    activity_losses: list[torch.Tensor] = field(default_factory=list)


def penalty_factors(value: Any) -> tuple[float, float] | None:
    """A serialized ``L1``/``L2``/``L1L2`` → (l1, l2); None for anything else."""
    if not isinstance(value, dict) or value.get("class_name") not in PENALTY_CLASSES:
        return None
    config = value.get("config") or {}
    keys = PENALTY_CLASSES[value["class_name"]]
    if set(config) - set(keys):
        return None
    return float(config.get("l1", 0.0) or 0.0), float(config.get("l2", 0.0) or 0.0)


def penalty(x: torch.Tensor, l1: float, l2: float) -> torch.Tensor:
    total = x.new_zeros(())
    if l1:
        total = total + l1 * x.abs().sum()
    if l2:
        total = total + l2 * x.square().sum()
    return total


def nested_regularizers(config: dict[str, Any], prefix: str = "") -> list[str]:
    """Regularizer keys set inside a wrapper's layer configs (``layer``, ``backward_layer``, ``cell``)."""
    found = []
    for key in NESTED_KEYS:
        inner = config.get(key)
        inner_config = inner.get("config") if isinstance(inner, dict) else None
        if isinstance(inner_config, dict):
            path = f"{prefix}{key}."
            found += [path + k for k, v in inner_config.items() if k.endswith("_regularizer") and v is not None]
            found += nested_regularizers(inner_config, path)
    return found


def parameters_for(module: nn.Module, endings: tuple[str, ...]) -> list[str]:
    """The module's parameters whose dotted name is one of ``endings`` or ends with ``.<ending>``."""
    return [name for name, _ in module.named_parameters() if any(name == e or name.endswith("." + e)
                                                                 for e in endings)]


def layer_regularizers(layer: str, class_name: str, config: dict[str, Any], module: nn.Module,
                       keras_major: int) -> LayerRegularizers | None:
    regs = LayerRegularizers(layer, class_name, trainable_only=keras_major >= 3)
    facts = registry.facts(class_name)  # the regularizers its converter declares, by torch parameter name
    mapping = facts.regularizers
    present = {"gamma_regularizer": config.get("scale", True), "beta_regularizer": config.get("center", True)}
    for key, value in config.items():
        if not key.endswith("_regularizer") or value is None or key == "activity_regularizer":
            continue
        if not present.get(key, True):
            continue  # gamma/beta that the layer does not have
        factors = penalty_factors(value)
        names = parameters_for(module, mapping[key]) if key in mapping else []
        single = key not in facts.several_parameters
        if factors is None or not names or (single and len(names) != 1):
            regs.unsupported.append(key)
            continue
        regs.weights += [(name, *factors) for name in names]
    activity = config.get("activity_regularizer")
    if facts.activity_penalty:
        activity = {"class_name": "L1L2", "config": {"l1": config.get("l1", 0.0), "l2": config.get("l2", 0.0)}}
    if activity is not None:
        regs.activity = penalty_factors(activity)
        if regs.activity is None:
            regs.unsupported.append("activity_regularizer")
    regs.unsupported += nested_regularizers(config)
    return regs if regs.weights or regs.activity or regs.unsupported else None


def record_activity(module: nn.Module, args: Any, output: Any) -> None:
    """Forward hook: the activity penalty of every output, divided by its batch size (train mode only)."""
    regs: LayerRegularizers = module.tf2torch_regularizers
    if not module.training or regs.activity is None:
        return
    outputs = output if isinstance(output, (tuple, list)) else [output]
    for out in outputs:
        if isinstance(out, torch.Tensor) and out.is_floating_point():
            loss = penalty(out, *regs.activity)
            regs.activity_losses.append(loss / out.shape[0] if out.dim() > 0 else loss)


def clear_activity(root: nn.Module, args: Any) -> None:
    """Forward pre-hook of the whole model: a new call starts with no activity losses (as Keras clears them)."""
    if root.training:
        for regs in root.tf2torch_activity:
            regs.activity_losses.clear()


def converted_layers(root: fx.GraphModule, graph: KerasGraph) -> Iterator[tuple[str, str, dict[str, Any], nn.Module]]:
    """(layer name, class, config, submodule) of every module the graph calls for a Keras layer, once each."""
    seen = set()
    for node in root.graph.nodes:
        meta = node.meta.get("tf2torch", {})
        if node.op != "call_module" or "keras_node" not in meta or node.target in seen:
            continue
        seen.add(node.target)
        layer = graph.layers[meta["layer"]]
        yield meta["layer"], layer.class_name, layer.config, root.get_submodule(node.target)


def attach(root: fx.GraphModule, graph: KerasGraph) -> None:
    """``trainable=False`` → ``requires_grad=False``; record each layer's regularizers on its submodule."""
    activity = []
    for name, class_name, config, module in converted_layers(root, graph):
        if config.get("trainable", True) is False:
            module.requires_grad_(False)
        regs = layer_regularizers(name, class_name, config, module, graph.keras_major)
        if regs is None:
            continue
        module.tf2torch_regularizers = regs
        if regs.activity is not None:
            module.register_forward_hook(record_activity)
            activity.append(regs)
    if activity:
        root.tf2torch_activity = activity
        root.register_forward_pre_hook(clear_activity)


def regularization_loss(model: nn.Module) -> torch.Tensor:
    """The sum of the Keras regularizers of a converted model: weight penalties of the current parameters plus
    the activity penalties of the last forward pass in train mode; Keras's ``sum(model.losses)``. Add it to the
    loss before ``backward()``. Raises ``ConversionError`` for a regularizer tf2torch does not reproduce."""
    total = next(model.parameters(), torch.zeros(())).new_zeros(())
    counted: set[int] = set()  # a layer converted once per input signature shares its parameters
    for module in model.modules():
        regs = getattr(module, "tf2torch_regularizers", None)
        if regs is None:
            continue
        if regs.unsupported:
            raise ConversionError(regs.layer, regs.class_name,
                                  f"{', '.join(regs.unsupported)} is not reproduced by regularization_loss (only "
                                  f"L1, L2 and L1L2 on {', '.join(registry.with_fact('regularizers'))} weights and "
                                  "on layer outputs)")
        for name, l1, l2 in regs.weights:
            parameter = module.get_parameter(name)
            if id(parameter) in counted:
                continue
            counted.add(id(parameter))
            if parameter.requires_grad or not regs.trainable_only:
                total = total + penalty(parameter, l1, l2)
        for loss in regs.activity_losses:
            total = total + loss
    return total
