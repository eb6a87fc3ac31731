"""The IR round trip every test's reads are checked against (issue #21): ``KerasGraph.from_json`` of the JSON
text of ``to_json`` equals the graph, field by field (weights by reference), and so does every sub-graph a layer
carries in its config (a loop's ``cond`` and ``body``, a traced layer's ``function``). No conversion: cheap
enough to run on every graph a test reads."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from collections.abc import Iterator
from typing import Any

from tf2torch.graph import KerasGraph

GRAPH_KEYS = {"layers", "nodes", "inputs", "outputs", "input_specs"}


def sub_graphs(graph: KerasGraph) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, JSON) of each sub-graph the layers' configs carry, nested ones too."""
    for key, layer in graph.layers.items():
        loop = layer.config.get("loop")
        parts = [(f"{key}/{p}", loop.get(p)) for p in ("cond", "body")] if isinstance(loop, dict) else []
        parts.append((f"{key}/function", layer.config.get("function")))  # a Keras Lambda's is not a graph
        for where, data in parts:
            if not (isinstance(data, dict) and GRAPH_KEYS <= data.keys()):
                continue
            yield where, data
            for inner, nested in sub_graphs(KerasGraph.from_json(data)):
                yield f"{where}/{inner}", nested


def first_difference(a: Any, b: Any, path: str = "") -> str:
    """Where two IR objects or JSON-like values first differ (for the failure message)."""
    if type(a) is not type(b):
        return f"{path}: {type(a).__name__} {a!r:.80} != {type(b).__name__} {b!r:.80}"
    if dataclasses.is_dataclass(a):
        a, b = ({f.name: getattr(x, f.name) for f in dataclasses.fields(x) if f.compare} for x in (a, b))
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}/{k}: only on one side"
            if a[k] != b[k]:
                return first_difference(a[k], b[k], f"{path}/{k}")
    if isinstance(a, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r:.80} != {b!r:.80}"


def assert_round_trip(graph: KerasGraph) -> None:
    """``from_json(json(to_json(g))) == g`` for the graph and each of its sub-graphs."""
    data = graph.to_json()
    back = KerasGraph.from_json(json.loads(json.dumps(data)))
    assert back == graph, f"{graph.name}: the IR changes through JSON at {first_difference(back, graph)}"
    for where, sub in sub_graphs(graph):
        again = KerasGraph.from_json(json.loads(json.dumps(sub))).to_json()
        assert again == sub, f"{graph.name}: sub-graph {where} changes through JSON at {first_difference(again, sub)}"


@contextlib.contextmanager
def checking_reads() -> Iterator[None]:
    """``tf2torch.readers.open_model`` (and every loaded tf2torch module's reference to it) checks the round trip
    of each graph it yields, for the duration."""
    import tf2torch.readers as readers

    original = readers.open_model

    @contextlib.contextmanager
    def open_checked(*args: Any, **kwargs: Any) -> Iterator[KerasGraph]:
        with original(*args, **kwargs) as graph:
            assert_round_trip(graph)
            yield graph

    holders = [m for name, m in list(sys.modules.items())
               if name.startswith("tf2torch") and getattr(m, "open_model", None) is original]
    for module in holders:
        module.open_model = open_checked
    try:
        yield
    finally:
        for module in holders:
            module.open_model = original
