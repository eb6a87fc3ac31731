"""Conversion cost as a whole process: ``python -m tf2torch convert model.h5 model.pt`` against ``import torch``
alone and against the peer route (tf2onnx then onnx2torch, then ``torch.save``).

Targets (issue 12): ResNet50 ``.h5`` → ``.pt`` in ≤ 3.0 s of wall time, peak RSS ≤ the ``import torch`` baseline
+ 1.5 × the weight bytes; VGG16 within the same memory bound. Every process is timed with GNU ``/usr/bin/time`` (wall
time, CPU time = user + system, peak RSS); the baseline runs right before each conversion, and the conversions
alternate over ``ROUNDS`` rounds, medians reported. On a shared machine wall time follows the load; the CPU time
and its ratio to the baseline's are the steadier figures.

The peer's column needs ``sh benchmarks/install_peers.sh`` (run with ``build/benchenv/bin/python``); it is skipped
with a message otherwise. JSON goes to build/bench/convert.json.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from machine import describe, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_CONVERT_ROUNDS", "3"))
TIME_BOUND_S = 3.0
MEMORY_FACTOR = 1.5
TIME = "/usr/bin/time"  # GNU time (apt-get install time)

PEER = textwrap.dedent("""
    import sys
    import tensorflow as tf, keras, tf2onnx, onnx2torch, torch
    model = keras.saving.load_model(sys.argv[1], compile=False)
    specs = [tf.TensorSpec((None, *t.shape[1:]), t.dtype) for t in model.inputs]
    fn = tf.function(lambda x: model(x, training=False), input_signature=specs)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=specs, opset=17)
    torch.save(onnx2torch.convert(proto), sys.argv[2])
""")


def run_process(args: list[str]) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process, from ``/usr/bin/time`` (``os.wait4``'s
    peak would count the pages of this parent, which the child holds between fork and exec)."""
    t0 = time.perf_counter()
    done = subprocess.run([TIME, "-f", "%e %U %S %M", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} failed:\n{done.stderr[-2000:]}")
    _, user, system, peak_kb = done.stderr.strip().splitlines()[-1].split()
    return {"wall_s": wall, "cpu_s": float(user) + float(system), "peak_mb": int(peak_kb) / 1024}


def peers_available() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import tf2onnx, onnx2torch"], capture_output=True)
    return probe.returncode == 0


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    import keras

    facts = machine()
    print(describe(facts), flush=True)
    peer = peers_available()
    if not peer:
        print("no tf2onnx + onnx2torch column: install with `sh benchmarks/install_peers.sh`, run with "
              "build/benchenv/bin/python")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [("ResNet50", "h5", []), ("ResNet50", "h5", ["--optimize"]), ("ResNet50", "keras", []),
                 ("VGG16", "h5", [])]
        paths = {}
        for name in sorted({c[0] for c in cases}):
            model = getattr(keras.applications, name)(weights=None)
            weight_mb = sum(int(w.numpy().nbytes) for w in model.weights) / 2**20
            for fmt in ("h5", "keras"):
                paths[name, fmt] = (Path(tmp) / f"{name}.{fmt}", weight_mb)
                model.save(str(paths[name, fmt][0]))
            del model
        for name, fmt, flags in cases:
            path, weight_mb = paths[name, fmt]
            out = Path(tmp) / "out.pt"
            base, ours, theirs = [], [], []
            for _ in range(ROUNDS):
                base.append(run_process([sys.executable, "-c", "import torch"]))
                ours.append(run_process([sys.executable, "-m", "tf2torch", "convert", str(path), str(out), *flags]))
                if peer and name == "ResNet50" and fmt == "h5" and not flags:
                    theirs.append(run_process([sys.executable, "-c", PEER, str(paths[name, "keras"][0]), str(out)]))
            b, o = median_of(base), median_of(ours)
            bound_mb = b["peak_mb"] + MEMORY_FACTOR * weight_mb
            row = {"model": name, "format": fmt, "flags": flags, "weights_mb": weight_mb, "import_torch": b,
                   "tf2torch": o, "memory_bound_mb": bound_mb, "memory_ok": o["peak_mb"] <= bound_mb,
                   "time_ok": o["wall_s"] <= TIME_BOUND_S if name == "ResNet50" else None}  # VGG16: memory only
            label = f"{name} .{fmt} {' '.join(flags)}".strip()
            print(f"{label:<26} tf2torch {o['wall_s']:5.2f} s wall, {o['cpu_s']:5.2f} s CPU, {o['peak_mb']:5.0f} MB | "
                  f"import torch {b['wall_s']:5.2f} s, {b['cpu_s']:5.2f} s CPU, {b['peak_mb']:4.0f} MB | "
                  f"CPU ratio {o['cpu_s'] / b['cpu_s']:.2f} | memory bound {bound_mb:.0f} MB "
                  f"({'ok' if row['memory_ok'] else 'OVER'})"
                  + ("" if row["time_ok"] is None else
                     f" | wall bound {TIME_BOUND_S} s ({'ok' if row['time_ok'] else 'over'})"), flush=True)
            if theirs:
                t = median_of(theirs)
                row["tf2onnx+onnx2torch"] = t
                print(f"{'':<26} tf2onnx + onnx2torch {t['wall_s']:5.2f} s wall, {t['cpu_s']:5.2f} s CPU, "
                      f"{t['peak_mb']:5.0f} MB", flush=True)
            results.append(row)
    target = ROOT / "build" / "bench" / "convert.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"machine": facts, "rounds": ROUNDS, "rows": results}, indent=1))
    print(f"written to {target}")


if __name__ == "__main__":
    main()
