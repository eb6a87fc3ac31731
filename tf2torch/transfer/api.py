"""``transfer``: read the source, list the target, pair them kind by kind, load all or nothing (``strict``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace

import torch
from torch import nn

from ..errors import Tf2TorchError
from .check import verify_transfer
from .layers import SourceLayer, grouped_as_depthwise, loose_weights, pointwise_as_dense
from .match import Assignment, plan, similarity, source_for, span
from .report import TransferReport
from .source import open_source, source_kind
from .target import TargetModule, target_modules


class TransferError(Tf2TorchError):
    """A transfer refused: ambiguous pairs or weights that fit nowhere; ``report`` holds the full table."""

    def __init__(self, message: str, report: TransferReport):
        super().__init__(message)
        self.report = report


def transfer(source: str | os.PathLike, model: nn.Module, example_inputs: tuple | None = None,
             mapping: Mapping[str, str] | str | os.PathLike | None = None, strict: bool = True,
             verify: bool | None = None) -> TransferReport:
    """Load the weights of ``source`` (a Keras ``.h5``/``.keras`` model or a ``save_weights`` file) into
    ``model`` in place. ``example_inputs``: a tuple of tensors exactly as ``model`` takes them; one forward pass
    gives the execution order (and which Linear follows a flatten); without it, definition order. ``mapping``:
    target module path (or a regular expression over paths) → source layer name, for pairs the matching should
    not guess, or the path of such a JSON file (``report.save_mapping`` writes one). ``strict``: refuse
    (``TransferError``, nothing loaded) unless every target tensor and every source weight is used exactly once;
    ``strict=False`` loads what fits and lists the rest. ``verify`` (default: whenever the source is a whole
    model and example inputs are given): run Keras and the loaded model, compare each matched layer's output and
    diagnose the first divergence (``report.first_divergence``); this imports TensorFlow/Keras."""
    if example_inputs is not None and not isinstance(example_inputs, tuple):
        raise TypeError("example_inputs must be a tuple of tensors, exactly as the model takes them")
    if isinstance(mapping, (str, os.PathLike)):
        mapping = read_mapping(mapping)
    targets = target_modules(model, example_inputs)
    with open_source(source) as layers:
        pairs, ambiguous = align(targets, layers, dict(mapping or {}))
        assignments = [a for t, s in pairs for a in plan(t, s) or []]
        report = summarize(str(source), targets, layers, assignments, ambiguous)
        if strict and not report.ok:
            raise TransferError(f"{source}: cannot transfer into {type(model).__name__} exactly; nothing was "
                                f"loaded. Pass mapping= for the pairs named below, or strict=False to load what "
                                f"fits.\n{report.problems(limit=12)}", report)
        load(model, assignments)
    if verify is None:
        verify = example_inputs is not None and source_kind(source) == "model"
    if verify:
        if example_inputs is None or source_kind(source) != "model":
            raise TransferError(f"{source}: verification needs a whole model (.keras/.h5 from model.save) and "
                                "example_inputs", report)
        report.verification = verify_transfer(source, model, example_inputs, pairs, assignments)
    return report


def align(targets: list[TargetModule], layers: list[SourceLayer],
          mapping: dict[str, str]) -> tuple[list[tuple[TargetModule, SourceLayer]], list[dict]]:
    """(target, source) pairs: the mapping's first, then per kind in order, each pair fitting exactly."""
    loose = [piece for s in layers for piece in loose_weights(s)]  # weights of no known kind, one by one
    by_name = {s.name: s for s in layers + loose}
    pairs, taken, ambiguous = [], set(), []
    for target in targets:
        name = mapped_name(mapping, target.label)
        if name is None:
            continue
        names = [name] if name in by_name else name.split("+")
        missing = [n for n in names if n not in by_name]
        if missing:
            raise TransferError(f"mapping: {target.path} -> {name}: the source has no layer {missing[0]}; it has "
                                f"{', '.join(by_name)}", TransferReport())
        source = source_for(target, [by_name[n] for n in names])
        if source is None:
            raise TransferError(f"mapping: {target.path} -> {name}: a {target.kind} of {span(target)} layers and "
                                "directions takes that many source layers, joined by '+' (forward, backward halves "
                                "of one Bidirectional per layer)", TransferReport())
        if not source.class_name and source.kind != target.kind:  # a weights-only file names no class: the
            source = replace(source, kind=target.kind)               # map says what the layer was
        pairs.append((target, source))
        taken.update(names)
    mapped = {t.label for t, _ in pairs}
    layers = pointwise_heads(targets, [s for s in layers if s.name not in taken], mapped)
    layers = grouped_depthwise(targets, layers, mapped)
    kinds = sorted(dict.fromkeys(t.kind for t in targets if t.kind), key=lambda k: k != "groupnorm")
    for kind in kinds:
        kind_targets = [t for t in targets if t.kind == kind and t.label not in mapped]
        kind_sources = [s for s in layers if s.kind == kind and s.name not in taken] if kind != "tensor" else \
            [s for s in loose if s.name not in taken and s.name.rpartition("/")[0] not in taken]
        if kind == "groupnorm" and len(kind_sources) < len(kind_targets):  # a weights-only file names no class:
            kind_sources += [replace(s, kind=kind) for s in layers   # its gamma/beta read as a LayerNormalization's
                             if s.kind == "layernorm" and not s.class_name and s.name not in taken]
        found, unsure = align_kind(kind_targets, kind_sources)
        pairs += found
        ambiguous += unsure
        taken.update(s.name for _, s in found)
    return pairs, ambiguous


def pointwise_heads(targets: list[TargetModule], layers: list[SourceLayer], mapped: set[str]) -> list[SourceLayer]:
    """When torch has k more Linears than the source has Dense layers and k fewer convolutions, the source's last
    k convolutions, if 1x1, are taken as Dense (``pointwise_as_dense``: a classifier written as a 1x1 conv);
    otherwise the layers as they are."""
    count = {kind: sum(t.kind == kind and t.label not in mapped for t in targets) -
             sum(s.kind == kind for s in layers) for kind in ("dense", "conv")}
    k = min(count["dense"], -count["conv"])
    if k <= 0:
        return layers
    last = [s.name for s in layers if s.kind == "conv"][-k:]
    dense = {s.name: pointwise_as_dense(s) for s in layers if s.name in last}
    if any(d is None for d in dense.values()):
        return layers
    return [dense.get(s.name, s) for s in layers]


def grouped_depthwise(targets: list[TargetModule], layers: list[SourceLayer], mapped: set[str]) -> list[SourceLayer]:
    """When torch has k more depthwise convolutions than the source and the source has exactly k convolutions
    with one input channel per group (``grouped_as_depthwise``), those are the depthwise ones, provided no torch
    convolution takes one input channel per group itself (a grayscale stem would fit both ways)."""
    k = sum(t.kind == "depthwise" and t.label not in mapped for t in targets) - \
        sum(s.kind == "depthwise" for s in layers)
    singles = [s.name for s in layers if grouped_as_depthwise(s) is not None]
    if k <= 0 or len(singles) != k or any(t.kind == "conv" and t.tensors["weight"].shape[1] == 1 for t in targets
                                           if "weight" in t.tensors):
        return layers
    return [grouped_as_depthwise(s) if s.name in singles else s for s in layers]


def read_mapping(path: str | os.PathLike) -> dict[str, str]:
    """A mapping file: one JSON object of target module path (or regular expression) → source layer name."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise TransferError(f"{path}: cannot read the mapping ({exc})", TransferReport()) from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise TransferError(f"{path}: a mapping is one JSON object of \"target.module\": \"source_layer\" "
                            "pairs", TransferReport())
    return data


def mapped_name(mapping: dict[str, str], path: str) -> str | None:
    """The source layer a mapping names for a target module: its exact key, else the first key that fully
    matches as a regular expression (``features\\.(\\d+)`` → ``conv_\\1``, groups expanded)."""
    if path in mapping:
        return mapping[path]
    for key, value in mapping.items():
        try:
            match = re.fullmatch(key, path)
        except re.error as exc:
            raise TransferError(f"mapping: {key!r} is not a regular expression ({exc})", TransferReport()) from None
        if match:
            return match.expand(value)
    return None


def align_kind(targets: list[TargetModule], sources: list[SourceLayer]) -> tuple[list, list]:
    """One kind: in order when the counts agree and every pair fits (a multi-layer or bidirectional torch RNN
    takes its ``span`` of consecutive sources); otherwise each target takes the one later source that fits, the
    best name match among several, or is listed as ambiguous."""
    spans = [span(t) for t in targets]
    if sum(spans) == len(sources) and not any(t.kind == "tensor" for t in targets):  # loose tensors: by name
        starts = [sum(spans[:i]) for i in range(len(spans))]
        pairs = [(t, source_for(t, sources[i:i + n])) for t, i, n in zip(targets, starts, spans)]
        if all(s is not None and plan(t, s) is not None for t, s in pairs) and not leaf_conflict(pairs, sources):
            return pairs, []
    named = leaf_pairs(targets, sources)
    pairs, ambiguous, start = list(named), [], 0
    sources = [s for s in sources if all(s is not p for _, p in named)]
    for target, n in [(t, n) for t, n in zip(targets, spans) if all(t is not d for d, _ in named)]:
        fits = [(i, s) for i in range(start, len(sources) - n + 1)
                if (s := source_for(target, sources[i:i + n])) is not None and plan(target, s) is not None]
        if len(fits) > 1:
            scores = sorted(((similarity(target.label, s.name), k) for k, (_, s) in enumerate(fits)), reverse=True)
            if scores[0][0][0] > 0 and scores[0][0] > scores[1][0]:
                fits = [fits[scores[0][1]]]
            else:
                ambiguous.append({"target": target.label, "kind": target.kind,
                                  "candidates": [s.name for _, s in fits]})
                continue
        if fits:
            pairs.append((target, fits[0][1]))
            start = fits[0][0] + n
    return pairs + unique_leftovers(targets, sources, pairs, ambiguous), ambiguous


def leaf(name: str) -> str:
    """A module's or layer's own name, the last part of its path (``attention.q_proj`` → ``q_proj``)."""
    return re.split(r"[./]", name)[-1].lower()


def leaf_conflict(pairs: list, sources: list[SourceLayer]) -> bool:
    """Whether the order contradicts the names: a target paired with a source of another own name while a source
    of its own name fits it (transformers' TF Wav2Vec2/BART attention makes ``k_proj``, ``v_proj``, then ``q_proj``;
    torch calls ``q_proj`` first, and every projection fits every other: in order they would load crossed)."""
    by_leaf: dict[str, list[SourceLayer]] = {}
    for source in sources:
        by_leaf.setdefault(leaf(source.name), []).append(source)
    return any(leaf(t.label) != leaf(s.name) and any(plan(t, o) is not None for o in by_leaf.get(leaf(t.label), []))
               for t, s in pairs if span(t) == 1)


def leaf_pairs(targets: list[TargetModule], sources: list[SourceLayer]) -> list:
    """Pairs by own name: each single-span target and the fitting source of the same own name (``q_proj``), the
    one whose path agrees best where several do (``layers.1/attention/q_proj`` for ``layers.1.attention.q_proj``:
    the indices decide); a source two targets would take goes to neither."""
    chosen: dict[int, tuple[TargetModule, SourceLayer]] = {}
    clashes: set[int] = set()
    for target in targets:
        fits = [s for s in sources if leaf(s.name) == leaf(target.label) and span(target) == 1
                and plan(target, s) is not None]
        scored = sorted(((similarity(target.label, s.name), i) for i, s in enumerate(fits)), reverse=True)
        if not scored or (len(scored) > 1 and scored[0][0] == scored[1][0]):
            continue
        source = fits[scored[0][1]]
        if id(source) in chosen:
            clashes.add(id(source))
        chosen[id(source)] = (target, source)
    return [pair for key, pair in chosen.items() if key not in clashes]


def unique_leftovers(targets: list[TargetModule], sources: list[SourceLayer], pairs: list,
                     ambiguous: list[dict]) -> list:
    """Targets the in-order pass left out, each paired with the one unused single source that fits it, in
    any position: two heads written in the other order (MTCNN's PNet: Keras's box head before its face head,
    facenet-pytorch's after). Several that fit stay unloaded (no guess)."""
    done = {t.label for t, _ in pairs} | {a["target"] for a in ambiguous}
    used = {s.name for _, s in pairs}
    out = []
    for target in targets:
        if target.label in done or span(target) != 1:
            continue
        fits = [s for s in sources if s.name not in used and plan(target, s) is not None]
        if len(fits) == 1:
            out.append((target, fits[0]))
            used.add(fits[0].name)
    return out


def summarize(source: str, targets: list[TargetModule], layers: list[SourceLayer],
              assignments: list[Assignment], ambiguous: list[dict]) -> TransferReport:
    loaded = {a.target for a in assignments}
    used = {name for a in assignments for name in a.used}
    return TransferReport(
        mapping={a.target: {"source": a.source, "transform": a.transform, **({"loose": True} if a.loose else {})}
                 for a in assignments},
        unused_source=[w for s in layers for w in s.weight_names() if w not in used],
        unloaded_target=[n for t in targets for n in t.tensor_names() if n not in loaded],
        ambiguous=ambiguous, source=source)


def load(model: nn.Module, assignments: list[Assignment]) -> None:
    """Copy each transformed array into its tensor (in the tensor's dtype); every shape was checked by ``plan``."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    with torch.no_grad():
        for a in assignments:
            tensor = tensors[a.target]
            tensor.copy_(torch.from_numpy(a.compute().copy()).reshape(tensor.shape).to(tensor.dtype))
