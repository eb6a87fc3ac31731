"""Which CPU a benchmark ran on and which instruction set its kernels used: a ratio measured with AVX-512
kernels and one measured with AVX2 kernels are different facts (issue 26), so every figure carries both.

Recorded: the CPU model (``/proc/cpuinfo``, else ``platform.processor()``); the ISA oneDNN dispatched to, read
from the ``isa:`` line oneDNN prints under ``ONEDNN_VERBOSE=1`` when a tiny convolution initialises it, in a
child of the interpreter that runs the benchmark (oneDNN reads the variable once, at start-up, and
``ONEDNN_MAX_CPU_ISA`` can hold it below the CPU's own); ATen's own vectorised kernels' level
(``torch.backends.cpu.get_cpu_capability()``, held down by ``ATEN_CPU_CAPABILITY``); the overrides set.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from typing import Any

OVERRIDES = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")

# NCHW float32 2x32x28x28 with a 3x3 kernel goes through oneDNN in torch 2.x (a 1x3x8x8 one does not)
PROBE = """
import torch
x = torch.randn(2, 32, 28, 28)
torch.nn.functional.conv2d(x, torch.randn(32, 32, 3, 3))
print("aten:" + str(torch.backends.cpu.get_cpu_capability()), flush=True)
"""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector extensions the CPU reports (avx2, avx512f, amx_*): what it could run, not what ran."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(f for f in flags if f.startswith(("avx2", "avx512f", "amx")) or f == "fma")
    except OSError:
        pass
    return []


def kernel_isas(python: str | None = None) -> dict[str, str | None]:
    """``{"onednn": "Intel AVX-512 with ...", "aten": "AVX512"}`` as the interpreter ``python`` (default: this
    one) dispatches them under the current environment; None where it could not be read."""
    env = dict(os.environ, ONEDNN_VERBOSE="1")
    try:
        done = subprocess.run([python or sys.executable, "-c", PROBE], capture_output=True, text=True, env=env,
                              timeout=300)
    except (OSError, subprocess.TimeoutExpired):
        return {"onednn": None, "aten": None}
    found: dict[str, str | None] = {"onednn": None, "aten": None}
    for line in done.stdout.splitlines():
        if line.startswith("onednn_verbose") and ",isa:" in line:
            found["onednn"] = line.split(",isa:", 1)[1].strip()
        elif line.startswith("aten:"):
            found["aten"] = line[len("aten:"):].strip()
    return found


def machine(python: str | None = None) -> dict[str, Any]:
    """The facts every benchmark JSON records under ``"machine"``."""
    isas = kernel_isas(python)
    return {"cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "logical_cpus": os.cpu_count(),
            "onednn_isa": isas["onednn"], "aten_cpu_capability": isas["aten"],
            "overrides": {name: os.environ[name] for name in OVERRIDES if name in os.environ}}


def describe(facts: dict[str, Any]) -> str:
    """One line for a benchmark's printed output."""
    overrides = ", ".join(f"{k}={v}" for k, v in facts["overrides"].items()) or "none"
    return (f"CPU {facts['cpu_model']} ({facts['logical_cpus']} logical); oneDNN ISA: {facts['onednn_isa']}; "
            f"ATen capability: {facts['aten_cpu_capability']}; overrides: {overrides}")


if __name__ == "__main__":
    print(describe(machine()))
