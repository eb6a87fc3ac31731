"""A converted module as PyTorch source a team can own: ``model.py``, ``runtime.py``, ``model.safetensors``.

``model.py`` holds one ``nn.Module`` named after the Keras model: ``__init__`` builds each submodule with its
hyperparameters spelled out (``spell.py``), under the Keras layer's name; ``forward`` is the converted graph, one
line per layer call, Keras names as variable names. ``runtime.py`` holds the ``tf2torch/nn`` helpers the model
uses (``runtime.py`` of this package copies them). ``load()`` builds the class, loads the weights strictly and
returns the module in eval mode. Nothing written imports tf2torch, Keras or TensorFlow.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import operator
import re
import textwrap
from pathlib import Path
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from ..errors import EmitError
from ..io import conversion_meta
from .inputs import module_inputs
from .runtime import import_name_order, runtime_source
from .spell import CannotSpell, Spelling, function_expr, module_expr

WIDTH = 120
MODEL_FILE = "model.py"
RUNTIME_FILE = "runtime.py"
WEIGHTS_FILE = "model.safetensors"
RESERVED = {"self", "torch", "nn", "F", "OrderedDict", "operator", "math", "Path", "os", "load", "WEIGHTS",
            "l", "O", "I"}  # the last three: ruff E741


# -- layout of long expressions -----------------------------------------------------------------------------------
def render(expr: ast.expr, indent: int, lead: int) -> str:
    """``expr`` on one line when it fits in ``WIDTH`` after ``lead`` characters, else one argument a line."""
    flat = ast.unparse(expr)
    if indent + lead + len(flat) <= WIDTH:
        return flat
    inner = indent + 4
    if isinstance(expr, ast.Call):
        items = [render(a, inner, 1) for a in expr.args]  # 1: the comma after each item
        items += [f"{k.arg}={render(k.value, inner, len(k.arg or '') + 2)}" for k in expr.keywords]
        opening, closing = ast.unparse(expr.func) + "(", ")"
    elif isinstance(expr, (ast.List, ast.Tuple)):
        items = [render(e, inner, 1) for e in expr.elts]
        opening, closing = ("[", "]") if isinstance(expr, ast.List) else ("(", ")")
    elif isinstance(expr, ast.Dict):
        items = [f"{ast.unparse(k)}: {render(v, inner, len(ast.unparse(k)) + 3)}"
                 for k, v in zip(expr.keys, expr.values) if k is not None]
        opening, closing = "{", "}"
    else:
        return flat
    return opening + "\n" + "".join(" " * inner + item + ",\n" for item in items) + " " * indent + closing


# -- names --------------------------------------------------------------------------------------------------------
def identifier(name: str) -> str:
    name = re.sub(r"\W", "_", name) or "_"
    if name[0].isdigit():
        name = "_" + name
    if keyword.iskeyword(name) or name in RESERVED or hasattr(builtins, name):
        name += "_"
    return name


# the names ``load()`` binds: a model class of one of these names would be shadowed there (tf_keras names its
# first Functional model ``model``)
LOAD_LOCALS = ("model", "weights", "load_file", "conv")


def class_name(module: fx.GraphModule) -> str:
    name = identifier(type(module).__name__)
    return name if name not in ("Module", "nn", *LOAD_LOCALS) else name + "_"


def keras_layers(module: fx.GraphModule) -> dict[str, str]:
    """Top-level submodule name → the Keras layer it was converted from (for error messages)."""
    layers = {}
    for node in module.graph.nodes:
        info = node.meta.get("tf2torch", {})
        if node.op == "call_module" and "layer" in info:
            layers[str(node.target).split(".")[0]] = info["layer"]
    return layers


# -- __init__ -----------------------------------------------------------------------------------------------------
def init_lines(module: nn.Module, owner: str, sp: Spelling, layers: dict[str, str],
               frozen: dict[str, list[str]]) -> list[str]:
    """``owner.name = <expression>`` for each submodule, each followed by its ``requires_grad_`` lines
    (``frozen``: submodule path → lines)."""
    if module._parameters or [b for b in module._buffers.values() if b is not None]:
        raise EmitError(f"{owner} holds tensors of its own ({list(module._parameters) + list(module._buffers)}); "
                        "only submodules can be written")
    lines = []
    for name, child in module.named_children():
        target = f"{owner}.{name}"
        if type(child) is nn.Module:  # a nested Keras model: a plain container
            lines.append(f"{target} = nn.Module()")
            lines.extend(init_lines(child, target, sp, layers, frozen))
        else:
            try:
                expr = module_expr(child, sp)
            except CannotSpell as exc:
                path = target.removeprefix("self.")
                layer = layers.get(path.split(".")[0], path)
                raise EmitError(f"layer {layer} ({type(child).__name__}): {exc}") from None
            lines.append(f"{target} = {render(expr, 8, len(target) + 3)}")
        path = target.removeprefix("self.")
        for key in [k for k in frozen if k == path or k.startswith(path + ".")]:
            lines.extend(frozen.pop(key))
    return lines


def frozen_lines(module: fx.GraphModule) -> dict[str, list[str]]:
    """``requires_grad_`` calls that give the built module the converted one's frozen parameters, by submodule
    path: the whole submodule where all its parameters are frozen (a Keras layer saved with ``trainable=False``),
    else the single parameter (a torch-only placeholder such as the second RNN bias, kept constant)."""
    configs = {name: layer.get("config", {}) for name, layer in conversion_meta(module)["graph"]["layers"].items()}
    layer_of = {str(node.target): node.meta["tf2torch"]["layer"] for node in module.graph.nodes
                if node.op == "call_module" and "layer" in node.meta.get("tf2torch", {})}
    lines: dict[str, list[str]] = {}
    done: list[str] = []
    for path, sub in module.named_modules():
        params = [p for _, p in sub.named_parameters()]
        if not path or not params or any(path.startswith(d + ".") for d in done):
            continue
        if all(not p.requires_grad for p in params):
            config = configs.get(layer_of.get(path, ""))
            why = ("frozen in the converted model" if config is None else "Keras trainable=False"
                   if config.get("trainable", True) is False else "not Keras weights: constant")
            lines.setdefault(path, []).append(f"self.{path}.requires_grad_(False)  # {why}")
            done.append(path)
    for name, param in module.named_parameters():
        if not param.requires_grad and not any(name.startswith(d + ".") for d in done):
            owner = name.rpartition(".")[0]
            lines.setdefault(owner, []).append(f"self.{name}.requires_grad_(False)  # torch-only placeholder: "
                                               "constant")
    return lines


# -- forward ------------------------------------------------------------------------------------------------------
class ForwardWriter:
    def __init__(self, module: fx.GraphModule, sp: Spelling):
        self.module = module
        self.sp = sp
        self.names: dict[fx.Node, str] = {}
        self.taken: set[str] = set()

    def name(self, node: fx.Node) -> str:
        if node not in self.names:
            base = identifier(node.name)
            candidate, i = base, 1
            while candidate in self.taken:
                candidate, i = f"{base}_{i}", i + 1
            self.names[node] = candidate
            self.taken.add(candidate)
        return self.names[node]

    def argument(self, value: Any) -> str:
        if isinstance(value, fx.Node):
            return self.names[value]
        if isinstance(value, (list, tuple)):
            items = [self.argument(v) for v in value]
            if isinstance(value, list):
                return "[" + ", ".join(items) + "]"
            return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
        if isinstance(value, (torch.dtype, torch.memory_format)):
            self.sp.use("torch")
            return str(value)
        if value is None or isinstance(value, (bool, int, float, str)):
            return repr(value)
        raise EmitError(f"a graph argument of type {type(value).__name__} cannot be written ({value!r})")

    def arguments(self, node: fx.Node) -> str:
        parts = [self.argument(a) for a in node.args]
        parts += [f"{k}={self.argument(v)}" for k, v in node.kwargs.items()]
        return ", ".join(parts)

    def reuse_input_name(self, node: fx.Node) -> bool:
        """A layout or memory-format change whose input nothing else reads keeps the input's name:
        ``logits = logits.permute(...)``, ``image = image.contiguous(...)`` (inputs and outputs keep their Keras
        names)."""
        source = node.args[0] if node.args else None
        return (node.op == "call_method" and node.target in ("permute", "contiguous") and isinstance(source, fx.Node)
                and len(source.users) == 1)

    def lines(self) -> tuple[list[str], list[str], str]:
        params, body, result = [], [], ""
        for node in self.module.graph.nodes:  # fx names a call after its function: keep the function's name free
            if node.op == "call_function":
                self.taken.add(getattr(node.target, "__name__", ""))
        for node in self.module.graph.nodes:  # a layer's (first) call is named after the layer
            if node.op in ("call_module", "placeholder") and "layer" in node.meta.get("tf2torch", {}):
                wanted = identifier(str(node.target).split(".")[-1])  # a layer of a nested model: its own name
                if wanted not in self.taken:
                    self.names[node] = wanted
                    self.taken.add(wanted)
        for node in self.module.graph.nodes:
            if node.op == "placeholder":
                params.append(self.name(node))
                continue
            if node.op == "output":
                result = self.argument(node.args[0])
                continue
            if not node.users:  # a mask nothing reads (a Keras 3 graph recomputes it as op nodes): dead code
                continue
            if self.reuse_input_name(node):
                self.names[node] = self.names[node.args[0]]
            target = self.name(node)
            body.append(f"{target} = {self.expression(node)}")
        return params, body, result

    def expression(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"self.{node.target}({self.arguments(node)})"
        if node.op == "call_method":
            receiver, *rest = node.args
            parts = [self.argument(a) for a in rest] + [f"{k}={self.argument(v)}" for k, v in node.kwargs.items()]
            return f"{self.argument(receiver)}.{node.target}({', '.join(parts)})"
        if node.op == "get_attr":
            return f"self.{node.target}"
        if node.op == "call_function":
            if node.target is operator.getitem:
                return f"{self.argument(node.args[0])}[{self.argument(node.args[1])}]"
            try:
                func = ast.unparse(function_expr(node.target, self.sp))
            except CannotSpell as exc:
                raise EmitError(f"graph node {node.name}: {exc}") from None
            return f"{func}({self.arguments(node)})"
        raise EmitError(f"graph node {node.name}: operation {node.op!r} cannot be written")


def wrap_statement(line: str, indent: int) -> str:
    """A forward line longer than ``WIDTH``: the right-hand side in parentheses on a line of its own when it fits
    there (``x = (\n    self.block.conv(y)\n)``), else a call broken after its opening parenthesis, one
    argument a line (a Concatenate of many branches)."""
    if indent + len(line) <= WIDTH or "(" not in line:
        return " " * indent + line
    try:
        stmt = ast.parse(line).body[0]
    except SyntaxError:
        return " " * indent + line
    if not (isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call)):
        return " " * indent + line
    pad = " " * indent
    lead = ast.unparse(stmt.targets[0]) + " = "
    inner = indent + 4
    value = ast.unparse(stmt.value)
    if inner + len(value) <= WIDTH:
        return f"{pad}{lead}(\n{' ' * inner}{value}\n{pad})"
    func = ast.unparse(stmt.value.func)
    if indent + len(lead) + len(func) + 1 <= WIDTH:
        return pad + lead + render(stmt.value, indent, len(lead))
    return f"{pad}{lead}(\n{' ' * inner}{render(stmt.value, inner, 0)}\n{pad})"


# -- the files ----------------------------------------------------------------------------------------------------
def model_source(module: fx.GraphModule, version: str) -> tuple[str, str | None]:
    """(model.py, runtime.py or None) for a module made by ``tf2torch.convert``."""
    sp = Spelling()
    sp.use("nn")
    name = class_name(module)
    frozen = frozen_lines(module)
    init = init_lines(module, "self", sp, keras_layers(module), frozen)
    if frozen:
        raise EmitError(f"frozen parameters outside the submodules written: {sorted(frozen)}")
    writer = ForwardWriter(module, sp)
    writer.taken.update(RESERVED | {name})
    params, body, result = writer.lines()
    channels_last = channels_last_weight_lines(module, sp)
    while name in sp.runtime or name in sp.imports:  # a model named like a helper it imports (``Conv2d``)
        name += "_"
    runtime = runtime_source(sp.runtime, name, version) if sp.runtime else None
    inputs = module_inputs(module)
    doc_inputs = "\n".join(f"    - {i.describe()}" for i in inputs)
    rg = regularizer_note(module)
    imports = model_imports(sp, bool(runtime))
    text = f'''"""PyTorch code generated by tf2torch {version} from the Keras model {type(module).__name__!r}.

Inputs (batch first):
{doc_inputs}
Submodules and variables carry the Keras layer names. ``load()`` returns the model with its weights, in eval mode.{rg}
"""

from __future__ import annotations

{imports}

WEIGHTS = Path(__file__).with_name("{WEIGHTS_FILE}")


class {name}(nn.Module):
    def __init__(self) -> None:
        super().__init__()
{chr(10).join(" " * 8 + line for line in init)}

    def forward(self, {", ".join(params)}):
{chr(10).join(wrap_statement(line, 8) for line in body)}
        return {result}


def load(weights: str | Path = WEIGHTS) -> {name}:
    """The model with the weights in ``weights`` (loaded strictly: every tensor, nothing else), in eval mode."""
    from safetensors.torch import load_file

    model = {name}()
    model.load_state_dict(load_file(str(weights)), strict=True){channels_last}
    return model.eval()
'''
    return text, runtime


def model_imports(sp: Spelling, runtime: bool) -> str:
    """model.py's imports, only those its code uses, in isort order (ruff's ``I``): the standard library, torch,
    then the ``runtime.py`` helpers (one per line when they do not fit on one)."""
    stdlib = [f"import {m}" for m in ("math", "operator") if m in sp.imports]
    stdlib += ["from collections import OrderedDict"] * ("OrderedDict" in sp.imports) + ["from pathlib import Path"]
    third = ["import torch"] * ("torch" in sp.imports) + ["import torch.nn.functional as F"] * ("F" in sp.imports)
    third.append("from torch import nn")
    blocks = ["\n".join(stdlib), "\n".join(third)]
    if runtime:
        names = sorted(sp.runtime, key=import_name_order)
        line = f"from .runtime import {', '.join(names)}"
        if len(line) > WIDTH:
            line = "from .runtime import (\n" + "".join(f"    {n},\n" for n in names) + ")"
        blocks.append(line)
    return "\n\n".join(blocks)


def regularizer_note(module: nn.Module) -> str:
    """The docstring's line naming the layers whose Keras regularizers (training losses only) the source leaves
    out; ``tf2torch.regularization_loss`` on the converted module computes them."""
    layers = [re.sub(r"[^\w./-]", "?", m.tf2torch_regularizers.layer)  # layer names from a file: no quote, no
              for m in module.modules() if hasattr(m, "tf2torch_regularizers")]  # backslash in the docstring
    if not layers:
        return ""
    listed = ", ".join(layers[:20]) + (f" and {len(layers) - 20} more" if len(layers) > 20 else "")
    return "\n" + textwrap.fill("Keras regularizers are left out (training losses only; tf2torch.regularization_loss "
                                f"on the converted module computes them): {listed}.", WIDTH, break_on_hyphens=False)


def channels_last_weight_lines(module: nn.Module, sp: Spelling) -> str:
    """``load()``'s lines that put the 2-D conv weights in channels-last memory, as the converted module keeps
    them (``tf2torch/memory_format.py``; safetensors stores them contiguous): the same layout, the same kernels,
    the same numbers."""
    if not any(isinstance(m, nn.Conv2d) and not m.weight.is_contiguous() and m.weight.is_contiguous(
            memory_format=torch.channels_last) for m in module.modules()):
        return ""
    sp.use("torch")
    return ("\n    for conv in model.modules():  # conv weights in channels-last memory, like the inputs: torch would "
            "copy\n        if isinstance(conv, nn.Conv2d):  # contiguous ones on every call\n"
            "            conv.weight.data = conv.weight.data.contiguous(memory_format=torch.channels_last)")


def weights_for_safetensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict, each tensor contiguous and owning its memory (safetensors refuses shared storage)."""
    seen: set[int] = set()
    tensors = {}
    for key, value in module.state_dict().items():
        value = value.detach().cpu()
        ptr = value.untyped_storage().data_ptr()
        if ptr in seen or not value.is_contiguous():
            value = value.clone(memory_format=torch.contiguous_format)
        seen.add(ptr)
        tensors[key] = value.contiguous()
    return tensors


def write_python(module: fx.GraphModule, directory: Path, version: str) -> list[Path]:
    from safetensors.torch import save_file

    model_py, runtime_py = model_source(module, version)
    written = [directory / MODEL_FILE, directory / WEIGHTS_FILE, directory / "__init__.py"]
    (directory / MODEL_FILE).write_text(model_py)
    if runtime_py is not None:
        (directory / RUNTIME_FILE).write_text(runtime_py)
        written.append(directory / RUNTIME_FILE)
    name = class_name(module)
    exported = ", ".join(sorted([name, "load"], key=import_name_order))
    (directory / "__init__.py").write_text(f'"""{name}, generated by tf2torch."""\n\nfrom .model import {exported}\n\n'
                                           f'__all__ = ["{name}", "load"]\n')
    save_file(weights_for_safetensors(module), str(directory / WEIGHTS_FILE),
              metadata={"generator": f"tf2torch {version}", "model": name})
    return written
