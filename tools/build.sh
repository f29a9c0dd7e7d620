#!/usr/bin/env bash
# Configures and builds fragile in ./build (Release; CUDA when nvcc is found).
# Extra arguments go to CMake's configure step, e.g. -DFRAGILE_CUDA=OFF.
# BUILD_TARGETS (space-separated) builds only those targets, e.g. BUILD_TARGETS=fragile_cli for
# the command-line tool alone; the default is everything the configuration enables.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then
  export PATH=/usr/local/cuda/bin:$PATH
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@"
targets=()
for t in ${BUILD_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j"$(nproc)" "${targets[@]}"
