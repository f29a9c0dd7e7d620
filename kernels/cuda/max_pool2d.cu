// Max pooling and its two index kernels: the scatter (backward) and gather (its adjoint).
//
// Shapes: x [N, C, H, W]; out, indices (int64), grad [N, C, Ho, Wo]; see pool_geom.h.
// indices hold the flat h*W + w of each window's maximum within its plane: the first
// maximum in row-major window order wins ties, padding is never a candidate, and NaN wins
// (first NaN), matching the CPU backend and PyTorch.
//
// One thread per pooled element throughout. Forward: reads its KH*KW window (neighbouring
// threads read overlapping, mostly cached rows), writes one value and one index. Scatter:
// out is zeroed with one memset, then each grad value is atomicAdd-ed to its argmax pixel.
// Without overlap (stride >= kernel, the usual case) every target pixel is hit at most once,
// so the atomics never contend; with overlap, float rounding of the sum may vary between
// runs (summation order). atomicAdd(double*) is native on sm_60+. Gather is a plain indexed
// load. Indices outside their plane (impossible when they come from max_pool2d) are skipped
// by the scatter and read as 0 by the gather: checking them would need a device->host sync.
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

template <typename T>
__global__ void scatter_kernel(int64_t total, int64_t HW, int64_t HoWo, const T* grad,
                               const int64_t* indices, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = indices[i];
    if (k < 0 || k >= HW) continue;
    atomicAdd(out + (i / HoWo) * HW + k, grad[i]);
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
                                     Tensor& out) {
  check_float_pair(grad_in, out, "cuda max_pool2d_scatter");
  check_plane_pair(out, grad_in, indices_in, "cuda max_pool2d_scatter");
  if (out.numel() == 0) return;
  FRAGILE_CUDA_CHECK(cudaMemsetAsync(out.raw_data(), 0, out.numel() * dtype_size(out.dtype()),
                                     stream()));
  const int64_t total = grad_in.numel();
  if (total == 0) return;
  const Tensor grad = contiguous(grad_in), indices = contiguous(indices_in);
  const int64_t HW = out.size(2) * out.size(3), HoWo = grad.size(2) * grad.size(3);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cuda max_pool2d_scatter", [&] {
    launch(scatter_kernel<scalar_t>, grid_for(total, kThreads), kThreads)(
        total, HW, HoWo, grad.data<scalar_t>(), indices.data<int64_t>(), out.data<scalar_t>());
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
