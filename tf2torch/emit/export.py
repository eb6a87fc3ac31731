"""Exports that need no Python code at all: ``model.pt2`` (``torch.export``) and ``model.onnx`` (``torch.onnx``).

The batch dimension is dynamic, and so is every dimension the Keras model leaves open (``None`` in its input
shape, unless ``input_shapes`` fixed it at conversion). Examples use batch 2 and size 64 for open dimensions, the
sizes the conversion itself ran with.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx

from ..errors import EmitError
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


def export_program(module: fx.GraphModule) -> torch.export.ExportedProgram:
    inputs = module_inputs(module)
    examples = tuple(info.example() for info in inputs)
    try:
        return torch.export.export(module.eval(), examples, dynamic_shapes=dynamic_shapes(inputs), strict=False)
    except Exception as exc:
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
            raise EmitError(f"--emit onnx needs the {package} package: pip install 'tf2torch[onnx]'")
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
