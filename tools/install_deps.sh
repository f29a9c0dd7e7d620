#!/usr/bin/env bash
# Installs everything fragile needs to build, test and benchmark, from Debian's packages.
# Run as root (CI does) or with sudo available. Safe to re-run.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git
  libeigen3-dev                       # CPU backend: GEMM and vectorised maps
  libprotobuf-dev protobuf-compiler libonnx-dev   # ONNX import
  libstb-dev                          # PNG/JPEG decoding
  libcli11-dev nlohmann-json3-dev     # the CLI and its JSON output
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  python3-numpy python3-scipy python3-skimage python3-torch python3-torchvision python3-onnx python3-pip
  dataset-fashion-mnist               # real data for the shipped model and influence tests
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps.sh: run as root (or install sudo)" >&2; exit 1; }
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

# onnxruntime is a second, independent reference for model outputs; only PyPI ships it.
if ! /usr/bin/python3 -c "import onnxruntime" 2>/dev/null; then
  $SUDO /usr/bin/python3 -m pip install -q --break-system-packages onnxruntime \
    || echo "install_deps.sh: onnxruntime unavailable; tests using it will use PyTorch only" >&2
fi
