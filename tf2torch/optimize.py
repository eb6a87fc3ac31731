"""Opt-in inference optimisation of a converted module (``convert(..., optimize=True)``, ``convert --optimize``).

Every rewrite is exact up to float32 round-off (the suite checks 1e-5 against Keras) and keeps the submodule names
of the Keras layers that remain: a BatchNormalization folded into ``conv1_conv`` disappears and ``conv1_conv``
keeps its name, with the folded layers listed in its node's ``meta["tf2torch"]["folded"]``.

- BatchNormalization folded into the convolution or dense layer before it: ``W' = W * s``,
  ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)`` per output channel, computed in float64.
  Only when nothing else reads the layer's output, the BN normalizes its channel axis (dim 1; a dense layer's
  output is then (batch, features)) and the conv or dense ends the converted module (a layer with its own
  ``activation`` ends with the activation: no fold).
- Rescaling / Normalization folded into the convolution after it: ``conv(x * s + o) = conv_{W * s}(x) + conv_W(o)``
  with per-input-channel ``s`` and ``o``. Zero padding pads ``x * s + o`` with zeros, not with ``o``, so with an
  offset the fold needs a conv without padding; a pure scale commutes with zero padding.
- Inference no-ops dropped: ``nn.Identity`` and dropouts (the optimised module is for inference only).
- A symmetric ``ZeroPad2d`` before a max pooling of a ReLU's output becomes the pooling's own padding (-inf and 0
  pad alike where every value is ≥ 0 and each window holds one).
- A zero padding before a depthwise convolution (``ZeroPad2d``, TF ``SAME`` at run time) run by the
  convolution itself, asymmetric ones with one zero tap added to the kernel (``ZeroPaddedDepthwiseConv2d``).
- An average pooling read only by a 1×1 convolution moved after it (``PooledPointwiseConv2d``): the two commute,
  and the pooling then runs on the convolution's (fewer) output channels.
- Zero paddings that stay (``ZeroPad2d``, TF ``SAME`` padding) zero only their border (``nn/fused.py``
  ``pad_zero_border``): ``F.pad`` zero-fills the whole padded tensor before copying the input over it.
- Activations in place (``inplace=True``) where they read a fresh tensor nothing else reads (a conv's, a dense
  layer's, a batch norm's or a merge's output: ``nn/inplace.py``'s ``makes_fresh_output``, the rule the default
  module applies per call): one allocation and one pass over memory fewer per activation.
- 2-D convolutions become ``FusedConv2d`` (``tf2torch/nn/fused.py``): weight prepacked for oneDNN and the
  activation after it (ReLU, ReLU6, SiLU, Hardswish; a separate layer nothing else reads, or the conv layer's own)
  applied in the same pass. Same module name; a fused activation layer disappears like a folded BN.
- Dense layers (``nn.Linear``) become ``FusedLinear`` (``tf2torch/nn/fused.py``): oneDNN's matrix product with
  the weight packed once, in place of MKL's (slower on the AMD benchmark machine).
- 4-D inputs and weights in ``torch.channels_last`` when the model has 2-D convolutions (faster with oneDNN on
  CPU; measured in ``benchmarks/bench_routes.py``); outputs are made contiguous again.

The result is an ``fx.GraphModule`` meant for inference; ``tf2torch.save``/``load`` keep the optimisation (the
file records it and ``load`` replays it on the rebuilt module before loading the folded weights).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from . import memory_format
from .nn import noise
from .nn.attention import KerasMaskedMultiheadAttention
from .nn.conv import Conv2d
from .nn.fused import (
    POST_OPS,
    BorderZeroPad2d,
    FusedConv2d,
    FusedConvAdd2d,
    FusedLinear,
    PooledPointwiseConv2d,
    TFSameZeroPad2d,
    ZeroPaddedDepthwiseConv2d,
    fused_conv_available,
    fused_linear_available,
)
from .nn.image import as_float
from .nn.inplace import makes_fresh_output
from .nn.merge import Add
from .nn.normalization import BatchNormOnAxis
from .nn.padding import TFSamePad2d
from .nn.preprocessing import KerasNormalization, Rescale

CONVS = (nn.Conv1d, nn.Conv2d, Conv2d, nn.Conv3d)
BATCH_NORM_RANK = {nn.BatchNorm1d: 1, nn.BatchNorm2d: 2, nn.BatchNorm3d: 3}
NO_OPS = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
          noise.Dropout, noise.AlphaDropout, noise.GaussianDropout, noise.GaussianNoise)  # identities at inference
PAD_MODULE_PREFIXES = ("pad",)
IN_PLACE = (nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.SiLU, nn.Hardswish, nn.ELU, nn.LeakyReLU)


def optimize(module: fx.GraphModule, channels_last: bool = True) -> fx.GraphModule:
    """Rewrite ``module`` in place for inference (see the module docstring) and return it."""
    module.eval()
    has_conv2d = memory_format.has_conv2d(module)
    drop_no_ops(module)
    fold_batch_norms(module)
    fold_input_scaling(module)
    activations_in_place(module)
    if fused_conv_available():
        fuse_convolutions(module)
        fuse_residual_adds(module)
    fold_zero_padding(module)
    if fused_conv_available():
        fold_padding_into_depthwise(module)
        pool_after_pointwise_convs(module)
    border_zero_pads(module)
    if fused_linear_available():
        fuse_linears(module)
    if channels_last and has_conv2d:
        to_channels_last(module)
    module.graph.eliminate_dead_code()
    module.graph.lint()
    module.delete_all_unused_submodules()
    module.recompile()
    return module


# -- helpers --------------------------------------------------------------------------------------------------
def module_of(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def called_once(gm: fx.GraphModule, node: fx.Node) -> bool:
    """The node's module is not shared with another call (a Keras layer used twice)."""
    return sum(1 for n in gm.graph.nodes if n.op == "call_module" and n.target == node.target) == 1


def sole_input(node: fx.Node) -> fx.Node | None:
    return node.args[0] if len(node.args) == 1 and not node.kwargs and isinstance(node.args[0], fx.Node) else None


def trailing_conv(module: nn.Module) -> nn.Module | None:
    """The convolution that produces the module's output: the module itself, or the last part of an
    ``nn.Sequential`` (pad, conv) / (pad, depthwise, pointwise)."""
    if type(module) in CONVS:
        return module
    if type(module) is nn.Sequential and len(module) and type(module[-1]) in CONVS:
        return module[-1]
    return None


def leading_conv(module: nn.Module) -> tuple[nn.Module, bool] | None:
    """(the convolution that reads the module's input, whether zeros are padded before it)."""
    if type(module) in CONVS:
        return module, module.padding == "same" or any(p != 0 for p in _padding(module))
    if type(module) is nn.Sequential and len(module):
        first = module[0]
        if type(first) in CONVS:
            return first, any(p != 0 for p in _padding(first))
        names = list(module._modules)
        if names[0] in PAD_MODULE_PREFIXES and len(module) > 1 and type(module[1]) in CONVS:
            return module[1], True
    return None


def _padding(conv: nn.Module) -> tuple[int, ...]:
    return (1,) if isinstance(conv.padding, str) else tuple(conv.padding)


def note_fold(node: fx.Node, folded: fx.Node, computes_it: bool) -> None:
    """Record the folded layer on the node that absorbed it; when the node now computes the folded layer's output
    (a BN after a conv), it stands for that Keras node (``tf2torch verify`` compares it with the BN)."""
    meta = node.meta.setdefault("tf2torch", {})
    theirs = folded.meta.get("tf2torch", {})
    meta.setdefault("folded", []).append(theirs.get("layer", str(folded.target)))
    if computes_it:
        for key in ("keras_node", "layouts"):
            if key in theirs:
                meta[key] = theirs[key]


def remove_node(gm: fx.GraphModule, node: fx.Node, replacement: fx.Node) -> None:
    node.replace_all_uses_with(replacement)
    gm.graph.erase_node(node)


# -- rewrites ---------------------------------------------------------------------------------------------------
def drop_no_ops(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        module = module_of(gm, node)
        source = sole_input(node)
        if module is not None and type(module) in NO_OPS and source is not None:
            remove_node(gm, node, source)


def batch_norm_rank(module: nn.Module | None) -> int | None:
    """1, 2 or 3 for torch's batch norms and their subclasses that normalize dim 1 (``KerasBatchNorm2d`` trains
    like Keras, infers like ``BatchNorm2d``), else None: not ``BatchNormOnAxis``, whose channels are on another
    axis (Keras ``BatchNormalization(axis=1)`` after a ``Conv1D`` normalizes the steps, not the filters)."""
    if isinstance(module, BatchNormOnAxis):
        return None
    for cls, rank in BATCH_NORM_RANK.items():
        if isinstance(module, cls):
            return rank
    return None


def batch_norm_scale_shift(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, t) in float64 with ``bn(x) = x * s + t`` per channel (eval mode, running statistics)."""
    mean, var = bn.running_mean.double(), bn.running_var.double()
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    s = gamma / torch.sqrt(var + bn.eps)
    return s, beta - mean * s


def dense_with_2d_output(gm: fx.GraphModule, node: fx.Node) -> nn.Linear | None:
    """The ``nn.Linear`` a node calls when its output is (batch, features): a batch norm over dim 1 of it
    normalizes the features (of a (batch, steps, features) output it would normalize the steps)."""
    module = module_of(gm, node)
    ranks = node.meta.get("tf2torch", {}).get("ranks")
    return module if type(module) is nn.Linear and ranks == [2] else None


def fold_batch_norms(gm: fx.GraphModule) -> None:
    for node in list(gm.graph.nodes):
        bn = module_of(gm, node)
        rank = batch_norm_rank(bn)
        if rank is None or bn.running_mean is None or not called_once(gm, node):
            continue
        source = sole_input(node)
        producer = module_of(gm, source) if source is not None else None
        if producer is None or len(source.users) != 1 or not called_once(gm, source):
            continue
        conv = trailing_conv(producer)
        dense = dense_with_2d_output(gm, source) if rank == 1 else None
        if conv is not None and rank == conv.weight.dim() - 2 and conv.out_channels == bn.num_features:
            fold_into_weights(conv, *batch_norm_scale_shift(bn))
        elif dense is not None and dense.out_features == bn.num_features:
            fold_into_weights(dense, *batch_norm_scale_shift(bn))
        else:
            continue
        note_fold(source, node, computes_it=True)
        remove_node(gm, node, source)


FOLD_BLOCK_BYTES = 1 << 20  # float64 temporaries of one fold: at most this much at a time


@torch.no_grad()
def fold_into_weights(layer: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """A convolution or ``nn.Linear`` becomes ``layer(x) * scale + shift`` (per output channel or feature: the
    weight's first axis), computed in float64 a block of output channels at a time, so a large kernel is never held
    twice in float64 (ResNet50's --optimize peaked 42 MB higher)."""
    weight = layer.weight
    folded = torch.empty_like(weight)  # its memory format too
    shape = (-1,) + (1,) * (weight.dim() - 1)
    block = max(1, FOLD_BLOCK_BYTES // max(1, weight[:1].numel() * 8))
    for start in range(0, weight.shape[0], block):
        rows = slice(start, start + block)
        folded[rows] = (weight[rows].double() * scale[rows].reshape(shape)).to(weight.dtype)
    bias = layer.bias.double() if layer.bias is not None else torch.zeros(weight.shape[0], dtype=torch.float64)
    layer.weight = nn.Parameter(folded)
    layer.bias = nn.Parameter((bias * scale + shift).to(weight.dtype))


def per_channel(value: float | torch.Tensor, channels: int, channel_dim: int, rank: int) -> torch.Tensor | None:
    """A scalar or a tensor broadcast against a rank-``rank`` tensor → one float64 value per channel, or None when
    it varies along another axis."""
    if not isinstance(value, torch.Tensor):
        return torch.full((channels,), float(value), dtype=torch.float64)
    if value.dim() > rank:
        return None
    full = value.reshape((1,) * (rank - value.dim()) + tuple(value.shape))
    if any(size != 1 for d, size in enumerate(full.shape) if d != channel_dim):
        return None
    return full.reshape(-1).double().expand(channels).clone()


def scaling_of(module: nn.Module, channels: int, channel_dim: int,
               rank: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(s, o) per channel with ``module(x) = float(x) * s + o``, for Rescaling and (non-inverted) Normalization."""
    if type(module) is Rescale:
        s = per_channel(module.scale, channels, channel_dim, rank)
        o = per_channel(module.offset, channels, channel_dim, rank)
    elif type(module) is KerasNormalization and not module.invert:
        std = torch.clamp_min(torch.sqrt(module.variance.double()), module.epsilon)
        s = per_channel(1.0 / std, channels, channel_dim, rank)
        o = per_channel(-module.mean.double() / std, channels, channel_dim, rank)
    else:
        return None
    return None if s is None or o is None else (s, o)


def fold_input_scaling(gm: fx.GraphModule) -> None:
    """Rescaling/Normalization → conv: the conv takes the unscaled input (cast to float as Keras does)."""
    for node in list(gm.graph.nodes):
        scaling = module_of(gm, node)
        if type(scaling) not in (Rescale, KerasNormalization) or len(node.users) != 1 or not called_once(gm, node):
            continue
        source = sole_input(node)
        user = next(iter(node.users))
        found = leading_conv(module_of(gm, user)) if module_of(gm, user) is not None else None
        if source is None or found is None or sole_input(user) is not node or not called_once(gm, user):
            continue
        conv, padded = found
        if conv.groups != 1:
            continue
        rank = conv.weight.dim()
        so = scaling_of(scaling, conv.in_channels, 1, rank)
        # Normalization's mean is a weight: decide on the structure alone, so that ``load`` replays the same folds
        offset_free = type(scaling) is Rescale and not bool((so[1] != 0).any()) if so is not None else False
        if so is None or (padded and not offset_free):
            continue
        fold_scaling_into_conv(conv, *so)
        note_fold(user, node, computes_it=False)
        with gm.graph.inserting_before(node):
            cast = gm.graph.call_function(as_float, (source,))
        remove_node(gm, node, cast)


@torch.no_grad()
def fold_scaling_into_conv(conv: nn.Module, scale: torch.Tensor, offset: torch.Tensor) -> None:
    """``conv(x * scale + offset)`` as one conv (``scale``/``offset`` per input channel, no padding when
    ``offset`` is not zero)."""
    weight = conv.weight.double()
    shape = (1, -1) + (1,) * (weight.dim() - 2)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros(conv.out_channels, dtype=torch.float64)
    bias = bias + (weight * offset.reshape(shape)).sum(dim=tuple(range(1, weight.dim())))
    conv.weight = nn.Parameter((weight * scale.reshape(shape)).to(conv.weight.dtype))
    conv.bias = nn.Parameter(bias.to(conv.weight.dtype))


def fresh_output(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether the node's output is a tensor no one else holds: ``nn/inplace.py``'s rule (a convolution, dense
    layer, batch norm, merge of two or more, or a layer that writes over such a tensor), or an activation ending a
    converted layer (its own output, or its in-place input's: a conv's, set below)."""
    module = module_of(gm, node)
    if module is None:
        return False
    if type(module) is nn.Sequential and len(module):
        return makes_fresh_output(module[-1], 1) or isinstance(module[-1], IN_PLACE)
    return makes_fresh_output(module, len(node.args))


def activations_in_place(gm: fx.GraphModule) -> None:
    for node in gm.graph.nodes:
        module = module_of(gm, node)
        source = sole_input(node)
        if (isinstance(module, IN_PLACE) and source is not None and len(source.users) == 1 and called_once(gm, node)
                and fresh_output(gm, source)):
            module.inplace = True
    for module in gm.modules():  # (conv, activation) inside one converted layer
        if type(module) is nn.Sequential:
            for before, after in zip(module, list(module)[1:]):
                if isinstance(after, IN_PLACE) and makes_fresh_output(before, 1):
                    after.inplace = True


def fusable(conv: nn.Module) -> bool:
    return type(conv) in (nn.Conv2d, Conv2d) and not isinstance(conv.padding, str) and conv.padding_mode == "zeros"


def replace_submodule(gm: fx.GraphModule, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(gm.get_submodule(parent) if parent else gm, name, module)


def fuse_convolutions(gm: fx.GraphModule) -> None:
    """Conv2d → FusedConv2d, with the activation that follows it (inside the layer or as the next layer)."""
    removed: set[fx.Node] = set()
    for node in list(gm.graph.nodes):
        module = module_of(gm, node) if node not in removed else None
        if module is None or not called_once(gm, node):
            continue
        parts = list(module) if type(module) is nn.Sequential else [module]
        names = list(module._modules) if type(module) is nn.Sequential else [None]
        own_activation = len(parts) >= 2 and type(parts[-1]) in POST_OPS and fusable(parts[-2])
        if own_activation:
            conv, activation, keep = parts[-2], parts[-1], len(parts) - 2
        elif fusable(parts[-1]):
            conv, activation, keep = parts[-1], None, len(parts) - 1
        else:
            continue
        if activation is None and len(node.users) == 1:
            user = next(iter(node.users))
            follower = module_of(gm, user)
            if type(follower) in POST_OPS and sole_input(user) is node and called_once(gm, user):
                activation = follower
                note_fold(node, user, computes_it=True)
                remove_node(gm, user, node)
                removed.add(user)
                gm.delete_submodule(user.target)  # now held by the fused conv: unused-module clean-up skips it
        fused = FusedConv2d(conv, activation)
        if keep == 0:
            replace_submodule(gm, node.target, fused)
        else:
            seq = nn.Sequential()
            for name, part in zip(names[:keep], parts[:keep]):
                seq.add_module(name, part)
            seq.add_module(names[keep], fused)
            replace_submodule(gm, node.target, seq)


def fuse_residual_adds(gm: fx.GraphModule) -> None:
    """``relu(conv(x) + shortcut)`` (ResNet's block end) → one ``FusedConvAdd2d`` call: an Add layer of two inputs
    (a broadcasting one runs the plain add at run time), one of them a ``FusedConv2d`` without activation that
    nothing else reads, and the activation after the add (when it is the add's only reader) folded into the
    convolution's pass."""
    removed: set[fx.Node] = set()
    for add in list(gm.graph.nodes):
        if add in removed or type(module_of(gm, add)) is not Add or len(add.args) != 2 or add.kwargs \
                or not called_once(gm, add):
            continue
        conv_node = next((a for a in reversed(add.args) if isinstance(a, fx.Node)
                          and type(module_of(gm, a)) is FusedConv2d and module_of(gm, a).activation is None
                          and len(a.users) == 1 and called_once(gm, a) and sole_input(a) is not None), None)
        if conv_node is None:
            continue
        other = add.args[1] if add.args[0] is conv_node else add.args[0]
        if not isinstance(other, fx.Node) or other is conv_node:
            continue
        activation, act_node = None, None
        if len(add.users) == 1:
            user = next(iter(add.users))
            follower = module_of(gm, user)
            if type(follower) in POST_OPS and sole_input(user) is add and called_once(gm, user):
                activation, act_node = follower, user
        fused = FusedConvAdd2d(module_of(gm, conv_node), activation)  # the same weight and bias parameters
        replace_submodule(gm, conv_node.target, fused)
        with gm.graph.inserting_before(add):
            new = gm.graph.call_module(conv_node.target, (sole_input(conv_node), other))
        new.meta = dict(conv_node.meta)
        note_fold(new, add, computes_it=True)
        if act_node is not None:
            note_fold(new, act_node, computes_it=True)
            remove_node(gm, act_node, new)
            gm.delete_submodule(act_node.target)
        remove_node(gm, add, new)
        gm.delete_submodule(add.target)
        gm.graph.erase_node(conv_node)
        removed.update((add, conv_node) if act_node is None else (add, conv_node, act_node))


def fuse_linears(gm: fx.GraphModule) -> None:
    """``nn.Linear`` (a Dense layer, after any batch norm folded into it) → ``FusedLinear``: oneDNN's matrix
    product with the weight packed once (MKL's, torch's default, ran 2.5-3.7× slower on the benchmark's AMD CPU).
    Same module name and parameters; inside a layer's ``nn.Sequential`` (a Dense with its activation) too; a
    MultiHeadAttention's projections the same way (``packed_projections``)."""
    for module in gm.modules():
        if isinstance(module, KerasMaskedMultiheadAttention):
            module.packed_projections = True
    for node in list(gm.graph.nodes):
        module = module_of(gm, node)
        if type(module) is nn.Linear:
            replace_submodule(gm, node.target, FusedLinear(module))
        elif type(module) is nn.Sequential:
            for name, part in module.named_children():
                if type(part) is nn.Linear:
                    setattr(module, name, FusedLinear(part))


def symmetric_zero_pad2d(module: nn.Module | None) -> tuple[int, int] | None:
    """(rows, columns) padded on both sides by a ``ZeroPad2d`` that pads each side pair equally."""
    if type(module) is not nn.ZeroPad2d:
        return None
    left, right, top, bottom = module.padding
    return (top, left) if left == right and top == bottom and min(left, top) >= 0 else None


def pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value, value)


def non_negative_output(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether every value ``node`` outputs is ≥ 0 (or NaN): a ReLU, or a fused convolution ending in one
    (a ReLU6's ``hardtanh`` from 0)."""
    module = module_of(gm, node)
    if isinstance(module, (nn.ReLU, nn.ReLU6)):
        return True
    if isinstance(module, FusedConv2d):
        return module.post_op == "relu" or (module.post_op == "hardtanh" and module.scalars[0] >= 0)
    return False


def fold_zero_padding(gm: fx.GraphModule) -> None:
    """A ``ZeroPad2d`` layer (Keras ``ZeroPadding2D``: ResNet's and DenseNet's ``pool1_pad``) padding each side
    pair equally, read only by a max pooling of a tensor ≥ 0 (after a ReLU), becomes the pooling's own padding:
    one tensor fewer to allocate, zero and copy (ResNet50's stem at 2 threads: 3.8 → 1.9 ms at batch 8, 0.39 →
    0.30 ms at batch 1). Exact: the pooling pads with -inf, which equals zeros where the input is ≥ 0 and every
    window holds an input value (padding ≤ half the window, torch's own limit). Not into a convolution: oneDNN's
    kernel for ResNet's 3-channel 7×7 stem ran slower with its own padding at batch 1 (2.63 against 1.96 ms)."""
    for pad_node in list(gm.graph.nodes):
        pads = symmetric_zero_pad2d(module_of(gm, pad_node))
        source = sole_input(pad_node)
        if pads is None or source is None or len(pad_node.users) != 1 or not called_once(gm, pad_node):
            continue
        user = next(iter(pad_node.users))
        reader = module_of(gm, user)
        if reader is None or not user.args or user.args[0] is not pad_node or pad_node in user.args[1:] \
                or user.kwargs or not called_once(gm, user):
            continue
        if not (type(reader) is nn.MaxPool2d and not reader.ceil_mode and reader.dilation in (1, (1, 1))
                and reader.padding in (0, (0, 0)) and non_negative_output(gm, source)
                and all(2 * p <= k for p, k in zip(pads, pair(reader.kernel_size)))):
            continue
        reader.padding = pads
        note_fold(user, pad_node, computes_it=False)
        remove_node(gm, pad_node, source)
        gm.delete_submodule(pad_node.target)


def padding_folded_by(pad: nn.Module, conv: nn.Module) -> tuple[bool, list[int] | None]:
    """(whether the zero padding ``pad`` can run inside the depthwise ``conv`` after it, its fixed pads or None
    for TF ``SAME`` computed from the input's size)."""
    depthwise = (type(conv) is FusedConv2d and conv.groups > 1 and conv.weight.shape[1] == 1
                 and conv.padding == [0, 0] and conv.dilation == [1, 1])
    if not depthwise:
        return False, None
    if type(pad) is nn.ZeroPad2d and min(pad.padding) >= 0:
        return True, list(pad.padding)
    same = (type(pad) is TFSamePad2d and pad.value == 0 and pad.kernel_size == tuple(conv.weight.shape[2:])
            and pad.stride == tuple(conv.stride) and pad.dilation == tuple(conv.dilation))
    return same, None


def fold_padding_into_depthwise(gm: fx.GraphModule) -> None:
    """A zero padding read only by a depthwise ``FusedConv2d`` (a ``ZeroPadding2D`` layer before it, as in
    MobileNetV2 and EfficientNet, or the TF ``SAME`` padding inside its own layer) → ``ZeroPaddedDepthwiseConv2d``
    (``nn/fused.py``): the conv pads, and no padded copy of its input is made."""
    for node in list(gm.graph.nodes):
        module = module_of(gm, node)
        if type(module) is nn.Sequential and len(module) >= 2 and list(module._modules)[0] in PAD_MODULE_PREFIXES:
            applies, pads = padding_folded_by(module[0], module[1])
            if applies and called_once(gm, node):
                names, parts = list(module._modules)[1:], list(module)[1:]
                parts[0] = ZeroPaddedDepthwiseConv2d(parts[0], pads)
                replace_submodule(gm, node.target, parts[0] if len(parts) == 1 else nn.Sequential(
                    OrderedDict(zip(names, parts))))
            continue
        source = sole_input(node)
        if module is None or source is None or len(node.users) != 1 or not called_once(gm, node):
            continue
        user = next(iter(node.users))
        applies, pads = padding_folded_by(module, module_of(gm, user))
        if applies and sole_input(user) is node and called_once(gm, user):
            replace_submodule(gm, user.target, ZeroPaddedDepthwiseConv2d(module_of(gm, user), pads))
            note_fold(user, node, computes_it=False)
            remove_node(gm, node, source)
            gm.delete_submodule(node.target)


def pointwise(conv: nn.Module | None) -> bool:
    return (type(conv) is FusedConv2d and tuple(conv.weight.shape[2:]) == (1, 1) and conv.stride == [1, 1]
            and conv.padding == [0, 0] and conv.dilation == [1, 1] and conv.groups == 1)


def averages_each_channel_alike(pool: nn.Module | None) -> bool:
    """A 2-D average pooling whose divisor is the same for every channel at each pixel: no padding, or padding
    left out of the count (Keras ``SAME``), no divisor override."""
    return (type(pool) is nn.AvgPool2d and not pool.ceil_mode and pool.divisor_override is None
            and (not pool.count_include_pad or pair(pool.padding) == (0, 0)))


def pool_after_pointwise_convs(gm: fx.GraphModule) -> None:
    """An average pooling read only by a 1×1 ``FusedConv2d`` → ``PooledPointwiseConv2d`` (``nn/fused.py``): the
    convolution reads the pooling's input and pools its own output, on fewer channels where it narrows them."""
    for pool_node in list(gm.graph.nodes):
        pool, source = module_of(gm, pool_node), sole_input(pool_node)
        if not averages_each_channel_alike(pool) or source is None or len(pool_node.users) != 1 \
                or not called_once(gm, pool_node):
            continue
        conv_node = next(iter(pool_node.users))
        conv = module_of(gm, conv_node)
        if not pointwise(conv) or sole_input(conv_node) is not pool_node or not called_once(gm, conv_node) \
                or conv.weight.shape[0] >= conv.weight.shape[1]:  # pools fewer channels only where it narrows
            continue
        replace_submodule(gm, conv_node.target, PooledPointwiseConv2d(conv, pool))
        note_fold(conv_node, pool_node, computes_it=False)
        remove_node(gm, pool_node, source)
        gm.delete_submodule(pool_node.target)


def border_zero_pads(gm: fx.GraphModule) -> None:
    """Zero paddings that stayed (``ZeroPad2d``, TF ``SAME`` padding with zeros) become their twins in
    ``nn/fused.py`` that zero only the border (``pad_zero_border``)."""
    for path, module in list(gm.named_modules()):
        if type(module) is nn.ZeroPad2d:
            replace_submodule(gm, path, BorderZeroPad2d(module.padding))
        elif type(module) is TFSamePad2d and module.value == 0:
            replace_submodule(gm, path, TFSameZeroPad2d(module.kernel_size, module.stride, module.dilation))


def channels_last_if_4d(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def to_channels_last(gm: fx.GraphModule) -> None:
    """4-D inputs and weights in channels_last memory (the values are the same); 4-D outputs handed back
    contiguous. Inputs the default module already moves (``tf2torch.memory_format``) are left as they are."""
    memory_format.conv_weights_channels_last(gm)
    for node in list(gm.graph.nodes):
        if node.op == "placeholder" and node.users and not memory_format.made_channels_last(node):
            with gm.graph.inserting_after(node):
                moved = gm.graph.call_function(channels_last_if_4d, (node,))
            node.replace_all_uses_with(moved, delete_user_cb=lambda user, moved=moved: user is not moved)
    output = next(n for n in gm.graph.nodes if n.op == "output")
    with gm.graph.inserting_before(output):
        output.args = (_contiguous(gm, output.args[0]),)


def _contiguous(gm: fx.GraphModule, value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return type(value)(_contiguous(gm, v) for v in value)
    if isinstance(value, fx.Node):
        return gm.graph.call_method("contiguous", (value,))
    return value
