#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the sources that llama-cpp-python's own source
# distribution vendors (the same llama.cpp version the bindings run), for the tests that need a
# real server with /infill, prompt caching and embeddings (tests/test_llama_server.py).
#
#   bash bench/build_llama_server.sh            # into ~/.cache/assist/llama-server/<version>/
#
# It downloads the sdist through pip (the configured index or mirror), configures only the
# server (no curl, no tests, examples or other tools) and builds with every core. Measured on
# the 2-core machine of docs/benchmarks.md: see "A real llama-server".
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$here/.venv/bin/python}"
version="$("$py" -c 'import llama_cpp; print(llama_cpp.__version__)')"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/assist/llama-server/$version"
if [ -x "$dest/llama-server" ]; then echo "$dest/llama-server"; exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$version" -d "$work"
tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
start=$(date +%s)
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF \
  -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$work/build" --target llama-server -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
mkdir -p "$dest"
cp "$work/build/bin/llama-server" "$dest/"
echo "built in $(( $(date +%s) - start )) s" >&2
echo "$dest/llama-server"
