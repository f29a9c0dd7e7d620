#!/usr/bin/env bash
# Fresh machine -> dependencies, build, then the main job: an explanation attack end to end on
# the model that ships with the repo (a softplus CNN trained on Fashion-MNIST), on one of its
# test images. Results land in ./out/main (result.json, heatmaps before/after, perturbed image).
#
# Other models and images: MODEL=../shared/models/squeezenet1.0.onnx IMAGE=../shared/images/chelsea.png
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
# Only the command-line tool: the test and benchmark targets stay configured (switching them
# off here would leave a later tools/test.sh in the same build folder with stale or no tests).
BUILD_TARGETS=fragile_cli bash tools/build.sh

MODEL=${MODEL:-tools/models/fashion_cnn.onnx}
IMAGE=${IMAGE:-tools/models/fashion_samples/test0_ankle_boot.png}
OUT=${OUT:-out/main}
FRAGILE=${BUILD_DIR:-build}/bin/fragile

"$FRAGILE" predict --model "$MODEL" --image "$IMAGE" --top 3
# k defaults to 100 for small maps (Fashion-MNIST's 28x28) and 1000 (the paper's) otherwise.
K_ARGS=()
if [ -n "${TOPK:-}" ]; then K_ARGS=(--k "$TOPK"); fi
"$FRAGILE" attack --model "$MODEL" --image "$IMAGE" --method gradient --attack topk \
  --epsilon "${EPSILON:-8}" --iters "${ITERS:-100}" --step "${STEP:-0.5}" "${K_ARGS[@]}" \
  --out "$OUT"
echo "main job done: see $OUT/result.json and $OUT/panel.png (image and saliency map, before and after)"
