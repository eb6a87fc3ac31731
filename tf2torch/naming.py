"""Torch names for Keras layers: legal, unique, and never an attribute torch already uses.

Keras allows names that are not Python identifiers (``blk-1``, ``conv 1``, ``класс``), names that collide once
made legal (``blk-1`` and ``blk_1``), Python keywords (``in``, ``class``) and names of ``nn.Module`` /
``fx.GraphModule`` attributes (``training``, ``forward``, ``graph``, ``code``, ``type``): ``add_module`` would
refuse the last kind or silently replace an earlier submodule with a colliding one. ``TorchNames`` gives each
Keras layer key (``outer/inner``) one dotted path whose segments are legal, unique among their siblings and
free of those attributes; the Keras name of every submodule stays in the converted module's metadata.
"""

from __future__ import annotations

import functools
import keyword
import re
from collections.abc import Iterable
from typing import Any


@functools.lru_cache(maxsize=4096)
def to_snake_case(name: str) -> str:
    """Keras's ``naming.to_snake_case``: the key a class gets in a ``.keras`` weights file (the readers name
    weights with it, the recurrent converters a cell's key)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _attributes() -> set[str]:
    """Every attribute of an ``fx.GraphModule`` and an ``nn.Sequential``, class and instance (``training``).
    torch is imported here, on first use: the readers import this module for ``to_snake_case``, and the
    watchdog forks its reader before the command line imports torch."""
    import torch.fx as fx
    from torch import nn

    graph = fx.Graph()
    graph.output(None)
    return set(dir(fx.GraphModule(nn.Module(), graph))) | set(dir(nn.Sequential()))


@functools.cache
def reserved() -> frozenset[str]:
    """Names no segment may take: torch's attributes, Python keywords, the converted module's own fields."""
    return frozenset(_attributes()) | frozenset(keyword.kwlist) | {
        "self", "torch", "None", "True", "False", "input_names", "output_names", "tf2torch_meta", "tf2torch_notices"}


def __getattr__(name: str) -> Any:
    if name == "RESERVED":  # computed on first use (it needs torch)
        return reserved()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def legal_segment(name: str) -> str:
    """A Python identifier made from one Keras name segment (not yet de-duplicated)."""
    segment = re.sub(r"\W", "_", name, flags=re.ASCII)
    if segment.startswith("__"):  # dunder names belong to Python
        segment = segment.lstrip("_")
    if not segment:
        segment = "layer"
    if segment[0].isdigit():
        segment = "_" + segment
    while segment in reserved():
        segment += "_"
    return segment


class TorchNames:
    """Allocates torch submodule paths for Keras layer keys, one per key, unique per parent."""

    def __init__(self, containers: Iterable[str] | None = None) -> None:
        self.paths: dict[str, str] = {}
        self.taken: dict[str, set[str]] = {}
        self.containers = set(containers) if containers is not None else None

    def split(self, keras_key: str) -> tuple[str, str]:
        """(parent key, own name): the parent is the longest nested model the key lies in. A "/" elsewhere is
        part of the name (tf_keras allows ``Conv/BatchNorm``). Without a list of nested models, every "/" nests."""
        if self.containers is None:
            parent, _, leaf = keras_key.rpartition("/")
            return parent, leaf
        parts = keras_key.split("/")
        for cut in range(len(parts) - 1, 0, -1):
            parent = "/".join(parts[:cut])
            if parent in self.containers:
                return parent, "/".join(parts[cut:])
        return "", keras_key

    def path(self, keras_key: str) -> str:
        """The dotted torch path of ``keras_key`` (``outer/inner``), allocated on first use."""
        if keras_key in self.paths:
            return self.paths[keras_key]
        parent_key, leaf = self.split(keras_key)
        parent = self.path(parent_key) if parent_key else ""
        segment = self.unique(parent, legal_segment(leaf))
        path = f"{parent}.{segment}" if parent else segment
        self.paths[keras_key] = path
        return path

    def unique(self, parent: str, segment: str) -> str:
        taken = self.taken.setdefault(parent, set())
        candidate, n = segment, 1
        while candidate in taken:
            candidate = f"{segment}_{n}"
            n += 1
        taken.add(candidate)
        return candidate

    def extra(self, keras_key: str, suffix: str) -> str:
        """A new sibling path for an extra submodule of ``keras_key`` (a mask module, a second call's
        conversion), unique like every other name."""
        parent_key, leaf = self.split(keras_key)
        parent = self.path(parent_key) if parent_key else ""
        segment = self.unique(parent, legal_segment(f"{leaf}_{suffix}"))
        return f"{parent}.{segment}" if parent else segment
