"""Run every benchmark in this folder (make bench). Each prints its own figures; none is a pass/fail test.

The comparisons with other routes need their packages, installed apart from the project by
``sh benchmarks/install_peers.sh`` into build/benchenv; when that environment exists the benchmarks run in it.
``--quick`` passes on to the benchmarks that have a quick mode (bench_routes.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from machine import describe, machine

HERE = Path(__file__).resolve().parent
BENCH_ENV_PYTHON = HERE.parent / "build" / "benchenv" / "bin" / "python"
QUICK_MODE = {"bench_routes.py"}


def main() -> int:
    failed = []
    python = str(BENCH_ENV_PYTHON) if BENCH_ENV_PYTHON.exists() else sys.executable
    if python == sys.executable:
        print("peers not installed (sh benchmarks/install_peers.sh): their columns are skipped", flush=True)
    print(describe(machine(python)), flush=True)
    quick = "--quick" in sys.argv[1:]
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"=== {script.name}", flush=True)
        extra = ["--quick"] if quick and script.name in QUICK_MODE else []
        if subprocess.run([python, str(script), *extra]).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
