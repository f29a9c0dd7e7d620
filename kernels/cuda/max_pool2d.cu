// Max pooling and its two index kernels: the scatter (backward) and gather (its adjoint).
//
// Shapes: x [N, C, H, W]; out, indices (int64), grad [N, C, Ho, Wo]; see pool_geom.h.
// indices hold the flat h*W + w of each window's maximum within its plane: the first
// maximum in row-major window order wins ties, padding is never a candidate, and NaN wins
// (first NaN), matching the CPU backend and PyTorch.
//
// Forward and gather: one thread per pooled element. The forward reads its KH*KW window
// (neighbouring threads read overlapping, mostly cached rows), writes one value and one
// index; the gather is a plain indexed load.
// Scatter (the backward): one thread per input pixel, which adds up grad over the pooled
// elements whose window covers it and whose index names it, in ascending pooled order. That
// is the CPU backend's order, so the sums are its sums bit for bit, and they do not change from
// run to run, as an atomicAdd scatter's do where windows overlap (SqueezeNet's 3x3 stride-2
// pools: up to 4 windows per pixel). No memset, no atomics.
// Indices outside their window (impossible when they come from max_pool2d or a replay of its
// decisions; the CPU backend refuses them) add nothing in the scatter, and indices outside their
// plane read as 0 in the gather: checking them here would need a device->host sync.
#include <cmath>

#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/pool_geom.h"
#include "kernels/cuda/tensor_util.h"

namespace fragile::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void max_pool_kernel(PoolGeom g, const T* x, T* out, int64_t* indices) {
  const int64_t total = g.planes * g.Ho * g.Wo;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = i % g.Wo, oh = (i / g.Wo) % g.Ho, plane = i / (g.Wo * g.Ho);
    const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    const int64_t hs = max(h0, int64_t{0}), he = min(h0 + g.KH, g.H);
    const int64_t ws = max(w0, int64_t{0}), we = min(w0 + g.KW, g.W);
    const T* xp = x + plane * g.H * g.W;
    T best = -INFINITY;
    int64_t best_i = hs * g.W + ws;
    bool nan = false;
    for (int64_t h = hs; h < he && !nan; ++h) {
      for (int64_t w = ws; w < we; ++w) {
        const T v = xp[h * g.W + w];
        if (v > best || isnan(v)) {  // strict '>': the first maximum wins ties
          best = v;
          best_i = h * g.W + w;
          if (isnan(v)) {
            nan = true;
            break;
          }
        }
      }
    }
    out[i] = best;
    indices[i] = best_i;
  }
}

// The pooled rows (or columns) whose windows cover input row r: windows start at o*s - p
// and span K, so o*s - p <= r < o*s - p + K, i.e. (r + p - K)/s < o <= (r + p)/s.
struct Covering {
  int64_t first, last;
};
__device__ __forceinline__ Covering covering(int64_t r, int64_t k, int64_t s, int64_t p,
                                             int64_t count) {
  const int64_t t = r + p - k;
  return {t < 0 ? 0 : t / s + 1, min((r + p) / s, count - 1)};
}

template <typename T>
__global__ void scatter_kernel(PoolGeom g, const T* grad, const int64_t* indices, T* out) {
  const int64_t total = g.planes * g.H * g.W;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.W * g.H);
    const int64_t k = h * g.W + w;
    const Covering rows = covering(h, g.KH, g.sh, g.ph, g.Ho);
    const Covering cols = covering(w, g.KW, g.sw, g.pw, g.Wo);
    const T* gp = grad + plane * g.Ho * g.Wo;
    const int64_t* ip = indices + plane * g.Ho * g.Wo;
    T sum = T(0);
    for (int64_t oh = rows.first; oh <= rows.last; ++oh) {
      for (int64_t ow = cols.first; ow <= cols.last; ++ow) {
        const int64_t o = oh * g.Wo + ow;
        if (ip[o] == k) sum += gp[o];
      }
    }
    out[i] = sum;
  }
}

template <typename T>
__global__ void gather_kernel(int64_t total, int64_t HW, int64_t HoWo, const T* x,
                              const int64_t* indices, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = indices[i];
    out[i] = (k < 0 || k >= HW) ? T(0) : x[(i / HoWo) * HW + k];
  }
}

void check_float_pair(const Tensor& in, const Tensor& out, const char* what) {
  check_on_device(in, what, "input");
  check_on_device(out, what, "out");
  FRAGILE_CHECK(in.dtype() == out.dtype() && is_floating(out.dtype()), what,
                ": dtypes disagree or are not float: ", dtype_name(in.dtype()), " -> ",
                dtype_name(out.dtype()));
  FRAGILE_CHECK(out.is_contiguous(), what, ": out must be contiguous");
}

// full [N, C, H, W], pooled and indices [N, C, Ho, Wo].
void check_plane_pair(const Tensor& full, const Tensor& pooled, const Tensor& indices,
                      const char* what) {
  check_on_device(indices, what, "indices");
  FRAGILE_CHECK(full.dim() == 4 && pooled.dim() == 4 && indices.shape() == pooled.shape() &&
                    full.size(0) == pooled.size(0) && full.size(1) == pooled.size(1),
                what, ": expected full [N,C,H,W], pooled and indices [N,C,Ho,Wo]; got ",
                shape_str(full.shape()), ", ", shape_str(pooled.shape()), ", ",
                shape_str(indices.shape()));
  FRAGILE_CHECK(indices.dtype() == DType::Int64, what, ": indices must be int64, got ",
                dtype_name(indices.dtype()));
}

}  // namespace

void CudaBackend::max_pool2d(const Tensor& x_in, Tensor& out, Tensor& indices,
                             const Pool2dParams& p) {
  check_float_pair(x_in, out, "cuda max_pool2d");
  check_on_device(indices, "cuda max_pool2d", "indices");
  FRAGILE_CHECK(indices.dtype() == DType::Int64 && indices.shape() == out.shape() &&
                    indices.is_contiguous(),
                "cuda max_pool2d: indices must be contiguous int64 of shape ",
                shape_str(out.shape()));
  const PoolGeom g = make_pool_geom(x_in.shape(), out.shape(), p, "cuda max_pool2d");
  const int64_t total = out.numel();
  if (total == 0) return;
  const Tensor x = contiguous(x_in);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cuda max_pool2d", [&] {
    launch(max_pool_kernel<scalar_t>, grid_for(total, kThreads), kThreads)(
        g, x.data<scalar_t>(), out.data<scalar_t>(), indices.data<int64_t>());
  });
}

void CudaBackend::max_pool2d_scatter(const Tensor& grad_in, const Tensor& indices_in,
                                     const Pool2dParams& p, Tensor& out) {
  check_float_pair(grad_in, out, "cuda max_pool2d_scatter");
  check_plane_pair(out, grad_in, indices_in, "cuda max_pool2d_scatter");
  const PoolGeom g = make_pool_geom(out.shape(), grad_in.shape(), p, "cuda max_pool2d_scatter");
  const int64_t total = out.numel();
  if (total == 0) return;  // (a non-empty input always has at least one window)
  const Tensor grad = contiguous(grad_in), indices = contiguous(indices_in);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cuda max_pool2d_scatter", [&] {
    launch(scatter_kernel<scalar_t>, grid_for(total, kThreads), kThreads)(
        g, grad.data<scalar_t>(), indices.data<int64_t>(), out.data<scalar_t>());
  });
}

void CudaBackend::max_pool2d_gather(const Tensor& x_in, const Tensor& indices_in, Tensor& out) {
  check_float_pair(x_in, out, "cuda max_pool2d_gather");
  check_plane_pair(x_in, out, indices_in, "cuda max_pool2d_gather");
  const int64_t total = out.numel();
  if (total == 0) return;
  const Tensor x = contiguous(x_in), indices = contiguous(indices_in);
  const int64_t HW = x.size(2) * x.size(3), HoWo = out.size(2) * out.size(3);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cuda max_pool2d_gather", [&] {
    launch(gather_kernel<scalar_t>, grid_for(total, kThreads), kThreads)(
        total, HW, HoWo, x.data<scalar_t>(), indices.data<int64_t>(), out.data<scalar_t>());
  });
}

}  // namespace fragile::cuda
