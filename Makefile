# make demo / make test: each builds .venv from scratch if missing and installs all it needs.
# TORCH_SPEC picks the torch build. The default is the CPU wheel this machine has on disk;
# a GPU user runs e.g. `make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124"`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.installed
# Test files run on TEST_WORKERS processes (pytest-xdist, one file per worker at a time): ~9 min on 2 cores.
TEST_WORKERS ?= 2

.PHONY: venv test demo bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -c constraints.txt -e ".[train,dev,ray,tracking]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=15 tests

demo: $(STAMP)
	$(BIN)/selfplay demo --out runs/demo

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e ".[train,dev,ray,tracking,bench]"
	touch $@

bench: $(VENV)/.bench-installed
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
