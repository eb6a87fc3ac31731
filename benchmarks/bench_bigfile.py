"""Big files (issue #25 item 5): a 1.3 GB BERT-large-sized model converts with peak RSS <= the ``import torch``
baseline + ``MEMORY_FACTOR`` x its weight bytes, weights streamed from the file into the module's tensors.

The model (random weights, nothing downloaded): an Embedding (30522 x 1024) and 24 blocks of query/key/value/output
Dense 1024 -> 1024, Dense 1024 -> 4096 (gelu) -> 1024 and two LayerNormalizations with residual Adds, about 333 M
float32 values. It is built and saved (``.h5`` and ``.keras``) by a child process, so TensorFlow's copy of it never
sits in this one, in a temporary directory removed afterwards (about 4 GB of disk at the peak: both files and one
converted ``.pt``).

Measured as whole processes by GNU time (``%M``: the peak RSS of the converting process itself; the reader the
command line forks is a separate, small process): ``import torch`` (the baseline), ``tf2torch convert big.h5
big.pt`` and ``tf2torch convert big.keras big.pt`` on the command line, and ``tf2torch.convert`` + ``tf2torch.save``
through the API (no ``mallopt`` of the command line's). Each row is judged against the same bound. Printed, and
written to build/bench/bigfile.json; exit 1 when a row misses the bound.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_convert import run_process
from machine import describe, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("BENCH_BIGFILE_ROUNDS", "1"))
MEMORY_FACTOR = 1.2
DISK_NEEDED = 4_500_000_000  # .h5 + .keras + one .pt, 1.34 GB each, and room to spare
API = "import sys, tf2torch; tf2torch.save(tf2torch.convert(sys.argv[1]), sys.argv[2])"


def build(directory: str) -> int:
    """Save the model as ``big.h5`` and ``big.keras`` in ``directory``; its weight bytes."""
    import keras
    from keras import layers

    width, hidden = 1024, 4096
    ids = keras.Input((128,), dtype="int32", name="ids")
    x = layers.LayerNormalization(name="embed_norm")(layers.Embedding(30522, width, name="embed")(ids))
    for i in range(24):
        q, k, v = (layers.Dense(width, name=f"b{i}_{n}")(x) for n in ("query", "key", "value"))
        a = layers.Activation("softmax", name=f"b{i}_softmax")(layers.Multiply(name=f"b{i}_qk")([q, k]))
        a = layers.Dense(width, name=f"b{i}_attn_out")(layers.Multiply(name=f"b{i}_av")([a, v]))
        x = layers.LayerNormalization(name=f"b{i}_attn_norm")(layers.Add(name=f"b{i}_attn_res")([x, a]))
        h = layers.Dense(hidden, activation="gelu", name=f"b{i}_ffn_in")(x)
        h = layers.Dense(width, name=f"b{i}_ffn_out")(h)
        x = layers.LayerNormalization(name=f"b{i}_ffn_norm")(layers.Add(name=f"b{i}_ffn_res")([x, h]))
    model = keras.Model(ids, x, name="bert_large_sized")
    for suffix in ("h5", "keras"):
        model.save(str(Path(directory) / f"big.{suffix}"))
    return sum(int(w.numpy().nbytes) for w in model.weights)


def measure(args: list[str], output: Path) -> dict[str, float]:
    """The median of ``ROUNDS`` runs of one command; the ``.pt`` it wrote is removed after each (disk)."""
    runs = []
    for _ in range(ROUNDS):
        runs.append(run_process(args))
        if output.exists():
            runs[-1]["output_mb"] = output.stat().st_size / 2**20
            output.unlink()
    return {k: statistics.median(r.get(k, 0.0) for r in runs) for k in runs[0]}


def main() -> int:
    facts = machine()
    print(describe(facts), flush=True)
    with tempfile.TemporaryDirectory(prefix="tf2torch-bigfile-") as tmp:
        free = shutil.disk_usage(tmp).free
        if free < DISK_NEEDED:
            print(f"skipped: {free / 1e9:.1f} GB free in {tmp}, the benchmark needs {DISK_NEEDED / 1e9:.1f} GB")
            return 0
        made = subprocess.run([sys.executable, __file__, "--build", tmp], capture_output=True, text=True, cwd=ROOT)
        if made.returncode != 0:
            raise RuntimeError(f"building the model failed:\n{made.stderr[-2000:]}")
        weight_mb = int(made.stdout.split()[-1]) / 2**20
        out = Path(tmp) / "big.pt"
        base = measure([sys.executable, "-c", "import torch"], out)
        bound_mb = base["peak_mb"] + MEMORY_FACTOR * weight_mb
        cases = [("cli .h5", [sys.executable, "-m", "tf2torch", "convert", f"{tmp}/big.h5", str(out)]),
                 ("cli .keras", [sys.executable, "-m", "tf2torch", "convert", f"{tmp}/big.keras", str(out)]),
                 ("api .h5", [sys.executable, "-c", API, f"{tmp}/big.h5", str(out)])]
        print(f"weights {weight_mb:.0f} MB; import torch {base['peak_mb']:.0f} MB, {base['wall_s']:.1f} s; bound "
              f"{base['peak_mb']:.0f} + {MEMORY_FACTOR} x {weight_mb:.0f} = {bound_mb:.0f} MB", flush=True)
        rows = []
        for label, args in cases:
            got = measure(args, out)
            factor = (got["peak_mb"] - base["peak_mb"]) / weight_mb
            rows.append({"case": label, **got, "above_baseline_x_weights": factor, "ok": got["peak_mb"] <= bound_mb})
            print(f"{label:<11} peak {got['peak_mb']:6.0f} MB = baseline + {factor:.2f} x weights | "
                  f"{got['wall_s']:5.1f} s wall, {got['cpu_s']:5.1f} s CPU | .pt {got.get('output_mb', 0):.0f} MB | "
                  f"{'ok' if rows[-1]['ok'] else 'OVER the bound'}", flush=True)
    target = ROOT / "build" / "bench" / "bigfile.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"machine": facts, "rounds": ROUNDS, "weights_mb": weight_mb,
                                  "import_torch": base, "memory_factor": MEMORY_FACTOR, "bound_mb": bound_mb,
                                  "rows": rows, "ok": all(r["ok"] for r in rows)}, indent=1))
    print(f"written to {target}")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--build"]:
        print(build(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
