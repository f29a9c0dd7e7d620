#!/usr/bin/env bash
# Fresh machine -> dependencies, build, whole test suite. This is what CI runs (.ci/run).
# Then the input-handling tests (ONNX, images, .npy, the CLI's error paths) once more in a
# separate AddressSanitizer + UBSan build: bad input must never crash or corrupt memory.
# SKIP_ASAN=1 leaves that second build out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
# Tests and benchmarks on explicitly: a build folder configured without them (by hand, or by
# an older tools/main.sh) must not make this command run stale test binaries or none.
bash tools/build.sh -DFRAGILE_TESTS=ON -DFRAGILE_BENCH=ON "$@"
(cd "${BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" --timeout 1500 --no-tests=error)

if [ -z "${SKIP_ASAN:-}" ]; then
  ASAN_DIR=${ASAN_BUILD_DIR:-build-asan}
  cmake -S . -B "$ASAN_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRAGILE_ASAN=ON \
    -DFRAGILE_CUDA=OFF -DFRAGILE_BENCH=OFF
  cmake --build "$ASAN_DIR" -j"$(nproc)" --target fragile_nn_tests
  (cd "$ASAN_DIR" && ctest --output-on-failure -j"$(nproc)" --timeout 1500 \
    -R '^(CliErrors|Cli|OnnxIo|Npy|Image|HostileModels)\.')
fi
