// CudaBackend::softmax and softmax_backward (element math: kernels/functors/softmax.h).
//
// A contiguous tensor is viewed as [outer, len, inner] around the softmax dim.
//  - inner == 1 (the usual case: class scores [N, K]): rows are contiguous. Rows of up to
//    kWarpRowMax elements get one warp each (8 rows per block, shuffles only). The backward
//    always, and the forward for rows up to kCachedForwardRowMax, keep the row in registers:
//    lane l holds elements l, l + 32, ... (K per lane, K the power of two that covers the
//    row), so each element is read once from memory and its exponential computed once. Other
//    rows are re-read for each pass (max, sum, write); those re-reads hit L1/L2 for any row
//    that fits there. Rows over kWarpRowMax get a whole block (shuffles, then one
//    shared-memory step). Either way each access of a warp is 32 neighbouring elements.
//  - inner > 1 (softmax over channels of NCHW, or dim 0): one thread per (outer, inner)
//    column walks its len elements with stride inner; neighbouring threads read neighbouring
//    addresses, so every access is coalesced without a transpose.
// Sums accumulate in the tensor's dtype (float32 as cuDNN and PyTorch do; the CPU backend sums
// in double, so float32 results may differ in the last bits). Every reduction runs in a fixed
// order: results are deterministic run to run.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "core/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/tensor_util.h"
#include "kernels/functors/softmax.h"

namespace fragile::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarps = kBlock / 32;
constexpr int64_t kWarpRowMax = 1024;
// The forward keeps rows in registers only up to this length. Measured on an H200 (float32,
// 64M elements): 1.1-2.3x faster than re-reading up to 256; at 1000 it was no faster (0.229
// against 0.218 ms) at a third of the occupancy (25% against 75%), so longer rows are re-read
// from L1/L2. The backward reads two tensors per element and gains at every length (0.233
// against 0.442 ms at 1000), so it keeps rows of up to kWarpRowMax in registers.
constexpr int64_t kCachedForwardRowMax = 256;

struct MaxOp {
  template <class A>
  __device__ A operator()(A a, A b) const { return a > b ? a : b; }
};
struct SumOp {
  template <class A>
  __device__ A operator()(A a, A b) const { return a + b; }
};

// Reduces v over the R threads of a row (R = 32: one warp; R = kBlock: the whole block); every
// thread of the row gets the result. For R = kBlock every thread of the block must call it.
template <int R, class T, class Op>
__device__ T row_reduce(T v, Op op, T* shared) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if constexpr (R == 32) {
    return v;
  } else {
    static_assert(R == kBlock, "a row is one warp or one block");
    __syncthreads();  // the previous call's readers are done with `shared`
    if (threadIdx.x % 32 == 0) shared[threadIdx.x / 32] = v;
    __syncthreads();
    v = shared[0];
    for (int w = 1; w < kWarps; ++w) v = op(v, shared[w]);
    return v;
  }
}

// ---- contiguous rows ------------------------------------------------------------------------
// A block holds kBlock / R rows; with R = kBlock the row index is uniform across the block, so
// every thread makes the same number of loop trips (row_reduce syncs the block).
template <class T, int R, bool kLog>
__global__ void softmax_rows(const T* x, T* y, int64_t rows, int64_t len) {
  FRAGILE_SHARED(T, shared, [kWarps]);
  constexpr int kRowsPerBlock = kBlock / R;
  const int lane = threadIdx.x % R;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / R;
       row < rows; row += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const T* xr = x + row * len;
    T* yr = y + row * len;
    T m = -INFINITY;
    for (int64_t j = lane; j < len; j += R) m = MaxOp{}(m, xr[j]);
    m = row_reduce<R>(m, MaxOp{}, shared);
    T s = 0;
    for (int64_t j = lane; j < len; j += R) s += fn::softmax_exp_term(xr[j], m);
    s = row_reduce<R>(s, SumOp{}, shared);
    if constexpr (kLog) {
      const T lse = log(s);
      for (int64_t j = lane; j < len; j += R) yr[j] = fn::LogSoftmaxOut{}(xr[j], m, lse);
    } else {
      for (int64_t j = lane; j < len; j += R) yr[j] = fn::SoftmaxOut{}(xr[j], m, s);
    }
  }
}

template <class T, int R, bool kLog>
__global__ void softmax_backward_rows(const T* g, const T* y, T* dx, int64_t rows, int64_t len) {
  FRAGILE_SHARED(T, shared, [kWarps]);
  constexpr int kRowsPerBlock = kBlock / R;
  const int lane = threadIdx.x % R;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / R;
       row < rows; row += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const T *gr = g + row * len, *yr = y + row * len;
    T* dr = dx + row * len;
    T s = 0;
    for (int64_t j = lane; j < len; j += R) s += kLog ? gr[j] : gr[j] * yr[j];
    const T st = row_reduce<R>(s, SumOp{}, shared);
    for (int64_t j = lane; j < len; j += R)
      dr[j] = kLog ? fn::LogSoftmaxGrad{}(gr[j], yr[j], st) : fn::SoftmaxGrad{}(gr[j], yr[j], st);
  }
}

// ---- contiguous rows held in registers (one warp per row, len <= 32 K) ----------------------
// Each lane sums its elements in index order, then the lanes combine by row_reduce's
// butterfly: a fixed order, so results are deterministic run to run.
template <class T, int K, bool kLog>
__global__ void __launch_bounds__(kBlock)
    softmax_rows_cached(const T* x, T* y, int64_t rows, int64_t len) {
  constexpr int kRowsPerBlock = kBlock / 32;
  const int lane = threadIdx.x % 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
       row < rows; row += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const T* xr = x + row * len;
    T v[K];
    T m = -INFINITY;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t j = lane + 32 * k;
      // Loaded unconditionally (at a clamped index), then selected: a guarded load per element
      // compiled to predicated loads that overlapped far less (2.2x slower on an H200).
      const T t = xr[j < len ? j : len - 1];
      v[k] = j < len ? t : T(-INFINITY);
      m = MaxOp{}(m, v[k]);
    }
    m = row_reduce<32>(m, MaxOp{}, static_cast<T*>(nullptr));
    T s = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      if (lane + 32 * k < len) {
        const T e = fn::softmax_exp_term(v[k], m);
        s += e;
        if constexpr (!kLog) v[k] = e;  // SoftmaxOut is this term over the sum
      }
    }
    s = row_reduce<32>(s, SumOp{}, static_cast<T*>(nullptr));
    T* yr = y + row * len;
    if constexpr (kLog) {
      const T lse = log(s);
#pragma unroll
      for (int k = 0; k < K; ++k)
        if (lane + 32 * k < len) yr[lane + 32 * k] = fn::LogSoftmaxOut{}(v[k], m, lse);
    } else {
#pragma unroll
      for (int k = 0; k < K; ++k)
        if (lane + 32 * k < len) yr[lane + 32 * k] = v[k] / s;
    }
  }
}

template <class T, int K, bool kLog>
__global__ void __launch_bounds__(kBlock)
    softmax_backward_rows_cached(const T* g, const T* y, T* dx, int64_t rows, int64_t len) {
  constexpr int kRowsPerBlock = kBlock / 32;
  const int lane = threadIdx.x % 32;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
       row < rows; row += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const T *gr = g + row * len, *yr = y + row * len;
    T gv[K], yv[K];
    T s = 0;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t j = lane + 32 * k;
      const int64_t at = j < len ? j : len - 1;  // unconditional loads, as in the forward
      const T gt = gr[at], yt = yr[at];
      gv[k] = j < len ? gt : T(0);
      yv[k] = j < len ? yt : T(0);
      if (j < len) s += kLog ? gv[k] : gv[k] * yv[k];
    }
    const T st = row_reduce<32>(s, SumOp{}, static_cast<T*>(nullptr));
    T* dr = dx + row * len;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t j = lane + 32 * k;
      if (j < len)
        dr[j] = kLog ? fn::LogSoftmaxGrad{}(gv[k], yv[k], st) : fn::SoftmaxGrad{}(gv[k], yv[k], st);
    }
  }
}

// Calls f(K) with K, a compile-time power of two, the elements per lane of a row of
// len <= kMaxLen: the smallest K with 32 K >= len. Only the K up to kMaxLen / 32 are
// instantiated (the forward, which caches rows of up to 256, needs no K of 16 or 32).
template <int64_t kMaxLen, int K = 1, class F>
void with_elements_per_lane(int64_t len, F f) {
  static_assert(kMaxLen <= kWarpRowMax, "one warp holds at most kWarpRowMax elements");
  if constexpr (32 * K >= kMaxLen) {
    FRAGILE_CHECK(len <= kMaxLen, "softmax: a row of ", len, " elements is over ", kMaxLen);
    f(std::integral_constant<int, K>{});
  } else if (len <= 32 * K) {
    f(std::integral_constant<int, K>{});
  } else {
    with_elements_per_lane<kMaxLen, 2 * K>(len, f);
  }
}

// ---- strided columns (inner > 1) ------------------------------------------------------------
template <class T, bool kLog>
__global__ void softmax_columns(const T* x, T* y, RowsAround geo) {
  const int64_t columns = geo.outer * geo.inner;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < columns;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t base = (c / geo.inner) * geo.len * geo.inner + c % geo.inner;
    const T* xc = x + base;
    T* yc = y + base;
    T m = -INFINITY;
    for (int64_t j = 0; j < geo.len; ++j) m = MaxOp{}(m, xc[j * geo.inner]);
    T s = 0;
    for (int64_t j = 0; j < geo.len; ++j) s += fn::softmax_exp_term(xc[j * geo.inner], m);
    if constexpr (kLog) {
      const T lse = log(s);
      for (int64_t j = 0; j < geo.len; ++j)
        yc[j * geo.inner] = fn::LogSoftmaxOut{}(xc[j * geo.inner], m, lse);
    } else {
      for (int64_t j = 0; j < geo.len; ++j)
        yc[j * geo.inner] = fn::SoftmaxOut{}(xc[j * geo.inner], m, s);
    }
  }
}

template <class T, bool kLog>
__global__ void softmax_backward_columns(const T* g, const T* y, T* dx, RowsAround geo) {
  const int64_t columns = geo.outer * geo.inner;
  for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; c < columns;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t base = (c / geo.inner) * geo.len * geo.inner + c % geo.inner;
    const T *gc = g + base, *yc = y + base;
    T* dc = dx + base;
    T s = 0;
    for (int64_t j = 0; j < geo.len; ++j) {
      const int64_t k = j * geo.inner;
      s += kLog ? gc[k] : gc[k] * yc[k];
    }
    for (int64_t j = 0; j < geo.len; ++j) {
      const int64_t k = j * geo.inner;
      dc[k] = kLog ? fn::LogSoftmaxGrad{}(gc[k], yc[k], s) : fn::SoftmaxGrad{}(gc[k], yc[k], s);
    }
  }
}

// Blocks for `rows` rows of R threads each, capped (the kernels loop over the rest).
unsigned row_grid(int64_t rows, int r) {
  const int64_t per_block = kBlock / r;
  return static_cast<unsigned>(std::min<int64_t>((rows + per_block - 1) / per_block, 1 << 20));
}

// Calls f(R, kLog) as compile-time constants: R = 32 for contiguous rows of up to kWarpRowMax
// (a warp each), kBlock for longer ones (a block each), 0 for strided columns (inner > 1).
template <class F>
void with_layout(const RowsAround& geo, bool log, F f) {
  auto pick = [&](auto log_tag) {
    if (geo.inner != 1) f(std::integral_constant<int, 0>{}, log_tag);
    else if (geo.len <= kWarpRowMax) f(std::integral_constant<int, 32>{}, log_tag);
    else f(std::integral_constant<int, kBlock>{}, log_tag);
  };
  if (log) pick(std::true_type{});
  else pick(std::false_type{});
}

unsigned column_grid(const RowsAround& geo) {
  return static_cast<unsigned>(grid_for(geo.outer * geo.inner, kBlock));
}

}  // namespace

void CudaBackend::softmax(const Tensor& x_in, int64_t dim, bool log, Tensor& out) {
  if (out.numel() == 0) return;
  const Tensor x = contiguous(x_in);
  const RowsAround geo = rows_around(x.shape(), dim);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cuda softmax", [&] {
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* yp = out.data<T>();
    with_layout(geo, log, [&](auto r_tag, auto log_tag) {
      constexpr int R = decltype(r_tag)::value;
      constexpr bool kLog = decltype(log_tag)::value;
      if constexpr (R == 0) {
        launch(softmax_columns<T, kLog>, column_grid(geo), kBlock)(xp, yp, geo);
      } else if (R == 32 && geo.len <= kCachedForwardRowMax) {
        with_elements_per_lane<kCachedForwardRowMax>(geo.len, [&](auto k_tag) {
          constexpr int K = decltype(k_tag)::value;
          launch(softmax_rows_cached<T, K, kLog>, row_grid(geo.outer, R), kBlock)(
              xp, yp, geo.outer, geo.len);
        });
      } else {
        launch(softmax_rows<T, R, kLog>, row_grid(geo.outer, R), kBlock)(
            xp, yp, geo.outer, geo.len);
      }
    });
  });
}

void CudaBackend::softmax_backward(const Tensor& g_in, const Tensor& y_in, int64_t dim, bool log,
                                   Tensor& out) {
  if (out.numel() == 0) return;
  const Tensor g = contiguous(g_in), y = contiguous(y_in);
  const RowsAround geo = rows_around(y.shape(), dim);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cuda softmax_backward", [&] {
    using T = scalar_t;
    const T *gp = g.data<T>(), *yp = y.data<T>();
    T* dp = out.data<T>();
    with_layout(geo, log, [&](auto r_tag, auto log_tag) {
      constexpr int R = decltype(r_tag)::value;
      constexpr bool kLog = decltype(log_tag)::value;
      if constexpr (R == 0) {
        launch(softmax_backward_columns<T, kLog>, column_grid(geo), kBlock)(gp, yp, dp, geo);
      } else if constexpr (R == 32) {
        with_elements_per_lane<kWarpRowMax>(geo.len, [&](auto k_tag) {
          constexpr int K = decltype(k_tag)::value;
          launch(softmax_backward_rows_cached<T, K, kLog>, row_grid(geo.outer, R), kBlock)(
              gp, yp, dp, geo.outer, geo.len);
        });
      } else {
        launch(softmax_backward_rows<T, R, kLog>, row_grid(geo.outer, R), kBlock)(
            gp, yp, dp, geo.outer, geo.len);
      }
    });
  });
}

}  // namespace fragile::cuda
