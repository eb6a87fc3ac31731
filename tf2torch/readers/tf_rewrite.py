"""Rewrites of the resolved graph before conversion (the graph walker calls them after its forward pass).

``fold_dilated_convolutions``: TensorFlow runs a dilated convolution as ``SpaceToBatchND`` → a stride-1 VALID
``Conv2D`` / ``DepthwiseConv2dNative`` (for a 1-D conv between ``ExpandDims`` and ``Squeeze``) →
``BatchToSpaceND`` ([TF] ``ops/nn_ops.py``, ``_WithSpaceToBatch``; tf2onnx's ``rewriter/conv_dilations_rewriter``
folds the same pattern). With the block ``r`` constant, the paddings ``(pb, pa)`` and the crops ``(cb, ca)``
constant, the pattern equals a VALID convolution with dilation ``r`` of the input padded by
``(pb - cb, pa - ca)``: the interleaved phases of the blocked conv are exactly the dilated conv's outputs, and
cropping ``c`` outputs at one end is the same as padding ``c`` fewer inputs there. Folded only where that holds
(``pb >= cb``, ``pa >= ca``, each op read by the next alone, no dilation or stride already set); otherwise the
two ops are converted on their own (``ops/tf_raw.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .tf_sources import Tensor

CONVS = frozenset({"Conv2D", "DepthwiseConv2dNative"})


def fold_dilated_convolutions(walker: Any, outputs: list[Tensor], inputs: set[str]) -> int:
    """Fold every foldable SpaceToBatchND → conv → BatchToSpaceND on the path to ``outputs``; returns how many
    were folded (the walker re-imports its graph when any was)."""
    order = walker.cone(outputs, inputs)
    readers: dict[str, int] = {}
    for n in order:
        if walker.state.get(n) == "dyn" and n not in inputs:
            for t in walker.deps(n):
                readers[t] = readers.get(t, 0) + 1
    for o in outputs:
        readers[walker.resolve(o)[0]] = readers.get(walker.resolve(o)[0], 0) + 1
    folded = 0
    for n in order:
        if walker.nodes[n].op == "BatchToSpaceND" and walker.state.get(n) == "dyn":
            chain = _pattern(walker, n, readers)
            if chain is not None and _fold(walker, n, *chain):
                folded += 1
    return folded


def _pattern(walker: Any, b2s: str, readers: dict[str, int]) -> tuple[str, str, int | None] | None:
    """(space_to_batch, conv, expanded axis or None) when ``b2s`` ends the pattern."""
    def producer(name: str) -> str | None:
        src = walker.resolve(walker.data_inputs(name)[0])
        return src[0] if src[1] == 0 and readers.get(src[0]) == 1 and walker.state.get(src[0]) == "dyn" else None

    conv = producer(b2s)
    squeeze = None
    if conv is not None and walker.nodes[conv].op == "Squeeze":
        squeeze, conv = conv, producer(conv)
    if conv is None or walker.nodes[conv].op not in CONVS:
        return None
    s2b = producer(conv)
    expand = None
    if squeeze is not None:
        if s2b is None or walker.nodes[s2b].op != "ExpandDims":
            return None
        expand, s2b = s2b, producer(s2b)
    if s2b is None or walker.nodes[s2b].op != "SpaceToBatchND":
        return None
    if expand is not None:
        axis = int(np.asarray(_const(walker, expand, 1)).reshape(-1)[0])
        squeezed = [int(a) for a in walker.nodes[squeeze].attr["squeeze_dims"].list.i]
        if axis not in (1, -3) or squeezed not in ([1], [-3]):
            return None
        return s2b, conv, 1
    return s2b, conv, None


def _const(walker: Any, name: str, i: int) -> np.ndarray | None:
    t = walker.resolve(walker.data_inputs(name)[i])
    return walker.evaluate([t])[0] if walker.state.get(t[0]) == "const" else None


def _fold(walker: Any, b2s: str, s2b: str, conv: str, expanded: int | None) -> bool:
    block, pads, crops = _const(walker, s2b, 1), _const(walker, s2b, 2), _const(walker, b2s, 2)
    block2 = _const(walker, b2s, 1)
    node = walker.nodes[conv]
    if any(v is None for v in (block, pads, crops, block2)) or not np.array_equal(block, block2):
        return False
    block, pads, crops = block.reshape(-1), pads.reshape(-1, 2), crops.reshape(-1, 2)
    m = len(block)
    spatial = [2] if expanded is not None else list(range(1, 1 + m))  # the conv's axes the block acts on
    if (m != len(spatial) or node.attr["padding"].s != b"VALID" or node.attr["data_format"].s not in (b"", b"NHWC")
            or any(v != 1 for v in node.attr["strides"].list.i) or any(v != 1 for v in node.attr["dilations"].list.i)):
        return False
    margins = pads - crops
    if (margins < 0).any():
        return False
    dilations = [1, 1, 1, 1]
    for axis, r in zip(spatial, block):
        dilations[axis] = int(r)
    del node.attr["dilations"].list.i[:]
    node.attr["dilations"].list.i.extend(dilations)
    _pad_instead(walker, s2b, margins)
    _identity_instead(walker, b2s)
    return True


def _identity_instead(walker: Any, name: str) -> None:
    """``name`` becomes an ``Identity`` of its first input, in the walk (an alias) and in the graph TensorFlow
    re-imports for the new shapes (where the old op would no longer fit its input)."""
    x = walker.resolve(walker.data_inputs(name)[0])
    walker.alias[(name, 0)] = x
    node = walker.nodes[name]
    del node.input[:]
    node.input.append(f"{x[0]}:{x[1]}")
    node.op = "Identity"
    for key in list(node.attr):
        if key != "T":
            del node.attr[key]


def _pad_instead(walker: Any, s2b: str, margins: np.ndarray) -> None:
    """``s2b`` becomes ``Pad(x, margins)`` on its spatial axes (or its input, when the margins are zero)."""
    x = walker.resolve(walker.data_inputs(s2b)[0])
    if not margins.any():
        _identity_instead(walker, s2b)
        return
    rank = len(walker.tf_tensor(x).shape)
    paddings = np.zeros((rank, 2), dtype=np.int32)
    paddings[1:1 + len(margins)] = margins
    tf = walker.tf
    name = f"{s2b}/tf2torch_paddings"
    const = walker.graph_def.node.add()
    const.name, const.op = name, "Const"
    const.attr["dtype"].type = tf.int32.as_datatype_enum
    const.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(paddings))
    walker.nodes[name] = const
    walker.state[name] = "const"
    walker.values[(name, 0)] = paddings
    node = walker.nodes[s2b]
    inputs = [f"{x[0]}:{x[1]}", name] + [i for i in node.input if i.startswith("^")]
    del node.input[:]
    node.input.extend(inputs)
    node.op = "Pad"
    for key in list(node.attr):
        if key not in ("T",):
            del node.attr[key]
    node.attr["Tpaddings"].type = tf.int32.as_datatype_enum
