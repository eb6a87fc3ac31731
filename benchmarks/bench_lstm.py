"""Forward time of a converted LSTM model against the same .keras file run by Keras 3 on its torch backend.

Model: Embedding(10000, 128) → LSTM(256, return_sequences) → LSTM(256) → Dense(10); batch 32, 100 steps.
Each side runs in a fresh process (same torch, same threads) under ``torch.no_grad``: warm-up, then the median
of N forward passes; the sides alternate for a few rounds and each keeps its best median, so a burst of load
from other processes does not decide the comparison. Goal: the converted model is at least as fast (speed-up
Keras / converted ≥ 1). Two more rows with ``mask_zero=True`` time the masked paths: padding at the end of each
row runs packed through torch's kernel; a gap in the middle of one row sends the whole batch to the step loop.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from machine import describe, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

BATCH, STEPS, VOCAB, UNITS = 32, 100, 10000, 256
WARMUP, REPEATS, ROUNDS = 3, 10, 2

TIMER = textwrap.dedent("""
    import json, statistics, sys, time
    import numpy as np, torch
    side, path, warmup, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    ids = torch.from_numpy(np.load(sys.argv[5]))
    if side == "keras":
        import keras
        model = keras.saving.load_model(path)
        run = lambda: model(ids, training=False)
    else:
        import tf2torch
        model = tf2torch.convert(path)
        run = lambda: model(ids)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            out = run()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    print(json.dumps({"median_ms": 1000 * statistics.median(times), "threads": torch.get_num_threads(),
                      "out": np.asarray(out.detach().cpu() if hasattr(out, "detach") else out).tolist()}))
""")


def build_model(mask_zero: bool):
    import keras

    return keras.Sequential([
        keras.Input((STEPS,), dtype="int32"), keras.layers.Embedding(VOCAB, 128, mask_zero=mask_zero),
        keras.layers.LSTM(UNITS, return_sequences=True), keras.layers.LSTM(UNITS), keras.layers.Dense(10)])


def time_side(side: str, model_path: Path, ids_path: Path) -> dict:
    env = dict(os.environ, KERAS_BACKEND="torch" if side == "keras" else os.environ.get("KERAS_BACKEND", ""))
    if not env["KERAS_BACKEND"]:
        env.pop("KERAS_BACKEND")
    out = subprocess.run([sys.executable, "-c", TIMER, side, str(model_path), str(WARMUP), str(REPEATS),
                          str(ids_path)], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{side} timing failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def padded_ids(padding: str):
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(1, VOCAB, size=(BATCH, STEPS)).astype("int32")
    if padding != "none":  # variable lengths: padding at the end of each row
        for row, length in enumerate(rng.integers(STEPS // 2, STEPS + 1, size=BATCH)):
            ids[row, length:] = 0
    if padding == "gaps":
        ids[0, 10:15] = 0
    return ids


def main() -> None:
    import numpy as np

    print(describe(machine()), flush=True)
    labels = {"none": "no mask", "end": "mask, end padding", "gaps": "mask, a gap"}
    with tempfile.TemporaryDirectory() as tmp:
        for padding, label in labels.items():
            ids_path = Path(tmp) / "ids.npy"
            np.save(ids_path, padded_ids(padding))
            model_path = Path(tmp) / f"lstm_{padding}.keras"
            build_model(mask_zero=padding != "none").save(str(model_path))
            runs: dict[str, list[dict]] = {"keras": [], "converted": []}
            for _ in range(ROUNDS):
                for side in runs:
                    runs[side].append(time_side(side, model_path, ids_path))
            keras_t, ours = (min(r, key=lambda t: t["median_ms"]) for r in runs.values())
            err = float(np.max(np.abs(np.array(ours["out"]) - np.array(keras_t["out"]))))
            print(f"LSTM(256)x2 B={BATCH} T={STEPS} {label:<18} Keras 3 torch backend {keras_t['median_ms']:8.1f} ms | "
                  f"converted {ours['median_ms']:8.1f} ms | speed-up {keras_t['median_ms'] / ours['median_ms']:.2f}x "
                  f"| max |diff| {err:.1e} | {ours['threads']} threads", flush=True)


if __name__ == "__main__":
    main()
