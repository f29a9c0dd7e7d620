#!/usr/bin/env bash
# The GPU check, run on the device machine from the repo root with .gpu/ carried (made here by
# tools/gpu_stage.sh): the gpu-labelled tests (all of fragile_gpu_tests, i.e. `ctest -L gpu`),
# then bench/compare_pytorch.py --device cuda (fragile's cuda/ benchmarks, timed with CUDA
# events, beside the same workloads in PyTorch eager on the same GPU, with ratios). Logs and
# JSON go to $OUT (the device tool's folder; /tmp/gpu_out elsewhere).
#
# Usage: bash tools/gpu_run.sh [tests] [compare] [bench] [ig-table]   (default: tests compare)
#   bench:    fragile's cuda/ benchmarks alone (compare already runs them).
#   ig-table: the attack table's integrated-gradients rows (tools/run_attack_table.sh -m ig on
#             the GPU; IG_ITERS iterations, default 300, IG_EPS epsilons, default "1 2 4 8",
#             IG_ATTACKS, default "random topk center"; IG_BATCH points per chunk, default 100,
#             i.e. the map differentiated in one pass, on a GPU of 100 GB or more, else
#             fragile's). Heavy (12 runs of 4 photos x 300 iterations x 100 points): give it
#             calls of its own. Runs go to out/attack_table_ig, so a call can resume one
#             stopped at its limit when that folder is carried back (runs kept in
#             docs/attack_table_ig_runs/ are copied in first); after each run the
#             finished runs' result.json files are packed into $OUT/attack_table_ig_runs.tar.gz
#             (extract it into out/attack_table_ig here), so they come back even then. Also
#             writes attack_table_ig.log to $OUT and the table of all finished runs to
#             out/attack_table_ig.md (tools/run_attack_table.sh -t remakes it from the runs).
# PYTHON: the python with CUDA PyTorch (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
STAGES=${*:-tests compare}
PYTHON=${PYTHON:-python3}
[ -x .gpu/bin/fragile_gpu_tests ] || { echo "gpu_run: .gpu/ missing (tools/gpu_stage.sh, carry .gpu)" >&2; exit 1; }

# The binaries carry the paths of the tree they were built in: sources at /work/main, data at
# /work/main/../shared. Point both at this copy (.. of a symlink resolves physically, so the
# data link goes beside this tree).
if [ "$ROOT" != /work/main ]; then
  mkdir -p /work && ln -sfn "$ROOT" /work/main
fi
[ -e "$ROOT/../shared" ] || ln -s "$ROOT/.gpu/shared" "$ROOT/../shared"

# CUDA's libraries from the toolkit or PyTorch's wheels, the rest from .gpu/lib.
libdirs="$ROOT/.gpu/lib"
for name in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9; do
  hit=$(find /usr/local/cuda*/ /opt /usr/lib/x86_64-linux-gnu -name "$name" 2>/dev/null | head -1)
  [ -n "$hit" ] && libdirs="$libdirs:$(dirname "$hit")"
done
export LD_LIBRARY_PATH="$libdirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
missing=$(ldd .gpu/bin/* | grep "not found" | sort -u)
if [ -n "$missing" ]; then
  echo "gpu_run: unresolved libraries:"; echo "$missing"; exit 1
fi

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nvcc --version | tail -1; $PYTHON -c "import torch; print('torch', torch.__version__)"; } \
  2>&1 | tee "$OUT/device.txt"

status=0
for stage in $STAGES; do
  echo "== $stage"
  case "$stage" in
    tests)
      .gpu/bin/fragile_gpu_tests --gtest_output="json:$OUT/gpu_tests.json" 2>&1 |
        tee "$OUT/gpu_tests.log" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |^\[==========\]|Failure|error"
      rc=${PIPESTATUS[0]}
      if [ "$rc" -ne 0 ]; then
        status=1
        # Again with every kernel checked where it runs (FRAGILE_CUDA_SYNC=1), so an
        # asynchronous fault names its own kernel. Only the failed tests when the run ended
        # normally and no sticky (asynchronous) error showed; else all of them, since the test
        # that reported a fault need not be the one that caused it.
        failed=$(sed -n 's/^\[  FAILED  \] \([A-Za-z0-9_/.]*\).*/\1/p' "$OUT/gpu_tests.log" |
                 grep -v '^[0-9]*$' | sort -u | paste -sd: -)
        if [ "$rc" -ge 128 ] || ! grep -q '^\[==========\] .* ran\.' "$OUT/gpu_tests.log" ||
           grep -qiE 'illegal|unspecified launch failure|earlier work|misaligned|trap' \
             "$OUT/gpu_tests.log"; then
          failed=""
        fi
        echo "== tests again with FRAGILE_CUDA_SYNC=1: ${failed:-all}"
        FRAGILE_CUDA_SYNC=1 timeout 300 .gpu/bin/fragile_gpu_tests ${failed:+--gtest_filter="$failed"} \
          > "$OUT/gpu_tests_sync.log" 2>&1
        echo "   exit status $?"
        grep -E "^\[  FAILED  \]|Failure|error" "$OUT/gpu_tests_sync.log" | head -40
      fi ;;
    compare)
      PYTHONUNBUFFERED=1 $PYTHON "$ROOT/bench/compare_pytorch.py" --device cuda \
        --fragile-bench "$ROOT/.gpu/bin/fragile_bench" \
        --fragile-json "$OUT/bench_cuda.json" 2>&1 | tee "$OUT/compare.txt"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1 ;;
    bench)
      .gpu/bin/fragile_bench --benchmark_filter='^cuda/' --benchmark_out="$OUT/bench_cuda.json" \
        --benchmark_out_format=json 2>&1 | tee "$OUT/bench_cuda.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1 ;;
    ig-table)
      runs=out/attack_table_ig
      mkdir -p "$runs"
      # Runs finished in earlier device sessions are kept in the repo; start from them (a run
      # already in $runs wins).
      cp -rn docs/attack_table_ig_runs/. "$runs"/
      batch=${IG_BATCH:-}
      if [ -z "$batch" ]; then
        mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
        [ "${mib:-0}" -ge 100000 ] && batch=100
      fi
      echo "   $(ls "$runs"/*/result.json 2>/dev/null | wc -l) finished runs carried;" \
        "ig-batch ${batch:-fragile default}"
      for eps in ${IG_EPS:-1 2 4 8}; do
        for attack in ${IG_ATTACKS:-random topk center}; do
          tools/run_attack_table.sh -m ig -p "${IG_ITERS:-300}" -e "$eps" -a "$attack" -d cuda \
            ${batch:+-b "$batch"} -F "$ROOT/.gpu/bin/fragile" -O "$runs" \
            -o out/attack_table_ig.md 2>&1 | tee -a "$OUT/attack_table_ig.log"
          [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
          done_runs=$(cd "$runs" && ls -d */result.json 2>/dev/null)
          # Packed beside, then renamed: a command stopped at its limit mid-tar leaves the
          # previous archive whole.
          if [ -n "$done_runs" ] && tar czf "$OUT/attack_table_ig_runs.tmp" -C "$runs" $done_runs; then
            mv -f "$OUT/attack_table_ig_runs.tmp" "$OUT/attack_table_ig_runs.tar.gz"
          fi
        done
      done
      tools/run_attack_table.sh -t -m ig -p "${IG_ITERS:-300}" -e "${IG_EPS:-1 2 4 8}" \
        -a "${IG_ATTACKS:-random topk center}" -O "$runs" -o out/attack_table_ig.md 2>&1 |
        tee -a "$OUT/attack_table_ig.log"
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1 ;;
    *) echo "gpu_run: unknown stage '$stage' (tests, compare, bench, ig-table)" >&2; exit 2 ;;
  esac
done
exit $status
