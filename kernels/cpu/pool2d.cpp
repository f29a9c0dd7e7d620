// 2-D max and average pooling on the CPU, with PyTorch's semantics.
//
// Shapes (NCHW, row-major):
//   x        [N, C, H, W]      input; a "plane" is one (n, c) image of H*W values
//   out      [N, C, Ho, Wo]    Ho = pool_out_size(H, KH, sh, ph, ceil_mode), Wo likewise
//   indices  [N, C, Ho, Wo]    int64, flat h*W + w of each window's maximum in its plane
//   grad     [N, C, Ho, Wo]    dL/d(out) in the backward kernels
//   KH, KW = window, sh, sw = stride, ph, pw = padding.
//
// Window (oh, ow) covers input rows [oh*sh - ph, oh*sh - ph + KH) clipped to the input, and
// likewise for columns. Padding is implicit: it never wins a max, and in an average it counts
// as zeros only when count_include_pad. PyTorch's average divisor is the window clipped to the
// *padded* input (count_include_pad) or to the input (otherwise); with ceil_mode a window may
// hang past the padding, and that overhang never counts.
//
// Every kernel works plane by plane; planes are independent, so `omp parallel for` over the
// N*C planes needs no synchronisation (the scatter writes only into its own plane).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/loops.h"

namespace fragile::cpu {
namespace {

struct PoolGeom {
  int64_t planes;  // N * C
  int64_t H, W, Ho, Wo;
  int64_t KH, KW, sh, sw, ph, pw;
  int64_t HW() const { return H * W; }
  int64_t HoWo() const { return Ho * Wo; }
};

PoolGeom make_geom(const Shape& x, const Shape& y, const Pool2dParams& p, const char* what) {
  FRAGILE_CHECK(x.size() == 4 && y.size() == 4, what, ": expected 4-d input and output, got ",
                shape_str(x), " and ", shape_str(y));
  PoolGeom g{};
  g.planes = x[0] * x[1];
  g.H = x[2]; g.W = x[3];
  g.KH = p.kernel[0]; g.KW = p.kernel[1];
  g.sh = p.stride[0]; g.sw = p.stride[1];
  g.ph = p.padding[0]; g.pw = p.padding[1];
  g.Ho = pool_out_size(g.H, g.KH, g.sh, g.ph, p.ceil_mode);
  g.Wo = pool_out_size(g.W, g.KW, g.sw, g.pw, p.ceil_mode);
  FRAGILE_CHECK(y[0] == x[0] && y[1] == x[1] && y[2] == g.Ho && y[3] == g.Wo, what,
                ": pooled shape ", shape_str(y), " does not match input ", shape_str(x),
                " (expected [", x[0], ", ", x[1], ", ", g.Ho, ", ", g.Wo, "])");
  return g;
}

// The kernels index raw memory, so they read contiguous tensors; a strided view is copied.
Tensor contiguous(const Tensor& t) { return t.is_contiguous() ? t : t.clone_data(); }

// The clipped window of output position o along one axis: input range [lo, hi), plus the
// average-pool divisor extent `padded` (the window clipped to the padded input).
struct Span {
  int64_t lo, hi, padded;
};
inline Span window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t in) {
  const int64_t start = o * stride - pad;
  const int64_t end = std::min(start + k, in + pad);
  return {std::max<int64_t>(start, 0), std::min(end, in), end - start};
}

template <typename T>
void max_pool_impl(const Tensor& x_in, Tensor& out, Tensor& indices, const PoolGeom& g) {
  const Tensor x = contiguous(x_in);
  const T* xp = x.data<T>();
  T* op = out.data<T>();
  int64_t* ip = indices.data<int64_t>();
#pragma omp parallel for schedule(static) if (g.planes * g.HW() >= kParallelGrain)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    const T* plane = xp + pl * g.HW();
    T* o = op + pl * g.HoWo();
    int64_t* id = ip + pl * g.HoWo();
    for (int64_t oh = 0; oh < g.Ho; ++oh) {
      const Span hs = window(oh, g.sh, g.ph, g.KH, g.H);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const Span ws = window(ow, g.sw, g.pw, g.KW, g.W);
        // Padding is never a candidate: only in-range taps are scanned. pool_out_size
        // guarantees every window holds at least one of them.
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_i = hs.lo * g.W + ws.lo;
        bool found_nan = false;
        for (int64_t h = hs.lo; h < hs.hi && !found_nan; ++h) {
          for (int64_t w = ws.lo; w < ws.hi; ++w) {
            const T v = plane[h * g.W + w];
            // Strict '>' keeps the first maximum on ties. NaN propagates as the maximum (as
            // in PyTorch); the first NaN ends the scan since nothing can beat it.
            if (v > best || std::isnan(v)) {
              best = v;
              best_i = h * g.W + w;
              if (std::isnan(v)) {
                found_nan = true;
                break;
              }
            }
          }
        }
        o[oh * g.Wo + ow] = best;
        id[oh * g.Wo + ow] = best_i;
      }
    }
  }
}

// Whether flat index k of the input plane lies in pooled element (oh, ow)'s window. The CUDA
// scatter sums each pixel over the windows that cover it, so an index outside its window would
// be dropped there: the reference refuses it.
bool in_window(int64_t k, int64_t oh, int64_t ow, const PoolGeom& g) {
  const int64_t h = k / g.W, w = k % g.W, h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  return h >= h0 && h < h0 + g.KH && w >= w0 && w < w0 + g.KW;
}

// out [N, C, H, W] = 0; out.plane[idx] += grad for each pooled position, in ascending
// position. Returns false when an index lies outside its plane or its window (checked after the
// parallel loop: no throwing inside it).
template <typename T>
bool scatter_impl(const Tensor& grad_in, const Tensor& idx_in, Tensor& out, const PoolGeom& g) {
  const Tensor grad = contiguous(grad_in), idx = contiguous(idx_in);
  const T* gp = grad.data<T>();
  const int64_t* ip = idx.data<int64_t>();
  T* op = out.data<T>();
  const int64_t HW = g.HW(), HoWo = g.HoWo();
  bool ok = true;
#pragma omp parallel for schedule(static) reduction(&& : ok) if (g.planes * HW >= kParallelGrain)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    T* o = op + pl * HW;
    std::fill(o, o + HW, T(0));
    const T* gr = gp + pl * HoWo;
    const int64_t* id = ip + pl * HoWo;
    for (int64_t i = 0; i < HoWo; ++i) {
      const int64_t k = id[i];
      if (k < 0 || k >= HW || !in_window(k, i / g.Wo, i % g.Wo, g)) {
        ok = false;
        continue;
      }
      // Overlapping windows (stride < kernel) can pick the same pixel: hence +=, not =.
      o[k] += gr[i];
    }
  }
  return ok;
}

template <typename T>
bool gather_impl(const Tensor& x_in, const Tensor& idx_in, Tensor& out, int64_t planes,
                 int64_t HW, int64_t HoWo) {
  const Tensor x = contiguous(x_in), idx = contiguous(idx_in);
  const T* xp = x.data<T>();
  const int64_t* ip = idx.data<int64_t>();
  T* op = out.data<T>();
  bool ok = true;
#pragma omp parallel for schedule(static) reduction(&& : ok) if (planes * HW >= kParallelGrain)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* plane = xp + pl * HW;
    const int64_t* id = ip + pl * HoWo;
    T* o = op + pl * HoWo;
    for (int64_t i = 0; i < HoWo; ++i) {
      const int64_t k = id[i];
      if (k < 0 || k >= HW) {
        ok = false;
        o[i] = T(0);
        continue;
      }
      o[i] = plane[k];
    }
  }
  return ok;
}

template <typename T>
void avg_pool_impl(const Tensor& x_in, Tensor& out, const PoolGeom& g, bool count_include_pad) {
  const Tensor x = contiguous(x_in);
  const T* xp = x.data<T>();
  T* op = out.data<T>();
#pragma omp parallel for schedule(static) if (g.planes * g.HW() >= kParallelGrain)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    const T* plane = xp + pl * g.HW();
    T* o = op + pl * g.HoWo();
    for (int64_t oh = 0; oh < g.Ho; ++oh) {
      const Span hs = window(oh, g.sh, g.ph, g.KH, g.H);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const Span ws = window(ow, g.sw, g.pw, g.KW, g.W);
        const int64_t count = count_include_pad ? hs.padded * ws.padded
                                                : (hs.hi - hs.lo) * (ws.hi - ws.lo);
        T sum = 0;
        for (int64_t h = hs.lo; h < hs.hi; ++h)
          for (int64_t w = ws.lo; w < ws.hi; ++w) sum += plane[h * g.W + w];
        // count > 0: pool_out_size guarantees each window overlaps the input.
        o[oh * g.Wo + ow] = count > 0 ? sum / static_cast<T>(count) : T(0);
      }
    }
  }
}

// The adjoint of avg_pool: each grad value is spread evenly (1/count) over its window's
// in-range pixels, with the same divisor as the forward.
template <typename T>
void avg_pool_backward_impl(const Tensor& grad_in, Tensor& out, const PoolGeom& g,
                            bool count_include_pad) {
  const Tensor grad = contiguous(grad_in);
  const T* gp = grad.data<T>();
  T* op = out.data<T>();
#pragma omp parallel for schedule(static) if (g.planes * g.HW() >= kParallelGrain)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    T* plane = op + pl * g.HW();
    std::fill(plane, plane + g.HW(), T(0));
    const T* gr = gp + pl * g.HoWo();
    for (int64_t oh = 0; oh < g.Ho; ++oh) {
      const Span hs = window(oh, g.sh, g.ph, g.KH, g.H);
      for (int64_t ow = 0; ow < g.Wo; ++ow) {
        const Span ws = window(ow, g.sw, g.pw, g.KW, g.W);
        const int64_t count = count_include_pad ? hs.padded * ws.padded
                                                : (hs.hi - hs.lo) * (ws.hi - ws.lo);
        if (count <= 0) continue;
        const T share = gr[oh * g.Wo + ow] / static_cast<T>(count);
        for (int64_t h = hs.lo; h < hs.hi; ++h)
          for (int64_t w = ws.lo; w < ws.hi; ++w) plane[h * g.W + w] += share;
      }
    }
  }
}

// Shapes of the scatter/gather pair: `full` [N, C, H, W] and `pooled` [N, C, Ho, Wo].
void check_plane_pair(const Tensor& full, const Tensor& pooled, const Tensor& indices,
                      const char* what) {
  FRAGILE_CHECK(full.dim() == 4 && pooled.dim() == 4 && indices.shape() == pooled.shape() &&
                    full.size(0) == pooled.size(0) && full.size(1) == pooled.size(1),
                what, ": expected full [N,C,H,W], pooled and indices [N,C,Ho,Wo]; got ",
                shape_str(full.shape()), ", ", shape_str(pooled.shape()), ", ",
                shape_str(indices.shape()));
  FRAGILE_CHECK(indices.dtype() == DType::Int64, what, ": indices must be int64, got ",
                dtype_name(indices.dtype()));
}

void check_same_float(const Tensor& a, const Tensor& out, const char* what) {
  FRAGILE_CHECK(a.dtype() == out.dtype(), what, ": dtypes disagree: ", dtype_name(a.dtype()),
                " -> ", dtype_name(out.dtype()));
  FRAGILE_CHECK(out.is_contiguous(), what, ": out must be contiguous");
}

}  // namespace

void CpuBackend::max_pool2d(const Tensor& x, Tensor& out, Tensor& indices,
                            const Pool2dParams& p) {
  check_same_float(x, out, "max_pool2d");
  FRAGILE_CHECK(indices.dtype() == DType::Int64 && indices.shape() == out.shape() &&
                    indices.is_contiguous(),
                "max_pool2d: indices must be contiguous int64 of shape ", shape_str(out.shape()));
  const PoolGeom g = make_geom(x.shape(), out.shape(), p, "max_pool2d");
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "max_pool2d",
                         [&] { max_pool_impl<scalar_t>(x, out, indices, g); });
}

void CpuBackend::max_pool2d_scatter(const Tensor& grad, const Tensor& indices,
                                    const Pool2dParams& p, Tensor& out) {
  check_same_float(grad, out, "max_pool2d_scatter");
  check_plane_pair(out, grad, indices, "max_pool2d_scatter");
  const PoolGeom g = make_geom(out.shape(), grad.shape(), p, "max_pool2d_scatter");
  const bool ok = FRAGILE_DISPATCH_FLOAT(out.dtype(), "max_pool2d_scatter",
                                         [&] { return scatter_impl<scalar_t>(grad, indices, out, g); });
  FRAGILE_CHECK(ok, "max_pool2d_scatter: an index lies outside its pooling window (", p.kernel[0],
                "x", p.kernel[1], " stride ", p.stride[0], "x", p.stride[1], " padding ",
                p.padding[0], "x", p.padding[1], ") in the ", out.size(2), "x", out.size(3),
                " plane");
}

void CpuBackend::max_pool2d_gather(const Tensor& x, const Tensor& indices, Tensor& out) {
  check_same_float(x, out, "max_pool2d_gather");
  check_plane_pair(x, out, indices, "max_pool2d_gather");
  const int64_t planes = x.size(0) * x.size(1);
  const int64_t HW = x.size(2) * x.size(3), HoWo = out.size(2) * out.size(3);
  const bool ok = FRAGILE_DISPATCH_FLOAT(out.dtype(), "max_pool2d_gather", [&] {
    return gather_impl<scalar_t>(x, indices, out, planes, HW, HoWo);
  });
  FRAGILE_CHECK(ok, "max_pool2d_gather: an index lies outside its ", x.size(2), "x", x.size(3),
                " plane");
}

void CpuBackend::avg_pool2d(const Tensor& x, Tensor& out, const Pool2dParams& p) {
  check_same_float(x, out, "avg_pool2d");
  const PoolGeom g = make_geom(x.shape(), out.shape(), p, "avg_pool2d");
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "avg_pool2d",
                         [&] { avg_pool_impl<scalar_t>(x, out, g, p.count_include_pad); });
}

void CpuBackend::avg_pool2d_backward(const Tensor& grad, Tensor& out, const Pool2dParams& p) {
  check_same_float(grad, out, "avg_pool2d_backward");
  const PoolGeom g = make_geom(out.shape(), grad.shape(), p, "avg_pool2d_backward");
  FRAGILE_DISPATCH_FLOAT(out.dtype(), "avg_pool2d_backward", [&] {
    avg_pool_backward_impl<scalar_t>(grad, out, g, p.count_include_pad);
  });
}

}  // namespace fragile::cpu
