"""Where the time goes: the ``optimize=True`` module under torch.profiler against ONNX Runtime's own profiling, on
one bench model at one batch, in one process (run with build/benchenv/bin/python; not part of ``make bench``).

    build/benchenv/bin/python benchmarks/profile_routes.py MobileNetV2 1

Prints the medians of calls taken in turns, torch's operators by self time and ONNX Runtime's nodes by kernel
time, both per call. ONNX Runtime runs the peer's graph, or tf2torch's own where it cannot load that (as in
bench_routes.py).
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bench_routes


def ort_by_op(profile_path: str) -> tuple[collections.Counter, collections.Counter, int]:
    events = json.loads(Path(profile_path).read_text())
    total, count = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            total[event["args"]["op_name"]] += event["dur"]
            count[event["args"]["op_name"]] += 1
    return total, count, max(1, sum(1 for e in events if e.get("name") == "model_run"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=bench_routes.MODELS)
    parser.add_argument("batch", type=int)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    import numpy as np
    import onnxruntime as ort
    import torch

    import tf2torch

    torch.set_num_threads(bench_routes.THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        entry = bench_routes.prepare([args.model], Path(tmp))[args.model]
        arrays = bench_routes.make_inputs(entry["inputs"], args.batch)
        xs = [torch.from_numpy(a).permute(0, 3, 1, 2).contiguous() if a.ndim == 4 else torch.from_numpy(a)
              for a in arrays]
        module = tf2torch.convert(entry["keras"], optimize=True)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = bench_routes.THREADS, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_profiling, options.profile_file_prefix = True, str(Path(tmp) / "ort")
        try:
            session, feed = ort.InferenceSession(entry["onnx"], options, providers=["CPUExecutionProvider"]), arrays
        except Exception:  # the transformer: tf2onnx's Erfc; tf2torch's own graph takes channels-first inputs
            session = ort.InferenceSession(bench_routes.own_onnx(entry), options, providers=["CPUExecutionProvider"])
            feed = [np.ascontiguousarray(x.numpy()) for x in xs]
        inputs = dict(zip([i.name for i in session.get_inputs()], feed))
        runners = {"tf2torch -O": lambda: module(*xs), "ONNX Runtime": lambda: session.run(None, inputs)}
        times: dict[str, list[float]] = {name: [] for name in runners}
        with torch.no_grad():
            for _ in range(3):
                for run in runners.values():
                    run()
            for _ in range(args.calls):
                for name, run in runners.items():
                    t0 = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - t0)
            print({k: f"{1000 * statistics.median(v):.2f} ms" for k, v in times.items()})
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                for _ in range(args.calls):
                    module(*xs)
        print(f"tf2torch -O, {args.calls} calls:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12, max_name_column_width=40))
        total, count, runs = ort_by_op(session.end_profiling())
        print(f"ONNX Runtime per call, by node kind ({runs} calls):")
        for op, micros in total.most_common(12):
            print(f"  {op:30s} {micros / runs / 1000:8.3f} ms  x{count[op] // runs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
