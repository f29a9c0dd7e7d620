// CPU versions of the fused attack and attribution kernels: the same element math as the CUDA
// kernels (kernels/functors/attack.h), one pass over memory, OpenMP across planes or images.
// The op layer (core/ops) has checked shapes; inputs may be strided (copied contiguous here).
#include <omp.h>

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/functors/attack.h"

namespace fragile::cpu {
namespace {

Tensor dense(const Tensor& t) { return t.is_contiguous() ? t : t.clone_data(); }

// Planes of [N, C, rest...]: count N*C, size prod(rest), channel of plane p = p % C.
struct Planes {
  int64_t count, size, channels;
  explicit Planes(const Tensor& t)
      : count(t.size(0) * t.size(1)), size(t.numel() / std::max<int64_t>(1, count)),
        channels(t.size(1)) {}
};


template <typename T>
void attack_step_typed(const Tensor& x, const Tensor& d, const Tensor& x0,
                       const AttackStepParams& p, Tensor& out) {
  const Planes planes(out);
  const T *xp = x.data<T>(), *dp = d.data<T>(), *x0p = x0.data<T>();
  T* op = out.data<T>();
#pragma omp parallel for schedule(static) if (out.numel() >= (1 << 15))
  for (int64_t pl = 0; pl < planes.count; ++pl) {
    const int64_t c = pl % planes.channels;
    const fn::AttackStep f{p.alpha[c], p.eps[c], p.lo[c], p.hi[c]};
    const int64_t base = pl * planes.size;
    for (int64_t i = base; i < base + planes.size; ++i) op[i] = f(xp[i], dp[i], x0p[i]);
  }
}

// Geometry of saliency_moments: A [N, C, H, W], weights [1 or N, K, H, W].
struct MomentsGeometry {
  int64_t n, c, hw, k, w_image_stride;
  MomentsGeometry(const Tensor& a, const Tensor& w)
      : n(a.size(0)), c(a.size(1)), hw(a.size(2) * a.size(3)), k(w.size(1)),
        w_image_stride(w.size(0) == 1 ? 0 : w.size(1) * a.size(2) * a.size(3)) {}
};

template <typename T>
void saliency_moments_typed(const Tensor& a, const Tensor& w, Tensor& out) {
  const MomentsGeometry g(a, w);
  const T *ap = a.data<T>(), *wp = w.data<T>();
  T* op = out.data<T>();
#pragma omp parallel for schedule(static) if (g.n > 1 && a.numel() >= (1 << 15))
  for (int64_t img = 0; img < g.n; ++img) {
    // Sums in double, as the reductions do: a 227x227 map sums 50k terms.
    std::vector<double> sums(g.k, 0.0);
    double total = 0.0;
    const T* ai = ap + img * g.c * g.hw;
    const T* wi = wp + img * g.w_image_stride;
    for (int64_t j = 0; j < g.hw; ++j) {
      double s = 0.0;
      for (int64_t ch = 0; ch < g.c; ++ch) s += std::abs(static_cast<double>(ai[ch * g.hw + j]));
      total += s;
      for (int64_t q = 0; q < g.k; ++q) sums[q] += s * static_cast<double>(wi[q * g.hw + j]);
    }
    T* row = op + img * (g.k + 1);
    for (int64_t q = 0; q < g.k; ++q) {
      row[q] = static_cast<T>(total != 0.0 ? sums[q] / total : 0.0);
    }
    row[g.k] = static_cast<T>(total);
  }
}

template <typename T>
void saliency_moments_backward_typed(const Tensor& grad, const Tensor& a, const Tensor& w,
                                     const Tensor& moments, Tensor& out) {
  const MomentsGeometry g(a, w);
  const int k = static_cast<int>(g.k);
  const T *gp = grad.data<T>(), *ap = a.data<T>(), *wp = w.data<T>(), *mp = moments.data<T>();
  T* op = out.data<T>();
  const fn::SaliencyMomentsGrad f;
#pragma omp parallel for schedule(static) if (out.numel() >= (1 << 15))
  for (int64_t pl = 0; pl < g.n * g.c; ++pl) {
    const int64_t img = pl / g.c;
    const T* gi = gp + img * (k + 1);
    const T* mi = mp + img * (k + 1);
    const T* wi = wp + img * g.w_image_stride;
    const T* ai = ap + pl * g.hw;
    T* oi = op + pl * g.hw;
    for (int64_t j = 0; j < g.hw; ++j) oi[j] = f(ai[j], wi + j, g.hw, mi, gi, k, mi[k], gi[k]);
  }
}

}  // namespace

void CpuBackend::attack_step(const Tensor& x, const Tensor& d, const Tensor& x0,
                             const AttackStepParams& p, Tensor& out) {
  const Tensor xc = dense(x), dc = dense(d), x0c = dense(x0);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cpu attack_step",
                         [&] { attack_step_typed<scalar_t>(xc, dc, x0c, p, out); });
}

void CpuBackend::saliency_moments(const Tensor& a, const Tensor& w, Tensor& out) {
  const Tensor ac = dense(a), wc = dense(w);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cpu saliency_moments",
                         [&] { saliency_moments_typed<scalar_t>(ac, wc, out); });
}

void CpuBackend::saliency_moments_backward(const Tensor& grad, const Tensor& a, const Tensor& w,
                                           const Tensor& moments, Tensor& out) {
  const Tensor gc = dense(grad), ac = dense(a), wc = dense(w), mc = dense(moments);
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "cpu saliency_moments_backward", [&] {
    saliency_moments_backward_typed<scalar_t>(gc, ac, wc, mc, out);
  });
}

}  // namespace fragile::cpu
