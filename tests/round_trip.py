"""Every model the suite compares through ``harness.torch_outputs`` comes back from its ``.pt`` file.

While ``tests/test_round_trip.py::test_every_converted_model_loads_back`` is selected, ``torch_outputs`` hands each
module it runs to ``Recorder.record``: the module is written with ``tf2torch.save`` beside the exact input tensors,
the outputs it gave and its names (once per test, layout and ``optimize``; a large model in its first layout only).
Nothing is converted again. That test runs last (``arrange``) and loads every file in fresh interpreters
(``RUNNER``, two at once, each taking every other file) with ``tf2torch.load``. The loaded module runs the same
torch kernels on the same tensors: outputs must agree within ``SAME_KERNELS_TOL`` of the largest output value (the
load may lay weights out differently in memory, which may reorder float32 sums; every module measured so far came
back bit-exact), ``output_names`` and ``input_names`` exactly. Issue #20: a tf_keras MobileNetV3Small converted,
then failed to load; dict-output names were lost on the way.

Under pytest-xdist (``make test`` runs ``-n 2``) each worker records what it ran into ONE directory the controller
made (``pytest_configure_node`` hands it over), its files named after the worker; a worker that ends writes
``<worker>.done`` with its count. The final test is the last in the collection, so it is handed out last; the
worker running it waits for every other worker's ``.done`` (they have nothing left to run) and then loads every
worker's files, as one process would have.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import tf2torch

SAME_KERNELS_TOL = 1e-6
# A model with more weights than this (the keras.applications ones) is recorded in its first layout only: loading
# one takes seconds (the IR is rebuilt and run once), and the other layout reads the same IR.
LARGE_BYTES = 16 << 20
FINAL_TEST = "test_round_trip.py::test_every_converted_model_loads_back"
WORKER_INPUT = "tf2torch_round_trip_dir"  # the key in xdist's workerinput naming the shared directory
SHARED: Path | None = None  # the controller's shared directory while xdist distributes the run


class Recorder:
    """Writes ``NNNNN.pt`` (the module) and ``NNNNN.case`` (inputs, outputs, names, the test) into ``directory``."""

    def __init__(self, directory: Path, prefix: str = "") -> None:
        self.directory = directory
        self.prefix = prefix  # the xdist worker's id and "-", so workers sharing the directory never collide
        self.seen: set[tuple[str, str, bool]] = set()
        self.count = 0
        self.seconds = 0.0

    def record(self, module: Any, inputs: list[torch.Tensor], outputs: list[torch.Tensor]) -> None:
        meta = getattr(module, "tf2torch_meta", None)
        if meta is None or module.training:  # not a tf2torch module, or a test training it: nothing to compare
            return
        test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        large = sum(t.numel() * t.element_size() for t in module.state_dict().values()) > LARGE_BYTES
        key = (test, "any" if large else str(meta.get("layout")), bool(meta.get("optimize")))
        if key in self.seen:
            return
        self.seen.add(key)
        started = time.perf_counter()
        stem = self.directory / f"{self.prefix}{self.count:05d}"
        self.count += 1
        case = {"test": test, "inputs": [t.detach() for t in inputs], "outputs": [o.detach() for o in outputs],
                "output_names": list(module.output_names), "input_names": list(module.input_names)}
        try:
            tf2torch.save(module, stem.with_suffix(".pt"))
        except Exception as exc:  # reported by the final test, not by the test that happened to run the module
            case["save_error"] = f"{type(exc).__name__}: {exc}"
        torch.save(case, stem.with_suffix(".case"))
        self.seconds += time.perf_counter() - started


def share() -> str:
    """On xdist's controller, once per worker: the directory every worker records into (made on first call)."""
    global SHARED
    if SHARED is None:
        SHARED = Path(tempfile.mkdtemp(prefix="tf2torch-round-trip-"))
    return str(SHARED)


def arrange(config: Any, items: list[Any]) -> None:
    """Run the final test last; record only when it is selected (no cost otherwise)."""
    import harness

    final = [item for item in items if item.nodeid.endswith(FINAL_TEST)]
    if not final:
        return
    for item in final:
        items.remove(item)
        items.append(item)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and WORKER_INPUT in workerinput:
        harness.ROUND_TRIP = Recorder(Path(workerinput[WORKER_INPUT]), f"{workerinput['workerid']}-")
    else:
        harness.ROUND_TRIP = Recorder(Path(tempfile.mkdtemp(prefix="tf2torch-round-trip-")))


def worker_done(config: Any) -> None:
    """On an xdist worker at the end of its session: ``<worker>.done`` says how many files it wrote."""
    import harness

    recorder = harness.ROUND_TRIP
    workerinput = getattr(config, "workerinput", None)
    if recorder is None or workerinput is None or WORKER_INPUT not in workerinput:
        return
    marker = recorder.directory / f"{workerinput['workerid']}.done"
    marker.write_text(json.dumps({"count": recorder.count, "seconds": recorder.seconds}))


def wait_for_other_workers(timeout: float = 3600) -> tuple[int, float]:
    """(files, seconds saving) the other xdist workers recorded, once each has written ``.done``; (0, 0) alone."""
    import harness

    if not harness.ROUND_TRIP.prefix:  # not an xdist worker sharing the directory
        return 0, 0.0
    others = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) - 1
    me = os.environ.get("PYTEST_XDIST_WORKER", "")
    deadline = time.monotonic() + timeout
    while True:
        done = [p for p in harness.ROUND_TRIP.directory.glob("*.done") if p.stem != me]
        if len(done) >= others:
            break
        assert time.monotonic() < deadline, f"{len(done)} of {others} other xdist workers finished in {timeout:g} s"
        time.sleep(0.5)
    facts = [json.loads(p.read_text()) for p in done]
    return sum(f["count"] for f in facts), sum(f["seconds"] for f in facts)


def cleanup() -> None:
    """A run alone removes its directory; under xdist the controller removes the shared one (workers end first)."""
    import harness

    if harness.ROUND_TRIP is not None and not os.environ.get("PYTEST_XDIST_WORKER"):
        shutil.rmtree(harness.ROUND_TRIP.directory, ignore_errors=True)
    harness.ROUND_TRIP = None
    if SHARED is not None:
        shutil.rmtree(SHARED, ignore_errors=True)


RUNNER = r'''
import json, sys, traceback
from pathlib import Path
import torch
import tf2torch

def compare(got, want):
    """(bit-exact, max |difference| / max |want|) over all outputs."""
    exact, worst = True, 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape or g.dtype != w.dtype:
            return False, float("inf")
        if w.numel() == 0:
            continue
        exact = exact and torch.equal(g, w)
        if w.is_floating_point() or w.is_complex():
            scale = w.abs().max().double().item() or 1.0
            worst = max(worst, (g.double() - w.double()).abs().max().item() / scale)
        elif not torch.equal(g, w):
            worst = float("inf")
    return exact, worst

shard, shards = int(sys.argv[2]), int(sys.argv[3])
for case_path in [Path(p) for p in json.loads(Path(sys.argv[1]).read_text())][shard::shards]:
    case = torch.load(case_path, weights_only=True)
    answer = {"case": case_path.stem, "test": case["test"]}
    try:
        if "save_error" in case:
            raise RuntimeError("tf2torch.save failed: " + case["save_error"])
        module = tf2torch.load(case_path.with_suffix(".pt"))
        with torch.no_grad():
            out = module(*case["inputs"])
        out = list(out) if isinstance(out, (list, tuple)) else [out]
        if len(out) != len(case["outputs"]):
            raise RuntimeError(f"{len(out)} outputs, {len(case['outputs'])} before saving")
        answer["exact"], answer["error"] = compare(out, case["outputs"])
        answer["names"] = [list(module.output_names), list(module.input_names)]
        answer["names_before"] = [case["output_names"], case["input_names"]]
    except Exception as exc:
        answer["failure"] = f"{type(exc).__name__}: {exc}"[:500]
    print(json.dumps(answer), flush=True)
'''


class Loading:
    """Fresh interpreters (tf2torch and torch imported once in each) loading the given ``.case`` files, started at
    once; ``answers()`` waits for them: one JSON line per case. ``processes`` of them, each taking every n-th file.
    The final test starts one on its own worker's files while the other worker still runs tests (its core would
    otherwise wait), and one on the other workers' files once they have ended (the 64 keras.applications modules
    alone took 149 s to load)."""

    def __init__(self, cases: list[Path], processes: int = 2) -> None:
        self.listing = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump([str(c) for c in cases], self.listing)
        self.listing.close()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                                           os.environ.get("PYTHONPATH", "")]))
        processes = min(processes, len(cases))
        self.logs = [tempfile.TemporaryFile("w+") for _ in range(processes)]  # a pipe left unread would stall
        self.runs = [subprocess.Popen([sys.executable, "-c", RUNNER, self.listing.name, str(i), str(processes)],
                                      env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
                     for i, log in enumerate(self.logs)]

    def answers(self, timeout: float = 3600) -> list[dict[str, Any]]:
        answers = []
        try:
            deadline = time.monotonic() + timeout
            for run, log in zip(self.runs, self.logs):
                run.wait(timeout=max(1.0, deadline - time.monotonic()))
                log.seek(0)
                lines = log.read().splitlines()
                answers += [json.loads(line) for line in lines if line.startswith("{")]
                assert run.returncode == 0, "a loading process failed: " + "\n".join(lines[-20:])[-2000:]
        finally:
            for run, log in zip(self.runs, self.logs):
                run.kill() if run.poll() is None else None
                log.close()
            os.unlink(self.listing.name)
        return answers
