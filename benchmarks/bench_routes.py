"""Inference latency of the converted module against the other routes, side by side in one process.

Candidates (each skipped with a message when its packages are missing):
  tf2torch            tf2torch.convert(path)                          NCHW input
  tf2torch -O         tf2torch.convert(path, optimize=True)           NCHW input
  tf2torch compile    tf2torch.compile(-O module, the batch's input)  NCHW input; the route it picked and its
                      compile seconds are in the JSON (--no-compile leaves it out)
  onnx2torch          tf2onnx (opset 17, open batch) then onnx2torch  NHWC input
  Keras 3 torch       KERAS_BACKEND=torch, keras.saving.load_model     NHWC input
  ONNX Runtime        the same ONNX graph, CPUExecutionProvider        NHWC input; where ONNX Runtime cannot load
                      tf2onnx's graph (the transformer: tf2onnx emits Erfc, not an ONNX op) it runs the graph
                      tf2torch's own emitter writes (``tf2torch.to_onnx`` of the default module), named in the row

The peers are installed for benchmarks only, never as dependencies: ``sh benchmarks/install_peers.sh`` creates
``build/benchenv`` (tf2onnx, onnx2torch with a torchvision stub, onnxruntime), then run
``build/benchenv/bin/python benchmarks/bench_routes.py`` (``make bench`` picks that environment when it exists).

Method (the machine is shared and noisy, so ratios from one interleaved run are what count): every candidate is
loaded in this one process, warmed up, then timed in turns (A, B, C, A, B, C, ...) for several rounds; the table
shows medians and the ratios of the best tf2torch route (the fastest of default, -O and compile) to each peer.
``torch.set_num_threads(2)`` and ONNX Runtime's ``intra_op_num_threads=2`` for all, ONNX Runtime's spinning off
(its spinning threads slow every candidate timed after it on 2 cores: /work/shared/benchmarking.md). The Keras
models (random weights, nothing downloaded) are built and exported to ONNX in a child process on the TensorFlow
backend; this process runs Keras on its torch backend. ``tf2torch.compile`` raises glibc's mmap and trim
thresholds so freed activations stay in the process (``compiled.retain_freed_memory``): process-wide, so from the
first compile on every torch candidate gains from it too (with ``--no-compile`` none does); ONNX Runtime has its
own arena either way.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's tf2torch, whatever the environment has installed
THREADS = 2
MODELS = ("ResNet50", "MobileNetV2", "InceptionV3", "EfficientNetB0", "LSTM", "TransformerEncoder")
from machine import describe, machine  # noqa: E402

PEERS_HINT = "install with `sh benchmarks/install_peers.sh`, run with build/benchenv/bin/python"

PREPARE = textwrap.dedent('''
    """Child process, TensorFlow backend: build each model, save .keras, export ONNX when tf2onnx is there."""
    import json, os, sys, time
    sys.path.insert(0, os.path.join(sys.argv[1], "fixtures"))
    import numpy as np, keras, tensorflow as tf
    out, names = sys.argv[2], sys.argv[3].split(",")

    def lstm():
        return keras.Sequential([keras.Input((100,), dtype="int32"), keras.layers.Embedding(10000, 128),
                                 keras.layers.LSTM(256, return_sequences=True), keras.layers.LSTM(256),
                                 keras.layers.Dense(10)], name="lstm")

    def transformer():
        from make_fixtures import transformer_encoder
        return transformer_encoder(keras, vocab=1000, steps=128, dim=256, heads=4)

    def freeze_captured_constants(fn, onnx_path):
        """tf2onnx leaves a function's captured constant tensors (Keras 3 Normalization's mean and variance in
        EfficientNet) as graph inputs; they become initializers, so the peer takes the model's inputs only."""
        import onnx
        from onnx import numpy_helper
        captured = {inner.name: ext.numpy() for ext, inner in fn.get_concrete_function().graph.captures
                    if ext.dtype != tf.resource}
        graph = onnx.load(onnx_path)
        extra = [i for i in graph.graph.input if i.name in captured]
        for i in extra:
            graph.graph.input.remove(i)
            graph.graph.initializer.append(numpy_helper.from_array(captured[i.name], i.name))
        if extra:
            onnx.save(graph, onnx_path)

    builders = {"LSTM": lstm, "TransformerEncoder": transformer}
    report = {}
    for name in names:
        model = builders[name]() if name in builders else getattr(keras.applications, name)(weights=None)
        rng = np.random.default_rng(0)
        for layer in model.layers:  # batch norm statistics away from (0, 1), so folding has work to do
            if type(layer).__name__ == "BatchNormalization":
                layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()])
        path = os.path.join(out, name + ".keras")
        model.save(path)
        entry = {"keras": path, "inputs": [[list(t.shape[1:]), str(t.dtype.name if hasattr(t.dtype, "name")
                                                                     else t.dtype)] for t in model.inputs]}
        try:
            import tf2onnx
            specs = [tf.TensorSpec((None, *t.shape[1:]), t.dtype, name=f"input_{i}")
                     for i, t in enumerate(model.inputs)]
            fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False),
                             input_signature=specs)
            t0 = time.perf_counter()
            onnx_path = os.path.join(out, name + ".onnx")
            tf2onnx.convert.from_function(fn, input_signature=specs, opset=17, output_path=onnx_path)
            freeze_captured_constants(fn, onnx_path)
            entry["onnx"] = os.path.join(out, name + ".onnx")
            entry["onnx_export_s"] = time.perf_counter() - t0
        except ImportError:
            entry["onnx_error"] = "tf2onnx is not installed"
        except Exception as exc:  # a peer failing on a model is a result, not a crash
            entry["onnx_error"] = f"tf2onnx failed: {type(exc).__name__}: {str(exc)[:200]}"
        report[name] = entry
    print(json.dumps(report))
''')


def prepare(names: list[str], folder: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", PREPARE, str(ROOT), str(folder), ",".join(names)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"building the models failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_inputs(spec: list, batch: int) -> list:
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = []
    for shape, dtype in spec:
        shape = [batch, *shape]
        if "int" in dtype:  # token ids from 1: no padding, every position valid
            arrays.append(rng.integers(1, min(shape[1], 1000) if len(arrays) else 1000, size=shape).astype(dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype("float32"))
    return arrays


def candidates(entry: dict[str, Any], compile_: bool,
               notes: dict[str, Any]) -> tuple[dict[str, Callable[[list], Any]], dict[str, str]]:
    """name → function taking the NHWC numpy inputs and returning a runner (a no-argument callable); ``notes``
    gets what a row should say about its candidates (compile route and seconds, the graph ONNX Runtime runs)."""
    import numpy as np
    import torch

    import tf2torch

    def channels_first(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        return t.permute(0, 3, 1, 2).contiguous() if t.dim() == 4 else t

    def torch_runner(module: torch.nn.Module, layout_cf: bool) -> Callable[[list], Any]:
        def bind(arrays: list) -> Callable[[], Any]:
            xs = [channels_first(a) if layout_cf else torch.from_numpy(a) for a in arrays]
            return lambda: module(*xs)
        return bind

    found: dict[str, Callable[[list], Any]] = {}
    skipped: dict[str, str] = {}
    found["tf2torch"] = torch_runner(tf2torch.convert(entry["keras"]), True)
    optimized = tf2torch.convert(entry["keras"], optimize=True)
    found["tf2torch -O"] = torch_runner(optimized, True)
    if compile_:
        found["tf2torch compile"] = compile_runner(optimized, notes)
    if "onnx" in entry:
        try:
            import onnx
            import onnx2torch

            found["onnx2torch"] = torch_runner(onnx2torch.convert(onnx.load(entry["onnx"])).eval(), False)
        except ImportError as exc:
            skipped["onnx2torch"] = f"{exc}; {PEERS_HINT}"
        except Exception as exc:  # a peer failing on a model is a result
            skipped["onnx2torch"] = f"onnx2torch failed: {type(exc).__name__}: {str(exc)[:200]}"
        ort_candidate(entry["onnx"], "tf2onnx", False, found, skipped, notes)
    else:
        skipped["onnx2torch"] = f"{entry.get('onnx_error')}; {PEERS_HINT}"
    if "ONNX Runtime" not in found and "No module named" not in skipped.get("ONNX Runtime", ""):
        notes["peer_graph_error"] = skipped.get("ONNX Runtime")  # then tf2torch's own ONNX graph
        try:
            ort_candidate(own_onnx(entry), "tf2torch.to_onnx", True, found, skipped, notes)
        except Exception as exc:
            skipped["ONNX Runtime"] = f"tf2torch.to_onnx failed: {type(exc).__name__}: {str(exc)[:200]}"
    try:
        import keras

        model = keras.saving.load_model(entry["keras"], compile=False)

        def keras_bind(arrays: list) -> Callable[[], Any]:
            xs = [torch.from_numpy(a) for a in arrays]
            return lambda: model(xs if len(xs) > 1 else xs[0], training=False)
        found["Keras 3 torch"] = keras_bind
    except Exception as exc:
        skipped["Keras 3 torch"] = f"{type(exc).__name__}: {exc}"
    return found, skipped


def compile_runner(optimized: Any, notes: dict[str, Any]) -> Callable[[list], Any]:
    """``tf2torch.compile`` on the batch's inputs (shapes are static: each batch compiles its own)."""
    import torch

    import tf2torch

    def bind(arrays: list) -> Callable[[], Any]:
        xs = [torch.from_numpy(a).permute(0, 3, 1, 2).contiguous() if a.ndim == 4 else torch.from_numpy(a)
              for a in arrays]
        t0 = time.perf_counter()
        module = tf2torch.compile(optimized, xs)
        notes["compile"] = {"route": module.route, "seconds": time.perf_counter() - t0, "report": module.report,
                            # process-wide from the first compile on: every torch candidate after it gains too
                            "keeps_freed_memory": module.keeps_freed_memory}
        print(f"    tf2torch.compile at batch {len(arrays[0])}: {module.route} "
              f"({notes['compile']['seconds']:.1f} s)", flush=True)
        return lambda: module(*xs)
    return bind


def own_onnx(entry: dict[str, Any]) -> str:
    """tf2torch's ONNX graph of the default module (``tf2torch.to_onnx``), beside the .keras file."""
    import tf2torch

    out = Path(entry["keras"]).with_suffix(".tf2torch_onnx")
    return str(tf2torch.to_onnx(tf2torch.convert(entry["keras"]), out)[0])


def ort_candidate(onnx_path: str, source: str, channels_first: bool, found: dict[str, Any], skipped: dict[str, str],
                  notes: dict[str, Any]) -> None:
    try:
        import numpy as np
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]

        def bind(arrays: list) -> Callable[[], Any]:
            feed = [np.ascontiguousarray(a.transpose(0, 3, 1, 2)) if channels_first and a.ndim == 4 else a
                    for a in arrays]
            return lambda: session.run(None, dict(zip(names, feed)))[0]
        found["ONNX Runtime"] = bind
        notes["ort_graph"] = source
        skipped.pop("ONNX Runtime", None)
    except ImportError as exc:
        skipped["ONNX Runtime"] = f"{exc}; {PEERS_HINT}"
    except Exception as exc:  # a peer failing on a model is a result
        skipped["ONNX Runtime"] = f"ONNX Runtime failed on {source}'s graph: {type(exc).__name__}: {str(exc)[:200]}"


def as_numpy(out: Any) -> Any:
    import numpy as np

    if isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out.detach().cpu() if hasattr(out, "detach") else out, dtype="float64")


def time_interleaved(runners: dict[str, Callable[[], Any]], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Each candidate's times over ``rounds`` turns, in an order shuffled each round (seeded: the same orders on
    every run). A candidate finds the caches (and glibc's freed blocks) as the one before it left them, so with a
    fixed order one candidate always followed Keras and another ONNX Runtime (a rotated order keeps those
    neighbours): EfficientNetB0's -O module at batch 1 measured 9.1 ms timed right after ONNX Runtime in every
    round and 7.5 ms in shuffled order, in the same kind of run."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(warmup):
        for run in runners.values():
            run()
    order, shuffle = list(runners.items()), random.Random(0).shuffle
    for _ in range(rounds):
        shuffle(order)
        for name, run in order:
            t0 = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - t0)
    return times


def bench_model(name: str, entry: dict[str, Any], batches: list[int], rounds: int, warmup: int,
                compile_: bool) -> list[dict[str, Any]]:
    import torch

    notes: dict[str, Any] = {}
    found, skipped = candidates(entry, compile_, notes)
    for peer, why in skipped.items():
        print(f"  {name}: no {peer} column ({why})", flush=True)
    rows = []
    for batch in batches:
        arrays = make_inputs(entry["inputs"], batch)
        runners = {k: bind(arrays) for k, bind in found.items()}
        with torch.no_grad():
            reference = as_numpy(runners["tf2torch"]())
            errors = {}
            for k, run in runners.items():
                got = as_numpy(run())
                scale = float(abs(reference).max()) or 1.0
                errors[k] = float(abs(got - reference).max()) / scale if got.shape == reference.shape else None
            times = time_interleaved(runners, rounds, warmup)
        medians = {k: 1000 * statistics.median(v) for k, v in times.items()}
        row = {"model": name, "batch": batch, "median_ms": medians, "rel_error_vs_tf2torch": errors,
               "rounds": rounds, "skipped": skipped, **{k: v for k, v in notes.items() if k != "compile"}}
        if "compile" in notes:
            row["compile"] = {k: v for k, v in notes["compile"].items()}
        row["best"], row["ratios"] = best_and_ratios(row)
        rows.append(row)
        print_row(rows[-1])
    return rows


TF2TORCH_ROUTES = ("tf2torch", "tf2torch -O", "tf2torch compile")
TARGETS = {"best/ORT": 1.0, "best/onnx2torch": 0.9, "best/Keras": 0.5}


def best_and_ratios(row: dict[str, Any]) -> tuple[str, dict[str, float | None]]:
    """The fastest tf2torch route and its ratios to the peers (< 1: tf2torch faster), with -O's and compile's
    to ONNX Runtime."""
    m = row["median_ms"]
    best = min((r for r in TF2TORCH_ROUTES if r in m), key=m.__getitem__)
    return best, {"best/ORT": ratio(row, best, "ONNX Runtime"), "best/onnx2torch": ratio(row, best, "onnx2torch"),
                  "best/Keras": ratio(row, best, "Keras 3 torch"),
                  "compile/ORT": ratio(row, "tf2torch compile", "ONNX Runtime"),
                  "-O/ORT": ratio(row, "tf2torch -O", "ONNX Runtime"),
                  "default/onnx2torch": ratio(row, "tf2torch", "onnx2torch")}


COLUMNS = ("tf2torch", "tf2torch -O", "tf2torch compile", "onnx2torch", "Keras 3 torch", "ONNX Runtime")


def ratio(row: dict[str, Any], a: str, b: str) -> float | None:
    m = row["median_ms"]
    return m[a] / m[b] if a in m and b in m else None


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_row(row: dict[str, Any]) -> None:
    cells = " | ".join(f"{c} {fmt(row['median_ms'].get(c), '.1f')}" for c in COLUMNS if c in row["median_ms"])
    print(f"  {row['model']} B={row['batch']}: {cells} ms; best {row['best']}, "
          + ", ".join(f"{k} {fmt(v, '.2f')}" for k, v in row["ratios"].items()), flush=True)


def table(rows: list[dict[str, Any]]) -> str:
    present = [c for c in COLUMNS if any(c in r["median_ms"] for r in rows)]
    ratio_names = ["best/ORT", "compile/ORT", "-O/ORT", "best/onnx2torch", "best/Keras"]
    head = ["model", "batch", *[f"{c} ms" for c in present], "compile s (route)", "ORT graph", "best",
            *ratio_names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        compiled = r.get("compile")
        cells = [r["model"], str(r["batch"]), *[fmt(r["median_ms"].get(c), ".1f") for c in present],
                 f"{compiled['seconds']:.0f} ({compiled['route']})" if compiled else "—", r.get("ort_graph", "—"),
                 r["best"].replace("tf2torch ", "").replace("tf2torch", "default"),
                 *[fmt(r["ratios"].get(k), ".2f") + (" ✗" if k in TARGETS and r["ratios"].get(k) is not None
                                                     and r["ratios"][k] > TARGETS[k] else "")
                   for k in ratio_names]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def omp_wait_policy() -> str:
    return os.environ.get("OMP_WAIT_POLICY", "unset")


def ort_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1 warm-up (a first look in minutes)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per candidate (default 15, quick 3)")
    parser.add_argument("--no-compile", action="store_true",
                        help="leave out tf2torch.compile (it compiles each model at each batch: minutes on 2 cores)")
    parser.add_argument("--json", default=str(ROOT / "build" / "bench" / "routes.json"))
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 15)
    warmup = 1 if args.quick else 3
    names = [n for n in args.models.split(",") if n]
    unknown = set(names) - set(MODELS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from {', '.join(MODELS)}")
    os.environ["KERAS_BACKEND"] = "torch"  # this process runs Keras on torch; the child built the files on TF
    import torch

    torch.set_num_threads(THREADS)
    facts = machine()
    print(describe(facts), flush=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"building {', '.join(names)} (TensorFlow backend, child process)...", flush=True)
        entries = prepare(names, Path(tmp))
        for name in names:
            print(f"{name}:", flush=True)
            rows += bench_model(name, entries[name], [int(b) for b in args.batches.split(",")], rounds, warmup,
                                not args.no_compile)
    print(f"\nmedians of {rounds} interleaved rounds, {THREADS} threads, CPU, OMP_WAIT_POLICY={omp_wait_policy()}; "
          f"ratios < 1: tf2torch is faster; ✗: misses its target {TARGETS}\n")
    print(table(rows))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"machine": facts, "threads": THREADS, "rounds": rounds,
                                           "omp_wait_policy": omp_wait_policy(), "targets": TARGETS,
                                           "torch": torch.__version__, "onnxruntime": ort_version(), "rows": rows},
                                          indent=1, default=str))
    print(f"\nwritten to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
