// cuBLAS stand-in (see cublas_api.h). Status codes follow one rule: what real cuBLAS
// validates and reports returns its code (NOT_INITIALIZED, INVALID_VALUE); what real cuBLAS
// would not report but would turn into a fault or garbage on a GPU (host pointers, an output
// overlapping an input or itself across batches) returns EXECUTION_FAILED, with the reason
// appended to cublasGetStatusString. The arithmetic is a plain triple loop accumulating in
// double: slow, exact enough to be the reference the CUDA kernels are compared against.
#include "kernels/cuda_sim/cublas_api.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>

#include "kernels/cuda_sim/stream.h"

struct FragileSimCublas {
  cudaStream_t stream = nullptr;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace {

// Reason for the last failure of this thread; cleared by every call that succeeds.
thread_local cublasStatus_t t_last_status = CUBLAS_STATUS_SUCCESS;
thread_local std::string t_last_reason;
thread_local std::string t_status_text;  // storage behind cublasGetStatusString's pointer

cublasStatus_t fail(cublasStatus_t st, std::string reason) {
  t_last_status = st;
  t_last_reason = std::move(reason);
  return st;
}
cublasStatus_t ok() { return fail(CUBLAS_STATUS_SUCCESS, {}); }

// Round-to-nearest-even to TF32's 10-bit mantissa, as tensor cores read float inputs.
float to_tf32(float f) {
  if (!std::isfinite(f)) return f;
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0xFFFu + ((u >> 13) & 1u);
  return std::bit_cast<float>(u & 0xFFFFE000u);
}

// Byte range [lo, hi) that `batch` column-major rows x cols matrices with leading
// dimension ld, batch stride `stride` occupy starting at `base`.
struct Span {
  const char* lo = nullptr;
  const char* hi = nullptr;
};
template <class T>
Span span_of(const T* base, long long rows, long long cols, long long ld, long long stride,
             long long batch) {
  const long long last = (rows - 1) + (cols - 1) * ld, step = (batch - 1) * stride;
  const long long lo = std::min(0LL, step), hi = std::max(0LL, step) + last + 1;
  const char* b = reinterpret_cast<const char*>(base);
  return {b + lo * static_cast<long long>(sizeof(T)), b + hi * static_cast<long long>(sizeof(T))};
}
bool overlap(Span a, Span b) { return a.lo < b.hi && b.lo < a.hi; }

template <class T>
cublasStatus_t gemm(const char* fn, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb,
                    int m, int n, int k, const T* alpha, const T* A, int lda, long long sA,
                    const T* B, int ldb, long long sB, const T* beta, T* C, int ldc, long long sC,
                    int batch) {
  using std::to_string;
  if (!h) return fail(CUBLAS_STATUS_NOT_INITIALIZED, std::string(fn) + ": null handle");
  auto bad = [&](std::string why) {
    return fail(CUBLAS_STATUS_INVALID_VALUE, std::string(fn) + ": " + why);
  };
  auto valid_op = [](cublasOperation_t op) { return op >= CUBLAS_OP_N && op <= CUBLAS_OP_C; };
  if (!valid_op(ta) || !valid_op(tb)) return bad("invalid transa/transb");
  if (m < 0 || n < 0 || k < 0 || batch < 0)
    return bad("negative extent (m " + to_string(m) + ", n " + to_string(n) + ", k " +
               to_string(k) + ", batchCount " + to_string(batch) + ")");
  const bool an = ta == CUBLAS_OP_N, bn = tb == CUBLAS_OP_N;
  // Stored (column-major) shapes: op(A) is m x k, op(B) is k x n.
  const int a_rows = an ? m : k, a_cols = an ? k : m, b_rows = bn ? k : n, b_cols = bn ? n : k;
  if (lda < std::max(1, a_rows))
    return bad("lda " + to_string(lda) + " < max(1, " + (an ? "m = " : "k = ") +
               to_string(a_rows) + ")");
  if (ldb < std::max(1, b_rows))
    return bad("ldb " + to_string(ldb) + " < max(1, " + (bn ? "k = " : "n = ") +
               to_string(b_rows) + ")");
  if (ldc < std::max(1, m))
    return bad("ldc " + to_string(ldc) + " < max(1, m = " + to_string(m) + ")");
  if (!alpha || !beta) return bad("null alpha or beta");
  if (m == 0 || n == 0 || batch == 0) return ok();

  // Host pointer mode: the scalars are read now, not when the work runs.
  const T al = *alpha, be = *beta;
  const bool reads_ab = k > 0 && al != T(0);  // BLAS: alpha == 0 or k == 0 never touches A, B
  auto fault = [&](std::string why) {
    return fail(CUBLAS_STATUS_EXECUTION_FAILED, std::string(fn) + ": " + why);
  };
  const Span c_span = span_of(C, m, n, ldc, sC, batch);
  if (!fragile_sim::is_device_pointer(c_span.lo, size_t(c_span.hi - c_span.lo)))
    return fault("C is not (entirely) device memory");
  if (batch > 1 && std::llabs(sC) < (long long)(n - 1) * ldc + m)
    return fault("strideC " + to_string(sC) + " makes the batches of C overlap");
  if (reads_ab) {
    const Span a_span = span_of(A, a_rows, a_cols, lda, sA, batch);
    const Span b_span = span_of(B, b_rows, b_cols, ldb, sB, batch);
    if (!fragile_sim::is_device_pointer(a_span.lo, size_t(a_span.hi - a_span.lo)))
      return fault("A is not (entirely) device memory");
    if (!fragile_sim::is_device_pointer(b_span.lo, size_t(b_span.hi - b_span.lo)))
      return fault("B is not (entirely) device memory");
    if (overlap(c_span, a_span) || overlap(c_span, b_span))
      return fault("C overlaps A or B (cuBLAS does not compute in place)");
  }
  if (h->workspace_bytes && !fragile_sim::is_device_pointer(h->workspace, h->workspace_bytes))
    return fault("the handle's workspace is no longer device memory");

  const bool tf32 = std::is_same_v<T, float> &&
                    (h->math == CUBLAS_TF32_TENSOR_OP_MATH || h->math == CUBLAS_TENSOR_OP_MATH);
  auto work = [=] {
    auto in = [=](T v) -> double {
      if constexpr (std::is_same_v<T, float>)
        return tf32 ? to_tf32(v) : v;
      else
        return v;
    };
    for (long long b = 0; b < batch; ++b) {
      const T* a = A + b * sA;
      const T* bb = B + b * sB;
      T* c = C + b * sC;
      for (long long j = 0; j < n; ++j)
        for (long long i = 0; i < m; ++i) {
          double acc = 0.0;
          if (reads_ab)
            for (long long p = 0; p < k; ++p)
              acc += in(an ? a[i + p * lda] : a[p + i * lda]) *
                     in(bn ? bb[p + j * ldb] : bb[j + p * ldb]);
          T& out = c[i + j * ldc];
          // beta == 0: C is write-only, so NaN or garbage already there cannot propagate.
          const double r = reads_ab ? double(al) * acc : 0.0;
          out = static_cast<T>(be != T(0) ? r + double(be) * out : r);
        }
    }
  };
  if (fragile_sim::enqueue(h->stream, work, fn) != cudaSuccess)
    return fault("the stream rejected the work (invalidated graph capture?)");
  return ok();
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (!handle) return fail(CUBLAS_STATUS_INVALID_VALUE, "cublasCreate: null handle pointer");
  *handle = new FragileSimCublas();
  return ok();
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (!handle) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy: null handle");
  delete handle;
  return ok();
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (!handle) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetStream: null handle");
  handle->stream = stream;
  return ok();
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (!handle) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetMathMode: null handle");
  if (mode < CUBLAS_DEFAULT_MATH || mode > CUBLAS_TF32_TENSOR_OP_MATH)
    return fail(CUBLAS_STATUS_INVALID_VALUE,
                "cublasSetMathMode: unknown mode " + std::to_string(int(mode)));
  handle->math = mode;
  return ok();
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (!handle) return fail(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetWorkspace: null handle");
  if (bytes > 0) {
    if (!workspace || !fragile_sim::is_device_pointer(workspace, bytes))
      return fail(CUBLAS_STATUS_INVALID_VALUE,
                  "cublasSetWorkspace: workspace is not " + std::to_string(bytes) +
                      " bytes of device memory");
    if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0)
      return fail(CUBLAS_STATUS_INVALID_VALUE,
                  "cublasSetWorkspace: workspace is not 256-byte aligned");
  }
  handle->workspace = bytes ? workspace : nullptr;
  handle->workspace_bytes = bytes;
  return ok();
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  const char* text = "unknown error";
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: text = "success"; break;
    case CUBLAS_STATUS_NOT_INITIALIZED: text = "the library was not initialized"; break;
    case CUBLAS_STATUS_ALLOC_FAILED: text = "the resource allocation failed"; break;
    case CUBLAS_STATUS_INVALID_VALUE:
      text = "an invalid numeric value was used as an argument";
      break;
    case CUBLAS_STATUS_ARCH_MISMATCH:
      text = "an absent device architectural feature is required";
      break;
    case CUBLAS_STATUS_MAPPING_ERROR: text = "an access to GPU memory space failed"; break;
    case CUBLAS_STATUS_EXECUTION_FAILED: text = "the GPU program failed to execute"; break;
    case CUBLAS_STATUS_INTERNAL_ERROR: text = "an internal operation failed"; break;
    case CUBLAS_STATUS_NOT_SUPPORTED:
      text = "the functionality requested is not supported";
      break;
    case CUBLAS_STATUS_LICENSE_ERROR:
      text = "error detected trying to check the license";
      break;
  }
  if (status == CUBLAS_STATUS_SUCCESS || status != t_last_status || t_last_reason.empty())
    return text;
  t_status_text = std::string(text) + " [" + t_last_reason + "]";
  return t_status_text.c_str();
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float* alpha, const float* A, int lda,
                                         long long int strideA, const float* B, int ldb,
                                         long long int strideB, const float* beta, float* C,
                                         int ldc, long long int strideC, int batchCount) {
  return gemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda,
              strideA, B, ldb, strideB, beta, C, ldc, strideC, batchCount);
}

cublasStatus_t cublasDgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const double* alpha, const double* A, int lda,
                                         long long int strideA, const double* B, int ldb,
                                         long long int strideB, const double* beta, double* C,
                                         int ldc, long long int strideC, int batchCount) {
  return gemm("cublasDgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda,
              strideA, B, ldb, strideB, beta, C, ldc, strideC, batchCount);
}
