// Batched GEMM through cuBLAS.
//
// Shapes: a [B, M, K], b [B, K, N] (any strides; batch stride 0 = broadcast operand),
// out [B, M, N] contiguous. B = batch, M = rows of a/out, K = contracted, N = columns.
//
// cuBLAS is column-major; our tensors are row-major. A row-major [R, C] matrix with row
// stride ld is, read column-major, its transpose [C, R] with leading dimension ld. So the
// row-major product out = a b is computed as the column-major product out^T = b^T a^T:
//   cublas<T>gemmStridedBatched(opB, opA, m = N, n = M, k = K, b, a, out, ldc = N).
// A view with strides (ld, 1) ("row-major") is handed over as-is with op N; a transposed
// view with strides (1, ld) ("column-major", the grad @ w^T of every backward pass) is
// handed over as-is with op T. Only a view with no unit stride in its last two dims is
// copied first. A dim of extent 1 has a meaningless stride and never forces a copy.
//
// Bandwidth/compute: GEMM is compute-bound for the sizes that matter; cuBLAS picks the
// kernel. Math mode is the default (no TF32, see context.cu) so float32 matches the CPU.
#include <algorithm>
#include <limits>

#include "core/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/tensor_util.h"

namespace fragile::cuda {
namespace {

struct Operand {
  bool ok = false;
  cublasOperation_t op = CUBLAS_OP_N;  // op as seen by cuBLAS (see the header comment)
  int64_t ld = 0;
  int64_t batch_stride = 0;
  const void* ptr = nullptr;
};

// How the [rows, cols] matrices of a [B, rows, cols] view reach cuBLAS without a copy.
Operand classify(const Tensor& t) {
  const int64_t rows = t.size(1), cols = t.size(2);
  const int64_t rs = t.strides()[1], cs = t.strides()[2];
  Operand o;
  o.ptr = t.raw_data();
  o.batch_stride = t.size(0) == 1 ? 0 : t.strides()[0];
  if (cs == 1 || cols == 1) {  // row-major: column-major transpose, op N
    o.ld = rows == 1 ? std::max<int64_t>(cols, 1) : rs;
    o.op = CUBLAS_OP_N;
    o.ok = o.ld >= std::max<int64_t>(cols, 1);
    if (o.ok) return o;
  }
  if (rs == 1 || rows == 1) {  // column-major: op T
    o.ld = cols == 1 ? std::max<int64_t>(rows, 1) : cs;
    o.op = CUBLAS_OP_T;
    o.ok = o.ld >= std::max<int64_t>(rows, 1);
  }
  return o;
}

bool fits_int(int64_t v) { return v >= 0 && v <= std::numeric_limits<int>::max(); }

void gemm(DType dt, const Operand& ob, const Operand& oa, int64_t B, int64_t M, int64_t N,
          int64_t K, void* out) {
  FRAGILE_CHECK(fits_int(M) && fits_int(N) && fits_int(K) && fits_int(B) && fits_int(oa.ld) &&
                    fits_int(ob.ld),
                "cuda matmul: extents exceed cuBLAS's 32-bit limits");
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
  if (dt == DType::Float32) {
    const float alpha = 1.0f, beta = 0.0f;
    FRAGILE_CUBLAS_CHECK(cublasSgemmStridedBatched(
        cublas_handle(), ob.op, oa.op, m, n, k, &alpha, static_cast<const float*>(ob.ptr),
        static_cast<int>(ob.ld), ob.batch_stride, static_cast<const float*>(oa.ptr),
        static_cast<int>(oa.ld), oa.batch_stride, &beta, static_cast<float*>(out), m,
        static_cast<long long>(M) * N, static_cast<int>(B)));
  } else {
    const double alpha = 1.0, beta = 0.0;
    FRAGILE_CUBLAS_CHECK(cublasDgemmStridedBatched(
        cublas_handle(), ob.op, oa.op, m, n, k, &alpha, static_cast<const double*>(ob.ptr),
        static_cast<int>(ob.ld), ob.batch_stride, static_cast<const double*>(oa.ptr),
        static_cast<int>(oa.ld), oa.batch_stride, &beta, static_cast<double*>(out), m,
        static_cast<long long>(M) * N, static_cast<int>(B)));
  }
}

}  // namespace

void CudaBackend::matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  check_on_device(a, "cuda matmul", "a");
  check_on_device(b, "cuda matmul", "b");
  check_on_device(out, "cuda matmul", "out");
  FRAGILE_CHECK(a.dim() == 3 && b.dim() == 3 && out.dim() == 3 && a.size(0) == b.size(0) &&
                    a.size(2) == b.size(1) && out.size(0) == a.size(0) &&
                    out.size(1) == a.size(1) && out.size(2) == b.size(2),
                "cuda matmul: expected a [B,M,K], b [B,K,N], out [B,M,N]; got ",
                shape_str(a.shape()), ", ", shape_str(b.shape()), ", ", shape_str(out.shape()));
  FRAGILE_CHECK(a.dtype() == b.dtype() && a.dtype() == out.dtype() && is_floating(a.dtype()),
                "cuda matmul: dtypes must be one float type, got ", dtype_name(a.dtype()), ", ",
                dtype_name(b.dtype()), ", ", dtype_name(out.dtype()));
  FRAGILE_CHECK(out.is_contiguous(), "cuda matmul: out must be contiguous");
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  if (B == 0 || M == 0 || N == 0) return;
  if (K == 0) return fill(out, 0.0);  // an empty sum; cuBLAS would want ld >= 1 anyway

  Tensor ac = a, bc = b;
  Operand oa = classify(ac), ob = classify(bc);
  if (!oa.ok) {
    ac = contiguous(a);  // a strided view with no unit stride: copy once
    oa = classify(ac);
  }
  if (!ob.ok) {
    bc = contiguous(b);
    ob = classify(bc);
  }
  FRAGILE_CHECK(oa.ok && ob.ok, "cuda matmul: internal error classifying operands");
  gemm(a.dtype(), ob, oa, B, M, N, K, out.raw_data());
}

}  // namespace fragile::cuda
