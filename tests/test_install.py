"""The install the README describes is real: a wheel built from the clone installs into a clean virtual
environment and converts, and ``make`` installs into a virtual environment, never into the system's Python
(issue #20: ``make demo`` installed into whatever ``python3`` came first on PATH).

Offline and fast: the wheel is built without build isolation (setuptools is already here), installed with
``--no-deps --no-index``, and the clean environment sees this interpreter's packages (torch, h5py, click) through
a ``.pth`` path line, which does not activate their ``.pth`` hooks, so the editable checkout stays out of sight.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

import tf2torch

ROOT = Path(__file__).resolve().parents[1]
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def run(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env or CLEAN_ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("install")
    source = tmp / "src"  # a copy: building writes build/ and *.egg-info, which must not land in the checkout
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", "build", ".git", "__pycache__", "*.egg-info",
                                                                ".make", ".pytest_cache", ".hypothesis", "tests"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", ".",
        "-w", tmp / "dist", cwd=source)
    (wheel,) = (tmp / "dist").glob("tf2torch-*.whl")
    env = tmp / "env"
    outside_pip = pip_version() >= (22, 3)  # ``pip --python``: no pip of its own in the clean venv (ensurepip: 5 s)
    run(sys.executable, "-m", "venv", *(["--without-pip"] if outside_pip else []), env)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    (purelib / "borrowed.pth").write_text("\n".join(p for p in site.getsitepackages() if "site-packages" in p) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", env / "bin" / "python"] if outside_pip else \
        [env / "bin" / "python", "-m", "pip"]
    run(*pip, "install", "--no-deps", "--no-index", "-q", wheel)
    return wheel, env


def pip_version() -> tuple[int, ...]:
    from importlib.metadata import version

    return tuple(int(p) for p in version("pip").split(".")[:2] if p.isdigit())


def test_wheel_installs_and_converts_in_a_clean_venv(wheel_env, tmp_path):
    wheel, env = wheel_env
    assert wheel.name.startswith("tf2torch-") and wheel.stat().st_size > 50_000
    where = run(env / "bin" / "python", "-c", "import tf2torch; print(tf2torch.__file__)", cwd=tmp_path)
    assert where.strip().startswith(str(env)), where  # the wheel's copy, not the checkout
    assert "convert" in run(env / "bin" / "tf2torch", "--help", cwd=tmp_path)
    out = tmp_path / "small_cnn.pt"
    run(env / "bin" / "tf2torch", "convert", ROOT / "fixtures" / "small_cnn.h5", out, cwd=tmp_path)
    converted, here = tf2torch.load(out), tf2torch.convert(ROOT / "fixtures" / "small_cnn.h5")
    shape = [2, *[d for d in converted.tf2torch_meta["graph"]["input_specs"][0]["shape"]]]
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype("float32"))
    x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x
    assert torch.equal(converted(x), here(x))


def test_make_installs_into_a_venv_never_the_system(tmp_path):
    """``make -n`` in a fresh copy (no .venv yet): without an active venv every pip and tf2torch command runs
    .venv's python, made first with ``python3 -m venv``; with one active, that one's."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy(ROOT / name, tmp_path / name)
    fresh = run("make", "-n", "demo", cwd=tmp_path)
    venv = tmp_path / ".venv"
    assert f"-m venv {venv}" in fresh and "no virtual environment is active" in fresh
    commands = [line for line in fresh.splitlines() if " -m pip " in line or " -m tf2torch " in line]
    assert commands and all(line.startswith(f"{venv}/bin/python ") for line in commands), commands
    assert "pip's progress follows" in fresh and " -q " not in " ".join(c for c in commands if " -m pip " in c)
    (tmp_path / "mine" / "bin").mkdir(parents=True)
    (tmp_path / "mine" / "bin" / "python").touch()  # an active venv exists
    active = run("make", "-n", "install", cwd=tmp_path, env={**CLEAN_ENV, "VIRTUAL_ENV": str(tmp_path / "mine")})
    assert f"{tmp_path / 'mine'}/bin/python -m pip install" in active and "-m venv" not in active
    assert "make <target>" in run("make", "help", cwd=tmp_path)
