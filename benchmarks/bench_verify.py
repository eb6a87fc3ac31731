"""How long ``tf2torch.verify`` takes on ResNet50 (weights=None), against one Keras forward pass plus one PyTorch
forward pass over the same inputs (batch 2 and 8, 224×224×3). Imports are excluded; everything is timed after one
warm-up call, in interleaved rounds (keras, torch, verify, keras, ...) so a busy machine slows all alike, and the
best round of each counts.

Target: verify (capture every layer on both sides and compare) ≤ 2 × (Keras forward + torch forward).
Loading the Keras file is reported apart: verify must load the original model, a forward pass does not.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from machine import describe, machine  # noqa: E402

import tf2torch  # noqa: E402

REPEATS = 3
BATCHES = (2, 8)  # loading the Keras file is a fixed cost; forward passes grow with the batch


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> int:
    print(describe(machine()), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet50.keras"
        keras.applications.ResNet50(weights=None).save(str(path))
        for batch in BATCHES:
            measure(path, batch)
    return 0


def measure(path: Path, batch: int) -> None:
    x = np.random.default_rng(0).standard_normal((batch, 224, 224, 3)).astype("float32")
    if True:
        start = time.perf_counter()
        model = keras.models.load_model(str(path), compile=False)
        load_keras = time.perf_counter() - start
        module = tf2torch.convert(path)
        x_torch = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

        def keras_forward() -> None:
            model(x, training=False)

        def torch_forward() -> None:
            with torch.inference_mode():
                module(x_torch)

        reports = []

        def verify_in_memory() -> None:
            reports.append(tf2torch.verify(model, module, inputs=x))

        keras_forward(), torch_forward(), verify_in_memory()  # warm-up
        rounds = [[timed(fn) for fn in (keras_forward, torch_forward, verify_in_memory)] for _ in range(REPEATS)]
        keras_s, torch_s, verify_s = (min(column) for column in zip(*rounds))
        best = min(range(REPEATS), key=lambda i: rounds[i][2])
        from_file_s = timed(lambda: tf2torch.verify(path, module, inputs=x))
    report = reports[1 + best]  # reports[0] is the warm-up
    assert report.ok, report.summary_line()
    t = report.timings
    baseline = keras_s + torch_s
    print(f"ResNet50, batch {batch}, {len(report.layers)} layer calls compared, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"  keras forward          {keras_s:7.3f} s")
    print(f"  torch forward          {torch_s:7.3f} s")
    print(f"  verify (model loaded)  {verify_s:7.3f} s  = keras capture {t['keras_float32']:.3f} + torch capture "
          f"{t['torch_float32']:.3f} + compare {t['compare_float32']:.3f} + report")
    print(f"  ratio                  {verify_s / baseline:7.2f}  (target <= 2)")
    print(f"  verify from the file   {from_file_s:7.3f} s  (includes loading the Keras model: {load_keras:.3f} s "
          f"by itself); ratio {from_file_s / baseline:.2f}")


if __name__ == "__main__":
    sys.exit(main())
