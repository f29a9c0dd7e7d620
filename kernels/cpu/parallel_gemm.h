// C = A * B (or C += A * B) on the CPU, spread over OpenMP threads by fragile, not by Eigen.
//
// Why not Eigen's own threading: Eigen's parallel GEMM hands packed panels between threads
// and waits for them in bare spin loops (GeneralMatrixMatrix.h, `while(info[i].sync != k)`),
// and it threads any product above ~1e5 multiply-adds. When a core is shared with another
// process (a build, a second job, a CI neighbour) the thread it waits for is descheduled for
// whole time slices: on the 2-core development machine a 64x288x1024 convolution took 5-12 ms
// on two threads against 0.8 ms on one. So Eigen is told to stay single-threaded, and large
// products are cut here into independent pieces of C (column blocks, or row blocks when C is
// tall), each a single-threaded Eigen GEMM. The only synchronisation is the end of one OpenMP
// loop, whose threads sleep instead of spinning for ever, and dynamic scheduling of several
// pieces per thread lets a thread on a quiet core take more of them.
//
// Results do not depend on which thread runs which piece: the pieces are fixed by the
// shapes and the thread count, so a run is reproducible for a given OMP_NUM_THREADS.
#pragma once
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>

namespace fragile::cpu {

// Products with fewer multiply-adds than this run on the calling thread: below it, starting
// a team costs more than the split saves.
inline constexpr double kGemmSplitWork = 2.0e6;
// A piece is at least this many columns (or rows) of C; Eigen's kernels work on blocks of
// up to 48 rows and 8 columns, and every piece re-packs the other operand.
inline constexpr int64_t kGemmMinPiece = 64;
// Pieces per thread: more balance the load when a core is busy, fewer re-pack less.
inline constexpr int kGemmPiecesPerThread = 4;

// Turns Eigen's internal GEMM threading off, once per process. Every GEMM of the CPU
// backend goes through parallel_gemm (or runs inside a parallel loop of whole items, where
// Eigen is single-threaded anyway).
inline void keep_eigen_single_threaded() {
  static const bool done = [] {
    Eigen::setNbThreads(1);
    return true;
  }();
  (void)done;
}

namespace detail {
template <typename Dst, typename Lhs, typename Rhs>
void gemm_piece(Dst&& c, const Lhs& a, const Rhs& b, bool accumulate) {
  if (accumulate) {
    c.noalias() += a * b;
  } else {
    c.noalias() = a * b;
  }
}
}  // namespace detail

// C [M, N] (=|+=) A [M, K] * B [K, N]; A, B and C are Eigen matrices, maps or blocks.
template <typename Dst, typename Lhs, typename Rhs>
void parallel_gemm(Dst&& C, const Lhs& A, const Rhs& B, bool accumulate = false) {
  keep_eigen_single_threaded();
  const int64_t M = C.rows(), N = C.cols(), K = A.cols();
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const bool by_cols = N >= M;
  const int64_t extent = by_cols ? N : M;
  int64_t pieces = std::min<int64_t>(static_cast<int64_t>(threads) * kGemmPiecesPerThread,
                                     extent / kGemmMinPiece);
  if (threads <= 1 || work < kGemmSplitWork || pieces < 2) {
    detail::gemm_piece(C, A, B, accumulate);
    return;
  }
  // Equal pieces, widths a multiple of 16 (whole SIMD registers of a row-major C).
  const int64_t width = ((extent + pieces - 1) / pieces + 15) / 16 * 16;
  pieces = (extent + width - 1) / width;
#pragma omp parallel for schedule(dynamic, 1) num_threads(std::min<int64_t>(threads, pieces))
  for (int64_t p = 0; p < pieces; ++p) {
    const int64_t start = p * width, len = std::min(width, extent - start);
    if (by_cols) {
      detail::gemm_piece(C.middleCols(start, len), A, B.middleCols(start, len), accumulate);
    } else {
      detail::gemm_piece(C.middleRows(start, len), A.middleRows(start, len), B, accumulate);
    }
  }
}

}  // namespace fragile::cpu
