"""``tf2torch.verify``: run Keras and the converted module on the same inputs and compare every layer call.

Each run (float32, float64, or both) loads the Keras model once, runs it once keeping every call's output, then
runs the torch module once and compares each call's output as soon as it is computed.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx

from ..errors import ModelFileError, Tf2TorchError
from ..readers import tf_kind
from . import keras_side, tf_side, tflite_side, torch_side
from .compare import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    LayerResult,
    Metrics,
    Scratch,
    cause_of,
    compare_outputs,
    relevant_config,
)
from .folds import folded_calls, output_nodes
from .inputs import InputArray, input_node_id, random_inputs, stand_in_size, user_inputs
from .report import Report, format_error

DTYPES = ("float32", "float64", "both")
DEQUANTIZED_RTOL = 0.1  # a dequantized model against the quantized one it came from: how close, not 1e-5
TORCH_DTYPE = {"float32": torch.float32, "float64": torch.float64}
Progress = Callable[[int, int, str], None]  # (done, total, what is running)


def verify(source: Any, model: fx.GraphModule | str | os.PathLike | None = None, *,
           inputs: Any = None, input_shapes: Sequence[Sequence[int | None] | None] | None = None,
           dtype: str = "float32", rtol: float | None = None, atol: float | None = None,
           batch_size: int = 2, seed: int = 0, progress: Progress | None = None,
           tf_options: Mapping[str, Any] | None = None) -> Report:
    """Run the Keras model in ``source`` and its conversion on the same inputs; compare every layer call.

    ``source``: the ``.h5``/``.keras`` file (loaded with the Keras that wrote it), or a Keras model in memory.
    ``model``: the converted module (or a ``.pt`` written by ``tf2torch.save``); converted from ``source`` when
    absent (``source`` must then be a file). ``inputs``: a ``.npz``/``.npy`` path, an array, a list (input order)
    or a dict (input name → array), Keras layout with the batch axis; seeded random inputs when absent, their open
    dimensions from ``input_shapes`` or else at the stand-in size the conversion was built with (as ``convert``).
    A module made with ``optimize=True``: calls folded into another layer are rows with status ``folded``.
    ``batch_size``: of the random inputs, unless the model fixes its batch (a ``.tflite`` of batch 1): then that.
    ``dtype``: ``float32``, ``float64``, or ``both`` (judged in float32; the float64 run tells round-off from a
    semantic mismatch). Pass/fail per call: ``max|Δ| <= atol + rtol * max|Keras output|``.
    TensorFlow graphs (SavedModel signature, TF1 checkpoint, frozen ``.pb``) run on TensorFlow, op by op;
    ``tf_options`` (``signature``, ``inputs``, ``outputs``, ``constants``) as for ``convert``.
    """
    if dtype not in DTYPES:
        raise Tf2TorchError(f"dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    is_file = isinstance(source, (str, os.PathLike))
    if is_file and not Path(source).exists() and tf_kind(Path(source)) is None:
        raise ModelFileError(f"{source}: no such file")
    if not is_file and model is None:
        raise Tf2TorchError("verifying a Keras model in memory needs its converted module: verify(keras_model, module)")
    judged = "float64" if dtype == "float64" else "float32"
    timings: dict[str, float] = {}
    start = time.perf_counter()
    module = resolve_module(source, model, input_shapes, timings, tf_options)
    dequantized = module.tf2torch_meta.get("dequantized")  # a quantized .tflite converted to float (tflite_side)
    rtol = (DEQUANTIZED_RTOL if dequantized else DEFAULT_RTOL[judged]) if rtol is None else float(rtol)
    atol = DEFAULT_ATOL[judged] if atol is None else float(atol)
    graph = module.tf2torch_meta["graph"]
    batch_size = module.tf2torch_meta.get("batch") or batch_size  # a model that fixes its batch runs at it
    arrays = (user_inputs(inputs, graph) if inputs is not None else
              random_inputs(graph, input_shapes or module.tf2torch_meta.get("input_shapes"), batch_size, seed,
                            stand_in_size(module)))
    runs = ["float32", "float64"] if dtype == "both" else [dtype]
    tracker = ProgressTracker(progress, total=len(runs) * 2 * torch_side.count_calls(module))
    session = Session(source, module, graph, arrays, rtol, atol, tracker, timings)
    if dequantized:
        session.notes.append(tflite_side.DEQUANTIZED_NOTE.format(rtol=rtol))
    results = {run: session.run(run) for run in runs}
    timings["total"] = time.perf_counter() - start
    return session.build_report(results, dtype, judged)


def resolve_module(source: str | os.PathLike, model: Any, input_shapes: Any, timings: dict[str, float],
                   tf_options: Mapping[str, Any] | None = None) -> fx.GraphModule:
    from .. import api

    t = time.perf_counter()
    if model is None:
        model = api.convert(source, input_shapes=input_shapes, **dict(tf_options or {}))
        timings["convert"] = time.perf_counter() - t
    elif isinstance(model, (str, os.PathLike)):
        model = api.load(model)
        timings["load_torch"] = time.perf_counter() - t
    if not isinstance(model, fx.GraphModule) or not hasattr(model, "tf2torch_meta"):
        raise Tf2TorchError("model must be a module made by tf2torch.convert or tf2torch.load (or a .pt path)")
    return model


class ProgressTracker:
    def __init__(self, callback: Progress | None, total: int):
        self.callback, self.total, self.done = callback, max(total, 1), 0

    def step(self, what: str) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(min(self.done, self.total), self.total, what)


class Session:
    """State shared by the runs of one verification."""

    def __init__(self, source: str | os.PathLike, module: fx.GraphModule, graph: Mapping[str, Any],
                 arrays: list[InputArray], rtol: float, atol: float, tracker: ProgressTracker,
                 timings: dict[str, float]):
        self.source, self.module, self.graph, self.arrays = source, module, graph, arrays
        self.rtol, self.atol, self.tracker, self.timings = rtol, atol, tracker, timings
        self.keras_major = 3 if str(graph.get("keras_version", "2"))[:1].isdigit() and \
            int(str(graph["keras_version"]).split(".")[0]) >= 3 else 2
        self.loaded_with = ""
        self.notes: list[str] = []
        self.shapes: dict[str, list[list[int]]] = {}
        self.node_ids = {n["id"] for n in graph["nodes"]}
        self.picked: dict[str, list[int]] = {}
        self.folded, self.absorbed = folded_calls(module, graph)  # Keras node → where --optimize folded it
        self.outputs = output_nodes(graph)

    def run(self, dtype: str) -> dict[str, tuple[Metrics, bool, list[list[int]] | None]]:
        """One float32 or float64 run: node id → (metrics, shapes agree, torch shapes when they do not)."""
        if tf_side.is_tf_graph(self.graph):
            return self.run_tf_graph(dtype)
        if tflite_side.is_tflite_graph(self.graph):
            return self.run_tflite(dtype)
        t = time.perf_counter()
        loaded = (keras_side.load_keras_model(str(self.source), self.keras_major, dtype)
                  if isinstance(self.source, (str, os.PathLike))
                  else keras_side.live_keras_model(self.source, dtype))
        if self.module.tf2torch_meta.get("flip_theano_kernels"):
            flipped = keras_side.flip_theano_kernels(loaded.model)
            note = (f"Keras's side: {flipped} convolution kernel(s) flipped as Keras 2.0-2.3 flipped them for a model "
                    "trained with Theano, like the conversion's")
            if note not in self.notes:
                self.notes.append(note)
        self.timings[f"load_keras_{dtype}"] = time.perf_counter() - t
        self.loaded_with = loaded.version
        if loaded.note and loaded.note not in self.notes:
            self.notes.append(loaded.note)
        by_name = {a.name: a.array for a in self.arrays}
        t = time.perf_counter()
        keras_out = keras_side.run_layers(loaded, by_name, on_call=lambda n: self.tracker.step(f"keras {n}"))
        self.timings[f"keras_{dtype}"] = time.perf_counter() - t
        del loaded
        keras_out = self.align(keras_out)
        self.check_dtypes(keras_out, dtype)
        return self.run_torch(keras_out, dtype)

    def run_tf_graph(self, dtype: str) -> dict[str, tuple[Metrics, bool, list[list[int]] | None]]:
        """A TensorFlow graph: TensorFlow runs the resolved graph (float64: retyped, ``tf_side.as_float64``)."""
        if not isinstance(self.source, (str, os.PathLike)):
            raise Tf2TorchError("verifying a TensorFlow graph needs its path")
        t = time.perf_counter()
        by_name = {a.name: a.array for a in self.arrays}
        options = self.module.tf2torch_meta.get("tf_options") or {}
        self.loaded_with, tf_out = tf_side.run_graph(self.source, options, self.graph, by_name, dtype)
        self.picked = tf_side.picked_outputs(self.graph)  # a loop's TensorLists and constants are not compared
        for node_id in tf_out:
            self.tracker.step(f"tensorflow {node_id}")
        self.timings[f"tensorflow_{dtype}"] = time.perf_counter() - t
        return self.run_torch(tf_out, dtype)

    def run_tflite(self, dtype: str) -> dict[str, tuple[Metrics, bool, list[list[int]] | None]]:
        """A ``.tflite`` file: TFLite's interpreter, every operator's output kept (``tflite_side``)."""
        if not isinstance(self.source, (str, os.PathLike)):
            raise Tf2TorchError("verifying a .tflite model needs its path")
        t = time.perf_counter()
        by_name = {a.name: a.array for a in self.arrays}
        self.loaded_with, ref_out = tflite_side.run_interpreter(self.source, self.graph, by_name, dtype)
        for node_id in ref_out:
            self.tracker.step(f"tflite {node_id}")
        self.timings[f"tflite_{dtype}"] = time.perf_counter() - t
        return self.run_torch(ref_out, dtype)

    def run_torch(self, keras_out: dict[str, list[np.ndarray]], dtype: str
                  ) -> dict[str, tuple[Metrics, bool, list[list[int]] | None]]:
        results: dict[str, tuple[Metrics, bool, list[list[int]] | None]] = {}
        wrong_dtype: list[str] = []
        compare_time = 0.0
        scratch = Scratch()

        def on_output(node_id: str, outputs: list[torch.Tensor]) -> None:
            nonlocal compare_time
            t0 = time.perf_counter()
            refs = keras_out.pop(node_id, None)
            self.tracker.step(f"torch {node_id}")
            if refs is None:
                return
            if node_id in self.picked:
                outputs = [outputs[i] for i in self.picked[node_id]]
            refs_t = [_from_numpy(r) for r in refs]
            self.shapes.setdefault(node_id, [list(r.shape) for r in refs])
            metrics, same_shape = compare_outputs(refs_t, outputs, self.rtol, self.atol, scratch)
            results[node_id] = (metrics, same_shape, None if same_shape else [list(o.shape) for o in outputs])
            if dtype == "float64" and any(o.is_floating_point() and o.dtype != torch.float64 for o in outputs):
                wrong_dtype.append(node_id)
            compare_time += time.perf_counter() - t0

        module = torch_side.in_dtype(self.module, TORCH_DTYPE[dtype])
        inputs = {input_node_id(self.graph, a.name): a.array for a in self.arrays}
        t = time.perf_counter()
        torch_side.run_module(module, inputs, on_output, TORCH_DTYPE[dtype])
        for node_id, refs in keras_out.items():  # calls torch gave no output for (folded by --optimize): shapes
            self.shapes.setdefault(node_id, [list(r.shape) for r in refs])
        self.timings[f"torch_{dtype}"] = time.perf_counter() - t - compare_time
        self.timings[f"compare_{dtype}"] = compare_time
        if wrong_dtype:
            self.notes.append(f"the torch module computed {len(wrong_dtype)} layer call(s) in float32 during the "
                              f"float64 run (first: {wrong_dtype[0]}); their float64 errors are float32 round-off")
        return results

    def align(self, keras_out: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
        """``TimeDistributed(model)`` is one Keras call; tf2torch expands it into ``td/fold``, the model's layers
        and ``td/unfold``: the Keras output belongs to ``td/unfold``."""
        ids = self.node_ids
        return {(k if k in ids or f"{k}/unfold" not in ids else f"{k}/unfold"): v for k, v in keras_out.items()}

    def hidden_by_keras(self, node_id: str) -> bool:
        """Calls inside an expanded ``TimeDistributed(model)``: Keras runs them out of sight."""
        parts = node_id.split("/")
        return any("/".join(parts[:i]) + "/unfold" in self.node_ids for i in range(1, len(parts))) and \
            not node_id.endswith("/unfold")

    def check_dtypes(self, keras_out: dict[str, list[np.ndarray]], dtype: str) -> None:
        if dtype != "float64":
            return
        low = [n for n, outs in keras_out.items() if any(o.dtype.kind == "f" and o.dtype != np.float64 for o in outs)]
        if low:
            self.notes.append(f"Keras computed {len(low)} layer call(s) in lower precision during the float64 run "
                              f"(first: {low[0]})")

    # -- the report ---------------------------------------------------------------------------------------
    def build_report(self, results: dict[str, dict[str, tuple[Metrics, bool, Any]]], dtype: str,
                     judged: str) -> Report:
        rows = self.rows(results, judged)
        compared = [r.metrics.max_rel_error for r in rows if r.metrics.max_rel_error is not None]
        first = next((r for r in rows if not r.ok), None)
        ok = first is None and bool(rows)
        if not rows:
            self.notes.append("the model has no layer calls to compare")
        if first is not None and dtype == "float32":
            self.notes.append("rerun with --dtype both to tell float32 round-off from a semantic mismatch")
        return Report(
            ok=ok, max_rel_error=max(compared, default=0.0) if all(r.status != "shape_mismatch" for r in rows)
            else float("inf"), first_divergence=first.layer if first else None, layers=rows, dtype=dtype,
            rtol=self.rtol, atol=self.atol, divergence=self.divergence(first) if first else None,
            model=self.model_summary(), inputs=[a.describe() for a in self.arrays], versions=self.versions(),
            timings=dict(self.timings), notes=self.notes)

    def rows(self, results: dict[str, dict[str, tuple[Metrics, bool, Any]]], judged: str) -> list[LayerResult]:
        rows = []
        calls: dict[str, int] = {}
        for node in self.graph["nodes"]:
            layer = self.graph["layers"][node["layer"]]
            if layer["class_name"] == "InputLayer":
                continue
            call = calls.get(node["layer"], 0)
            calls[node["layer"]] = call + 1
            row = LayerResult(len(rows), node["id"], node["layer"], layer["class_name"], call,
                              self.shapes.get(node["id"], []))
            judged_result = results.get(judged, {}).get(node["id"])
            if judged_result is None and self.hidden_by_keras(node["id"]):
                row.status, row.note = "skipped", "runs inside TimeDistributed, where Keras shows no output"
            elif judged_result is None and self.picked.get(node["id"]) == []:
                row.status, row.note = "skipped", "a TensorList (or loop) output, compared through the ops reading it"
            elif judged_result is None and node["id"] in self.folded and node["id"] not in self.outputs:
                row.status, row.note = "folded", self.folded[node["id"]]
            elif judged_result is None:
                row.note = "no output on one side (the layer call was not run)"
            else:
                metrics, same_shape, torch_shapes = judged_result
                row.metrics, row.torch_shapes = metrics, torch_shapes
                row.note = self.absorbed.get(node["id"])
                row.status = "shape_mismatch" if not same_shape else ("pass" if metrics.ok else "fail")
            if judged == "float32" and "float64" in results and node["id"] in results["float64"]:
                row.float64 = results["float64"][node["id"]][0]
                if not row.ok and row.status == "fail":
                    row.cause = cause_of(row.metrics, row.float64)
            rows.append(row)
        return rows

    def divergence(self, row: LayerResult) -> dict[str, Any]:
        layer = self.graph["layers"][row.layer]
        config = relevant_config(row.class_name, layer["config"])
        return {"layer": row.layer, "node": row.node, "class_name": row.class_name, "call": row.call,
                "status": row.status, "max_rel_error": row.metrics.to_dict()["max_rel_error"],
                "max_abs_error": row.metrics.to_dict()["max_abs_error"], "worst_index": row.metrics.worst_index,
                "config": config, "cause": row.cause, "keras_version": self.graph.get("keras_version"),
                "message": self.why(row, config)}

    def why(self, row: LayerResult, config: dict[str, Any]) -> str:
        if row.status == "shape_mismatch":
            what = f"output shape differs: Keras {row.output_shapes}, torch {row.torch_shapes}"
        elif row.status == "missing":
            what = row.note or "no output"
        else:
            m = row.metrics
            where = f" at {m.worst_index}" if m.worst_index else ""
            what = (f"max relative error {format_error(m.max_rel_error)} > rtol {self.rtol:g} "
                    f"(max |Δ| {format_error(m.max_abs_error)}{where}, scale {format_error(m.scale)})")
        settings = ", ".join(f"{k}={v}" for k, v in config.items())
        text = what + (f"; {settings}" if settings else "")
        if row.node in self.absorbed:  # the torch side of this call is a module --optimize folded layers into
            text += f"; {self.absorbed[row.node]}"
        if row.cause == "round-off" and row.float64 is not None:
            text += f"; round-off: the error falls to {format_error(row.float64.max_rel_error)} in float64"
        elif row.cause == "semantic" and row.float64 is not None:
            text += (f"; semantic: the error stays {format_error(row.float64.max_rel_error)} in float64, "
                     "the converted layer computes something else")
        return text

    def model_summary(self) -> dict[str, Any]:
        g = self.graph
        classes: dict[str, int] = {}
        params = 0
        for layer in g["layers"].values():
            if layer["class_name"] == "InputLayer":
                continue
            classes[layer["class_name"]] = classes.get(layer["class_name"], 0) + 1
            params += sum(int(np.prod(w["shape"])) for w in layer["weights"])
        calls = sum(1 for n in g["nodes"] if g["layers"][n["layer"]]["class_name"] != "InputLayer")
        source = str(self.source) if isinstance(self.source, (str, os.PathLike)) else f"<{type(self.source).__name__}>"
        return {"name": g.get("name"), "source": source, "format": g.get("source_format"),
                "keras_version": g.get("keras_version"), "loaded_with": self.loaded_with,
                "layout": self.module.tf2torch_meta.get("layout"), "parameters": params,
                "layers": sum(classes.values()), "calls": calls,
                "inputs": [{"name": s["name"], "shape": list(s["shape"]), "dtype": s["dtype"]}
                           for s in g["input_specs"]],
                "outputs": [{"node": r["node"], "index": r["index"]} for r in g["outputs"]],
                "classes": dict(sorted(classes.items(), key=lambda kv: (-kv[1], kv[0])))}

    def versions(self) -> dict[str, str]:
        import h5py

        from ..version import __version__

        found = {"tf2torch": __version__, "python": platform.python_version(), "torch": torch.__version__,
                 "numpy": np.__version__, "h5py": h5py.__version__}
        for name in ("tensorflow", "keras", "tf_keras"):
            module = __import__("sys").modules.get(name)
            if module is not None and hasattr(module, "__version__"):
                found[name] = module.__version__
        found["platform"] = platform.platform(terse=True)
        return found


def _from_numpy(array: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # read-only arrays from TF: we never write to them
        return torch.from_numpy(array)
