"""What ``tf2torch verify`` costs a user, as whole processes (imports included: the user waits for them too).

For ResNet50 and DenseNet121 (keras.applications, weights=None, saved as ``.keras``), in interleaved rounds:
- **baseline** (process A): import Keras (TensorFlow) and tf2torch, load the Keras model, ``tf2torch.convert``
  it, one Keras forward pass and one torch forward pass over the inputs verify makes (batch 2, seed 0);
- ``tf2torch verify MODEL.keras MODEL.pt`` (process B1: the module saved by an earlier ``convert``);
- ``tf2torch convert MODEL.keras OUT.pt --verify`` (process B2: convert, save and verify in one process).

Target (issue #25): each B / A <= 2. Wall time and peak RSS come from ``os.wait4`` of each child; CPU time (user +
system) is printed beside it because the machine may be shared: a busy neighbour stretches wall time, not CPU
time. Each figure is the median of its rounds; rounds interleave the routes so load slows them alike.
JSON goes to build/bench/verify.json. ``--baseline MODEL.keras`` is process A itself.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("ResNet50", "DenseNet121")
ROUNDS = 3
BOUND = 2.0


def baseline(path: str) -> None:
    """Process A: what verify must do at least, done the plain way."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import torch

    import tf2torch
    from tf2torch.verify.inputs import random_inputs

    model = keras.models.load_model(path, compile=False)
    module = tf2torch.convert(path)
    x = random_inputs(module.tf2torch_meta["graph"], None, 2, 0)[0].array  # verify's default inputs
    model(x, training=False)
    with torch.inference_mode():
        module(torch.from_numpy(x).permute(0, 3, 1, 2).contiguous())


def run_process(command: list[str]) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {child.returncode}: {stderr[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def measure(name: str, tmp: Path) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    from tf2torch.quiet import import_quietly

    keras = import_quietly("keras")  # without TensorFlow's import-time log lines

    source, saved, out = tmp / f"{name}.keras", tmp / f"{name}.pt", tmp / f"{name}-again.pt"
    getattr(keras.applications, name)(weights=None).save(str(source))
    python = sys.executable
    run_process([python, "-m", "tf2torch", "convert", str(source), str(saved)])
    routes = {"baseline": [python, __file__, "--baseline", str(source)],
              "verify": [python, "-m", "tf2torch", "verify", str(source), str(saved)],
              "convert --verify": [python, "-m", "tf2torch", "convert", str(source), str(out), "--verify"]}
    runs: dict[str, list[dict[str, float]]] = {route: [] for route in routes}
    for _ in range(ROUNDS):
        for route, command in routes.items():
            runs[route].append(run_process(command))
    medians = {route: median_of(r) for route, r in runs.items()}
    base = medians["baseline"]
    row: dict[str, object] = {"model": name, "rounds": runs, "median": medians}
    print(f"{name}: baseline (import + load + convert + keras and torch forward) {base['wall_s']:5.2f} s wall, "
          f"{base['cpu_s']:5.2f} s CPU, {base['peak_mb']:5.0f} MB", flush=True)
    for route in ("verify", "convert --verify"):
        m = medians[route]
        ratio, cpu_ratio = m["wall_s"] / base["wall_s"], m["cpu_s"] / base["cpu_s"]
        row[f"{route} ratio"], row[f"{route} cpu ratio"] = ratio, cpu_ratio
        row[f"{route} ok"] = ratio <= BOUND
        print(f"  {route:<17} {m['wall_s']:5.2f} s wall, {m['cpu_s']:5.2f} s CPU, {m['peak_mb']:5.0f} MB | ratio "
              f"{ratio:.2f} wall, {cpu_ratio:.2f} CPU (bound {BOUND:g}: {'ok' if ratio <= BOUND else 'OVER'})",
              flush=True)
    return row


def main() -> int:
    if sys.argv[1:2] == ["--baseline"]:
        baseline(sys.argv[2])
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe, machine

    facts = machine()
    print(describe(facts), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {ROUNDS} interleaved rounds, medians",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(name, Path(tmp)) for name in MODELS]
    target = ROOT / "build" / "bench" / "verify.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"machine": facts, "rounds": ROUNDS, "bound": BOUND, "rows": rows}, indent=1))
    print(f"written to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
