"""The public functions behind ``tf2torch.convert``, ``save`` and ``load``."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import torch.fx as fx

from . import converters as _converters  # noqa: F401  (every shipped converter registered before the first lookup)
from . import ops as _ops  # noqa: F401
from .assemble import assemble
from .contract import Facts
from .errors import ConversionNotice, ModelFileError, UnsupportedLayerError
from .graph import KerasGraph
from .io import load_payload, read_saved, save  # noqa: F401
from .optimize import optimize as optimize_module
from .readers import open_model
from .registry import converter as register  # noqa: F401  (after every shipped converter: a clash is refused)
from .support import has_converter, refuse_unsupported
from .theano_kernels import theano_notice, with_flipped_kernels


def convert(path: str | os.PathLike, layout: str = "channels_first",
            input_shapes: Sequence[Sequence[int | None]] | None = None, dtype: str | None = None,
            optimize: bool = False, *, signature: str | None = None, inputs: Sequence[str] | None = None,
            outputs: Sequence[str] | None = None, constants: dict[str, Any] | None = None,
            flip_theano_kernels: bool = False, dequantize: bool = False) -> fx.GraphModule:
    """Convert a Keras ``.h5`` or ``.keras`` file into a torch module in eval mode.

    ``layout="channels_first"`` (default): 4-D/5-D inputs and outputs are N,C,H,W / N,C,D,H,W; 2-D and 3-D ones
    keep Keras's layout. ``layout="keras"``: every input and output exactly as in Keras.
    ``input_shapes``: one shape per input without the batch axis, to fix dimensions the model leaves open.
    ``dtype``: None computes as the model does (float64 layers in float64, mixed precision in float32 with a
    notice); ``"float32"`` or ``"float64"`` converts every floating layer and input to that dtype.
    The module returns its outputs in Keras's ``model.outputs`` order and names them in ``output_names``
    (``input_names`` likewise).
    ``optimize=True``: an inference-only module with batch norms and input scaling folded into convolutions,
    no-ops dropped and channels_last weights (``tf2torch.optimize``); the default keeps one module per layer.
    TensorFlow graphs (SavedModel directory, TF1 checkpoint with its ``.meta``, frozen ``.pb``): ``signature``
    (default ``serving_default``), ``inputs`` / ``outputs`` (tensor names, default the signature's or the
    placeholders and sinks), ``constants`` (placeholder name → value fixed at conversion, e.g.
    ``{"is_training": False}``).
    ``flip_theano_kernels=True``: a ``.h5`` trained with Keras's Theano backend is converted as it was trained,
    its convolution kernels flipped as Keras 2.0-2.3 flipped them on loading (``tf2torch.theano_kernels``); by
    default it is converted as today's Keras reads it, with a notice.
    ``dequantize=True``: a quantized ``.tflite`` model (int8 / uint8) becomes a float model with its weights
    dequantized, with a notice (refused by default: it computes in float, not as the quantized model).
    """
    tf_options = {"signature": signature, "inputs": inputs, "outputs": outputs, "constants": constants}
    read_options = {**tf_options, "dequantize": True} if dequantize else tf_options
    with read_model(path, read_options) as graph:
        dequantized = sum(bool(layer.config.get("dequantized")) for layer in graph.layers.values()) \
            if dequantize else 0
        theano = theano_notice(graph, flip_theano_kernels)
        if flip_theano_kernels:
            with_flipped_kernels(graph)
        module = assemble(graph, layout, input_shapes, dtype)
        _attach_meta(module, graph, layout, input_shapes, dtype)
    if theano is not None:
        module.tf2torch_notices.append(theano)
    if dequantized:
        module.tf2torch_meta["dequantized"] = dequantized
        module.tf2torch_notices.append(
            f"{path}: dequantized: {dequantized} quantized operator(s) converted to float32 with their weights "
            "dequantized ((q - zero_point) * scale); the model computes in float, so it differs from the "
            "interpreter's quantized output by the quantization's rounding (tf2torch verify says by how much)")
    if flip_theano_kernels:
        module.tf2torch_meta["flip_theano_kernels"] = True
    if any(v for v in tf_options.values()):
        module.tf2torch_meta["tf_options"] = {k: (list(v) if isinstance(v, (list, tuple)) else v)
                                              for k, v in tf_options.items() if v}
    if optimize:
        optimize_module(module)
        module.tf2torch_meta["optimize"] = True
    for notice in module.tf2torch_notices:
        warnings.warn(notice, ConversionNotice, stacklevel=2)
    return module


@contextlib.contextmanager
def read_model(path: str | os.PathLike, tf_options: dict[str, Any] | None = None) -> Iterator[KerasGraph]:
    """The file read into the IR (``tf_options``: a TF graph's signature, inputs, outputs, constants), what nothing
    converts refused at once, at every depth (``support``): what ``convert`` and ``tf2torch inspect`` read."""
    with open_model(path, tf_options, convertible=has_converter) as graph:
        refuse_unsupported(graph)
        yield graph


def _attach_meta(module: fx.GraphModule, graph: KerasGraph, layout: str,
                 input_shapes: Sequence[Sequence[int | None]] | None, dtype: str | None) -> None:
    from .registry import custom_converters

    module.tf2torch_meta = {
        "graph": graph.to_json(),
        "custom_converters": custom_converters([layer.class_name for layer in graph.layers.values()]),
        "layout": layout,
        "input_shapes": [list(s) if s is not None else None for s in input_shapes] if input_shapes else None,
        "dtype": dtype,
        "submodules": submodule_names(module),
    }
    if getattr(module, "tf2torch_batch", None) is not None:  # built at the batch size the model fixes
        module.tf2torch_meta["batch"] = module.tf2torch_batch


def submodule_names(module: fx.GraphModule) -> dict[str, str]:
    """torch submodule path → the Keras layer it was converted from."""
    return {str(n.target): n.meta["tf2torch"]["layer"] for n in module.graph.nodes
            if n.op == "call_module" and "layer" in n.meta.get("tf2torch", {})}


def load(path: str | os.PathLike) -> fx.GraphModule:
    """Load a file written by ``tf2torch.save``; safe (``weights_only=True``), no pickled code."""
    graph, meta, state_dict = read_saved(path)
    layout, input_shapes, dtype = meta["layout"], meta.get("input_shapes"), meta.get("dtype")
    require_custom_converters(path, meta.get("custom_converters") or {})
    try:
        module = assemble(graph, layout, input_shapes, dtype)
        if meta.get("optimize"):
            optimize_module(module)  # the same folds (they depend on the structure only), then the folded weights
        module.load_state_dict(state_dict, strict=True)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:  # an IR that does not hold together
        raise ModelFileError(f"{path}: {_unloadable(meta)} ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:300]})") from None
    _attach_meta(module, graph, layout, input_shapes, dtype)
    if meta.get("optimize"):
        module.tf2torch_meta["optimize"] = True
    if "tf_options" in meta:
        module.tf2torch_meta["tf_options"] = meta["tf_options"]
    return module.eval()


def _unloadable(meta: dict[str, Any]) -> str:
    """Why a saved module did not rebuild: an older file format (module names have changed since) or damage."""
    from .io import FORMAT_VERSION

    written = meta.get("format_version", 0)
    if written < FORMAT_VERSION:
        return (f"written by an older tf2torch (file format {written}, this one writes {FORMAT_VERSION}) whose module "
                "does not rebuild here; convert the original model again")
    return "a damaged tf2torch file"


def require_custom_converters(path: str | os.PathLike, used: dict[str, str]) -> None:
    """A ``.pt`` converted with the user's own converters is rebuilt with them: say which to register."""
    from .registry import lookup

    missing = {name: fn for name, fn in used.items() if lookup(name) is None}
    if missing:
        listed = ", ".join(f"{name} (converted by {fn})" for name, fn in missing.items())
        raise UnsupportedLayerError(
            [(name, name) for name in missing],
            message=f"{path} was converted with custom converters that are not registered now: {listed}. Import "
                    f"the module that registers them (@tf2torch.register({next(iter(missing))!r})) before "
                    "tf2torch.load")


def classes_with(fact: str) -> list[str]:
    """The Keras classes whose converter declares ``fact`` (a ``contract.Facts`` field: ``"weight_kind"``...)."""
    from .registry import with_fact

    return with_fact(fact)


def layer_facts(class_name: str) -> Facts:
    """What the converter of ``class_name`` (a Keras class or an op's spelling) declared with it
    (``contract.Facts``: mask policy, training sensitivity, the keys that decide its arithmetic, what transfer
    calls its weights...; an empty ``Facts`` when nothing converts it). The door through which verify, transfer
    and emit read per-class facts, so that none of them holds a table of Keras class names (issue #21)."""
    from .registry import facts

    return facts(class_name)
