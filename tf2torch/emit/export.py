"""Exports that need no Python code at all: ``model.pt2`` (``torch.export``) and ``model.onnx`` (``torch.onnx``).

The ONNX model takes integer inputs in the dtype the Keras Input declares (int32 token ids), the converted module
and the ``.pt2`` program int64. The batch dimension is dynamic, and so is every dimension the Keras model leaves
open (``None`` in its input shape, unless ``input_shapes`` fixed it at conversion). Examples use batch 2 and size 64
for open dimensions, the sizes the conversion itself ran with.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import EmitError
from .dynamic import constraining_layer
from .inputs import InputInfo, module_inputs

PT2_FILE = "model.pt2"
ONNX_FILE = "model.onnx"
ONNX_OPSET = 18


def dynamic_shapes(inputs: list[InputInfo]) -> tuple[dict[int, Any], ...]:
    return tuple({axis: torch.export.Dim.DYNAMIC for axis, size in enumerate(info.shape) if size is None}
                 for info in inputs)


def output_names(module: fx.GraphModule) -> list[str]:
    """The Keras layer each output comes from (through layout changes and tuple items)."""
    out = next(n for n in module.graph.nodes if n.op == "output").args[0]
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    names = []
    for node in outs:
        index = ""
        while isinstance(node, fx.Node) and "layer" not in node.meta.get("tf2torch", {}) and node.args:
            if node.op == "call_function" and len(node.args) > 1 and isinstance(node.args[1], int):
                index = f"_{node.args[1]}"
            node = node.args[0]
        layer = node.meta.get("tf2torch", {}).get("layer", node.name) if isinstance(node, fx.Node) else "output"
        name = f"{layer}{index}"
        while name in names:
            name += "_"
        names.append(name)
    return names


KERAS_INTEGERS = {"int8": torch.int8, "int16": torch.int16, "int32": torch.int32, "int64": torch.int64,
                  "uint8": torch.uint8, "uint16": torch.uint16}


def keras_dtype(info: InputInfo) -> torch.dtype:
    """The dtype the Keras Input takes where the module takes a wider one: integers (int32 ids → int64)."""
    if info.dtype.is_floating_point or info.dtype == torch.bool:
        return info.dtype
    return KERAS_INTEGERS.get(info.keras_dtype, info.dtype)


class KerasInputDtypes(nn.Module):
    """The converted module behind casts, for ONNX: integer inputs are declared in the Keras Input's dtype (int32
    ids; onnxruntime refused the Keras model's own ids when int64 was declared, issue #20) and cast to the int64
    the module takes."""

    def __init__(self, module: nn.Module, dtypes: list[torch.dtype]) -> None:
        super().__init__()
        self.module = module
        self.dtypes = dtypes

    def forward(self, *args: torch.Tensor) -> Any:
        return self.module(*[a.to(d) for a, d in zip(args, self.dtypes)])


def export_program(module: fx.GraphModule, keras_dtypes: bool = False) -> torch.export.ExportedProgram:
    """``torch.export`` of ``module``; ``keras_dtypes=True``: taking every input in the Keras Input's dtype."""
    inputs = module_inputs(module)
    examples = tuple(info.example() for info in inputs)
    target: nn.Module = module.eval()
    dynamic: Any = dynamic_shapes(inputs)
    if keras_dtypes:
        target = KerasInputDtypes(module, [i.dtype for i in inputs]).eval()
        examples = tuple(e.to(keras_dtype(i)) for e, i in zip(examples, inputs))
        dynamic = (dynamic,)  # one entry for ``*args``
    try:
        return torch.export.export(target, examples, dynamic_shapes=dynamic, strict=False)
    except Exception as exc:
        why = constraining_layer(module, inputs, examples, dynamic_shapes(inputs)) if not keras_dtypes else None
        if why is not None:
            raise EmitError(f"torch.export (--emit pt2, onnx): {why}") from exc
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EmitError(f"torch.export could not export the model with a dynamic batch"
                        f"{' and open dimensions' if any(None in i.shape[1:] for i in inputs) else ''}: "
                        f"{type(exc).__name__}: {first}") from exc


def write_pt2(program: torch.export.ExportedProgram, directory: Path) -> list[Path]:
    path = directory / PT2_FILE
    torch.export.save(program, str(path))
    return [path]


def write_onnx(module: fx.GraphModule, program: torch.export.ExportedProgram, directory: Path) -> list[Path]:
    inputs = module_inputs(module)
    path = directory / ONNX_FILE
    for package in ("onnx", "onnxscript"):
        if importlib.util.find_spec(package) is None:
            raise EmitError(f"--emit onnx needs the {package} package: pip install -c constraints.txt -e '.[onnx]' "
                            "in the tf2torch clone")
    if any(keras_dtype(i) != i.dtype for i in inputs):
        program = export_program(module, keras_dtypes=True)
    try:
        onnx_program = torch.onnx.export(program, f=None, input_names=[i.name for i in inputs],
                                         output_names=output_names(module), opset_version=ONNX_OPSET,
                                         dynamo=True, verbose=False)
        assert onnx_program is not None
        onnx_program.save(str(path), external_data=False)
    except EmitError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EmitError(f"torch.onnx could not export the model: {type(exc).__name__}: {first}") from exc
    return [path]
