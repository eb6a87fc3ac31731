"""The target side of a transfer: the user's module's leaf modules that hold parameters or persistent buffers,
in execution order (one forward pass with forward pre-hooks), each with its kind.

Trap: a ``Linear`` after a flatten of a (N, C, *spatial) tensor reads features in C,H,W order where a Keras
``Flatten`` of channels-last features gives H,W,C ([K3] ``reshaping/flatten.py``). Which Linear takes a
flattened tensor is seen during the pass: a ``TorchFunctionMode`` notes every ``flatten``/``view``/``reshape``
from rank 3+ to (N, features), whether written as ``nn.Flatten``, ``torch.flatten`` or ``x.view(n, -1)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.overrides import TorchFunctionMode

from ..errors import Tf2TorchError

KIND_OF_MODULE: list[tuple[type, str]] = [
    (nn.Linear, "dense"), (nn.modules.conv._ConvTransposeNd, "conv_transpose"), (nn.modules.conv._ConvNd, "conv"),
    (nn.modules.batchnorm._BatchNorm, "batchnorm"), (nn.LayerNorm, "layernorm"), (nn.GroupNorm, "groupnorm"),
    (nn.LSTM, "lstm"), (nn.GRU, "gru"), (nn.Embedding, "embedding"), (nn.MultiheadAttention, "attention"),
    (nn.PReLU, "prelu"),
]
UNITS = (nn.MultiheadAttention,)  # modules loaded as one, their children's tensors with them (``out_proj``)
FLATTENING = {torch.flatten, torch.reshape, torch.Tensor.flatten, torch.Tensor.view, torch.Tensor.reshape}
PERMUTING = {torch.permute, torch.Tensor.permute}
NOT_LOADED = ("num_batches_tracked",)  # torch's own counter: no source holds it, and eval never reads it


@dataclass
class TargetModule:
    """A leaf module with tensors of its own: ``path`` as in ``named_modules``, ``tensors`` its parameters and
    persistent buffers by local name, ``flatten_from`` the (channels, spatial) a flatten fed it, if any."""

    path: str
    module: nn.Module
    kind: str | None
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    flatten_from: tuple[int, tuple[int, ...]] | None = None
    in_out: bool = False  # a dense module storing its weight (in, out), as Hugging Face's Conv1D does

    def __post_init__(self) -> None:
        self.in_out = is_in_out_dense(self.module)

    def tensor_names(self) -> list[str]:
        return [f"{self.path}.{name}" if self.path else name for name in self.tensors]

    @property
    def label(self) -> str:
        """What a mapping key and the name matching read: the module path, or a loose tensor's own name."""
        return self.tensor_names()[0] if self.kind == "tensor" else self.path


def loose_tensors(target: TargetModule) -> list[TargetModule]:
    """A module of no known kind that holds tensors itself (Hugging Face's ``ViTEmbeddings`` with its
    ``cls_token`` and ``position_embeddings`` parameters beside its child modules; a custom scale): each tensor
    a ``tensor`` target of its own, loaded as is from a source weight of the same shape (``loose_weights``)."""
    if target.kind is not None:
        return [target]
    return [TargetModule(target.path, target.module, "tensor", {name: t}) for name, t in target.tensors.items()]


def is_in_out_dense(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2, [HF] ``pytorch_utils.py``): a Linear whose ``weight`` is (in, out) =
    (``nx``, ``nf``) and whose forward is ``x @ weight + bias``. Told by its class name and its shapes (the
    bias as long as the weight's second axis), never by shape alone: a square weight fits both ways."""
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    return (type(module).__name__ == "Conv1D" and not isinstance(module, nn.modules.conv._ConvNd)
            and isinstance(weight, torch.Tensor) and weight.ndim == 2 and getattr(module, "nf", None) == weight.shape[1]
            and (bias is None or tuple(bias.shape) == (weight.shape[1],)))


def module_kind(module: nn.Module) -> str | None:
    """``conv``, ``depthwise`` (groups == in_channels > 1, torch's depthwise), ``dense`` (a Linear, or a
    Hugging Face ``Conv1D``)... or None."""
    if is_in_out_dense(module):
        return "dense"
    if parametrize.is_parametrized(module):  # weight_norm's g and v live in a child: its tensors are loose ones
        return None
    for cls, kind in KIND_OF_MODULE:
        if isinstance(module, cls):
            if kind == "conv" and module.groups > 1 and module.groups == module.in_channels:
                return "depthwise"
            return kind
    return "layernorm" if is_norm(module) else None


def is_norm(module: nn.Module) -> bool:
    """A normalization of a class torch does not have — Hugging Face's ``ConvNextLayerNorm`` (channels
    first), a user's LayerNorm: a ``weight`` and a ``bias`` of one shape (C,) and
    an epsilon. Loaded as Keras's LayerNormalization gamma and beta (a scale-only RMS norm,
    T5's, has no beta: it stays a loose tensor)."""
    params = dict(module.named_parameters(recurse=False))
    return (set(params) == {"weight", "bias"} and params["weight"].ndim == 1
            and params["weight"].shape == params["bias"].shape
            and any(isinstance(getattr(module, a, None), float) for a in ("eps", "epsilon", "variance_epsilon")))


def own_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of the module itself (of a unit such as ``nn.MultiheadAttention``, its
    children's too: ``out_proj.weight``)."""
    recurse = isinstance(module, UNITS)
    tensors = dict(module.named_parameters(recurse=recurse))
    for owner_path, owner in (module.named_modules() if recurse else [("", module)]):
        persistent = [n for n, _ in owner.named_buffers(recurse=False)
                      if n not in owner._non_persistent_buffers_set and n not in NOT_LOADED]
        tensors.update({f"{owner_path}.{n}" if owner_path else n: getattr(owner, n) for n in persistent})
    return {n: t for n, t in tensors.items() if t is not None}


def inside_unit(model: nn.Module) -> set[str]:
    """Paths of modules inside a unit: loaded with it, not on their own."""
    return {f"{path}.{sub}" if path else sub for path, m in model.named_modules() if isinstance(m, UNITS)
            for sub, _ in m.named_modules() if sub}


class _FlattenWatch(TorchFunctionMode):
    """Notes each tensor made by flattening a (N, C, *spatial) tensor to (N, features). A tensor the author
    permuted first (facenet-pytorch's MTCNN: ``x.permute(0, 3, 2, 1).contiguous().view(n, -1)``) is flattened in
    the author's own order, chosen to match the TF layout: its rows are not reordered."""

    def __init__(self) -> None:
        super().__init__()
        self.flattened: dict[int, tuple[int, tuple[int, ...]]] = {}
        self.permuted: set[int] = set()
        self.keep: list[torch.Tensor] = []  # keeps the ids valid for the whole pass

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if not (args and isinstance(args[0], torch.Tensor) and isinstance(out, torch.Tensor)):
            return out
        if func in PERMUTING or (func is torch.Tensor.contiguous and id(args[0]) in self.permuted):
            self.permuted.add(id(out))
            self.keep.append(out)
        elif func in FLATTENING and id(args[0]) not in self.permuted:
            x = args[0]
            if x.ndim >= 3 and out.ndim == 2 and out.shape[0] == x.shape[0]:
                self.flattened[id(out)] = (int(x.shape[1]), tuple(int(s) for s in x.shape[2:]))
                self.keep.append(out)
        return out


def target_modules(model: nn.Module, example_inputs: tuple | None) -> list[TargetModule]:
    """Leaf modules with tensors, in the order the forward pass calls them (modules it never calls follow in
    definition order); without example inputs, definition order throughout."""
    skip = inside_unit(model)
    found = {path: TargetModule(path, m, module_kind(m), own_tensors(m))
             for path, m in model.named_modules() if path not in skip and own_tensors(m)}
    if example_inputs is None:
        return [t for found_target in found.values() for t in loose_tensors(found_target)]
    order: list[str] = []
    watch = _FlattenWatch()
    by_module = {id(t.module): t for t in found.values()}

    def pre_hook(module: nn.Module, args: tuple) -> None:
        target = by_module[id(module)]
        if target.path not in order:
            order.append(target.path)
            if args and isinstance(args[0], torch.Tensor):
                target.flatten_from = watch.flattened.get(id(args[0]))

    handles = [t.module.register_forward_pre_hook(pre_hook) for t in found.values()]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), watch:
            model(*example_inputs)
    except Exception as exc:  # the user's forward: one line naming it, not a tf2torch traceback
        message = " ".join(str(exc).split())[:300]
        raise Tf2TorchError(f"the model's forward pass on example_inputs failed ({type(exc).__name__}: {message}); "
                            "give inputs exactly as the model takes them") from None
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    ordered = [found[p] for p in order] + [t for p, t in found.items() if p not in order]
    return [t for found_target in ordered for t in loose_tensors(found_target)]
