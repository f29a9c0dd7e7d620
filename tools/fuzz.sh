#!/usr/bin/env bash
# Fuzzes the input parsers with libFuzzer under ASan + UBSan: ONNX import and execution
# (tests/fuzz/fuzz_onnx.cpp), .npy (fuzz_npy.cpp) and PNG/JPEG decoding with preprocessing
# (fuzz_image.cpp). Every input must end in a fragile::Error or succeed: a crash, a sanitizer
# report, another exception type, a hang (> 10 s) or an allocation over the memory limit is a
# finding, saved under build-fuzz/findings/TARGET/ and reported with the command that replays
# it. Not part of CI (it runs for minutes); run it after changing a parser.
#
# Usage: tools/fuzz.sh [SECONDS per target, default 300] [TARGET ...]   (default: all three)
# Seeds: the small ONNX models the tests generate (build*/reference/nn/models, when a test
# build has made them) and tools/models/fashion_cnn.onnx; a few .npy files numpy writes; the
# Fashion-MNIST samples in tools/models and the photos in ../shared/images.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET=${1:-300}
shift || true
TARGETS=${*:-fuzz_onnx fuzz_npy fuzz_image}
DIR=build-fuzz

if ! command -v clang++ >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "fuzz: needs clang and libclang-rt-dev (run as root to install)" >&2; exit 1; }
  apt-get update && apt-get install -y clang libclang-rt-dev libomp-dev
fi
CC=clang CXX=clang++ cmake -S . -B "$DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFRAGILE_FUZZ=ON \
  -DFRAGILE_CUDA=OFF -DFRAGILE_TESTS=OFF -DFRAGILE_BENCH=OFF >/dev/null
cmake --build "$DIR" -j"$(nproc)" --target $TARGETS

seed() {  # TARGET -> a fresh seed folder
  local s="$DIR/seeds/$1"
  rm -rf "$s" && mkdir -p "$s"
  case "$1" in
    fuzz_onnx)
      cp tools/models/fashion_cnn.onnx "$s/"
      for m in build*/reference/nn/models/op_*.onnx; do [ -f "$m" ] && cp "$m" "$s/"; done ;;
    fuzz_npy)
      /usr/bin/python3 - "$s" <<'PY'
import sys, numpy as np
d = sys.argv[1]
x = np.arange(48, dtype=np.float32).reshape(1, 3, 4, 4) / 7
np.save(f"{d}/f32.npy", x)
np.save(f"{d}/f64.npy", x.astype(np.float64))
np.save(f"{d}/f64_be.npy", x.astype(">f8"))
np.save(f"{d}/fortran.npy", np.asfortranarray(x[0, 0]))
np.save(f"{d}/i64.npy", np.arange(6, dtype=np.int64).reshape(2, 3))
np.save(f"{d}/scalar.npy", np.float32(1.5))
PY
      ;;
    fuzz_image)
      cp tools/models/fashion_samples/*.png "$s/"
      cp ../shared/images/* "$s/" 2>/dev/null || true ;;
  esac
  echo "$s"
}

status=0
for t in $TARGETS; do
  corpus="$DIR/corpus/$t" findings="$DIR/findings/$t"
  mkdir -p "$corpus" "$findings"
  before=$(ls "$findings" | wc -l)
  echo "== $t: $SECONDS_PER_TARGET s"
  # Fork mode goes on after a finding, so one run collects several. A huge allocation returns
  # null (std::bad_alloc, which the CLI reports as "out of memory") instead of aborting; real
  # use above 6 GB is reported as an out-of-memory finding.
  ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$DIR/tests/fuzz/$t" "$corpus" "$(seed "$t")" -max_total_time="$SECONDS_PER_TARGET" \
    -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 -timeout=10 \
    -rss_limit_mb=6000 -malloc_limit_mb=1000000 -max_len=262144 \
    -artifact_prefix="$findings/" >"$DIR/$t.log" 2>&1 || true
  found=$(( $(ls "$findings" | wc -l) - before ))
  runs=$(grep -oE '^#[0-9]+: cov' "$DIR/$t.log" | tail -1 | tr -dc 0-9)
  echo "   ${runs:-?} inputs run, $(ls "$corpus" | wc -l) in the corpus," \
    "$found new finding(s) in $findings"
  if [ "$found" -gt 0 ]; then
    status=1
    for f in $(ls -t "$findings" | head -"$found"); do
      replay=$(ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 \
        timeout 60 "$DIR/tests/fuzz/$t" "$findings/$f" 2>&1 || true)
      what=$(grep -m1 -E 'runtime error|ERROR|terminate|out-of-memory|timeout' <<<"$replay" || true)
      echo "   $f: ${what:-(does not reproduce alone)}"
    done
    echo "   replay one: $DIR/tests/fuzz/$t $findings/FILE"
  fi
done
exit $status
