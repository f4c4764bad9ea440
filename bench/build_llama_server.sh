#!/usr/bin/env bash
# Build llama.cpp's `llama-server` from the sources that llama-cpp-python's own source
# distribution vendors (the same llama.cpp version the bindings run), for the tests that need a
# real server with /infill, prompt caching and embeddings (tests/test_llama_server.py).
#
#   make llama-server                        # what `make test` runs first
#   bash bench/build_llama_server.sh         # the same: into ~/.cache/assist/llama-server/<version>/
#
# Once per machine: a binary already there is reused at once. The sdist comes through pip (the
# configured index or mirror, pip's HTTP cache). Only the server's own code is compiled: ggml
# and libllama are the bindings' libraries from the venv (same sources, already built and
# optimised), copied beside the binary, which finds them through its RUNPATH ($ORIGIN). No
# curl or OpenSSL, no web UI, no tests, examples or other tools; -O1 for the server's code, whose
# speed the tests do not measure. Timings: docs/benchmarks.md, "A real llama-server".
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
py="${PYTHON:-$here/.venv/bin/python}"
version="$("$py" -c 'import llama_cpp; print(llama_cpp.__version__)')"
lib="$("$py" -c 'import llama_cpp, pathlib; print(pathlib.Path(llama_cpp.__file__).parent / "lib")')"
dest="${XDG_CACHE_HOME:-$HOME/.cache}/assist/llama-server/$version"
if [ -x "$dest/llama-server" ]; then echo "$dest/llama-server"; exit 0; fi
command -v cmake >/dev/null || { echo "build_llama_server: cmake is needed" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$(date +%s)
"$py" -m pip download --quiet --no-binary :all: --no-deps "llama-cpp-python==$version" -d "$work"
tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work"
src="$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)"
downloaded=$(date +%s)

# ggml and llama as imported targets: the bindings' shared libraries instead of their sources.
cat > "$src/ggml/CMakeLists.txt" <<EOF
foreach(name ggml ggml-base ggml-cpu)
    add_library(\${name} SHARED IMPORTED GLOBAL)
    set_target_properties(\${name} PROPERTIES IMPORTED_LOCATION "$lib/lib\${name}.so"
        INTERFACE_INCLUDE_DIRECTORIES "\${CMAKE_CURRENT_SOURCE_DIR}/include")
endforeach()
set_target_properties(ggml PROPERTIES INTERFACE_LINK_LIBRARIES "ggml-base;ggml-cpu")
EOF
cat > "$src/src/CMakeLists.txt" <<EOF
add_library(llama SHARED IMPORTED GLOBAL)
set_target_properties(llama PROPERTIES IMPORTED_LOCATION "$lib/libllama.so"
    INTERFACE_INCLUDE_DIRECTORIES "\${CMAKE_CURRENT_SOURCE_DIR}/../include"
    INTERFACE_LINK_LIBRARIES ggml)
EOF
sed -i 's/^install(TARGETS llama LIBRARY PUBLIC_HEADER)$//' "$src/CMakeLists.txt"  # not built here

cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS_RELEASE="-O1 -DNDEBUG" -DCMAKE_CXX_FLAGS_RELEASE="-O1 -DNDEBUG" \
  -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN' -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >/dev/null 2>&1 \
  || { echo "build_llama_server: cmake could not configure $src" >&2; exit 1; }
cmake --build "$work/build" --target llama-server -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

rm -rf "$dest.partial" && mkdir -p "$dest.partial"
cp "$work/build/bin/llama-server" "$dest.partial/"
for name in llama ggml ggml-base ggml-cpu; do cp -L "$lib/lib$name.so.0" "$dest.partial/"; done
"$dest.partial/llama-server" --version >/dev/null 2>&1 \
  || { echo "build_llama_server: the built llama-server does not run" >&2; exit 1; }
rm -rf "$dest" && mv "$dest.partial" "$dest"
end=$(date +%s)
echo "built in $(( end - start )) s ($(( downloaded - start )) s fetching the sdist)" >&2
echo "$dest/llama-server"
