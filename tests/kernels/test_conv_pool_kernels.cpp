// The CPU backend's GEMM, convolution and pooling kernels, called directly (no autograd),
// against naive direct-loop references written here, in float64 with tolerance 1e-10.
// Backward kernels are also checked as adjoints of their forwards:
//   <conv(x, w), g> == <x, conv_bwd_input(g, w)> == <w, conv_bwd_weight(x, g)>.
//
// Shapes: x [N, C, H, W], w [C_out, C_in/G, KH, KW], out / grad [N, C_out, Ho, Wo].
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "kernels/cuda/conv2d_direct.h"
#include "core/tensor.h"

namespace fragile {
namespace {

constexpr double kTol = 1e-10;

Tensor randn64(const Shape& s, std::mt19937_64& rng) {
  return Tensor::randn(s, rng, DType::Float64);
}

double dot(const Tensor& a, const Tensor& b) {
  const auto va = a.to_vector(), vb = b.to_vector();
  EXPECT_EQ(va.size(), vb.size());
  double s = 0;
  for (size_t i = 0; i < va.size(); ++i) s += va[i] * vb[i];
  return s;
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want,
                     double tol, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << what << " at " << i;
  }
}

// Element (i0, i1, i2, i3) of a contiguous 4-d shape.
inline int64_t at4(const Shape& s, int64_t a, int64_t b, int64_t c, int64_t d) {
  return ((a * s[1] + b) * s[2] + c) * s[3] + d;
}

// ---- convolution ------------------------------------------------------------------------

Shape conv_out_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  return {x[0], w[0], conv_out_size(x[2], w[2], p.stride[0], p.padding[0], p.dilation[0]),
          conv_out_size(x[3], w[3], p.stride[1], p.padding[1], p.dilation[1])};
}

// Direct definition: out[n,o,oh,ow] = sum_{c,kh,kw} x[n, g*Cg+c, ih, iw] * w[o, c, kh, kw],
// ih = oh*sh - ph + kh*dh (zero outside the image), g = o / Og.
std::vector<double> naive_conv(const Tensor& x, const Tensor& w, const Conv2dParams& p) {
  const Shape xs = x.shape(), ws = w.shape(), ys = conv_out_shape(xs, ws, p);
  const auto xv = x.to_vector(), wv = w.to_vector();
  std::vector<double> y(numel_of(ys), 0.0);
  const int64_t Cg = xs[1] / p.groups, Og = ws[0] / p.groups;
  for (int64_t n = 0; n < ys[0]; ++n)
    for (int64_t o = 0; o < ys[1]; ++o)
      for (int64_t oh = 0; oh < ys[2]; ++oh)
        for (int64_t ow = 0; ow < ys[3]; ++ow) {
          double s = 0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t kh = 0; kh < ws[2]; ++kh)
              for (int64_t kw = 0; kw < ws[3]; ++kw) {
                const int64_t ih = oh * p.stride[0] - p.padding[0] + kh * p.dilation[0];
                const int64_t iw = ow * p.stride[1] - p.padding[1] + kw * p.dilation[1];
                if (ih < 0 || ih >= xs[2] || iw < 0 || iw >= xs[3]) continue;
                s += xv[at4(xs, n, (o / Og) * Cg + c, ih, iw)] * wv[at4(ws, o, c, kh, kw)];
              }
          y[at4(ys, n, o, oh, ow)] = s;
        }
  return y;
}

struct ConvCase {
  Shape x, w;
  Conv2dParams p;
};

Conv2dParams conv_params(std::array<int64_t, 2> s, std::array<int64_t, 2> pad,
                         std::array<int64_t, 2> d, int64_t g) {
  Conv2dParams p;
  p.stride = s;
  p.padding = pad;
  p.dilation = d;
  p.groups = g;
  return p;
}

std::vector<ConvCase> conv_cases() {
  return {
      // The brief's case: stride 2, padding 1, dilation 2, groups 2; N=3 takes the
      // parallel-over-(image, group) path, N=1 the sequential one.
      {{3, 4, 9, 8}, {6, 2, 3, 3}, conv_params({2, 2}, {1, 1}, {2, 2}, 2)},
      {{1, 4, 9, 8}, {6, 2, 3, 3}, conv_params({2, 2}, {1, 1}, {2, 2}, 2)},
      // Asymmetric everything, to catch H/W mix-ups.
      {{2, 3, 7, 10}, {5, 3, 2, 3}, conv_params({1, 3}, {2, 0}, {3, 1}, 1)},
      // Depthwise.
      {{2, 4, 6, 6}, {4, 1, 3, 3}, conv_params({1, 1}, {1, 1}, {1, 1}, 4)},
      // 1x1 fast path (dilation is irrelevant for a 1x1 kernel), with and without groups.
      {{3, 6, 5, 4}, {8, 6, 1, 1}, conv_params({1, 1}, {0, 0}, {1, 1}, 1)},
      {{1, 6, 5, 4}, {4, 3, 1, 1}, conv_params({1, 1}, {0, 0}, {2, 2}, 2)},
      // 1x1 but strided / padded: must take the im2col path.
      {{2, 3, 5, 5}, {4, 3, 1, 1}, conv_params({2, 2}, {1, 0}, {1, 1}, 1)},
      // Kernel as large as the padded input (Ho = Wo = 1).
      {{2, 2, 3, 3}, {3, 2, 5, 5}, conv_params({1, 1}, {1, 1}, {1, 1}, 1)},
  };
}

TEST(ConvPoolKernels, Conv2dMatchesNaive) {
  std::mt19937_64 rng(1);
  for (const auto& c : conv_cases()) {
    Tensor x = randn64(c.x, rng), w = randn64(c.w, rng);
    Tensor y = Tensor::empty(conv_out_shape(c.x, c.w, c.p), DType::Float64);
    cpu_backend().conv2d(x, w, y, c.p);
    expect_near_all(y.to_vector(), naive_conv(x, w, c.p), kTol, "conv2d");
  }
}

TEST(ConvPoolKernels, Conv2dBackwardsAreAdjoints) {
  std::mt19937_64 rng(2);
  for (const auto& c : conv_cases()) {
    Tensor x = randn64(c.x, rng), w = randn64(c.w, rng);
    const Shape ys = conv_out_shape(c.x, c.w, c.p);
    Tensor g = randn64(ys, rng);
    Tensor y = Tensor::empty(ys, DType::Float64);
    Tensor dx = Tensor::full(c.x, 7.0, DType::Float64);  // stale values must be overwritten
    Tensor dw = Tensor::full(c.w, 7.0, DType::Float64);
    cpu_backend().conv2d(x, w, y, c.p);
    cpu_backend().conv2d_backward_input(g, w, dx, c.p);
    cpu_backend().conv2d_backward_weight(x, g, dw, c.p);
    const double yg = dot(y, g);
    EXPECT_NEAR(dot(x, dx), yg, kTol * (1 + std::abs(yg)));
    EXPECT_NEAR(dot(w, dw), yg, kTol * (1 + std::abs(yg)));

    // Adjointness on one random pair is a single scalar identity; pin each backward
    // entry-wise too, against the direct formulas.
    const auto xv = x.to_vector(), wv = w.to_vector(), gv = g.to_vector();
    std::vector<double> dx_ref(xv.size(), 0.0), dw_ref(wv.size(), 0.0);
    const int64_t Cg = c.x[1] / c.p.groups, Og = c.w[0] / c.p.groups;
    for (int64_t n = 0; n < ys[0]; ++n)
      for (int64_t o = 0; o < ys[1]; ++o)
        for (int64_t oh = 0; oh < ys[2]; ++oh)
          for (int64_t ow = 0; ow < ys[3]; ++ow)
            for (int64_t ci = 0; ci < Cg; ++ci)
              for (int64_t kh = 0; kh < c.w[2]; ++kh)
                for (int64_t kw = 0; kw < c.w[3]; ++kw) {
                  const int64_t ih = oh * c.p.stride[0] - c.p.padding[0] + kh * c.p.dilation[0];
                  const int64_t iw = ow * c.p.stride[1] - c.p.padding[1] + kw * c.p.dilation[1];
                  if (ih < 0 || ih >= c.x[2] || iw < 0 || iw >= c.x[3]) continue;
                  const int64_t xi = at4(c.x, n, (o / Og) * Cg + ci, ih, iw);
                  const int64_t wi = at4(c.w, o, ci, kh, kw);
                  const double gg = gv[at4(ys, n, o, oh, ow)];
                  dx_ref[xi] += gg * wv[wi];
                  dw_ref[wi] += gg * xv[xi];
                }
    expect_near_all(dx.to_vector(), dx_ref, kTol, "conv2d_backward_input");
    expect_near_all(dw.to_vector(), dw_ref, kTol, "conv2d_backward_weight");
  }
}

TEST(ConvPoolKernels, Conv2dReadsStridedViews) {
  std::mt19937_64 rng(3);
  const Conv2dParams p = conv_params({2, 1}, {1, 1}, {1, 2}, 1);
  // x stored as [N, H, C, W] and viewed as [N, C, H, W]: a permuted, non-contiguous input.
  const Shape xs{2, 3, 6, 7};
  Tensor store = randn64({2, 6, 3, 7}, rng);
  Tensor x = make_view(store, xs, {6 * 3 * 7, 7, 3 * 7, 1}, 0);
  ASSERT_FALSE(x.is_contiguous());
  // w and grad as every-other-element slices of larger buffers.
  const Shape wsh{4, 3, 2, 3};
  Tensor wstore = randn64({2 * numel_of(wsh)}, rng);
  Tensor w = make_view(wstore, wsh, {2 * 18, 2 * 6, 2 * 3, 2}, 1);
  const Shape ys = conv_out_shape(xs, wsh, p);
  Tensor gstore = randn64({2 * numel_of(ys)}, rng);
  Shape gstr = contiguous_strides(ys);
  for (auto& s : gstr) s *= 2;
  Tensor g = make_view(gstore, ys, gstr, 0);

  Tensor xc = x.clone_data(), wc = w.clone_data(), gc = g.clone_data();
  auto run = [&](const Tensor& xx, const Tensor& ww, const Tensor& gg) {
    Tensor y = Tensor::empty(ys, DType::Float64), dx = Tensor::empty(xs, DType::Float64),
           dw = Tensor::empty(wsh, DType::Float64);
    cpu_backend().conv2d(xx, ww, y, p);
    cpu_backend().conv2d_backward_input(gg, ww, dx, p);
    cpu_backend().conv2d_backward_weight(xx, gg, dw, p);
    return std::vector<std::vector<double>>{y.to_vector(), dx.to_vector(), dw.to_vector()};
  };
  const auto got = run(x, w, g), want = run(xc, wc, gc);
  for (size_t i = 0; i < got.size(); ++i) expect_near_all(got[i], want[i], kTol, "strided");
  expect_near_all(got[0], naive_conv(xc, wc, p), kTol, "strided vs naive");
}

TEST(ConvPoolKernels, Conv2dFloat32AgreesWithFloat64) {
  std::mt19937_64 rng(4);
  const auto cases = conv_cases();
  const auto& c = cases[0];
  Tensor x = randn64(c.x, rng), w = randn64(c.w, rng);
  const Shape ys = conv_out_shape(c.x, c.w, c.p);
  Tensor y64 = Tensor::empty(ys, DType::Float64), y32 = Tensor::empty(ys, DType::Float32);
  cpu_backend().conv2d(x, w, y64, c.p);
  cpu_backend().conv2d(x.to(DType::Float32), w.to(DType::Float32), y32, c.p);
  expect_near_all(y32.to_vector(), y64.to_vector(), 1e-5, "conv2d float32");
  Tensor g = randn64(ys, rng);
  Tensor dw64 = Tensor::empty(c.w, DType::Float64), dw32 = Tensor::empty(c.w, DType::Float32);
  cpu_backend().conv2d_backward_weight(x, g, dw64, c.p);
  cpu_backend().conv2d_backward_weight(x.to(DType::Float32), g.to(DType::Float32), dw32, c.p);
  expect_near_all(dw32.to_vector(), dw64.to_vector(), 1e-5, "conv2d_backward_weight float32");
}

TEST(ConvPoolKernels, Conv2dRejectsBadShapes) {
  Tensor x = Tensor::zeros({1, 4, 5, 5}, DType::Float64);
  Tensor w = Tensor::zeros({2, 3, 3, 3}, DType::Float64);  // C_in/groups = 3 != 4
  Tensor y = Tensor::zeros({1, 2, 3, 3}, DType::Float64);
  EXPECT_THROW(cpu_backend().conv2d(x, w, y, Conv2dParams{}), Error);
  Tensor w2 = Tensor::zeros({2, 4, 3, 3}, DType::Float64);
  Tensor y_bad = Tensor::zeros({1, 2, 4, 3}, DType::Float64);
  EXPECT_THROW(cpu_backend().conv2d(x, w2, y_bad, Conv2dParams{}), Error);
  Tensor x_int = Tensor::empty({1, 4, 5, 5}, DType::Int64);
  Tensor w_int = Tensor::empty({2, 4, 3, 3}, DType::Int64);
  Tensor y_int = Tensor::empty({1, 2, 3, 3}, DType::Int64);
  EXPECT_THROW(cpu_backend().conv2d(x_int, w_int, y_int, Conv2dParams{}), Error);
}

// ---- geometry ---------------------------------------------------------------------------

TEST(ConvPoolKernels, OutputSizesFollowPyTorch) {
  EXPECT_EQ(conv_out_size(224, 7, 2, 3, 1), 112);
  EXPECT_EQ(conv_out_size(9, 3, 2, 1, 2), 4);   // (9 + 2 - 5) / 2 + 1
  EXPECT_EQ(conv_out_size(3, 5, 1, 1, 1), 1);
  EXPECT_THROW(conv_out_size(3, 3, 1, 0, 2), Error);  // span 5 > 3
  EXPECT_THROW(conv_out_size(5, 3, 0, 0, 1), Error);
  EXPECT_EQ(pool_out_size(6, 3, 2, 0, false), 2);
  EXPECT_EQ(pool_out_size(6, 3, 2, 0, true), 3);
  EXPECT_EQ(pool_out_size(111, 3, 2, 0, true), 55);  // SqueezeNet's first max-pool
  EXPECT_EQ(pool_out_size(112, 3, 2, 0, true), 56);
  EXPECT_EQ(pool_out_size(112, 3, 2, 0, false), 55);
  // ceil_mode would add a window starting in the right padding; PyTorch drops it.
  EXPECT_EQ(pool_out_size(5, 2, 2, 1, true), 3);
  EXPECT_EQ(pool_out_size(5, 2, 2, 1, false), 3);
  EXPECT_EQ(pool_out_size(6, 3, 2, 1, true), 4);
  EXPECT_THROW(pool_out_size(5, 3, 1, 2, false), Error);  // pad > kernel / 2
  EXPECT_THROW(pool_out_size(1, 4, 1, 1, false), Error);  // kernel > padded input
}

// ---- pooling ----------------------------------------------------------------------------

Pool2dParams pool_params(std::array<int64_t, 2> k, std::array<int64_t, 2> s,
                         std::array<int64_t, 2> pad, bool ceil, bool include_pad) {
  Pool2dParams p;
  p.kernel = k;
  p.stride = s;
  p.padding = pad;
  p.ceil_mode = ceil;
  p.count_include_pad = include_pad;
  return p;
}

Shape pool_out_shape(const Shape& x, const Pool2dParams& p) {
  return {x[0], x[1], pool_out_size(x[2], p.kernel[0], p.stride[0], p.padding[0], p.ceil_mode),
          pool_out_size(x[3], p.kernel[1], p.stride[1], p.padding[1], p.ceil_mode)};
}

std::vector<Pool2dParams> pool_cases() {
  std::vector<Pool2dParams> cases;
  for (bool ceil : {false, true})
    for (bool inc : {false, true}) {
      cases.push_back(pool_params({3, 3}, {2, 2}, {1, 1}, ceil, inc));
      cases.push_back(pool_params({2, 3}, {2, 1}, {1, 0}, ceil, inc));
      cases.push_back(pool_params({3, 2}, {3, 2}, {0, 1}, ceil, inc));  // stride = kernel
      cases.push_back(pool_params({2, 2}, {1, 1}, {0, 0}, ceil, inc));  // overlapping
    }
  return cases;
}

// Window positions with PyTorch's rules, written independently of the kernel: enumerate the
// unclipped window and classify every tap as input, padding, or beyond the padding.
struct NaiveWindow {
  std::vector<std::pair<int64_t, int64_t>> taps;  // in-input (h, w), row-major order
  int64_t padded_count = 0;                       // taps within input + padding
};
NaiveWindow naive_window(int64_t oh, int64_t ow, int64_t H, int64_t W, const Pool2dParams& p) {
  NaiveWindow nw;
  for (int64_t kh = 0; kh < p.kernel[0]; ++kh)
    for (int64_t kw = 0; kw < p.kernel[1]; ++kw) {
      const int64_t h = oh * p.stride[0] - p.padding[0] + kh;
      const int64_t w = ow * p.stride[1] - p.padding[1] + kw;
      if (h < H + p.padding[0] && w < W + p.padding[1]) ++nw.padded_count;
      if (h >= 0 && h < H && w >= 0 && w < W) nw.taps.emplace_back(h, w);
    }
  return nw;
}

TEST(ConvPoolKernels, MaxPoolMatchesNaive) {
  std::mt19937_64 rng(5);
  const Shape xs{2, 3, 7, 8};
  for (const auto& p : pool_cases()) {
    Tensor x = randn64(xs, rng);
    const Shape ys = pool_out_shape(xs, p);
    Tensor y = Tensor::empty(ys, DType::Float64), idx = Tensor::empty(ys, DType::Int64);
    cpu_backend().max_pool2d(x, y, idx, p);
    const auto xv = x.to_vector();
    std::vector<double> y_ref(numel_of(ys));
    std::vector<int64_t> i_ref(numel_of(ys));
    for (int64_t pl = 0; pl < xs[0] * xs[1]; ++pl)
      for (int64_t oh = 0; oh < ys[2]; ++oh)
        for (int64_t ow = 0; ow < ys[3]; ++ow) {
          const auto nw = naive_window(oh, ow, xs[2], xs[3], p);
          ASSERT_FALSE(nw.taps.empty());
          double best = -std::numeric_limits<double>::infinity();
          int64_t bi = -1;
          for (auto [h, w] : nw.taps) {
            const double v = xv[pl * xs[2] * xs[3] + h * xs[3] + w];
            if (bi < 0 || v > best) best = v, bi = h * xs[3] + w;
          }
          y_ref[(pl * ys[2] + oh) * ys[3] + ow] = best;
          i_ref[(pl * ys[2] + oh) * ys[3] + ow] = bi;
        }
    expect_near_all(y.to_vector(), y_ref, 0.0, "max_pool2d");
    EXPECT_EQ(idx.to_int64_vector(), i_ref);

    // The gather at the argmax reproduces the pooled values.
    Tensor gathered = Tensor::empty(ys, DType::Float64);
    cpu_backend().max_pool2d_gather(x, idx, gathered);
    expect_near_all(gathered.to_vector(), y_ref, 0.0, "gather at argmax");
  }
}

TEST(ConvPoolKernels, MaxPoolTiesNegativesAndNaN) {
  // All-equal negative input: the first tap of each (clipped) window wins, never the padding
  // (whose implicit value must not be 0: every output stays -2).
  const Shape xs{1, 1, 4, 4};
  Tensor x = Tensor::full(xs, -2.0, DType::Float64);
  const auto p = pool_params({3, 3}, {2, 2}, {1, 1}, false, true);
  const Shape ys = pool_out_shape(xs, p);
  ASSERT_EQ(ys, (Shape{1, 1, 2, 2}));
  Tensor y = Tensor::empty(ys, DType::Float64), idx = Tensor::empty(ys, DType::Int64);
  cpu_backend().max_pool2d(x, y, idx, p);
  EXPECT_EQ(y.to_vector(), std::vector<double>(4, -2.0));
  // Windows start at rows/cols -1 and 1 → clipped starts 0 and 1.
  EXPECT_EQ(idx.to_int64_vector(), (std::vector<int64_t>{0, 1, 4, 5}));

  // A NaN wins its windows.
  std::vector<double> v(16);
  for (int i = 0; i < 16; ++i) v[i] = i;
  v[5] = std::numeric_limits<double>::quiet_NaN();
  Tensor xn = Tensor::from_vector(v, xs, DType::Float64);
  const auto p2 = pool_params({2, 2}, {2, 2}, {0, 0}, false, true);
  Tensor y2 = Tensor::empty({1, 1, 2, 2}, DType::Float64),
         i2 = Tensor::empty({1, 1, 2, 2}, DType::Int64);
  cpu_backend().max_pool2d(xn, y2, i2, p2);
  const auto yv = y2.to_vector();
  EXPECT_TRUE(std::isnan(yv[0]));
  EXPECT_EQ(yv[1], 7.0);
  EXPECT_EQ(yv[2], 13.0);
  EXPECT_EQ(yv[3], 15.0);
  EXPECT_EQ(i2.to_int64_vector(), (std::vector<int64_t>{5, 7, 13, 15}));
}

TEST(ConvPoolKernels, MaxPoolScatterGatherAreAdjoints) {
  std::mt19937_64 rng(6);
  const Shape xs{2, 3, 7, 8};
  for (const auto& p : pool_cases()) {
    Tensor x = randn64(xs, rng);
    const Shape ys = pool_out_shape(xs, p);
    Tensor y = Tensor::empty(ys, DType::Float64), idx = Tensor::empty(ys, DType::Int64);
    cpu_backend().max_pool2d(x, y, idx, p);
    Tensor g = randn64(ys, rng), z = randn64(xs, rng);
    Tensor s = Tensor::full(xs, 3.0, DType::Float64);  // must be zero-filled by the kernel
    Tensor gz = Tensor::empty(ys, DType::Float64);
    cpu_backend().max_pool2d_scatter(g, idx, p, s);
    cpu_backend().max_pool2d_gather(z, idx, gz);
    const double a = dot(s, z), b = dot(g, gz);
    EXPECT_NEAR(a, b, kTol * (1 + std::abs(a)));

    // Entry-wise scatter reference (overlapping windows add).
    const auto gv = g.to_vector();
    const auto iv = idx.to_int64_vector();
    std::vector<double> s_ref(numel_of(xs), 0.0);
    const int64_t HW = xs[2] * xs[3], HoWo = ys[2] * ys[3];
    for (int64_t i = 0; i < numel_of(ys); ++i) s_ref[(i / HoWo) * HW + iv[i]] += gv[i];
    expect_near_all(s.to_vector(), s_ref, kTol, "max_pool2d_scatter");
  }
}

TEST(ConvPoolKernels, MaxPoolScatterRejectsBadIndices) {
  // 2x2 planes pooled by 2x1 windows, stride 2x1: window 0 is column 0 (pixels 0, 2),
  // window 1 column 1 (pixels 1, 3).
  const auto p = pool_params({2, 1}, {2, 1}, {0, 0}, false, true);
  Tensor g = Tensor::ones({1, 1, 1, 2}, DType::Float64);
  Tensor out = Tensor::empty({1, 1, 2, 2}, DType::Float64);
  Tensor fine = Tensor::from_int64({2, 1}, {1, 1, 1, 2});
  cpu_backend().max_pool2d_scatter(g, fine, p, out);
  EXPECT_EQ(out.to_vector(), (std::vector<double>{0, 1, 1, 0}));
  // Outside the plane.
  Tensor idx = Tensor::from_int64({0, 9}, {1, 1, 1, 2});
  EXPECT_THROW(cpu_backend().max_pool2d_scatter(g, idx, p, out), Error);
  // Inside the plane but outside its window (the CUDA scatter, which sums over the windows
  // covering each pixel, would drop it): refused, naming the window.
  Tensor astray = Tensor::from_int64({1, 3}, {1, 1, 1, 2});
  try {
    cpu_backend().max_pool2d_scatter(g, astray, p, out);
    ADD_FAILURE() << "an index outside its window was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("outside its pooling window (2x1 stride 2x1"),
              std::string::npos)
        << e.what();
  }
  Tensor gathered = Tensor::empty({1, 1, 1, 2}, DType::Float64);
  EXPECT_THROW(cpu_backend().max_pool2d_gather(out, idx, gathered), Error);
}

// The CUDA backend splits convolutions with a tensor cuDNN cannot describe (more than 2^31 - 1
// elements) along the batch, or sends them to its direct kernels when one image is too large,
// instead of failing (kernels/cuda/conv2d.cu).
TEST(ConvPoolKernels, CudnnDescribesAtMostTwoGigaElements) {
  EXPECT_TRUE(cuda::cudnn_can_describe({64, 96, 111, 111}));  // SqueezeNet conv1, batch 64
  EXPECT_TRUE(cuda::cudnn_can_describe({1, 1, 1, 0x7fffffff}));
  EXPECT_FALSE(cuda::cudnn_can_describe({2, 1, 1, 0x40000000}));  // 2^31
  // SqueezeNet's first activation for 1815 and 1816 images: 2.147e9 elements either side of
  // the limit (a chunk of 16 IG points crosses it at 114 photos).
  EXPECT_TRUE(cuda::cudnn_can_describe({1815, 96, 111, 111}));
  EXPECT_FALSE(cuda::cudnn_can_describe({1816, 96, 111, 111}));
  EXPECT_FALSE(cuda::cudnn_can_describe({0x7fffffff, 0x7fffffff, 0x7fffffff, 2}));  // no overflow
  EXPECT_TRUE(cuda::cudnn_can_describe({0, 96, 111, 111}));
}

TEST(ConvPoolKernels, AvgPoolMatchesNaive) {
  std::mt19937_64 rng(7);
  const Shape xs{2, 3, 7, 8};
  for (const auto& p : pool_cases()) {
    Tensor x = randn64(xs, rng);
    const Shape ys = pool_out_shape(xs, p);
    Tensor y = Tensor::empty(ys, DType::Float64);
    cpu_backend().avg_pool2d(x, y, p);
    const auto xv = x.to_vector();
    std::vector<double> y_ref(numel_of(ys));
    for (int64_t pl = 0; pl < xs[0] * xs[1]; ++pl)
      for (int64_t oh = 0; oh < ys[2]; ++oh)
        for (int64_t ow = 0; ow < ys[3]; ++ow) {
          const auto nw = naive_window(oh, ow, xs[2], xs[3], p);
          double s = 0;
          for (auto [h, w] : nw.taps) s += xv[pl * xs[2] * xs[3] + h * xs[3] + w];
          const double count = p.count_include_pad ? nw.padded_count : nw.taps.size();
          y_ref[(pl * ys[2] + oh) * ys[3] + ow] = s / count;
        }
    expect_near_all(y.to_vector(), y_ref, kTol, "avg_pool2d");

    // The backward is the adjoint.
    Tensor g = randn64(ys, rng);
    Tensor dx = Tensor::full(xs, 5.0, DType::Float64);
    cpu_backend().avg_pool2d_backward(g, dx, p);
    const double a = dot(y, g), b = dot(x, dx);
    EXPECT_NEAR(a, b, kTol * (1 + std::abs(a)));
  }
}

// Hand-computed values of torch.nn.functional.avg_pool2d on a 1x6 row, kernel (1,3),
// stride (1,2), padding (0,1), ceil_mode: the last window [5,8) hangs past the padding
// (which ends at 7), so its divisor is 2, not 3, even with count_include_pad.
TEST(ConvPoolKernels, AvgPoolCeilModeDivisorLikePyTorch) {
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {1, 1, 1, 6}, DType::Float64);
  auto p = pool_params({1, 3}, {1, 2}, {0, 1}, true, true);
  Tensor y = Tensor::empty({1, 1, 1, 4}, DType::Float64);
  cpu_backend().avg_pool2d(x, y, p);
  expect_near_all(y.to_vector(), {1.0, 3.0, 5.0, 3.0}, kTol, "count_include_pad");
  p.count_include_pad = false;
  cpu_backend().avg_pool2d(x, y, p);
  expect_near_all(y.to_vector(), {1.5, 3.0, 5.0, 6.0}, kTol, "exclude pad");
}

TEST(ConvPoolKernels, PoolsReadStridedViewsAndFloat32) {
  std::mt19937_64 rng(8);
  const Shape xs{2, 3, 6, 5};
  // [N, C, H, W] viewed from [N, W, H, C] storage.
  Tensor store = randn64({2, 5, 6, 3}, rng);
  Tensor x = make_view(store, xs, {5 * 6 * 3, 1, 3, 6 * 3}, 0);
  Tensor xc = x.clone_data();
  const auto p = pool_params({3, 2}, {2, 2}, {1, 1}, true, false);
  const Shape ys = pool_out_shape(xs, p);
  Tensor y1 = Tensor::empty(ys, DType::Float64), y2 = Tensor::empty(ys, DType::Float64);
  Tensor i1 = Tensor::empty(ys, DType::Int64), i2 = Tensor::empty(ys, DType::Int64);
  cpu_backend().max_pool2d(x, y1, i1, p);
  cpu_backend().max_pool2d(xc, y2, i2, p);
  expect_near_all(y1.to_vector(), y2.to_vector(), 0.0, "max_pool2d strided");
  EXPECT_EQ(i1.to_int64_vector(), i2.to_int64_vector());
  cpu_backend().avg_pool2d(x, y1, p);
  cpu_backend().avg_pool2d(xc, y2, p);
  expect_near_all(y1.to_vector(), y2.to_vector(), kTol, "avg_pool2d strided");

  Tensor y32 = Tensor::empty(ys, DType::Float32);
  cpu_backend().avg_pool2d(x.to(DType::Float32), y32, p);
  expect_near_all(y32.to_vector(), y2.to_vector(), 1e-6, "avg_pool2d float32");
  Tensor g32 = Tensor::ones(ys, DType::Float32), dx32 = Tensor::empty(xs, DType::Float32);
  cpu_backend().avg_pool2d_backward(g32, dx32, p);
  Tensor dx64 = Tensor::empty(xs, DType::Float64);
  cpu_backend().avg_pool2d_backward(Tensor::ones(ys, DType::Float64), dx64, p);
  expect_near_all(dx32.to_vector(), dx64.to_vector(), 1e-6, "avg_pool2d_backward float32");
}

// ---- GEMM -------------------------------------------------------------------------------

std::vector<double> naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  const auto av = a.clone_data().to_vector(), bv = b.clone_data().to_vector();
  std::vector<double> c(B * M * N, 0.0);
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += av[(bi * M + i) * K + k] * bv[(bi * K + k) * N + j];
        c[(bi * M + i) * N + j] = s;
      }
  return c;
}

// A [B, R, C] view of fresh random storage in one of several layouts.
enum class Lay { Contig, Transposed, Stepped, BroadcastBatch };
Tensor make_matrix(int64_t B, int64_t R, int64_t C, Lay lay, std::mt19937_64& rng) {
  switch (lay) {
    case Lay::Contig:
      return randn64({B, R, C}, rng);
    case Lay::Transposed: {  // storage [B, C, R], strides (R*C, 1, R)
      Tensor s = randn64({B, C, R}, rng);
      return make_view(s, {B, R, C}, {R * C, 1, R}, 0);
    }
    case Lay::Stepped: {  // neither inner stride is 1: every other row and column
      Tensor s = randn64({B, 2 * R, 2 * C}, rng);
      return make_view(s, {B, R, C}, {4 * R * C, 4 * C, 2}, 1);
    }
    case Lay::BroadcastBatch: {  // one matrix shared by the batch (stride 0)
      Tensor s = randn64({1, R, C}, rng);
      return make_view(s, {B, R, C}, {0, C, 1}, 0);
    }
  }
  return {};
}

TEST(GemmKernel, MatchesNaiveForEveryLayout) {
  std::mt19937_64 rng(9);
  const Lay lays[] = {Lay::Contig, Lay::Transposed, Lay::Stepped, Lay::BroadcastBatch};
  // Small shapes (Eigen's lazy product), larger ones (blocked GEMM), batch 1 (Eigen threads)
  // and batch 5 (threads over the batch), and degenerate extents of 1.
  const std::array<int64_t, 4> shapes[] = {
      {3, 4, 5, 6}, {1, 37, 41, 29}, {5, 33, 64, 17}, {2, 1, 7, 1}, {2, 6, 1, 5}};
  for (auto [B, M, K, N] : shapes)
    for (Lay la : lays)
      for (Lay lb : lays) {
        Tensor a = make_matrix(B, M, K, la, rng), b = make_matrix(B, K, N, lb, rng);
        Tensor c = Tensor::full({B, M, N}, 9.0, DType::Float64);
        cpu_backend().matmul(a, b, c);
        expect_near_all(c.to_vector(), naive_matmul(a, b), kTol, "matmul");
      }
}

TEST(GemmKernel, Float32AndEmptyContraction) {
  std::mt19937_64 rng(10);
  Tensor a = make_matrix(2, 30, 20, Lay::Transposed, rng);
  Tensor b = randn64({2, 20, 25}, rng);
  Tensor c32 = Tensor::empty({2, 30, 25}, DType::Float32);
  cpu_backend().matmul(a.to(DType::Float32), b.to(DType::Float32), c32);
  expect_near_all(c32.to_vector(), naive_matmul(a, b), 1e-5, "matmul float32");

  // K = 0: an empty sum is zero.
  Tensor a0 = Tensor::empty({2, 3, 0}, DType::Float64), b0 = Tensor::empty({2, 0, 4}, DType::Float64);
  Tensor c0 = Tensor::full({2, 3, 4}, 1.0, DType::Float64);
  cpu_backend().matmul(a0, b0, c0);
  EXPECT_EQ(c0.to_vector(), std::vector<double>(24, 0.0));

  Tensor bad = Tensor::empty({2, 21, 25}, DType::Float64);
  Tensor c = Tensor::empty({2, 30, 25}, DType::Float64);
  EXPECT_THROW(cpu_backend().matmul(a, bad, c), Error);
}

}  // namespace
}  // namespace fragile
