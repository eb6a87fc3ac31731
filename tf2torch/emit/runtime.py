"""The run-time file of generated code: exactly the ``tf2torch/nn`` definitions a model uses, copied as source.

Starting from the classes and functions the model calls, every top-level name their source refers to is copied
too (helper functions, constants, base classes, and definitions another ``tf2torch/nn`` module provides through a
relative import), in dependency order; imports are kept only for the names the copied code uses, so a model that
never resizes does not import numpy. ``tf2torch/nn`` imports nothing else of tf2torch, which is what makes the
copy stand alone.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from dataclasses import dataclass, field
from typing import Any

from ..errors import EmitError
from .spell import RUNTIME_PACKAGE

HEADER = '''"""Run-time helpers for {model}: torch modules that TensorFlow/Keras semantics need and torch lacks.

Copied from tf2torch/nn (tf2torch {version}); plain torch, no dependency on tf2torch.
"""
'''


@dataclass
class SourceModule:
    """One ``tf2torch/nn`` file: its top-level statements by the names they bind."""

    name: str
    lines: list[str]
    statements: list[ast.stmt] = field(default_factory=list)
    binds: dict[str, ast.stmt] = field(default_factory=dict)

    @classmethod
    def load(cls, name: str) -> SourceModule:
        text = inspect.getsource(importlib.import_module(name))
        module = cls(name, text.splitlines())
        module.statements = ast.parse(text).body
        for stmt in module.statements:
            for bound in bound_names(stmt):
                module.binds[bound] = stmt
        return module

    def source(self, stmt: ast.stmt) -> str:
        first = min([stmt.lineno, *[d.lineno for d in getattr(stmt, "decorator_list", [])]])
        return "\n".join(self.lines[first - 1:stmt.end_lineno])


def bound_names(stmt: ast.stmt) -> list[str]:
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [stmt.name]
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names]
    if isinstance(stmt, ast.Assign):
        return [n.id for t in stmt.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        return [stmt.target.id]
    return []


def used_names(stmt: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}


class RuntimeCopy:
    def __init__(self) -> None:
        self.modules: dict[str, SourceModule] = {}
        self.chosen: dict[str, set[int]] = {}  # module name → indices of statements copied
        self.module_order: list[str] = []  # dependencies first
        self.imports: dict[tuple[str, str | None], set[tuple[str, str | None]]] = {}
        self.owner: dict[str, str] = {}  # copied name → module it comes from

    def module(self, name: str) -> SourceModule:
        if name not in self.modules:
            self.modules[name] = SourceModule.load(name)
            self.chosen[name] = set()
        return self.modules[name]

    def add(self, module_name: str, name: str) -> None:
        source = self.module(module_name)
        stmt = source.binds.get(name)
        if stmt is None:
            return  # a builtin, or a name bound inside a function
        if isinstance(stmt, (ast.Import, ast.ImportFrom)):
            self.add_import(source, stmt, name)
            return
        index = source.statements.index(stmt)
        if index in self.chosen[module_name]:
            return
        if self.owner.get(name, module_name) != module_name:
            raise EmitError(f"the run-time helpers {self.owner[name]}.{name} and {module_name}.{name} share a name")
        self.owner[name] = module_name
        self.chosen[module_name].add(index)
        for other in sorted(used_names(stmt)):
            if other != name:
                self.add(module_name, other)
        if module_name not in self.module_order:
            self.module_order.append(module_name)

    def add_import(self, source: SourceModule, stmt: ast.Import | ast.ImportFrom, name: str) -> None:
        for alias in stmt.names:
            if (alias.asname or alias.name).split(".")[0] != name:
                continue
            if isinstance(stmt, ast.ImportFrom) and stmt.level:  # from .padding import same_pad_module
                package = source.name.rsplit(".", stmt.level)[0]
                target = f"{package}.{stmt.module}" if stmt.module else package
                if not target.startswith(RUNTIME_PACKAGE):
                    raise EmitError(f"{source.name} imports {target}: tf2torch/nn must import nothing else of "
                                    "tf2torch")
                self.add(target, alias.name)
                if alias.asname and alias.asname != alias.name:
                    raise EmitError(f"{source.name}: 'import ... as' between tf2torch/nn modules is not supported")
            elif isinstance(stmt, ast.ImportFrom):
                self.imports.setdefault(("from", stmt.module), set()).add((alias.name, alias.asname))
            else:
                self.imports.setdefault(("import", alias.name), set()).add((alias.name, alias.asname))

    # -- writing ---------------------------------------------------------------------------------------------------
    def import_lines(self) -> str:
        """isort order (ruff's ``I``): __future__, standard library, third party; plain imports before from."""
        sections: dict[int, list[tuple[int, str, str]]] = {0: [], 1: [], 2: []}
        for (kind, module), aliases in self.imports.items():
            assert module is not None
            top = module.split(".")[0]
            section = 0 if top == "__future__" else 1 if top in sys.stdlib_module_names else 2
            if kind == "import":
                for name, asname in sorted(aliases):
                    sections[section].append((0, name, f"import {name}" + (f" as {asname}" if asname else "")))
            else:
                names = sorted(aliases, key=lambda a: import_name_order(a[0]))
                parts = ", ".join(n + (f" as {a}" if a else "") for n, a in names)
                sections[section].append((1, module, f"from {module} import {parts}"))
        blocks = ["\n".join(line for _, _, line in sorted(lines)) for _, lines in sorted(sections.items()) if lines]
        return "\n\n".join(blocks)

    def text(self, model_name: str, version: str) -> str:
        self.imports.setdefault(("from", "__future__"), set()).add(("annotations", None))
        body, first = [], None
        for name in self.module_order:
            source = self.modules[name]
            for i in sorted(self.chosen[name]):
                first = first or source.statements[i]
                body.append(source.source(source.statements[i]))
        # isort: two blank lines after the imports before a def or class, one before anything else
        gap = "\n\n\n" if isinstance(first, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) else "\n\n"
        return HEADER.format(model=model_name, version=version) + "\n" + self.import_lines() + gap + \
            "\n\n\n".join(body) + "\n"


def import_name_order(name: str) -> tuple[int, str]:
    """ruff's ``order-by-type``: CONSTANTS, then Classes, then functions."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def runtime_source(objects: dict[str, Any], model_name: str, version: str) -> str:
    """The source of a file that defines every object in ``objects`` (classes and functions of tf2torch/nn)."""
    copy = RuntimeCopy()
    for name, obj in objects.items():
        if not obj.__module__.startswith(RUNTIME_PACKAGE + "."):
            raise EmitError(f"{obj.__module__}.{name} is not in tf2torch/nn")
        copy.add(obj.__module__, name)
    order = dependency_order(copy)
    copy.module_order = order
    return copy.text(model_name, version)


def dependency_order(copy: RuntimeCopy) -> list[str]:
    """Modules whose copied statements another module's statements name come first (base classes, tables)."""
    provides = {name: module for name, module in copy.owner.items()}
    deps: dict[str, set[str]] = {m: set() for m in copy.module_order}
    for module_name in copy.module_order:
        source = copy.modules[module_name]
        for i in copy.chosen[module_name]:
            for used in used_names(source.statements[i]):
                other = provides.get(used)
                if other and other != module_name:
                    deps[module_name].add(other)
    order: list[str] = []

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in order or name in stack:
            return
        for dep in sorted(deps[name]):
            visit(dep, (*stack, name))
        order.append(name)

    for name in copy.module_order:
        visit(name, ())
    return order
