"""The memory format a converted convolution trunk runs in. Build time; no value changes, only strides.

oneDNN, PyTorch's CPU convolution backend, is fastest on channels-last memory (N,H,W,C strides); on N,C,H,W
contiguous memory every convolution reorders its input and output. A model read from ONNX gets channels-last for
free (its graph transposes the NHWC input into a view with exactly those strides), and so does a channels-first
module fed a permuted NHWC array. So a module whose trunk has 2-D convolutions copies each N,C,H,W input into
channels-last memory once, as its first line (a no-op for a tensor that already is), and hands 4-D outputs back
contiguous. The 2-D convolution weights are channels-last too (``registry.as_conv_weight``, in the copy that
turns Keras's kernel around anyway): beside a channels-last input torch copies a contiguous weight to
channels-last on every call. The interface (shapes, layouts, names), the parameters' values and the state_dict's
values are unchanged (outputs equal bit for bit), and the module trains the same. MobileNetV2's convolutions took
38% less time with channels-last inputs in the benchmark's profile (benchmarks/bench_routes.py); channels-last
weights took ResNet50 at batch 1 from 1.20 to 1.00 of the peer's time in one interleaved run.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.fx as fx
from torch import nn


def has_conv2d(root: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in root.modules())


def run_channels_last(graph: fx.Graph, inputs: Sequence[fx.Node], outputs: Sequence[fx.Node]) -> list[fx.Node]:
    """Make the 4-D channels-first ``inputs`` channels-last right after their placeholders; return ``outputs``
    (4-D channels-first tensors) with ``.contiguous()`` calls in their place."""
    for placeholder in inputs:
        with graph.inserting_after(placeholder):
            moved = graph.call_method("contiguous", (placeholder,), {"memory_format": torch.channels_last})
        placeholder.replace_all_uses_with(moved, delete_user_cb=lambda user, moved=moved: user is not moved)
    return [graph.call_method("contiguous", (out,)) for out in outputs]


def conv_weights_channels_last(root: nn.Module) -> None:
    """The 2-D convolution weights a converter did not make channels-last (``registry.as_conv_weight``: every
    Keras conv layer does) in channels-last memory too: a contiguous weight beside a channels-last input is
    copied to channels-last on every call."""
    for module in root.modules():
        if isinstance(module, nn.Conv2d) and not module.weight.is_contiguous(memory_format=torch.channels_last):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)


def made_channels_last(placeholder: fx.Node) -> bool:
    """Whether ``run_channels_last`` already moved this input (its one reader is the copy to channels-last)."""
    users = list(placeholder.users)
    return (len(users) == 1 and users[0].op == "call_method" and users[0].target == "contiguous"
            and users[0].kwargs.get("memory_format") is torch.channels_last)
