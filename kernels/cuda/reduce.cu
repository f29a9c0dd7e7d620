// Reductions: sum and max over any set of dims.
//
// Shapes: x [d0, ..., d_{r-1}] any strided view; `dims` sorted and unique; out is x's shape
// with every reduced dim set to 1 (contiguous). M = numel(out) = product of kept extents, the
// output "rows"; K = product of reduced extents, the elements folded into each output.
//
// Both the kept and the reduced dims are coalesced. Then, with rs / es the row and element
// strides of x seen as an [M, K] matrix:
//   * inner case (es == 1, or M == 1): reduced elements are contiguous per row. Small K: one
//     warp per row (lanes stride by 32 = coalesced 128-byte segments) and a shuffle tree.
//     Large K: 256-thread blocks per row; when there are too few rows to fill the GPU the
//     row is split into chunks across blocks, partials go to a scratch buffer and a second
//     pass folds them (two passes beat atomics: deterministic and NaN-safe for max).
//   * outer case (rs == 1): the kept dim is contiguous, e.g. summing a batch [N, C] over N.
//     A 32x8 block walks 32 adjacent columns (coalesced across the warp), 8 rows at a time,
//     then folds its 8 partial sums in shared memory; K is chunked across blocks likewise.
//   * anything else (reduced dims interleaved with kept ones, e.g. sum over N, H, W of
//     [N, C, H, W]): one permute-copy makes x [kept..., reduced...] contiguous, costing an
//     extra read+write of x, then the inner case.
// Accumulation is in double for float32 too (as on the CPU backend): the reductions are
// bandwidth-bound, so the wider adds are free, and sums of 1e6 floats stay accurate.
// max propagates NaN like torch.amax; an empty sum is 0, an empty max is -inf.
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/tensor_util.h"

namespace fragile::cuda {
namespace {

struct SumOp {
  static __device__ __forceinline__ double identity() { return 0.0; }
  static __device__ __forceinline__ double combine(double acc, double v) { return acc + v; }
};
struct MaxOp {
  static __device__ __forceinline__ double identity() { return -INFINITY; }
  static __device__ __forceinline__ double combine(double acc, double v) {
    return (v > acc || v != v) ? v : acc;
  }
};

template <class Op>
__device__ __forceinline__ double warp_reduce(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = Op::combine(v, __shfl_down_sync(0xffffffffu, v, o));
  return v;
}

// One warp per row. blockDim = (32, kRowsPerBlock).
constexpr int kRowsPerBlock = 8;
template <class Op, class T, class O>
__global__ void reduce_rows_warp(const T* x, int64_t M, int64_t K, int64_t rs, int64_t es,
                                 O* out) {
  const int64_t row_step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.y + threadIdx.y; m < M;
       m += row_step) {
    const T* row = x + m * rs;
    double acc = Op::identity();
    for (int64_t k = threadIdx.x; k < K; k += 32)
      acc = Op::combine(acc, static_cast<double>(row[k * es]));
    acc = warp_reduce<Op>(acc);
    if (threadIdx.x == 0) out[m] = static_cast<O>(acc);
  }
}

// Block (256 threads) per (row m = blockIdx.x, chunk c = blockIdx.y) of chunk_len elements;
// writes out[m * gridDim.y + c].
constexpr int kBlock = 256;
template <class Op, class T, class O>
__global__ void reduce_rows_block(const T* x, int64_t K, int64_t rs, int64_t es,
                                  int64_t chunk_len, O* out) {
  FRAGILE_SHARED(double, warp_acc, [kBlock / 32]);
  const int64_t m = blockIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_len;
  const int64_t end = min(K, begin + chunk_len);
  const T* row = x + m * rs;
  double acc = Op::identity();
  for (int64_t k = begin + threadIdx.x; k < end; k += kBlock)
    acc = Op::combine(acc, static_cast<double>(row[k * es]));
  acc = warp_reduce<Op>(acc);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_acc[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < kBlock / 32 ? warp_acc[lane] : Op::identity();
    acc = warp_reduce<Op>(acc);
    if (lane == 0) out[m * gridDim.y + blockIdx.y] = static_cast<O>(acc);
  }
}

// x as [K, M] with the M columns contiguous and row stride ks. Block (32, 8): 32 columns,
// 8 row lanes; grid (ceil(M / 32), chunks). Writes out[chunk * M + m].
constexpr int kColLanes = 8;
template <class Op, class T, class O>
__global__ void reduce_cols(const T* x, int64_t K, int64_t M, int64_t ks, int64_t chunk_len,
                            O* out) {
  FRAGILE_SHARED(double, part, [kColLanes][33]);  // +1 column: no bank conflicts on the fold
  const int64_t m = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_len;
  const int64_t end = min(K, begin + chunk_len);
  double acc = Op::identity();
  if (m < M)
    for (int64_t k = begin + threadIdx.y; k < end; k += kColLanes)
      acc = Op::combine(acc, static_cast<double>(x[k * ks + m]));
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && m < M) {
#pragma unroll
    for (int j = 1; j < kColLanes; ++j) acc = Op::combine(acc, part[j][threadIdx.x]);
    out[static_cast<int64_t>(blockIdx.y) * M + m] = static_cast<O>(acc);
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// [M, K] with strides (rs, es) -> out[M].
template <class Op, class T>
void reduce_inner(const T* x, int64_t M, int64_t K, int64_t rs, int64_t es, T* out) {
  const int64_t target_blocks = static_cast<int64_t>(sm_count()) * 4;
  if (K <= 64 || (K <= 1024 && M >= target_blocks)) {
    const dim3 block(32, kRowsPerBlock);
    const int64_t grid = std::min<int64_t>(ceil_div(M, kRowsPerBlock), target_blocks * 8);
    launch(reduce_rows_warp<Op, T, T>, grid, block)(x, M, K, rs, es, out);
    return;
  }
  int64_t chunks = std::clamp<int64_t>(ceil_div(target_blocks, M), 1, ceil_div(K, 4096));
  chunks = std::min<int64_t>(chunks, 65535);
  const int64_t chunk_len = ceil_div(K, chunks);
  FRAGILE_CHECK(M <= std::numeric_limits<int32_t>::max(), "cuda reduce: too many rows");
  const dim3 grid(static_cast<unsigned>(M), static_cast<unsigned>(chunks));
  if (chunks == 1) {
    launch(reduce_rows_block<Op, T, T>, grid, kBlock)(x, K, rs, es, chunk_len, out);
    return;
  }
  Tensor partial = empty_device({M, chunks}, DType::Float64);
  double* pp = partial.data<double>();
  launch(reduce_rows_block<Op, T, double>, grid, kBlock)(x, K, rs, es, chunk_len, pp);
  const int64_t fold_grid = std::min<int64_t>(ceil_div(M, kRowsPerBlock), target_blocks * 8);
  launch(reduce_rows_warp<Op, double, T>, fold_grid, dim3(32, kRowsPerBlock))(pp, M, chunks,
                                                                             chunks, 1, out);
}

// [K, M] with M contiguous and row stride ks -> out[M].
template <class Op, class T>
void reduce_outer(const T* x, int64_t K, int64_t M, int64_t ks, T* out) {
  const int64_t target_blocks = static_cast<int64_t>(sm_count()) * 4;
  const int64_t col_blocks = ceil_div(M, 32);
  FRAGILE_CHECK(col_blocks <= std::numeric_limits<int32_t>::max(), "cuda reduce: too many columns");
  int64_t chunks = std::clamp<int64_t>(ceil_div(target_blocks, col_blocks), 1, ceil_div(K, 256));
  chunks = std::min<int64_t>(chunks, 65535);
  const int64_t chunk_len = ceil_div(K, chunks);
  const dim3 block(32, kColLanes);
  const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(chunks));
  if (chunks == 1) {
    launch(reduce_cols<Op, T, T>, grid, block)(x, K, M, ks, chunk_len, out);
    return;
  }
  Tensor partial = empty_device({chunks, M}, DType::Float64);
  double* pp = partial.data<double>();
  launch(reduce_cols<Op, T, double>, grid, block)(x, K, M, ks, chunk_len, pp);
  launch(reduce_cols<Op, double, T>, dim3(static_cast<unsigned>(col_blocks), 1), block)(
      pp, chunks, M, M, chunks, out);
}

template <class Op, class T>
void reduce_typed(const Tensor& x, const std::vector<int64_t>& dims, Tensor& out) {
  Shape kept, kept_st, red, red_st;
  for (int64_t d = 0; d < x.dim(); ++d) {
    const bool r = std::find(dims.begin(), dims.end(), d) != dims.end();
    (r ? red : kept).push_back(x.shape()[d]);
    (r ? red_st : kept_st).push_back(x.strides()[d]);
  }
  const int64_t M = numel_of(kept), K = numel_of(red);
  T* op = out.data<T>();
  if (M == 0) return;
  if (K == 0) {
    cuda_backend().fill(out, std::is_same_v<Op, SumOp> ? 0.0
                                                       : -std::numeric_limits<double>::infinity());
    return;
  }
  const Geometry<1> kg = coalesce<1>(kept, {kept_st});
  const Geometry<1> rg = coalesce<1>(red, {red_st});
  const T* xp = static_cast<const T*>(x.raw_data());
  if (kg.sizes.size() == 1 && rg.sizes.size() == 1) {
    const int64_t rs = kg.strides[0][0], es = rg.strides[0][0];
    if (es == 1 || M == 1) return reduce_inner<Op>(xp, M, K, rs, es, op);
    if (rs == 1) return reduce_outer<Op>(xp, K, M, es, op);
  }
  // Interleaved dims: permute-copy to [kept..., reduced...] contiguous, then rows of K.
  Shape perm_shape = kept, perm_st = kept_st;
  perm_shape.insert(perm_shape.end(), red.begin(), red.end());
  perm_st.insert(perm_st.end(), red_st.begin(), red_st.end());
  const Tensor view = make_view(x, perm_shape, perm_st, x.offset());
  const Tensor dense = contiguous(view);
  reduce_inner<Op>(dense.data<T>(), M, K, K, 1, op);
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                         Tensor& out) {
  check_on_device(x, "cuda reduce", "x");
  check_on_device(out, "cuda reduce", "out");
  FRAGILE_CHECK(x.dtype() == out.dtype(), "cuda reduce: x is ", dtype_name(x.dtype()),
                " but out is ", dtype_name(out.dtype()));
  FRAGILE_CHECK(out.is_contiguous(), "cuda reduce: out must be contiguous");
  Shape expect = x.shape();
  for (int64_t d : dims) {
    FRAGILE_CHECK(d >= 0 && d < x.dim(), "cuda reduce: dim ", d, " out of range for rank ",
                  x.dim());
    expect[d] = 1;
  }
  FRAGILE_CHECK(out.shape() == expect, "cuda reduce: out has shape ", shape_str(out.shape()),
                ", expected ", shape_str(expect));
  FRAGILE_DISPATCH_FLOAT(x.dtype(), "cuda reduce", [&] {
    if (op == ReduceOp::Sum)
      reduce_typed<SumOp, scalar_t>(x, dims, out);
    else
      reduce_typed<MaxOp, scalar_t>(x, dims, out);
  });
}

}  // namespace fragile::cuda
