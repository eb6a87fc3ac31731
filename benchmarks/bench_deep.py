"""Conversion time against model depth: a Keras 3 Sequential of N Activation layers (``.keras``).

Target: time linear in the number of layers; 100,000 layers convert in under a minute (issue 8: 8,000 took 9 s,
20,000 over a minute, 100,000 never finished). The files are written the way Keras 3 writes them (config.json,
metadata.json, model.weights.h5) without building the model in Keras, which would itself take minutes. Each size
runs in a fresh process: reading, building the fx graph, and ``GraphModule`` code generation are all timed; CPU
time (the process and its reader child) is printed beside wall time, as it says more on a shared machine.

    python benchmarks/bench_deep.py [N ...]      (default: 1000 10000 100000)
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import h5py
from machine import describe, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ACTIVATIONS = ("relu", "tanh", "sigmoid", "linear")


def deep_sequential(n: int) -> dict:
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
               "config": {"batch_shape": [None, 16], "dtype": "float32", "sparse": False, "name": "input"}}]
    for i in range(n):
        layers.append({"module": "keras.layers", "class_name": "Activation", "registered_name": None,
                       "config": {"name": f"activation_{i}", "trainable": True, "dtype": "float32",
                                  "activation": ACTIVATIONS[i % len(ACTIVATIONS)]}})
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": "deep", "trainable": True, "dtype": "float32", "layers": layers}}


def write_keras(path: Path, n: int) -> None:
    weights = io.BytesIO()
    with h5py.File(weights, "w") as f:
        f.create_group("layers")
        f.create_group("vars")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        archive.writestr("config.json", json.dumps(deep_sequential(n)))
        archive.writestr("model.weights.h5", weights.getvalue())


PROBE = """
import os, sys, time, json
import tf2torch
t0, c0 = time.perf_counter(), os.times()
module = tf2torch.convert(sys.argv[1])
seconds, c1 = time.perf_counter() - t0, os.times()
cpu = (c1.user + c1.system + c1.children_user + c1.children_system) - (c0.user + c0.system + c0.children_user
                                                                      + c0.children_system)
print(json.dumps({"seconds": seconds, "cpu": cpu, "nodes": len(module.graph.nodes)}))
"""


def main(sizes: list[int]) -> None:
    print(describe(machine()), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"deep_{n}.keras"
            write_keras(path, n)
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{n:>7} layers: failed after {time.perf_counter() - t:.1f} s: {out.stderr.strip()[-300:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{n:>7} layers ({path.stat().st_size / 1024:.0f} KB .keras): convert {r['seconds']:.2f} s wall, "
                  f"{r['cpu']:.2f} s CPU ({r['cpu'] / n * 1e6:.0f} us CPU per layer), {r['nodes']:,} fx nodes",
                  flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000, 100000])
