"""Run emitted models where tf2torch cannot help: a fresh virtual environment with torch and safetensors only
(and what they need at run time), and onnxruntime for ONNX files."""

from __future__ import annotations

import importlib.metadata
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

# The emitted Python against the converted module: the same torch, the same kernels, and the child inherits this
# process's environment (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY), so both dispatch to the same instruction set
# on any CPU; the slack over 0 is for the few ulps a different thread split of a reduction may give.
STANDALONE_TOL = 1e-6
ANSWER_TIMEOUT = 1200  # seconds for one request (all its cases)


def requirement_closure(names: list[str]) -> set[str]:
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.distribution(name).requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def standalone_python(directory: Path) -> Path:
    """A venv without system site-packages whose site-packages links only torch, safetensors and their run-time
    requirements (installing torch from PyPI would pull CUDA). Returns its python."""
    venv = directory / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(subprocess.check_output([str(python), "-c", where], text=True).strip())
    for name in requirement_closure(["torch", "safetensors"]):
        dist = importlib.metadata.distribution(name)
        tops = {f.parts[0] for f in dist.files or [] if f.parts and f.parts[0] not in ("..", "__pycache__")}
        for top in tops:
            target = Path(dist.locate_file(top))
            if target.exists() and not (site / top).exists():
                (site / top).symlink_to(target)
    return python


RUNNER = '''
import importlib, importlib.util, json, sys, traceback
from pathlib import Path

import torch
from safetensors.torch import load_file

FORBIDDEN = ("tf2torch", "keras", "tensorflow", "tf_keras")
for name in FORBIDDEN:
    assert importlib.util.find_spec(name) is None, f"{name} is importable"


def run(root, case):
    given = load_file(str(root / f"{case}_inputs.safetensors"))
    args = [given[f"input{i}"] for i in range(len(given))]
    for name in [m for m in sys.modules if m == case or m.startswith(case + ".")]:
        del sys.modules[name]  # a case of the same name from an earlier request
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        model = importlib.import_module(f"{case}.model").load()
    finally:
        sys.path.remove(str(root))
    assert not model.training
    program = torch.export.load(str(root / case / "model.pt2")).module()
    with torch.no_grad():
        outs = {"python": model(*args), "pt2": program(*args)}
    tensors = {}
    for kind, out in outs.items():
        for i, t in enumerate(out if isinstance(out, (list, tuple)) else [out]):
            tensors[f"{kind}{i}"] = t.contiguous()
    torch.save(tensors, str(root / f"{case}_outputs.pt"))  # safetensors' writer would need numpy


for line in sys.stdin:  # one request a line: {"root": ..., "cases": [...]}; one answer a line
    request = json.loads(line)
    try:
        for case in request["cases"]:
            run(Path(request["root"]), case)
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
        print("error", flush=True)
        continue
    print("ok", sorted(sys.modules.keys() & set(FORBIDDEN)), flush=True)
'''


class StandaloneRunner:
    """One process of the standalone venv that runs emitted models on request: torch is imported once however
    many models a test module checks. Use as a context manager (or ``close()``)."""

    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "runner.py").write_text(RUNNER)
        self.log = workdir / "runner.stderr"
        python = standalone_python(workdir)
        with open(self.log, "w") as err:
            self.process = subprocess.Popen([str(python), "-I", str(workdir / "runner.py")], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=err, text=True, cwd=workdir)

    def run(self, root: Path, cases: dict[str, list[torch.Tensor]]) -> dict[str, dict[str, list]]:
        """Run ``root/<case>/`` (model.py package and model.pt2) on its inputs; returns case → {"python":
        outputs, "pt2": outputs}."""
        import json

        from safetensors.torch import save_file

        for name, inputs in cases.items():
            save_file({f"input{i}": t.contiguous() for i, t in enumerate(inputs)},
                      str(root / f"{name}_inputs.safetensors"))
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"root": str(root), "cases": list(cases)}) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], ANSWER_TIMEOUT)  # one answer per request:
        answer = self.process.stdout.readline().strip() if ready else "no answer in time"  # nothing buffered before
        assert answer == "ok []", f"standalone run: {answer or 'no answer'}\n{self.log.read_text()[-3000:]}"
        results = {}
        for name in cases:
            got = torch.load(str(root / f"{name}_outputs.pt"), weights_only=True)
            results[name] = {kind: [got[k] for k in sorted((k for k in got if k.startswith(kind)),
                                                           key=lambda k: int(k[len(kind):]))]
                             for kind in ("python", "pt2")}
        return results

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)

    def __enter__(self) -> StandaloneRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_standalone(root: Path, cases: dict[str, list[torch.Tensor]], workdir: Path) -> dict[str, dict[str, list]]:
    """Run ``root/<case>/`` once in a fresh standalone process (``StandaloneRunner.run``)."""
    with StandaloneRunner(workdir) as runner:
        return runner.run(root, cases)


def onnx_outputs(path: Path, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str), "the batch dimension is not symbolic"
    return session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)})


def channels_last(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Outputs of a channels-first module in Keras's layout."""
    return [a if a.ndim not in (4, 5) else np.moveaxis(a, 1, -1) for a in arrays]
