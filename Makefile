# Two commands do everything on a fresh machine: `make demo` and `make test`.
# torch, tensorflow-cpu and tf-keras are pinned by constraints.txt (an unpinned torch pulls a CUDA build).
PYTHON ?= python3
PIP := $(PYTHON) -m pip
STAMP := .make/installed-$(shell $(PYTHON) -c 'import sys; print("%d%d" % sys.version_info[:2])' 2>/dev/null)
DEMO_OUT ?= build/demo

.PHONY: install test lint demo bench clean fixtures fuzz

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PIP) install --disable-pip-version-check -q -c constraints.txt -e ".[dev]"
	@mkdir -p .make && touch $(STAMP)

# The suite, then the tests whose assertions rest on float round-off (marker numerics) again as an AVX2 CPU
# computes them, whatever this CPU is: oneDNN, ATen's vector kernels and MKL held to AVX2 (docs/development.md).
AS_AVX2 := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
test: install
	$(PYTHON) -m pytest -q --durations=25
	$(AS_AVX2) $(PYTHON) -m pytest -q -m numerics

# A longer seeded run of the mutation fuzzer (tests/test_fuzz.py); FUZZ_SEED picks another sequence of cases.
FUZZ_CASES ?= 3000
FUZZ_SEED ?= 1
fuzz: install
	FUZZ_CASES=$(FUZZ_CASES) FUZZ_SEED=$(FUZZ_SEED) $(PYTHON) -m pytest -q -x tests/test_fuzz.py

lint: install
	$(PYTHON) -m ruff check tf2torch tests benchmarks fixtures

demo: install
	@mkdir -p $(DEMO_OUT)
	$(PYTHON) -m tf2torch inspect fixtures/small_cnn.h5
	$(PYTHON) -m tf2torch convert fixtures/small_cnn.h5 $(DEMO_OUT)/small_cnn.pt
	$(PYTHON) -m tf2torch verify fixtures/small_cnn.h5 $(DEMO_OUT)/small_cnn.pt --dtype both \
		--report $(DEMO_OUT)/small_cnn.html --report $(DEMO_OUT)/small_cnn.json --report $(DEMO_OUT)/small_cnn.md
	$(PYTHON) -m tf2torch convert fixtures/small_cnn.keras $(DEMO_OUT)/small_cnn_keras.pt --keep-layout --verify
	@echo "reports: $(DEMO_OUT)/small_cnn.html (open in a browser), .json, .md"

fixtures: install
	$(PYTHON) fixtures/make_fixtures.py

bench: install
	$(PYTHON) benchmarks/run.py

clean:
	rm -rf build .make .pytest_cache .hypothesis
