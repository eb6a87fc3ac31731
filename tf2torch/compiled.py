"""``tf2torch.compile``: the fastest exact inference module this machine runs for a converted model.

Candidates, each checked against the ``optimize=True`` module on the example inputs (``TOLERANCE``, relative to
the output's scale, as the suite checks the optimised module against Keras) and timed in turns on them:

- ``"optimized"``: the ``optimize=True`` module itself, eager (``tf2torch/optimize.py``: batch norms folded,
  oneDNN convolutions with their activation and residual add as post-ops, weights packed once, channels_last).
- ``"inductor"``: ``torch.compile`` of that module with inductor, ``freezing`` (parameters become constants:
  inductor folds and prepacks them and fuses conv + activation / add as oneDNN post-ops itself), the C++ wrapper
  (the generated code calls its kernels without the Python interpreter between them) and ``max_autotune`` off
  (minutes of benchmarking per shape on 2 cores). ``fullgraph=True``: a graph break refuses the candidate rather
  than hiding one in a conv trunk. Shapes are static: another input shape compiles again (``dynamic=False``).
- ``torch.jit.freeze`` + ``optimize_for_inference`` was measured and is not a candidate: tracing a converted
  module fails on TF ``SAME`` padding computed from traced sizes, and TorchScript is deprecated in torch 2.

Traps handled: every converted module's call is the same code (``fx.GraphModule.__call__``), on which dynamo
keeps compiled code and guards, so each compiled module gets an entry point of its own (``entry_point``) and the
guards on the module's attributes can go (``INDUCTOR_OPTIONS``); dynamo's limit of 8 compiled variants per code
object is lifted (``RECOMPILE_LIMIT``); freezing is read from the global config when dynamo traces (``frozen``)
and only applies when the compiled call runs without autograd (``torch._inductor`` checks
``torch.is_grad_enabled()`` when it compiles), so the result runs under ``torch.no_grad``; frozen weights are
constants of the compiled code, so the result is for inference with the weights it was compiled with. The
returned module shares the optimised module's submodules, parameters and ``tf2torch_meta``: ``state_dict`` keys
and ``named_children`` are the converted module's names (``conv1_conv``), not ``_orig_mod.conv1_conv``.
"""

from __future__ import annotations

import copy
import statistics
import time
import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .glibc import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, mallopt
from .optimize import optimize

TOLERANCE = 1e-5  # max |candidate - reference| / max |reference|, the suite's bound for the optimised module
ROUTES = ("optimized", "inductor")

# ``guard_filter_fn``: no guards on the module's attributes (the weights are frozen into the compiled code, which a
# change to them would not reach anyway): dynamo checked every parameter, submodule attribute and hook dict on each
# call, 645 → 60 µs per call on EfficientNetB0. The inputs' guards stay, so another input shape compiles again.
# Safe because each compiled module has code of its own (``entry_point``).
INDUCTOR_OPTIONS = {"freezing": True, "cpp_wrapper": True, "max_autotune": False,
                    "guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe}
# Dynamo's default limit of 8 compiled variants per code object: when every module shared one code object the ninth
# module compiled in a process failed (``fullgraph=True``: FailOnRecompileLimitHit); each now has its own entry
# point, and the limit stays lifted for a module run at many input shapes.
RECOMPILE_LIMIT = 1024
# the size below which freed blocks stay in the process
KEEP_FREED_BYTES = 1 << 30


class CompiledModule(nn.Module):
    """The route ``tf2torch.compile`` chose, under ``torch.no_grad``. ``route`` names it, ``report`` holds per
    candidate the compile seconds, median milliseconds, relative error, or why it was refused."""

    def __init__(self, module: nn.Module, run: Callable[..., Any], route: str, report: dict[str, dict[str, Any]]):
        super().__init__()
        for name in ("_modules", "_parameters", "_buffers"):  # the converted module's own names
            object.__setattr__(self, name, getattr(module, name))
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "optimized", module)
        self.route, self.report = route, report
        self.tf2torch_meta = dict(getattr(module, "tf2torch_meta", {}), compiled=route)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        with torch.no_grad():
            return self._run(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"route={self.route}"


def compile(module: nn.Module, example_inputs: Sequence[torch.Tensor] | torch.Tensor | None = None, *,
            routes: Sequence[str] = ROUTES, rounds: int = 5, tolerance: float = TOLERANCE,
            keep_freed_memory: bool = True) -> CompiledModule:
    """The fastest of ``routes`` for ``module`` (a converted module, optimised or not; it is not changed) on
    ``example_inputs`` (the module's inputs, one tensor or a sequence; default: one random example per input the
    model declares with a static shape). A route whose output is not within ``tolerance`` of the optimised
    module's, or that fails to compile, is refused (its reason is in ``report``); ``"optimized"`` always stands.
    ``keep_freed_memory``: ``retain_freed_memory()`` first (process-wide; False leaves malloc as it is)."""
    unknown = set(routes) - set(ROUTES)
    if unknown:
        raise ValueError(f"error: unknown compile routes {sorted(unknown)}; choose from {', '.join(ROUTES)}")
    kept = keep_freed_memory and retain_freed_memory()
    base = optimized_copy(module)
    xs = as_inputs(example_inputs) if example_inputs is not None else default_inputs(base)
    runners: dict[str, Callable[..., Any]] = {"optimized": base}
    report: dict[str, dict[str, Any]] = {"optimized": {"compile_s": 0.0}}
    with torch.no_grad():
        reference = base(*xs)
        for route in routes:
            if route != "optimized":
                runners_for(route, base, xs, reference, tolerance, runners, report)
        if len(runners) > 1:
            for route, ms in time_in_turns(runners, xs, rounds).items():
                report[route]["ms"] = ms
    route = min(runners, key=lambda r: report[r].get("ms", 0.0))
    compiled = CompiledModule(base, runners[route], route, report)
    compiled.keeps_freed_memory = kept
    return compiled


def retain_freed_memory() -> bool:
    """Let the process keep the memory of freed activations (glibc: ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD``
    raised to ``KEEP_FREED_BYTES``); False where there is no glibc. The trap: glibc serves a block over its mmap
    threshold (at most 32 MB by default) with a fresh ``mmap`` and unmaps it when freed, so every call of a model
    whose activations are that large faults their pages in again (MobileNetV2 at batch 8: 25,500 page faults and
    56 ms per call, against 0 and 22.6 ms with the thresholds raised; ONNX Runtime keeps an arena for the same
    reason). Process-wide, as an arena is: freed memory up to the threshold stays with the process for reuse. It
    holds for blocks of the main thread (glibc's main arena); a thread of its own allocates from a per-thread arena,
    where a 48 MB block was still mapped afresh on each allocation (measured; tests/test_compile.py)."""
    return mallopt(M_MMAP_THRESHOLD, KEEP_FREED_BYTES) and mallopt(M_TRIM_THRESHOLD, KEEP_FREED_BYTES)


def optimized_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with ``optimize`` applied unless the converter already did (``tf2torch_meta``)."""
    meta = getattr(module, "tf2torch_meta", None)
    if isinstance(module, CompiledModule):
        module = module.optimized
    copied = copy.deepcopy(module).eval()  # an fx.GraphModule's deepcopy drops attributes it does not know
    if isinstance(meta, dict):
        if not meta.get("optimize") and hasattr(copied, "graph"):
            optimize(copied)
        copied.tf2torch_meta = dict(meta, optimize=True)
    return copied


def as_inputs(example_inputs: Sequence[torch.Tensor] | torch.Tensor) -> tuple[torch.Tensor, ...]:
    return (example_inputs,) if isinstance(example_inputs, torch.Tensor) else tuple(example_inputs)


def default_inputs(module: nn.Module) -> tuple[torch.Tensor, ...]:
    """One example per input the model declares (batch 1; ``graph.input_specs``, Keras layout): random floats,
    or zeros for integer inputs (token ids); a 4-D/5-D input's channels first unless converted with
    ``layout="keras"`` (``convert``'s rule)."""
    meta = getattr(module, "tf2torch_meta", None) or {}
    specs = (meta.get("graph") or {}).get("input_specs") or []
    if not specs or any(not isinstance(d, int) for spec in specs for d in spec.get("shape") or [None]):
        raise ValueError("error: tf2torch.compile cannot tell this module's input shapes; "
                         "pass example_inputs (the tensors to compile and time it on)")
    generator = torch.Generator().manual_seed(0)
    xs = []
    for spec in specs:
        shape, dtype = [1, *spec["shape"]], str(spec.get("dtype") or "float32")
        if meta.get("layout", "channels_first") == "channels_first" and len(shape) in (4, 5):
            shape = [shape[0], shape[-1], *shape[1:-1]]
        xs.append(torch.zeros(shape, dtype=getattr(torch, dtype)) if "int" in dtype
                  else torch.randn(shape, generator=generator))
    return tuple(xs)


def relative_error(got: Any, reference: Any) -> float:
    """max |got - reference| / max |reference| over the outputs (inf when their structure or shapes differ)."""
    gots, refs = flat(got), flat(reference)
    if len(gots) != len(refs) or any(g.shape != r.shape for g, r in zip(gots, refs)):
        return float("inf")
    worst = 0.0
    for g, r in zip(gots, refs):
        scale = float(r.abs().max()) if r.numel() else 0.0
        worst = max(worst, float((g.double() - r.double()).abs().max()) / (scale or 1.0) if r.numel() else 0.0)
    return worst


def flat(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in flat(v)]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in flat(v)]
    return []


def _call_module(*args: Any) -> Any:
    return module(*args)  # type: ignore[name-defined]  # noqa: F821  # a global of each entry point's own


def entry_point(module: nn.Module) -> Callable[..., Any]:
    """A function that calls ``module``, with a code object of its own. Dynamo keeps compiled code and its guards
    per code object, and every converted module's call is the same code (``fx.GraphModule.__call__``): with the
    guards on the module dropped (``INDUCTOR_OPTIONS``), one model's compiled code ran for another's input of the
    same shape (MobileNetV2 given ResNet50's code, caught by the exactness check)."""
    code = _call_module.__code__.replace(co_name=f"tf2torch_compiled_{type(module).__name__}_{id(module):x}")
    return types.FunctionType(code, {"module": module, "__builtins__": __builtins__})


def frozen(compiled: Callable[..., Any]) -> Callable[..., Any]:
    """``compiled`` called with inductor's ``freezing`` on in the global config. The trap: ``torch.compile(...,
    options={"freezing": True})`` is not enough (torch 2.13): dynamo decides whether parameters are frozen
    constants from the global ``torch._inductor.config.freezing`` when it traces (``is_parameter_freezing``), so
    with the option alone the weights stayed graph inputs, no convolution was prepacked or fused
    (``aten.convolution``, the slow ``thnn_conv2d`` for squeeze-excite's 1×1 maps): EfficientNetB0 at batch 1 ran
    at 8.2 ms a call, frozen at 7.6 ms (ONNX Runtime 6.7-6.8 ms in the same runs), MobileNetV2 3.7 against ONNX
    Runtime's 3.3 ms where it had been slower than the eager -O module. Every call enters the patch (≈ 12 µs), so
    that a recompile (a new input shape) freezes too."""
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch._inductor.config.patch(freezing=True):
            return compiled(*args, **kwargs)
    return run


def runners_for(route: str, base: nn.Module, xs: tuple[torch.Tensor, ...], reference: Any, tolerance: float,
                runners: dict[str, Callable[..., Any]], report: dict[str, dict[str, Any]]) -> None:
    """Compile ``route``, run it once (that compiles), and keep it when it is exact."""
    t0 = time.perf_counter()
    try:
        run = frozen(torch.compile(entry_point(base), backend="inductor", fullgraph=True, dynamic=False,
                                   options=INDUCTOR_OPTIONS))
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            got = run(*xs)
    except Exception as exc:  # a route that does not compile here is a result: refused, with the reason
        report[route] = {"refused": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
        return
    error = relative_error(got, reference)
    report[route] = {"compile_s": time.perf_counter() - t0, "rel_error": error}
    if error <= tolerance:
        runners[route] = run
    else:
        report[route]["refused"] = f"output differs by {error:.3g} of its scale (> {tolerance:g})"


def time_in_turns(runners: dict[str, Callable[..., Any]], xs: tuple[torch.Tensor, ...],
                  rounds: int) -> dict[str, float]:
    """Median milliseconds per route, timed in turns (A, B, then B, A, ...: the order rotated each round, since a
    route finds the caches as the one before it left them) after one warm-up call each, so a noisy machine slows
    every route alike."""
    times: dict[str, list[float]] = {route: [] for route in runners}
    for run in runners.values():
        run(*xs)
    order = list(runners.items())
    for turn in range(max(1, rounds)):
        for route, run in order[turn % len(order):] + order[:turn % len(order)]:  # each route first in turn
            t0 = time.perf_counter()
            run(*xs)
            times[route].append(time.perf_counter() - t0)
    return {route: 1000 * statistics.median(t) for route, t in times.items()}
