"""The rooms of tf2torch and their one-way doors (docs/architecture.md), read from the source: every import,
at module level or inside a function, resolved to the module it names. A door that runs the wrong way, an import
circle or a function over a screen fails here, before it becomes a knot (issue #21)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "tf2torch"
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The tf2torch modules an import statement names (``from .x import y``: ``x.y`` when that is a module)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        base = module.split(".")
        if not MODULES[module].name == "__init__.py":
            base = base[:-1]
        base = base[:len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]


def _imports() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges[module].update(t for t in _imported(module, node) if t in MODULES and t != module)
    return edges


IMPORTS = _imports()


def room(module: str) -> str:
    """A sub-package (``readers``, ``nn``, ...) or a top-level module (``assemble``, ``graph``, ...)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "tf2torch"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_spans_two_rooms():
    rooms: dict[str, set[str]] = defaultdict(set)
    for a, targets in IMPORTS.items():
        rooms[room(a)].update(room(b) for b in targets if room(b) != room(a))
    assert _cycles(rooms) == []


def test_no_import_circle_between_modules():
    assert _cycles(IMPORTS) == []


# room -> the rooms it may import (besides itself). Doors run one way, downwards (docs/architecture.md).
LEAVES = {"errors", "glibc", "naming", "layout", "nn", "quiet", "stand_ins", "version"}
MAY_IMPORT = {
    "nn": set(),
    "graph": set(),
    "readers": {"graph", "errors", "quiet", "naming", "layout"},
    "converters": {"contract", "registry", "graph", "transforms", "dtypes", *LEAVES},
    "ops": {"contract", "registry", "graph", "transforms", "dtypes", *LEAVES},
}
# rooms that reach others only through the public API, the IR and package doors
PUBLIC_ONLY = {"emit", "verify", "transfer"}
PUBLIC_DOORS = {"tf2torch.api", "tf2torch.graph", "tf2torch.io", "tf2torch.transforms", "tf2torch.dtypes",
                "tf2torch.readers", "tf2torch.verify", "tf2torch.emit"}
# the command line: click commands over the public API, the package doors and the registry's listing
CLI_DOORS = PUBLIC_DOORS | {"tf2torch.registry", "tf2torch.transfer"}


def _wrong_doors() -> list[str]:
    wrong = []
    for a, targets in sorted(IMPORTS.items()):
        for b in sorted(targets):
            ra, rb = room(a), room(b)
            if ra == rb:
                continue
            if ra in MAY_IMPORT and rb not in MAY_IMPORT[ra]:
                wrong.append(f"{a} -> {b}")
            elif ra in PUBLIC_ONLY and rb not in LEAVES and b not in PUBLIC_DOORS:
                wrong.append(f"{a} -> {b}")
            elif ra == "cli" and rb not in LEAVES and b not in CLI_DOORS:
                wrong.append(f"{a} -> {b}")
    return wrong


def test_doors_run_one_way():
    assert _wrong_doors() == []


def _long_functions(sources: dict[str, str] | None = None) -> list[str]:
    if sources is None:
        sources = {str(p.relative_to(PACKAGE.parent)): p.read_text() for p in MODULES.values()}
    long = []
    for where, source in sorted(sources.items()):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return long


def test_no_function_longer_than_a_screen():
    assert _long_functions() == []


# Per-class facts live on the converter's declaration (``contract.Facts``, read through ``api.layer_facts``), so
# no module outside converters/, ops/ and registry.py spells a Keras class name (issue #21, Deliver 5), except
# these: where (a path, or the start of one) → the names it may spell, and why.
CLASS_NAME_ALLOWANCES = {
    "verify/keras_side.py": ({"Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "ConvLSTM2D", "TimeDistributed"},
                             "the reference side's Theano kernel flipping, a deliberate second implementation of "
                             "Keras 2.3's own list (its keras/engine/saving.py), checked against Facts.theano_flip"),
    "emit/spell.py": ({"EinsumDense", "MultiHeadAttention", "AdditiveAttention"},
                      "names of nn/ run-time classes (nn.attention.EinsumDense...), not of Keras classes"),
    "nn/": ({"Add", "Reshape"}, "raw TensorFlow op names in the run-time op tables"),
    "readers/tf_": ({"Identity", "Conv2D"}, "raw TensorFlow op names the graph readers look through or rewrite"),
    "tf_coverage.py": ({"Identity", "Dropout", "Flatten"}, "raw TensorFlow op names and names that are not TF ops"),
    "readers/keras_ops.py": ({"Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Reshape",
                              "Softmax", "Subtract"}, "Keras 3 operation classes, read from the file format"),
    "transfer/target.py": ({"Conv1D"}, "the torch class GPT-2 uses in Hugging Face transformers (weight stored (in, "
                           "out)), a target module's class, not Keras's Conv1D"),
    "readers/config.py": ({"TimeDistributed", "TimeDistributedFold", "TimeDistributedUnfold"},
                          "the dialect reader expands TimeDistributed(model) into the IR's fold/unfold nodes"),
}
FACT_ROOMS = ("converters/", "ops/", "registry.py")  # where class names and their facts are declared


def _keras_spellings() -> set[str]:
    from tf2torch import converters, ops, registry  # noqa: F401  (converters, ops: every shipped one registered)

    return {name for (domain, name), found in registry.REGISTRY.items()
            if domain == "keras" and not registry.is_custom(found.fn)}


def _class_name_constants(sources: dict[str, str] | None = None) -> list[str]:
    """Every string constant outside FACT_ROOMS that equals a Keras class name tf2torch converts and that
    CLASS_NAME_ALLOWANCES does not list: ``path: Name``."""
    if sources is None:
        sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in MODULES.values()}
    names = _keras_spellings()
    found = []
    for where, source in sorted(sources.items()):
        if where.startswith(FACT_ROOMS):
            continue
        allowed = set().union(*(a for prefix, (a, _) in CLASS_NAME_ALLOWANCES.items() if where.startswith(prefix)))
        found += sorted({f"{where}: {node.value}" for node in ast.walk(ast.parse(source))
                         if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
                         and node.value not in allowed})
    return found


def test_no_keras_class_names_outside_the_converters():
    assert _class_name_constants() == []


def test_allowances_name_what_the_code_spells():
    """Each allowance lists only Keras class names, each still spelled where it is allowed."""
    names = _keras_spellings()
    sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in MODULES.values()}
    for prefix, (allowed, reason) in CLASS_NAME_ALLOWANCES.items():
        assert reason and allowed <= names, prefix
        spelled = {node.value for where, source in sources.items() if where.startswith(prefix)
                   for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant)}
        assert allowed <= spelled, (prefix, sorted(allowed - spelled))


@pytest.mark.parametrize("rule", [
    # each rule can fail: a door the wrong way, a circle, a long function, a Keras class name table, all made up
    # on the spot
    "door", "circle", "long", "class_names",
])
def test_the_rules_can_fail(rule, monkeypatch):
    assert len(MODULES) > 100  # the package was found
    if rule == "door":
        monkeypatch.setitem(IMPORTS, "tf2torch.readers.h5", IMPORTS["tf2torch.readers.h5"] | {"tf2torch.assemble"})
        assert "tf2torch.readers.h5 -> tf2torch.assemble" in _wrong_doors()
        monkeypatch.setitem(IMPORTS, "tf2torch.cli", IMPORTS["tf2torch.cli"] | {"tf2torch.readers.tf_graph"})
        assert "tf2torch.cli -> tf2torch.readers.tf_graph" in _wrong_doors()
    elif rule == "circle":
        assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    elif rule == "long":
        assert _long_functions({"m.py": "def f():\n" + "    x = 1\n" * 70}) == ["m.py:1 f (71 lines)"]
    else:
        table = 'KIND = {"Dense": "dense", "Conv2D": "conv", "Identity": 1}\n'
        assert _class_name_constants({"verify/m.py": table, "readers/tf_m.py": table, "ops/m.py": table}) == [
            "readers/tf_m.py: Dense", "verify/m.py: Conv2D", "verify/m.py: Dense", "verify/m.py: Identity"]
