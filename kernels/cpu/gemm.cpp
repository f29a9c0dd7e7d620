// Batched GEMM on the CPU with Eigen.
//
// Shapes: a [B, M, K], b [B, K, N], out [B, M, N] (contiguous). B = batch, M = rows of a and
// out, K = the contracted dimension, N = columns of b and out. Batch strides may be 0
// (a broadcast operand).
//
// Each matrix is handed to Eigen as a Map over the tensor's own memory. A row-major view has
// strides (s, 1) and maps as a RowMajor matrix with OuterStride s; a transposed view has
// strides (1, s) and maps as a ColMajor matrix with OuterStride s. Eigen's GEMM packs its
// panels from either layout, so transposes (the common case in backward passes: grad @ b^T)
// cost no copy. Only a view with no unit inner stride (a slice with step, a permuted batch)
// is copied to contiguous memory first.
#include <Eigen/Core>
#include <omp.h>

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/cpu/parallel_gemm.h"

namespace fragile::cpu {
namespace {

// Eigen's own GEMM threading is off from the start of the process, not from the first CPU
// product: every Eigen product (influence/'s solvers too) then behaves the same way whenever
// it runs (parallel_gemm.h explains why).
const bool kEigenSingleThreaded = (keep_eigen_single_threaded(), true);

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Stride = Eigen::OuterStride<Eigen::Dynamic>;

// How one [rows, cols] matrix of a [B, rows, cols] view can be read by Eigen without a copy.
// A dimension of extent 1 has a meaningless stride, so it never disqualifies a layout.
enum class Layout { RowMajor, ColMajor, Copy };

struct MatView {
  Layout layout;
  int64_t outer;  // Eigen's OuterStride: the row stride (RowMajor) or column stride (ColMajor)
};

MatView classify(const Tensor& t) {
  const int64_t rows = t.size(1), cols = t.size(2);
  const int64_t rs = t.strides()[1], cs = t.strides()[2];
  // Eigen expects outer stride >= inner extent for a well-formed map; a dimension of extent 1
  // gets the natural value since its stride is never used.
  if (cs == 1 || cols == 1) {
    return {Layout::RowMajor, rows == 1 ? cols : rs};
  }
  if (rs == 1 || rows == 1) {
    return {Layout::ColMajor, cols == 1 ? rows : cs};
  }
  return {Layout::Copy, 0};
}

// Calls f(matrix_expression) with the Eigen Map of batch entry `bi` of `t`.
template <typename T, typename F>
void with_map(const Tensor& t, const MatView& v, int64_t bi, F&& f) {
  const T* base = t.data<T>() + bi * t.strides()[0];
  const Eigen::Index rows = t.size(1), cols = t.size(2);
  if (v.layout == Layout::RowMajor) {
    f(Eigen::Map<const RowMat<T>, 0, Stride>(base, rows, cols, Stride(v.outer)));
  } else {
    f(Eigen::Map<const ColMat<T>, 0, Stride>(base, rows, cols, Stride(v.outer)));
  }
}

template <typename T>
void matmul_impl(const Tensor& a_in, const Tensor& b_in, Tensor& out) {
  Tensor a = a_in, b = b_in;
  MatView va = classify(a), vb = classify(b);
  // Neither inner stride is 1: one contiguous copy, after which the view is row-major.
  if (va.layout == Layout::Copy) {
    a = a.clone_data();
    va = classify(a);
  }
  if (vb.layout == Layout::Copy) {
    b = b.clone_data();
    vb = classify(b);
  }
  const int64_t B = out.size(0), M = out.size(1), N = out.size(2);
  if (B == 0 || M == 0 || N == 0) return;
  T* o = out.data<T>();

  auto one = [&](int64_t bi) {
    Eigen::Map<RowMat<T>> C(o + bi * M * N, M, N);
    // Eigen's depth-0 product writes zeros, so K == 0 needs no special case.
    with_map<T>(a, va, bi, [&](const auto& A) {
      with_map<T>(b, vb, bi, [&](const auto& Bm) { parallel_gemm(C, A, Bm); });
    });
  };

  // Many small matrices (attention-like batches, per-example products) are better served by
  // one GEMM per thread than by splitting each small GEMM; Eigen sees it is inside a parallel
  // region and stays single-threaded there. Otherwise each GEMM is split over the threads
  // (parallel_gemm.h).
  const int threads = omp_get_max_threads();
  if (B > 1 && B >= threads && threads > 1 && B * M * N * a.size(2) >= kParallelGrain * 16) {
#pragma omp parallel for schedule(static)
    for (int64_t bi = 0; bi < B; ++bi) one(bi);
  } else {
    for (int64_t bi = 0; bi < B; ++bi) one(bi);
  }
}

}  // namespace

void CpuBackend::matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  FRAGILE_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3,
                "matmul kernel: expected a [B,M,K], b [B,K,N], out [B,M,N], got ",
                shape_str(a.shape()), ", ", shape_str(b.shape()), ", ", shape_str(out.shape()));
  FRAGILE_CHECK(a.size(0) == out.size(0) && b.size(0) == out.size(0) &&
                    a.size(1) == out.size(1) && b.size(2) == out.size(2) &&
                    a.size(2) == b.size(1),
                "matmul kernel: shapes disagree: a ", shape_str(a.shape()), ", b ",
                shape_str(b.shape()), ", out ", shape_str(out.shape()));
  FRAGILE_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(),
                "matmul kernel: dtypes disagree: ", dtype_name(a.dtype()), ", ",
                dtype_name(b.dtype()), " -> ", dtype_name(out.dtype()));
  FRAGILE_CHECK(out.is_contiguous(), "matmul kernel: out must be contiguous");
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "matmul", [&] { matmul_impl<scalar_t>(a, b, out); });
}

}  // namespace fragile::cpu
