// 2-D convolution (cross-correlation, as in PyTorch) on the CPU: im2col + Eigen GEMM.
//
// Shapes (NCHW, row-major):
//   x    [N, C_in, H, W]             input images
//   w    [C_out, C_in/G, KH, KW]     weights; G = groups, Cg = C_in/G, Og = C_out/G
//   out  [N, C_out, Ho, Wo]          Ho = conv_out_size(H, KH, sh, ph, dh), Wo likewise
//   grad [N, C_out, Ho, Wo]          dL/d(out) in the backward kernels
//   col  [Cg*KH*KW, Ho*Wo]           im2col matrix of one image and one group; row
//                                    (c*KH + kh)*KW + kw matches w's flattened [Og, Cg*KH*KW]
//
// For image n and group g:
//   forward:         out[n,g]  (Og x HoWo)   = w[g] (Og x CgKK)  * col(x[n,g])
//   backward input:  dx[n,g]                 = col2im( w[g]^T * grad[n,g] )
//   backward weight: dw[g]     (Og x CgKK)  += grad[n,g] * col(x[n,g])^T     summed over n
// col2im is the adjoint of im2col (it sums overlapping taps), so backward input is exactly the
// transpose of forward.
//
// Fast path: a 1x1 kernel with stride 1 and no padding reads each pixel once in place, so the
// image plane [Cg, H*W] already is the column matrix; dilation has no effect on a 1x1 kernel.
//
// Parallelism: the work items are (image, group) pairs. With at least as many items as OpenMP
// threads, each thread takes whole items with its own column buffer (single-threaded GEMMs);
// otherwise items run in order and each GEMM is split over the threads (parallel_gemm.h). Backward weight accumulates over images, so parallel items write
// per-thread partial sums that are added at the end.
#include <Eigen/Core>
#include <algorithm>
#include <cstring>
#include <omp.h>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"
#include "kernels/cpu/parallel_gemm.h"

namespace fragile::cpu {
namespace {

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using MapC = Eigen::Map<const RowMat<T>>;
template <typename T>
using MapM = Eigen::Map<RowMat<T>>;

struct ConvGeom {
  int64_t N, C_in, H, W;
  int64_t C_out, KH, KW;
  int64_t Ho, Wo;
  int64_t G, Cg, Og;
  int64_t sh, sw, ph, pw, dh, dw;
  int64_t HW() const { return H * W; }
  int64_t HoWo() const { return Ho * Wo; }
  int64_t CgKK() const { return Cg * KH * KW; }
  bool pointwise() const { return KH == 1 && KW == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0; }
  int64_t items() const { return N * G; }
};

// Shapes are checked by the ops layer; the kernel re-checks cheaply so a bug there is one
// clear error instead of out-of-bounds memory.
ConvGeom make_geom(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p,
                   const char* what) {
  FRAGILE_CHECK(x.size() == 4 && w.size() == 4 && y.size() == 4, what,
                ": expected 4-d x, w, out; got ", shape_str(x), ", ", shape_str(w), ", ",
                shape_str(y));
  ConvGeom g{};
  g.N = x[0]; g.C_in = x[1]; g.H = x[2]; g.W = x[3];
  g.C_out = w[0]; g.KH = w[2]; g.KW = w[3];
  g.G = p.groups;
  g.sh = p.stride[0]; g.sw = p.stride[1];
  g.ph = p.padding[0]; g.pw = p.padding[1];
  g.dh = p.dilation[0]; g.dw = p.dilation[1];
  FRAGILE_CHECK(g.G >= 1 && g.C_in % g.G == 0 && g.C_out % g.G == 0, what, ": groups (", g.G,
                ") must divide C_in (", g.C_in, ") and C_out (", g.C_out, ")");
  g.Cg = g.C_in / g.G;
  g.Og = g.C_out / g.G;
  FRAGILE_CHECK(w[1] == g.Cg, what, ": weight ", shape_str(w), " expects C_in/groups = ", w[1],
                ", input ", shape_str(x), " with groups ", g.G, " gives ", g.Cg);
  g.Ho = conv_out_size(g.H, g.KH, g.sh, g.ph, g.dh);
  g.Wo = conv_out_size(g.W, g.KW, g.sw, g.pw, g.dw);
  FRAGILE_CHECK(y[0] == g.N && y[1] == g.C_out && y[2] == g.Ho && y[3] == g.Wo, what,
                ": output ", shape_str(y), " does not match [", g.N, ", ", g.C_out, ", ", g.Ho,
                ", ", g.Wo, "]");
  return g;
}

// The kernels index raw memory, so they read contiguous tensors; a strided view is copied.
Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : t.clone_data(); }

// Output positions o in [0, out) whose input position o*stride + off lies in [0, in):
// the range [lo, hi). Hoisting it out of the inner loop leaves that loop branch-free.
inline void valid_range(int64_t off, int64_t stride, int64_t in, int64_t out, int64_t& lo,
                        int64_t& hi) {
  lo = off >= 0 ? 0 : (-off + stride - 1) / stride;
  hi = in - 1 - off >= 0 ? (in - 1 - off) / stride + 1 : 0;
  hi = std::min(hi, out);
  lo = std::min(lo, hi);
}

// col [CgKK, HoWo] from one image-group slab x [Cg, H, W]; padding reads as zero.
template <typename T>
void im2col(const T* x, const ConvGeom& g, T* col) {
  const int64_t HoWo = g.HoWo();
  for (int64_t c = 0; c < g.Cg; ++c) {
    const T* plane = x + c * g.HW();
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t off_h = kh * g.dh - g.ph;
      int64_t oh_lo, oh_hi;
      valid_range(off_h, g.sh, g.H, g.Ho, oh_lo, oh_hi);
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t off_w = kw * g.dw - g.pw;
        int64_t ow_lo, ow_hi;
        valid_range(off_w, g.sw, g.W, g.Wo, ow_lo, ow_hi);
        T* row = col + ((c * g.KH + kh) * g.KW + kw) * HoWo;
        for (int64_t oh = 0; oh < g.Ho; ++oh) {
          T* r = row + oh * g.Wo;
          if (oh < oh_lo || oh >= oh_hi) {
            std::fill(r, r + g.Wo, T(0));
            continue;
          }
          const T* src = plane + (oh * g.sh + off_h) * g.W + off_w;
          std::fill(r, r + ow_lo, T(0));
          if (g.sw == 1) {
            std::copy(src + ow_lo, src + ow_hi, r + ow_lo);
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) r[ow] = src[ow * g.sw];
          }
          std::fill(r + ow_hi, r + g.Wo, T(0));
        }
      }
    }
  }
}

// The adjoint of im2col: x [Cg, H, W] += scatter of col [CgKK, HoWo]; taps in padding drop.
template <typename T>
void col2im(const T* col, const ConvGeom& g, T* x) {
  const int64_t HoWo = g.HoWo();
  for (int64_t c = 0; c < g.Cg; ++c) {
    T* plane = x + c * g.HW();
    for (int64_t kh = 0; kh < g.KH; ++kh) {
      const int64_t off_h = kh * g.dh - g.ph;
      int64_t oh_lo, oh_hi;
      valid_range(off_h, g.sh, g.H, g.Ho, oh_lo, oh_hi);
      for (int64_t kw = 0; kw < g.KW; ++kw) {
        const int64_t off_w = kw * g.dw - g.pw;
        int64_t ow_lo, ow_hi;
        valid_range(off_w, g.sw, g.W, g.Wo, ow_lo, ow_hi);
        const T* row = col + ((c * g.KH + kh) * g.KW + kw) * HoWo;
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          const T* r = row + oh * g.Wo;
          T* dst = plane + (oh * g.sh + off_h) * g.W + off_w;
          for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow * g.sw] += r[ow];
        }
      }
    }
  }
}

// Runs body(item, col_buffer, thread_index) for every (image, group) item, either spread over
// the OpenMP threads (one column buffer each) or in order with each GEMM split over the threads
// (parallel_gemm.h).
// Returns whether the items ran in parallel (backward weight then has partial sums to add).
template <typename T, typename Body>
bool for_each_item(const ConvGeom& g, bool parallel, Body&& body) {
  const int64_t col_size = g.pointwise() ? 0 : g.CgKK() * g.HoWo();
  if (parallel) {
#pragma omp parallel
    {
      std::vector<T> col(static_cast<size_t>(col_size));
      const int tid = omp_get_thread_num();
#pragma omp for schedule(static)
      for (int64_t i = 0; i < g.items(); ++i) body(i, col.data(), tid);
    }
  } else {
    std::vector<T> col(static_cast<size_t>(col_size));
    for (int64_t i = 0; i < g.items(); ++i) body(i, col.data(), 0);
  }
  return parallel;
}

bool use_item_parallelism(const ConvGeom& g) {
  const int threads = omp_get_max_threads();
  // Tiny convolutions are not worth waking the thread team (and suffer most when cores are busy).
  return threads > 1 && g.items() >= threads &&
         g.N * g.C_out * g.HoWo() * g.CgKK() >= kParallelGrain * 8;
}

template <typename T>
void conv2d_impl(const Tensor& x_in, const Tensor& w_in, Tensor& out, const ConvGeom& g) {
  const Tensor x = contiguous(x_in), w = contiguous(w_in);
  const T* xp = x.data<T>();
  const T* wp = w.data<T>();
  T* op = out.data<T>();
  for_each_item<T>(g, use_item_parallelism(g), [&](int64_t i, T* col, int) {
    const int64_t n = i / g.G, gi = i % g.G;
    const T* xs = xp + (n * g.C_in + gi * g.Cg) * g.HW();
    MapC<T> Wg(wp + gi * g.Og * g.CgKK(), g.Og, g.CgKK());
    MapM<T> Y(op + (n * g.C_out + gi * g.Og) * g.HoWo(), g.Og, g.HoWo());
    if (g.pointwise()) {
      parallel_gemm(Y, Wg, MapC<T>(xs, g.Cg, g.HW()));
    } else {
      im2col(xs, g, col);
      parallel_gemm(Y, Wg, MapC<T>(col, g.CgKK(), g.HoWo()));
    }
  });
}

template <typename T>
void conv2d_backward_input_impl(const Tensor& grad_in, const Tensor& w_in, Tensor& out,
                                const ConvGeom& g) {
  const Tensor grad = contiguous(grad_in), w = contiguous(w_in);
  const T* gp = grad.data<T>();
  const T* wp = w.data<T>();
  T* op = out.data<T>();
  for_each_item<T>(g, use_item_parallelism(g), [&](int64_t i, T* col, int) {
    const int64_t n = i / g.G, gi = i % g.G;
    MapC<T> Wg(wp + gi * g.Og * g.CgKK(), g.Og, g.CgKK());
    MapC<T> Gr(gp + (n * g.C_out + gi * g.Og) * g.HoWo(), g.Og, g.HoWo());
    T* dx = op + (n * g.C_in + gi * g.Cg) * g.HW();
    if (g.pointwise()) {
      parallel_gemm(MapM<T>(dx, g.Cg, g.HW()), Wg.transpose(), Gr);
    } else {
      parallel_gemm(MapM<T>(col, g.CgKK(), g.HoWo()), Wg.transpose(), Gr);
      // Each item owns its [Cg, H, W] slab of dx, so zeroing and accumulating need no locks.
      std::fill(dx, dx + g.Cg * g.HW(), T(0));
      col2im(col, g, dx);
    }
  });
}

template <typename T>
void conv2d_backward_weight_impl(const Tensor& x_in, const Tensor& grad_in, Tensor& out,
                                 const ConvGeom& g) {
  const Tensor x = contiguous(x_in), grad = contiguous(grad_in);
  const T* xp = x.data<T>();
  const T* gp = grad.data<T>();
  T* op = out.data<T>();
  const int64_t wsize = g.C_out * g.CgKK();
  std::fill(op, op + wsize, T(0));

  const bool parallel = use_item_parallelism(g);
  // Parallel items of different images add into the same dw[g]: each thread sums into its own
  // copy of dw, and the copies are added once at the end (deterministic for a fixed thread
  // count, unlike atomics).
  std::vector<std::vector<T>> partial;
  if (parallel) partial.resize(static_cast<size_t>(omp_get_max_threads()));

  for_each_item<T>(g, parallel, [&](int64_t i, T* col, int tid) {
    const int64_t n = i / g.G, gi = i % g.G;
    T* acc = op;
    if (parallel) {
      auto& mine = partial[static_cast<size_t>(tid)];
      if (mine.empty()) mine.assign(static_cast<size_t>(wsize), T(0));
      acc = mine.data();
    }
    MapM<T> dWg(acc + gi * g.Og * g.CgKK(), g.Og, g.CgKK());
    MapC<T> Gr(gp + (n * g.C_out + gi * g.Og) * g.HoWo(), g.Og, g.HoWo());
    const T* xs = xp + (n * g.C_in + gi * g.Cg) * g.HW();
    if (g.pointwise()) {
      parallel_gemm(dWg, Gr, MapC<T>(xs, g.Cg, g.HW()).transpose(), /*accumulate=*/true);
    } else {
      im2col(xs, g, col);
      parallel_gemm(dWg, Gr, MapC<T>(col, g.CgKK(), g.HoWo()).transpose(), /*accumulate=*/true);
    }
  });

  if (parallel) {
    for (const auto& part : partial) {
      if (part.empty()) continue;
#pragma omp parallel for schedule(static)
      for (int64_t j = 0; j < wsize; ++j) op[j] += part[static_cast<size_t>(j)];
    }
  }
}

void check_float_io(const Tensor& a, const Tensor& b, const Tensor& out, const char* what) {
  FRAGILE_CHECK(a.dtype() == out.dtype() && b.dtype() == out.dtype(), what,
                ": dtypes disagree: ", dtype_name(a.dtype()), ", ", dtype_name(b.dtype()),
                " -> ", dtype_name(out.dtype()));
  FRAGILE_CHECK(out.is_contiguous(), what, ": out must be contiguous");
}

}  // namespace

void CpuBackend::conv2d(const Tensor& x, const Tensor& w, Tensor& out, const Conv2dParams& p) {
  check_float_io(x, w, out, "conv2d");
  const ConvGeom g = make_geom(x.shape(), w.shape(), out.shape(), p, "conv2d");
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "conv2d",
                         [&] { conv2d_impl<scalar_t>(x, w, out, g); });
}

void CpuBackend::conv2d_backward_input(const Tensor& grad, const Tensor& w, Tensor& out,
                                       const Conv2dParams& p) {
  check_float_io(grad, w, out, "conv2d_backward_input");
  const ConvGeom g = make_geom(out.shape(), w.shape(), grad.shape(), p, "conv2d_backward_input");
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "conv2d_backward_input",
                         [&] { conv2d_backward_input_impl<scalar_t>(grad, w, out, g); });
}

void CpuBackend::conv2d_backward_weight(const Tensor& x, const Tensor& grad, Tensor& out,
                                        const Conv2dParams& p) {
  check_float_io(x, grad, out, "conv2d_backward_weight");
  const ConvGeom g = make_geom(x.shape(), out.shape(), grad.shape(), p, "conv2d_backward_weight");
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "conv2d_backward_weight",
                         [&] { conv2d_backward_weight_impl<scalar_t>(x, grad, out, g); });
}

}  // namespace fragile::cpu
