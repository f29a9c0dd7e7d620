#!/usr/bin/env bash
# Prepares the GPU check for the device machine, a bare machine with one H100/H200, the CUDA
# toolkit and PyTorch, but no Eigen, protobuf, GoogleTest or package registry, and without
# ../shared. Builds the CUDA binaries here (sm_90, host code for any x86-64), then gathers into
# .gpu/ (git-ignored, about 45 MB) what that machine lacks: the three binaries, the Debian
# libraries they link that are not part of CUDA or glibc, and the shared SqueezeNet and photos.
# tools/gpu_run.sh is the command to run there.
#
# Usage: tools/gpu_stage.sh
#   then, with the device tool: run(command="bash tools/gpu_run.sh", carry=[".gpu"],
#   timeout_s=540), which writes its logs and JSON under $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build-gpu}
STAGE=.gpu
SHARED=../shared
[ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null || { echo "gpu_stage: nvcc not found (CUDA toolkit)" >&2; exit 1; }
[ -f "$SHARED/models/squeezenet1.0.onnx" ] || { echo "gpu_stage: $SHARED/models missing" >&2; exit 1; }

# Native host code would be compiled for this CPU; the device machine's may lack its extensions.
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFRAGILE_TESTS=ON -DFRAGILE_NATIVE=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target fragile_cli fragile_gpu_tests fragile_bench

rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/shared/models" "$STAGE/shared/images"
cp "$BUILD_DIR/bin/fragile" "$BUILD_DIR/tests/fragile_gpu_tests" "$BUILD_DIR/bench/fragile_bench" \
  "$STAGE/bin/"
strip "$STAGE"/bin/*

# Libraries to carry: everything the binaries resolve here except CUDA's own (the device has
# its toolkit and PyTorch's wheels) and the C/C++ runtime (its glibc and libstdc++ are newer).
ldd "$STAGE"/bin/* | awk '/=> \// {print $3}' | sort -u |
  grep -v -E '/usr/local/cuda|/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so' |
  while read -r lib; do cp -L "$lib" "$STAGE/lib/"; done

cp "$SHARED/models/squeezenet1.0.onnx" "$SHARED/models/imagenet_classes.txt" \
  "$SHARED/models/README.md" "$STAGE/shared/models/"
cp "$SHARED"/images/* "$STAGE/shared/images/"
echo "gpu_stage: $(du -sh "$STAGE" | cut -f1) in $STAGE (libraries: $(ls "$STAGE/lib" | tr '\n' ' '))"
