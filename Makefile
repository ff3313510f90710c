# mimic-vlm. `make demo` and `make test` each set up .venv by themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU build that lies on the development and CI machines; a user with CUDA installs their own torch first.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup test lint demo bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check .

DEMO_DIR ?= demo-out
demo: setup
	$(VENV)/bin/mimic world --out $(DEMO_DIR)/world --images 300 --seed 0
	$(VENV)/bin/mimic build demo --world $(DEMO_DIR)/world --out $(DEMO_DIR)/mimic-demo
	$(VENV)/bin/mimic show $(DEMO_DIR)/mimic-demo --rows 2

bench: setup
	$(PY) benchmarks/bench_index.py
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_build.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
