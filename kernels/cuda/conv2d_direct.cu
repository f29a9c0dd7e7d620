// Direct 2-D convolution: the fallback behind conv2d.cu when cuDNN has no algorithm.
//
// Shapes (NCHW, contiguous): x [N, C_in, H, W], w [C_out, C_in/G, KH, KW],
// y / grad [N, C_out, Ho, Wo]; G = groups, Cg = C_in/G input channels per group,
// Og = C_out/G output channels per group; sh/sw stride, ph/pw padding, dh/dw dilation.
//
// One thread per output element (forward: y; backward-input: dx, a gather over the windows
// that touch each input pixel, so no atomics) and one block per weight element for
// backward-weight (a reduction over N*Ho*Wo). These are O(N C_out Ho Wo Cg KH KW) with no
// data reuse through shared memory: correct everywhere, several times slower than cuDNN.
#include "core/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv2d_direct.h"
#include "kernels/cuda/launch.cuh"

namespace fragile::cuda {
namespace {

struct ConvGeom {
  int64_t N, C, H, W, O, Ho, Wo, KH, KW, G, Cg, Og;
  int64_t sh, sw, ph, pw, dh, dw;
};

ConvGeom geom(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p) {
  ConvGeom g{};
  g.N = x[0]; g.C = x[1]; g.H = x[2]; g.W = x[3];
  g.O = w[0]; g.KH = w[2]; g.KW = w[3];
  g.Ho = y[2]; g.Wo = y[3];
  g.G = p.groups; g.Cg = g.C / g.G; g.Og = g.O / g.G;
  g.sh = p.stride[0]; g.sw = p.stride[1];
  g.ph = p.padding[0]; g.pw = p.padding[1];
  g.dh = p.dilation[0]; g.dw = p.dilation[1];
  return g;
}

template <typename T>
__global__ void direct_forward(ConvGeom g, const T* x, const T* w, T* y) {
  const int64_t total = g.N * g.O * g.Ho * g.Wo;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t wo = i % g.Wo, ho = (i / g.Wo) % g.Ho, o = (i / (g.Wo * g.Ho)) % g.O,
                  n = i / (g.Wo * g.Ho * g.O);
    const int64_t grp = o / g.Og;
    T acc = 0;
    for (int64_t ci = 0; ci < g.Cg; ++ci) {
      const T* xp = x + ((n * g.C + grp * g.Cg + ci) * g.H) * g.W;
      const T* wp = w + ((o * g.Cg + ci) * g.KH) * g.KW;
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t h = ho * g.sh - g.ph + kh * g.dh;
        if (h < 0 || h >= g.H) continue;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t ww = wo * g.sw - g.pw + kw * g.dw;
          if (ww < 0 || ww >= g.W) continue;
          acc += xp[h * g.W + ww] * wp[kh * g.KW + kw];
        }
      }
    }
    y[i] = acc;
  }
}

template <typename T>
__global__ void direct_backward_input(ConvGeom g, const T* dy, const T* w, T* dx) {
  const int64_t total = g.N * g.C * g.H * g.W;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t ww = i % g.W, h = (i / g.W) % g.H, c = (i / (g.W * g.H)) % g.C,
                  n = i / (g.W * g.H * g.C);
    const int64_t grp = c / g.Cg, ci = c % g.Cg;
    T acc = 0;
    for (int64_t o = grp * g.Og; o < (grp + 1) * g.Og; ++o) {
      const T* dyp = dy + ((n * g.O + o) * g.Ho) * g.Wo;
      const T* wp = w + ((o * g.Cg + ci) * g.KH) * g.KW;
      for (int64_t kh = 0; kh < g.KH; ++kh) {
        const int64_t th = h + g.ph - kh * g.dh;  // = ho * sh for a window that uses h
        if (th < 0 || th % g.sh != 0) continue;
        const int64_t ho = th / g.sh;
        if (ho >= g.Ho) continue;
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t tw = ww + g.pw - kw * g.dw;
          if (tw < 0 || tw % g.sw != 0) continue;
          const int64_t wo = tw / g.sw;
          if (wo >= g.Wo) continue;
          acc += dyp[ho * g.Wo + wo] * wp[kh * g.KW + kw];
        }
      }
    }
    dx[i] = acc;
  }
}

constexpr int kBlock = 256;

template <typename T>
__global__ void direct_backward_weight(ConvGeom g, const T* x, const T* dy, T* dw) {
  FRAGILE_SHARED(double, warp_acc, [kBlock / 32]);
  const int64_t i = blockIdx.x;  // one weight element per block
  const int64_t kw = i % g.KW, kh = (i / g.KW) % g.KH, ci = (i / (g.KW * g.KH)) % g.Cg,
                o = i / (g.KW * g.KH * g.Cg);
  const int64_t c = (o / g.Og) * g.Cg + ci;
  const int64_t per_n = g.Ho * g.Wo, total = g.N * per_n;
  double acc = 0;
  for (int64_t j = threadIdx.x; j < total; j += kBlock) {
    const int64_t wo = j % g.Wo, ho = (j / g.Wo) % g.Ho, n = j / per_n;
    const int64_t h = ho * g.sh - g.ph + kh * g.dh, ww = wo * g.sw - g.pw + kw * g.dw;
    if (h < 0 || h >= g.H || ww < 0 || ww >= g.W) continue;
    acc += static_cast<double>(x[((n * g.C + c) * g.H + h) * g.W + ww]) *
           static_cast<double>(dy[((n * g.O + o) * g.Ho + ho) * g.Wo + wo]);
  }
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, s);
  if (threadIdx.x % 32 == 0) warp_acc[threadIdx.x / 32] = acc;
  __syncthreads();
  if (threadIdx.x < 32) {
    acc = threadIdx.x < kBlock / 32 ? warp_acc[threadIdx.x] : 0.0;
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, s);
    if (threadIdx.x == 0) dw[i] = static_cast<T>(acc);
  }
}

}  // namespace

void conv2d_direct_forward(const Tensor& x, const Tensor& w, Tensor& out, const Conv2dParams& p) {
  const ConvGeom g = geom(x.shape(), w.shape(), out.shape(), p);
  const int64_t n = out.numel();
  if (n == 0) return;
  FRAGILE_DISPATCH_FLOAT(x.dtype(), "conv2d_direct", [&] {
    launch(direct_forward<scalar_t>, grid_for(n, kBlock), kBlock)(
        g, x.data<scalar_t>(), w.data<scalar_t>(), out.data<scalar_t>());
  });
}

void conv2d_direct_backward_input(const Tensor& grad, const Tensor& w, Tensor& out,
                                  const Conv2dParams& p) {
  const ConvGeom g = geom(out.shape(), w.shape(), grad.shape(), p);
  const int64_t n = out.numel();
  if (n == 0) return;
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "conv2d_direct", [&] {
    launch(direct_backward_input<scalar_t>, grid_for(n, kBlock), kBlock)(
        g, grad.data<scalar_t>(), w.data<scalar_t>(), out.data<scalar_t>());
  });
}

void conv2d_direct_backward_weight(const Tensor& x, const Tensor& grad, Tensor& out,
                                   const Conv2dParams& p) {
  const ConvGeom g = geom(x.shape(), out.shape(), grad.shape(), p);
  const int64_t n = out.numel();
  if (n == 0) return;
  FRAGILE_CHECK(n <= 0x7fffffff, "conv2d_direct: too many weights");
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "conv2d_direct", [&] {
    launch(direct_backward_weight<scalar_t>, static_cast<unsigned>(n), kBlock)(
        g, x.data<scalar_t>(), grad.data<scalar_t>(), out.data<scalar_t>());
  });
}

}  // namespace fragile::cuda
