# Two commands do everything on a fresh machine: `make demo` and `make test` (`make help` lists every target).
# They install into the active virtual environment (VIRTUAL_ENV set), else into .venv/ in this clone, created on
# first use: never into the system's Python. torch, tensorflow-cpu and tf-keras are pinned by constraints.txt (an
# unpinned torch pulls a CUDA build).
ifdef VIRTUAL_ENV
VENV := $(VIRTUAL_ENV)
VENV_NOTE := the active virtual environment $(VIRTUAL_ENV)
else
VENV := $(CURDIR)/.venv
VENV_NOTE := .venv/ in this clone, as no virtual environment is active
endif
BASE_PYTHON ?= python3
VENV_PYTHON := $(VENV)/bin/python
# `make test PYTHON=...` picks another interpreter (a PYTHON environment variable does not)
ifneq ($(origin PYTHON),command line)
PYTHON := $(VENV_PYTHON)
endif
PIP := $(PYTHON) -m pip
# One stamp per environment and clone, inside the environment: a new or deleted .venv installs again.
STAMP := $(VENV)/.tf2torch-installed-$(shell printf %s '$(CURDIR)' | cksum | cut -d' ' -f1)
DEMO_OUT ?= build/demo
PINS := $(shell sed -n 's/==/ /p' constraints.txt | tr '\n' ',' | sed 's/,$$//; s/,/, /g')
.DEFAULT_GOAL := help

.PHONY: help install test lint demo bench clean fixtures fuzz

help:  ## list the targets
	@echo "make <target>; installs into $(VENV_NOTE)"
	@echo "  test       run the whole suite in TEST_WORKERS (2) processes; installs first"
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | awk -F'\t' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(STAMP)  ## install tf2torch (editable) and what the tests need, once
	@echo "python: $(PYTHON) ($(VENV_NOTE))"

$(VENV_PYTHON):
	@echo "creating the virtual environment $(VENV) with $(BASE_PYTHON), as no virtual environment is active"
	@$(BASE_PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "error: $(BASE_PYTHON) -m venv failed: install \
	python3-venv (Debian/Ubuntu: apt-get install python3-venv) or activate a virtual environment" >&2; exit 2; }

$(STAMP): pyproject.toml constraints.txt | $(if $(filter $(VENV_PYTHON),$(PYTHON)),$(VENV_PYTHON))
	@echo "installing into $(VENV_NOTE): tf2torch (editable) with $(PINS), onnx, onnxruntime,"
	@echo "pytest, hypothesis, ruff: about 3 GB to download the first time (pip's progress follows)"
	$(PIP) install --disable-pip-version-check --progress-bar on -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

# The suite, then the tests whose assertions rest on float round-off (marker numerics) again as an AVX2 CPU
# computes them, whatever this CPU is: oneDNN, ATen's vector kernels and MKL held to AVX2 (docs/development.md).
# pytest-xdist runs the suite in TEST_WORKERS processes (docs/development.md: each imports TF and torch, ~2 GB).
AS_AVX2 := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
TEST_WORKERS ?= 2
test: install
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --durations=25
	$(AS_AVX2) $(PYTHON) -m pytest -q -m numerics

# A longer seeded run of the mutation fuzzer (tests/test_fuzz.py); FUZZ_SEED picks another sequence of cases.
FUZZ_CASES ?= 3000
FUZZ_SEED ?= 1
fuzz: install  ## a longer seeded run of the mutation fuzzer (FUZZ_CASES, FUZZ_SEED)
	FUZZ_CASES=$(FUZZ_CASES) FUZZ_SEED=$(FUZZ_SEED) $(PYTHON) -m pytest -q -x tests/test_fuzz.py

lint: install  ## ruff
	$(PYTHON) -m ruff check tf2torch tests benchmarks fixtures

demo: install  ## convert and verify the small model in fixtures/, reports in build/demo
	@mkdir -p $(DEMO_OUT)
	$(PYTHON) -m tf2torch inspect fixtures/small_cnn.h5
	$(PYTHON) -m tf2torch convert fixtures/small_cnn.h5 $(DEMO_OUT)/small_cnn.pt
	$(PYTHON) -m tf2torch verify fixtures/small_cnn.h5 $(DEMO_OUT)/small_cnn.pt --verify-dtype both \
		--report $(DEMO_OUT)/small_cnn.html --report $(DEMO_OUT)/small_cnn.json --report $(DEMO_OUT)/small_cnn.md
	$(PYTHON) -m tf2torch convert fixtures/small_cnn.keras $(DEMO_OUT)/small_cnn_keras.pt --keep-layout --verify
	@echo "reports: $(DEMO_OUT)/small_cnn.html (open in a browser), .json, .md"

fixtures: install  ## re-create fixtures/small_cnn.{h5,keras}
	$(PYTHON) fixtures/make_fixtures.py

bench: install  ## benchmarks/run.py (latency, conversion cost); installs the peers into build/benchenv first
	@test -x build/benchenv/bin/python || PYTHON=$(PYTHON) sh benchmarks/install_peers.sh \
		|| echo "peers not installed (no package index?): their columns are skipped"
	$(PYTHON) benchmarks/run.py

clean:  ## remove build outputs (not .venv/)
	rm -rf build .make .pytest_cache .hypothesis
