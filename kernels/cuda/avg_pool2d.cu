// Average pooling and its backward, with PyTorch's semantics.
//
// Shapes: x [N, C, H, W], out / grad [N, C, Ho, Wo]; see pool_geom.h.
// Divisor of window (oh, ow): count_include_pad ? the window clipped to the *padded* input
// (a ceil_mode overhang past the padding never counts) : the window clipped to the input.
//
// Forward: one thread per pooled value, summing its window. Backward: one thread per input
// pixel, gathering grad/divisor from every window that covers it (windows oh with
// oh*sh - ph <= h < oh*sh - ph + KH). The gather form needs no atomics and no zero-fill and
// is deterministic; each thread re-derives the divisors, which is a few integer ops next to
// the memory traffic.
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/pool_geom.h"
#include "kernels/cuda/tensor_util.h"

namespace fragile::cuda {
namespace {

constexpr int kThreads = 256;

struct Window {
  int64_t lo, hi, padded;  // clipped input range [lo, hi) and divisor extent
};

__device__ __forceinline__ Window window(int64_t o, int64_t stride, int64_t pad, int64_t k,
                                         int64_t in) {
  const int64_t start = o * stride - pad;
  const int64_t end = min(start + k, in + pad);
  return {max(start, int64_t{0}), min(end, in), end - start};
}

__device__ __forceinline__ int64_t divisor(const Window& hw, const Window& ww, bool include_pad) {
  return include_pad ? hw.padded * ww.padded : (hw.hi - hw.lo) * (ww.hi - ww.lo);
}

template <typename T>
__global__ void avg_pool_kernel(PoolGeom g, bool include_pad, const T* x, T* out) {
  const int64_t total = g.planes * g.Ho * g.Wo;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ow = i % g.Wo, oh = (i / g.Wo) % g.Ho, plane = i / (g.Wo * g.Ho);
    const Window hw = window(oh, g.sh, g.ph, g.KH, g.H);
    const Window ww = window(ow, g.sw, g.pw, g.KW, g.W);
    const T* xp = x + plane * g.H * g.W;
    T sum = 0;
    for (int64_t h = hw.lo; h < hw.hi; ++h)
      for (int64_t w = ww.lo; w < ww.hi; ++w) sum += xp[h * g.W + w];
    const int64_t count = divisor(hw, ww, include_pad);
    out[i] = count > 0 ? sum / static_cast<T>(count) : T(0);
  }
}

template <typename T>
__global__ void avg_pool_backward_kernel(PoolGeom g, bool include_pad, const T* grad, T* out) {
  const int64_t total = g.planes * g.H * g.W;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t w = i % g.W, h = (i / g.W) % g.H, plane = i / (g.W * g.H);
    // Windows covering h: oh*sh - ph <= h  and  h < oh*sh - ph + KH.
    const int64_t oh0 = h + g.ph < g.KH ? 0 : (h + g.ph - g.KH) / g.sh + 1;
    const int64_t oh1 = min((h + g.ph) / g.sh + 1, g.Ho);
    const int64_t ow0 = w + g.pw < g.KW ? 0 : (w + g.pw - g.KW) / g.sw + 1;
    const int64_t ow1 = min((w + g.pw) / g.sw + 1, g.Wo);
    const T* gp = grad + plane * g.Ho * g.Wo;
    T acc = 0;
    for (int64_t oh = oh0; oh < oh1; ++oh) {
      const Window hw = window(oh, g.sh, g.ph, g.KH, g.H);
      for (int64_t ow = ow0; ow < ow1; ++ow) {
        const Window ww = window(ow, g.sw, g.pw, g.KW, g.W);
        const int64_t count = divisor(hw, ww, include_pad);
        if (count > 0) acc += gp[oh * g.Wo + ow] / static_cast<T>(count);
      }
    }
    out[i] = acc;
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

}  // namespace

void CudaBackend::avg_pool2d(const Tensor& x_in, Tensor& out, const Pool2dParams& p) {
  check_float_pair(x_in, out, "cuda avg_pool2d");
  const PoolGeom g = make_pool_geom(x_in.shape(), out.shape(), p, "cuda avg_pool2d");
  const int64_t total = out.numel();
  if (total == 0) return;
  const Tensor x = contiguous(x_in);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cuda avg_pool2d", [&] {
    launch(avg_pool_kernel<scalar_t>, grid_for(total, kThreads), kThreads)(
        g, p.count_include_pad, x.data<scalar_t>(), out.data<scalar_t>());
  });
}

void CudaBackend::avg_pool2d_backward(const Tensor& grad_in, Tensor& out, const Pool2dParams& p) {
  check_float_pair(grad_in, out, "cuda avg_pool2d_backward");
  const PoolGeom g = make_pool_geom(out.shape(), grad_in.shape(), p, "cuda avg_pool2d_backward");
  const int64_t total = out.numel();
  if (total == 0) return;
  const Tensor grad = contiguous(grad_in);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cuda avg_pool2d_backward", [&] {
    launch(avg_pool_backward_kernel<scalar_t>, grid_for(total, kThreads), kThreads)(
        g, p.count_include_pad, grad.data<scalar_t>(), out.data<scalar_t>());
  });
}

}  // namespace fragile::cuda
