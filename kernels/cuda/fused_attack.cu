// CudaBackend's fused kernels for explanation attacks (element math: functors/attack.h).
//
// attack_step: one pass, x, d, x0 read once and x_new written once (4 tensors of traffic
// instead of ~14 for sign, mul, add, sub, two clamps, add, and the box clamp as separate
// kernels). Per-channel alpha, eps and box come in the kernel's parameter block. Large aligned
// planes are walked plane by plane with 16-byte accesses; other shapes take a flat loop.
//
// saliency_moments: Ghorbani's normalisation (sum over channels of |A|, divided by the image's
// total) fused with K weighted sums over the map: what the top-k, targeted and centre-of-mass
// losses need, from one read of A instead of ~8 kernels (abs, channel sum, total, divide,
// multiply by the weights, sums) and their backwards. Two passes: blocks of each image write
// partial sums (in double) to a scratch buffer, then one block per image folds them
// (deterministic, no atomics). Its backward is a single element-wise pass over A.
#include <algorithm>

#include "core/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/elementwise.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/tensor_util.h"
#include "kernels/functors/attack.h"

namespace fragile::cuda {
namespace {

constexpr int kBlock = 256;
constexpr int kWarps = kBlock / 32;
// Channels of the attack step's parameter block (images have 1 to 4).
constexpr int kMaxStepChannels = 16;
// Weight maps of one saliency_moments call (top-k / target: 1, centre of mass: 2).
constexpr int kMaxMoments = 8;

struct StepParams {
  double alpha[kMaxStepChannels], eps[kMaxStepChannels], lo[kMaxStepChannels],
      hi[kMaxStepChannels];
  int64_t channels, plane;  // C and the elements per [n, c] plane
};

// Flat: element i's channel is (i / plane) % C. Any plane size, one element per access.
template <class T>
__global__ void attack_step_flat_kernel(int64_t n, StepParams p, const T* x, const T* d,
                                        const T* x0, T* out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = (i / p.plane) % p.channels;
    const fn::AttackStep f{p.alpha[c], p.eps[c], p.lo[c], p.hi[c]};
    out[i] = f(x[i], d[i], x0[i]);
  }
}

// By planes: one [n, c] plane per blockIdx.y (grid-stride over planes), its V-element vectors
// (16-byte loads and stores) over blockIdx.x, the channel fixed per plane. Only for aligned
// planes of at least a block's worth of vectors: on an H200 (float32, 16M elements) 224 x 224
// planes took 0.065 ms against the flat kernel's 0.081, while planes smaller than a block left
// threads idle (7 x 7: 0.378 ms) and unvectorised 227 x 227 planes gained nothing (0.103).
template <int V, class T>
__global__ void attack_step_kernel(int64_t planes, StepParams p, const T* x, const T* d,
                                   const T* x0, T* out) {
  const int64_t vectors = p.plane / V;  // per plane
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
    const int c = static_cast<int>(plane % p.channels);
    const fn::AttackStep f{p.alpha[c], p.eps[c], p.lo[c], p.hi[c]};
    const int64_t base = plane * p.plane;
    for (int64_t j = first; j < vectors; j += stride) {
      const int64_t i = base + j * V;
      const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(x + i);
      const Vec<T, V> dv = *reinterpret_cast<const Vec<T, V>*>(d + i);
      const Vec<T, V> x0v = *reinterpret_cast<const Vec<T, V>*>(x0 + i);
      Vec<T, V> o;
#pragma unroll
      for (int k = 0; k < V; ++k) o.v[k] = f(xv.v[k], dv.v[k], x0v.v[k]);
      *reinterpret_cast<Vec<T, V>*>(out + i) = o;
    }
  }
}

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Sums vals[0..count) over the block; thread 0 gets the totals. Every thread must call it.
__device__ void block_sum(double* vals, int count, double (*shared)[kWarps]) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int q = 0; q < count; ++q) {
    const double v = warp_sum(vals[q]);
    if (lane == 0) shared[q][warp] = v;
  }
  __syncthreads();
  if (warp == 0) {
    for (int q = 0; q < count; ++q) {
      const double v = warp_sum(lane < kWarps ? shared[q][lane] : 0.0);
      if (lane == 0) vals[q] = v;
    }
  }
}

// Pass 1: block (n, b) covers pixels b, b + B, ... of image n (stride B * blockDim) and writes
// partial[n][b] = (sum a w_0, ..., sum a w_{K-1}, sum a). Images are on grid.x (up to 2^31 - 1)
// because grid.y stops at 65535; B is a few hundred at most.
template <class T>
__global__ void saliency_moments_partial(const T* a, const T* w, int64_t channels, int64_t hw,
                                         int k, int64_t w_image_stride, double* partial) {
  FRAGILE_SHARED(double, shared, [kMaxMoments + 1][kWarps]);
  const int64_t img = blockIdx.x;
  const T* ai = a + img * channels * hw;
  const T* wi = w + img * w_image_stride;
  double acc[kMaxMoments + 1] = {};
  for (int64_t j = blockIdx.y * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < hw;
       j += static_cast<int64_t>(gridDim.y) * blockDim.x) {
    double s = 0.0;
    for (int64_t c = 0; c < channels; ++c) s += fabs(static_cast<double>(ai[c * hw + j]));
    for (int q = 0; q < k; ++q) acc[q] += s * static_cast<double>(wi[q * hw + j]);
    acc[k] += s;
  }
  block_sum(acc, k + 1, shared);
  if (threadIdx.x == 0) {
    double* out = partial + (img * gridDim.y + blockIdx.y) * (k + 1);
    for (int q = 0; q <= k; ++q) out[q] = acc[q];
  }
}

// Pass 2: one block per image folds its `blocks` partials into out[n] = (m_0..m_{K-1}, T).
template <class T>
__global__ void saliency_moments_finish(const double* partial, int64_t blocks, int k, T* out) {
  FRAGILE_SHARED(double, shared, [kMaxMoments + 1][kWarps]);
  const int64_t img = blockIdx.x;
  double acc[kMaxMoments + 1] = {};
  for (int64_t b = threadIdx.x; b < blocks; b += blockDim.x) {
    const double* p = partial + (img * blocks + b) * (k + 1);
    for (int q = 0; q <= k; ++q) acc[q] += p[q];
  }
  block_sum(acc, k + 1, shared);
  if (threadIdx.x == 0) {
    const double total = acc[k];
    T* row = out + img * (k + 1);
    for (int q = 0; q < k; ++q) row[q] = static_cast<T>(total != 0.0 ? acc[q] / total : 0.0);
    row[k] = static_cast<T>(total);
  }
}

template <class T>
__global__ void saliency_moments_backward_kernel(int64_t n, const T* g, const T* a, const T* w,
                                                 const T* moments, int64_t channels, int64_t hw,
                                                 int k, int64_t w_image_stride, T* out) {
  const fn::SaliencyMomentsGrad f;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t j = i % hw, img = i / (hw * channels);
    const T* gi = g + img * (k + 1);
    const T* mi = moments + img * (k + 1);
    out[i] = f(a[i], w + img * w_image_stride + j, hw, mi, gi, k, mi[k], gi[k]);
  }
}

// Blocks for `planes` (>= 1) planes of `per_plane` threads' work each: as many threads in all
// as grid_for gives `n` elements, blocks along a plane first, then planes on grid.y (at most
// 65535; the kernel loops over the rest).
dim3 plane_grid(int64_t planes, int64_t per_plane, int64_t n) {
  const int64_t cap = grid_for(n, kBlock);
  const int64_t gx = std::min<int64_t>((per_plane + kBlock - 1) / kBlock, cap);
  const int64_t gy =
      std::clamp<int64_t>(cap / gx, 1, std::max<int64_t>(1, std::min<int64_t>(planes, 65535)));
  return dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy));
}

void check_moment_count(int64_t k, const char* what) {
  FRAGILE_CHECK(k >= 1 && k <= kMaxMoments, what, ": ", k,
                " weight maps; the CUDA kernel takes 1 to ", kMaxMoments);
}

}  // namespace

void CudaBackend::attack_step(const Tensor& x_in, const Tensor& d_in, const Tensor& x0_in,
                              const AttackStepParams& p, Tensor& out) {
  const char* what = "cuda attack_step";
  const int64_t n = out.numel();
  const int64_t channels = out.size(1);
  FRAGILE_CHECK(channels <= kMaxStepChannels, what, ": ", channels,
                " channels; the fused step takes at most ", kMaxStepChannels);
  if (n == 0) return;
  StepParams sp{};
  for (int64_t c = 0; c < channels; ++c) {
    sp.alpha[c] = p.alpha[c];
    sp.eps[c] = p.eps[c];
    sp.lo[c] = p.lo[c];
    sp.hi[c] = p.hi[c];
  }
  sp.channels = channels;
  sp.plane = n / (out.size(0) * channels);
  const Tensor x = contiguous(x_in), d = contiguous(d_in), x0 = contiguous(x0_in);
  const int64_t planes = n / sp.plane;
  FRAGILE_DISPATCH_FLOAT(out.dtype(), what, [&] {
    using T = scalar_t;
    constexpr int V = 16 / sizeof(T);
    const T *xp = x.data<T>(), *dp = d.data<T>(), *x0p = x0.data<T>();
    T* op = out.data<T>();
    const bool vec = sp.plane % V == 0 && detail::aligned_to(xp, 16) &&
                     detail::aligned_to(dp, 16) && detail::aligned_to(x0p, 16) &&
                     detail::aligned_to(op, 16);
    if (vec && sp.plane / V >= kBlock)
      launch(attack_step_kernel<V, T>, plane_grid(planes, sp.plane / V, n), kBlock)(
          planes, sp, xp, dp, x0p, op);
    else
      launch(attack_step_flat_kernel<T>, grid_for(n, kBlock), kBlock)(n, sp, xp, dp, x0p, op);
  });
}

void CudaBackend::saliency_moments(const Tensor& a_in, const Tensor& w_in, Tensor& out) {
  const char* what = "cuda saliency_moments";
  const int64_t n = a_in.size(0), channels = a_in.size(1), hw = a_in.size(2) * a_in.size(3);
  const int k = static_cast<int>(w_in.size(1));
  check_moment_count(k, what);
  FRAGILE_CHECK(n <= 0x7fffffff, what, ": ", n, " images; a grid holds at most 2^31 - 1");
  if (n == 0) return;
  const Tensor a = contiguous(a_in), w = contiguous(w_in);
  // Enough blocks per image to fill the SMs a few times over at batch 1; at most one per
  // kBlock pixels.
  const int64_t per_image = std::max<int64_t>(
      1, std::min<int64_t>((hw + kBlock - 1) / kBlock, (4 * sm_count() + n - 1) / n));
  Tensor partial = empty_device({n, per_image, k + 1}, DType::Float64);
  const int64_t w_stride = w_in.size(0) == 1 ? 0 : k * hw;
  FRAGILE_DISPATCH_FLOAT(out.dtype(), what, [&] {
    using T = scalar_t;
    const dim3 grid(static_cast<unsigned>(n), static_cast<unsigned>(per_image));
    launch(saliency_moments_partial<T>, grid, kBlock)(
        a.data<T>(), w.data<T>(), channels, hw, k, w_stride, partial.data<double>());
    launch(saliency_moments_finish<T>, static_cast<unsigned>(n), kBlock)(
        partial.data<double>(), per_image, k, out.data<T>());
  });
}

void CudaBackend::saliency_moments_backward(const Tensor& g_in, const Tensor& a_in,
                                            const Tensor& w_in, const Tensor& m_in,
                                            Tensor& out) {
  const char* what = "cuda saliency_moments_backward";
  const int64_t n = out.numel();
  const int64_t channels = a_in.size(1), hw = a_in.size(2) * a_in.size(3);
  const int k = static_cast<int>(w_in.size(1));
  check_moment_count(k, what);
  if (n == 0) return;
  const Tensor g = contiguous(g_in), a = contiguous(a_in), w = contiguous(w_in),
               m = contiguous(m_in);
  const int64_t w_stride = w_in.size(0) == 1 ? 0 : k * hw;
  FRAGILE_DISPATCH_FLOAT(out.dtype(), what, [&] {
    using T = scalar_t;
    launch(saliency_moments_backward_kernel<T>, grid_for(n, kBlock), kBlock)(
        n, g.data<T>(), a.data<T>(), w.data<T>(), m.data<T>(), channels, hw, k, w_stride,
        out.data<T>());
  });
}

}  // namespace fragile::cuda
