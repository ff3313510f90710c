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
	$(VENV)/bin/mimic world --out $(DEMO_DIR)/world --images 240 --seed 0
	$(VENV)/bin/mimic index --source synthetic --annotations $(DEMO_DIR)/world/annotations.json \
		--images $(DEMO_DIR)/world/images --out $(DEMO_DIR)/world/index.parquet

bench: setup
	$(PY) benchmarks/bench_index.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
