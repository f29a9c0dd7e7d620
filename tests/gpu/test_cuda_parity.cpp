// CUDA vs CPU parity: every CudaBackend method against cpu_backend() on random float32 and
// float64 data, compared with |got - ref| <= atol + rtol * |ref|. Plus the fused kernels
// against host references and a few properties of copies and the caching allocator.
//
// Only the Backend interface and Tensor are used. Transfers go through
// cuda_backend().copy(host, device) so the tests do not depend on Tensor::to. Every test
// skips itself when no device is present (the binary is labelled `gpu` in ctest).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/backend.h"
#include "tests/gpu/gpu_device.h"
#include "core/error.h"
#include "core/tensor.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/fused.h"
#include "kernels/functors/binary.h"

namespace fragile {
namespace {

Backend& cpu() { return cpu_backend(); }
Backend& gpu() { return cuda_backend(); }

Tensor to_device(const Tensor& host) {
  Tensor d = Tensor::empty(host.shape(), host.dtype(), Device::CUDA);
  gpu().copy(host, d);
  return d;
}

Tensor to_host(const Tensor& dev) {
  Tensor h = Tensor::empty(dev.shape(), dev.dtype(), Device::CPU);
  gpu().copy(dev, h);
  return h;
}

struct Tol {
  double atol, rtol;
};
Tol tol(DType dt, double scale = 1.0) {
  return dt == DType::Float32 ? Tol{1e-5 * scale, 1e-4 * scale} : Tol{1e-11 * scale, 1e-9 * scale};
}

// got may live on either device; ref on the host.
void expect_close(const Tensor& got, const Tensor& ref, Tol t, const std::string& what) {
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  const Tensor g = got.device() == Device::CUDA ? to_host(got) : got;
  const std::vector<double> gv = g.to_vector(), rv = ref.to_vector();
  int64_t bad = 0;
  std::string first;
  for (size_t i = 0; i < gv.size(); ++i) {
    const bool both_nan = std::isnan(gv[i]) && std::isnan(rv[i]);
    const bool same_inf = std::isinf(rv[i]) && gv[i] == rv[i];
    if (both_nan || same_inf) continue;
    if (!(std::fabs(gv[i] - rv[i]) <= t.atol + t.rtol * std::fabs(rv[i]))) {
      if (bad++ == 0)
        first = "index " + std::to_string(i) + ": got " + std::to_string(gv[i]) + ", want " +
                std::to_string(rv[i]);
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << gv.size() << " differ; first at "
                    << first;
}

void expect_equal_int(const Tensor& got, const Tensor& ref, const std::string& what) {
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  const Tensor g = got.device() == Device::CUDA ? to_host(got) : got;
  EXPECT_EQ(g.to_int64_vector(), ref.to_int64_vector()) << what;
}

// A host tensor and the same values on the device.
struct Pair {
  Tensor h, d;
};
Pair make_pair_from(const Tensor& host) { return {host, to_device(host)}; }
Pair randn(const Shape& s, DType dt, std::mt19937_64& rng) {
  return make_pair_from(Tensor::randn(s, rng, dt));
}
Pair uniform(const Shape& s, double lo, double hi, DType dt, std::mt19937_64& rng) {
  return make_pair_from(Tensor::uniform(s, lo, hi, rng, dt));
}
// Values on a coarse grid, so ties and equalities really happen.
Pair coarse(const Shape& s, DType dt, std::mt19937_64& rng) {
  std::uniform_int_distribution<int> dist(-4, 4);
  std::vector<double> v(numel_of(s));
  for (auto& x : v) x = 0.5 * dist(rng);
  return make_pair_from(Tensor::from_vector(v, s, dt));
}
// The same view geometry of both halves of a pair.
Pair view(const Pair& p, const Shape& shape, const Shape& strides, int64_t offset = 0) {
  return {make_view(p.h, shape, strides, offset), make_view(p.d, shape, strides, offset)};
}
// A transposed view of the last two dims of a contiguous [.., R, C] pair, as [.., C, R].
Pair transposed(const Pair& p) {
  Shape s = p.h.shape(), st = p.h.strides();
  std::swap(s[s.size() - 1], s[s.size() - 2]);
  std::swap(st[st.size() - 1], st[st.size() - 2]);
  return view(p, s, st);
}
// Broadcast a pair of shape [1, C] (or any shape with 1s) to `shape` with stride 0.
Pair broadcast(const Pair& p, const Shape& shape) {
  Shape st = p.h.strides();
  for (size_t i = 0; i < shape.size(); ++i)
    if (p.h.shape()[i] == 1) st[i] = 0;
  return view(p, shape, st);
}

struct Outs {
  Tensor h, d;
};
Outs empty_pair(const Shape& s, DType dt) {
  return {Tensor::empty(s, dt, Device::CPU), Tensor::empty(s, dt, Device::CUDA)};
}

class CudaParity : public ::testing::TestWithParam<DType> {
 protected:
  DType dt() const { return GetParam(); }
  std::mt19937_64 rng{1234};
};

// ---- copies, fill, allocator --------------------------------------------------------------

TEST_P(CudaParity, CopyRoundTripContiguous) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const Tensor h = Tensor::randn({3, 5, 7}, rng, dt());
  expect_close(to_host(to_device(h)), h, Tol{0, 0}, "round trip");
}

TEST_P(CudaParity, CopyStridedAndConverting) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  Pair p = randn({4, 6, 5}, dt(), rng);
  // strided host source -> contiguous device
  Pair t = transposed(p);  // [4, 5, 6]
  Tensor d = Tensor::empty(t.h.shape(), dt(), Device::CUDA);
  gpu().copy(t.h, d);
  expect_close(d, t.h.clone_data(), Tol{0, 0}, "strided host -> device");
  // strided device source -> strided host destination
  Tensor hbase = Tensor::zeros({4, 6, 5}, dt());
  Tensor hview = make_view(hbase, {4, 5, 6}, {30, 1, 5}, 0);
  gpu().copy(t.d, hview);
  expect_close(hbase, p.h, Tol{0, 0}, "strided device -> strided host");
  // device -> device strided
  Tensor d2 = Tensor::empty({4, 5, 6}, dt(), Device::CUDA);
  gpu().copy(t.d, d2);
  expect_close(d2, t.h.clone_data(), Tol{0, 0}, "device strided -> device");
  // dtype conversions on the device and across the bus
  const DType other = dt() == DType::Float32 ? DType::Float64 : DType::Float32;
  Tensor conv = Tensor::empty({4, 6, 5}, other, Device::CUDA);
  gpu().copy(p.d, conv);
  Tensor ref = Tensor::empty({4, 6, 5}, other);
  cpu().copy(p.h, ref);
  expect_close(conv, ref, Tol{0, 0}, "device dtype conversion");
  Tensor host_other = Tensor::empty({4, 6, 5}, other);
  gpu().copy(p.d, host_other);
  expect_close(host_other, ref, Tol{0, 0}, "device -> host with conversion");
  Tensor dev_other = Tensor::empty({4, 6, 5}, other, Device::CUDA);
  gpu().copy(p.h, dev_other);
  expect_close(dev_other, ref, Tol{0, 0}, "host -> device with conversion");
  // float -> int64 truncation and back
  Pair c = coarse({3, 4}, dt(), rng);
  Tensor i64 = Tensor::empty({3, 4}, DType::Int64, Device::CUDA);
  gpu().copy(c.d, i64);
  Tensor i64_ref = Tensor::empty({3, 4}, DType::Int64);
  cpu().copy(c.h, i64_ref);
  expect_equal_int(i64, i64_ref, "float -> int64");
}

TEST_P(CudaParity, CopyRejectsShapeMismatch) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  Tensor a = Tensor::empty({2, 3}, dt(), Device::CUDA);
  Tensor b = Tensor::empty({3, 2}, dt(), Device::CUDA);
  EXPECT_THROW(gpu().copy(a, b), Error);
}

TEST_P(CudaParity, Fill) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  for (double v : {0.0, -2.5}) {
    Tensor d = Tensor::empty({5, 7}, dt(), Device::CUDA);
    gpu().fill(d, v);
    expect_close(d, Tensor::full({5, 7}, v, dt()), Tol{0, 0}, "fill contiguous");
  }
  // a strided view: every other column of a [4, 6] tensor
  Pair base = make_pair_from(Tensor::zeros({4, 6}, dt()));
  Pair v = view(base, {4, 3}, {6, 2});
  gpu().fill(v.d, 3.0);
  cpu().fill(v.h, 3.0);
  expect_close(base.d, base.h, Tol{0, 0}, "fill strided");
  Tensor i = Tensor::empty({9}, DType::Int64, Device::CUDA);
  gpu().fill(i, 7.0);
  expect_equal_int(i, Tensor::from_int64(std::vector<int64_t>(9, 7), {9}), "fill int64");
}

TEST_P(CudaParity, CachingAllocatorReusesBlocks) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  gpu();
  { Tensor warm = Tensor::empty({1000, 10}, dt(), Device::CUDA); }
  const int64_t before = cuda::cache_stats().device_allocations;
  for (int i = 0; i < 10; ++i) {
    Tensor t = Tensor::empty({1000, 10}, dt(), Device::CUDA);
  }
  EXPECT_EQ(cuda::cache_stats().device_allocations, before);
}

// ---- element-wise -----------------------------------------------------------------------

struct UnaryCase {
  UnaryOp op;
  ScalarArgs args;
  bool positive;  // needs x > 0
  const char* name;
};

TEST_P(CudaParity, UnaryAllOps) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const double inf = INFINITY;
  const std::vector<UnaryCase> cases = {
      {UnaryOp::Neg, {}, false, "neg"},
      {UnaryOp::Exp, {}, false, "exp"},
      {UnaryOp::Log, {}, true, "log"},
      {UnaryOp::Abs, {}, false, "abs"},
      {UnaryOp::Sign, {}, false, "sign"},
      {UnaryOp::Sqrt, {}, true, "sqrt"},
      {UnaryOp::Relu, {}, false, "relu"},
      {UnaryOp::Sigmoid, {}, false, "sigmoid"},
      {UnaryOp::Tanh, {}, false, "tanh"},
      {UnaryOp::Softplus, {2.5, 0}, false, "softplus"},
      {UnaryOp::PowScalar, {2.0, 0}, false, "pow2"},
      {UnaryOp::PowScalar, {1.7, 0}, true, "pow1.7"},
      {UnaryOp::Clamp, {-0.5, 0.75}, false, "clamp"},
      {UnaryOp::Clamp, {-inf, 0.25}, false, "clamp_hi"},
      {UnaryOp::ClampMask, {-0.5, 0.75}, false, "clamp_mask"},
  };
  for (const auto& c : cases) {
    // contiguous, odd size (vector tail), and a transposed view (strided path)
    Pair x = c.positive ? uniform({37, 29}, 0.1, 3.0, dt(), rng) : randn({37, 29}, dt(), rng);
    for (const Pair& in : {x, transposed(x)}) {
      Outs o = empty_pair(in.h.shape(), dt());
      cpu().unary(c.op, in.h, o.h, c.args);
      gpu().unary(c.op, in.d, o.d, c.args);
      expect_close(o.d, o.h, tol(dt()), std::string("unary ") + c.name);
    }
  }
}

TEST_P(CudaParity, BinaryAllOpsWithBroadcast) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const std::vector<std::pair<BinaryOp, const char*>> ops = {
      {BinaryOp::Add, "add"}, {BinaryOp::Sub, "sub"}, {BinaryOp::Mul, "mul"},
      {BinaryOp::Div, "div"}, {BinaryOp::Pow, "pow"}, {BinaryOp::Eq, "eq"},
      {BinaryOp::Ne, "ne"},   {BinaryOp::Lt, "lt"},   {BinaryOp::Le, "le"},
      {BinaryOp::Gt, "gt"},   {BinaryOp::Ge, "ge"},   {BinaryOp::SoftplusBackward, "spb"},
      {BinaryOp::ReluBackward, "relub"},
  };
  const Shape s = {6, 33};
  for (const auto& [op, name] : ops) {
    const bool pow = op == BinaryOp::Pow;
    Pair a = pow ? uniform(s, 0.2, 2.0, dt(), rng) : coarse(s, dt(), rng);
    Pair b = pow ? uniform(s, -1.5, 1.5, dt(), rng) : coarse(s, dt(), rng);
    if (op == BinaryOp::Div) b = uniform(s, 0.5, 2.0, dt(), rng);
    Pair row = coarse({1, 33}, dt(), rng);
    if (op == BinaryOp::Div || pow) row = uniform({1, 33}, 0.5, 1.5, dt(), rng);
    Pair at = transposed(randn({33, 6}, dt(), rng));  // a strided [6, 33] view
    if (pow) at = transposed(uniform({33, 6}, 0.2, 2.0, dt(), rng));
    const std::vector<std::pair<Pair, Pair>> inputs = {
        {a, b}, {a, broadcast(row, s)}, {at, b}, {broadcast(row, s), at}};
    for (const auto& [x, y] : inputs) {
      Outs o = empty_pair(s, dt());
      cpu().binary(op, x.h, y.h, o.h, {1.5, 0});
      gpu().binary(op, x.d, y.d, o.d, {1.5, 0});
      expect_close(o.d, o.h, tol(dt()), std::string("binary ") + name);
    }
  }
}

TEST_P(CudaParity, Where) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const Shape s = {7, 9, 5};
  Pair cond = coarse(s, dt(), rng);  // zeros and non-zeros
  Pair a = randn(s, dt(), rng);
  Pair b = broadcast(randn({1, 9, 1}, dt(), rng), s);
  Outs o = empty_pair(s, dt());
  cpu().where(cond.h, a.h, b.h, o.h);
  gpu().where(cond.d, a.d, b.d, o.d);
  expect_close(o.d, o.h, Tol{0, 0}, "where");
}

TEST_P(CudaParity, ElementwiseManyDims) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  // 10 dims of extent 2, permuted so no two dims merge: exercises the > 8 dims split.
  Shape s(10, 2), st(10);
  for (int i = 0; i < 10; ++i) st[i] = int64_t{1} << i;  // reversed strides: nothing merges
  Pair base = randn({1024}, dt(), rng);
  Pair x = view(base, s, st);
  Outs o = empty_pair(s, dt());
  cpu().unary(UnaryOp::Exp, x.h, o.h, {});
  gpu().unary(UnaryOp::Exp, x.d, o.d, {});
  expect_close(o.d, o.h, tol(dt()), "exp over 10 strided dims");
}

// ---- reductions -------------------------------------------------------------------------

TEST_P(CudaParity, ReduceSumMaxOverDimSets) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const Shape s = {3, 4, 5, 6};
  const std::vector<std::vector<int64_t>> dim_sets = {
      {}, {0}, {3}, {1, 2}, {0, 2}, {0, 3}, {2, 3}, {0, 1}, {0, 1, 2, 3}, {1, 3}};
  Pair x = randn(s, dt(), rng);
  Pair xt = view(x, {3, 4, 6, 5}, {120, 30, 1, 6});  // strided input
  for (const Pair& in : {x, xt}) {
    for (const auto& dims : dim_sets) {
      Shape os = in.h.shape();
      for (int64_t d : dims) os[d] = 1;
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {
        Outs o = empty_pair(os, dt());
        cpu().reduce(op, in.h, dims, o.h);
        gpu().reduce(op, in.d, dims, o.d);
        expect_close(o.d, o.h, tol(dt()),
                     std::string(op == ReduceOp::Sum ? "sum" : "max") + " over " +
                         std::to_string(dims.size()) + " dims");
      }
    }
  }
}

TEST_P(CudaParity, ReduceLargeShapes) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  // Long rows with few outputs (chunked two-pass), long columns (outer case, chunked),
  // medium rows (block per row) and a full reduction of a large tensor.
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  const std::vector<Case> cases = {{{2, 200003}, {1}},
                                   {{150001, 3}, {0}},
                                   {{96, 3000}, {1}},
                                   {{5000, 40}, {1}},
                                   {{64, 2049}, {0}},
                                   {{1 << 20}, {0}}};
  for (const auto& c : cases) {
    Pair x = uniform(c.shape, -1.0, 1.0, dt(), rng);
    Shape os = c.shape;
    for (int64_t d : c.dims) os[d] = 1;
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max}) {
      Outs o = empty_pair(os, dt());
      cpu().reduce(op, x.h, c.dims, o.h);
      gpu().reduce(op, x.d, c.dims, o.d);
      // Long float32 sums: both sides accumulate in double, but the summation order differs.
      expect_close(o.d, o.h, tol(dt(), 10.0), "large reduce " + shape_str(c.shape));
    }
  }
}

// ---- matmul -----------------------------------------------------------------------------

TEST_P(CudaParity, MatmulLayouts) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const int64_t B = 3, M = 17, K = 33, N = 9;
  Pair a = randn({B, M, K}, dt(), rng), b = randn({B, K, N}, dt(), rng);
  Pair at = transposed(randn({B, K, M}, dt(), rng));  // [B, M, K] column-major
  Pair bt = transposed(randn({B, N, K}, dt(), rng));  // [B, K, N] column-major
  Pair b1 = randn({1, K, N}, dt(), rng);
  Pair bb = view(b1, {B, K, N}, {0, N, 1});  // batch-broadcast
  Pair wide = randn({B, M, 2 * K}, dt(), rng);
  Pair as = view(wide, {B, M, K}, {M * 2 * K, 2 * K, 2});  // no unit stride: copied
  const std::vector<std::pair<Pair, Pair>> cases = {{a, b},  {at, b}, {a, bt},
                                                    {at, bt}, {a, bb}, {as, b}};
  int i = 0;
  for (const auto& [x, y] : cases) {
    Outs o = empty_pair({B, M, N}, dt());
    cpu().matmul(x.h, y.h, o.h);
    gpu().matmul(x.d, y.d, o.d);
    expect_close(o.d, o.h, tol(dt(), 10.0), "matmul case " + std::to_string(i++));
  }
  // vector-shaped operands: extent-1 dims with arbitrary strides
  Pair r = randn({B, 1, K}, dt(), rng), c = randn({B, K, 1}, dt(), rng);
  Outs o = empty_pair({B, 1, 1}, dt());
  cpu().matmul(r.h, c.h, o.h);
  gpu().matmul(r.d, c.d, o.d);
  expect_close(o.d, o.h, tol(dt(), 10.0), "matmul row x column");
}

// ---- convolution ------------------------------------------------------------------------

struct ConvCase {
  Shape x, w;
  Conv2dParams p;
  const char* name;
};

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> cs;
  cs.push_back({{2, 3, 9, 8}, {4, 3, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 1}, "3x3 pad 1"});
  cs.push_back({{2, 4, 11, 10}, {6, 4, 3, 2}, {{2, 1}, {0, 1}, {1, 1}, 1}, "stride 2x1"});
  cs.push_back({{1, 2, 12, 12}, {3, 2, 3, 3}, {{1, 2}, {2, 1}, {2, 2}, 1}, "dilation 2"});
  cs.push_back({{2, 4, 7, 7}, {6, 2, 3, 3}, {{1, 1}, {1, 1}, {1, 1}, 2}, "groups 2"});
  cs.push_back({{2, 5, 8, 8}, {5, 1, 3, 3}, {{2, 2}, {1, 1}, {1, 1}, 5}, "depthwise"});
  cs.push_back({{3, 6, 5, 5}, {4, 6, 1, 1}, {{1, 1}, {0, 0}, {1, 1}, 1}, "1x1"});
  return cs;
}

Shape conv_out_shape(const ConvCase& c) {
  return {c.x[0], c.w[0],
          conv_out_size(c.x[2], c.w[2], c.p.stride[0], c.p.padding[0], c.p.dilation[0]),
          conv_out_size(c.x[3], c.w[3], c.p.stride[1], c.p.padding[1], c.p.dilation[1])};
}

TEST_P(CudaParity, Conv2dForward) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  for (const auto& c : conv_cases()) {
    Pair x = randn(c.x, dt(), rng), w = randn(c.w, dt(), rng);
    Outs o = empty_pair(conv_out_shape(c), dt());
    cpu().conv2d(x.h, w.h, o.h, c.p);
    gpu().conv2d(x.d, w.d, o.d, c.p);
    expect_close(o.d, o.h, tol(dt(), 10.0), std::string("conv2d ") + c.name);
  }
}

TEST_P(CudaParity, Conv2dForwardStridedInput) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const ConvCase c = conv_cases()[0];
  Pair base = randn({c.x[0], c.x[1], c.x[3], c.x[2]}, dt(), rng);
  Pair x = transposed(base);  // H and W swapped: a non-contiguous [N, C, H, W] view
  Pair w = randn(c.w, dt(), rng);
  Outs o = empty_pair(conv_out_shape(c), dt());
  cpu().conv2d(x.h, w.h, o.h, c.p);
  gpu().conv2d(x.d, w.d, o.d, c.p);
  expect_close(o.d, o.h, tol(dt(), 10.0), "conv2d strided input");
}

TEST_P(CudaParity, Conv2dBackwardInput) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  for (const auto& c : conv_cases()) {
    Pair g = randn(conv_out_shape(c), dt(), rng), w = randn(c.w, dt(), rng);
    Outs o = empty_pair(c.x, dt());
    cpu().conv2d_backward_input(g.h, w.h, o.h, c.p);
    gpu().conv2d_backward_input(g.d, w.d, o.d, c.p);
    expect_close(o.d, o.h, tol(dt(), 10.0), std::string("conv2d_backward_input ") + c.name);
  }
}

TEST_P(CudaParity, Conv2dBackwardWeight) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  for (const auto& c : conv_cases()) {
    Pair x = randn(c.x, dt(), rng), g = randn(conv_out_shape(c), dt(), rng);
    Outs o = empty_pair(c.w, dt());
    cpu().conv2d_backward_weight(x.h, g.h, o.h, c.p);
    gpu().conv2d_backward_weight(x.d, g.d, o.d, c.p);
    expect_close(o.d, o.h, tol(dt(), 10.0), std::string("conv2d_backward_weight ") + c.name);
  }
}

// ---- pooling ----------------------------------------------------------------------------

std::vector<Pool2dParams> pool_cases() {
  std::vector<Pool2dParams> ps;
  ps.push_back({{2, 2}, {2, 2}, {0, 0}, false, true});
  ps.push_back({{3, 3}, {2, 2}, {1, 1}, false, true});
  ps.push_back({{3, 3}, {2, 2}, {1, 1}, true, true});
  ps.push_back({{3, 3}, {2, 2}, {1, 1}, true, false});
  ps.push_back({{3, 2}, {1, 2}, {1, 0}, false, false});
  ps.push_back({{2, 3}, {3, 2}, {0, 1}, true, true});
  return ps;
}

Shape pool_out_shape(const Shape& x, const Pool2dParams& p) {
  return {x[0], x[1], pool_out_size(x[2], p.kernel[0], p.stride[0], p.padding[0], p.ceil_mode),
          pool_out_size(x[3], p.kernel[1], p.stride[1], p.padding[1], p.ceil_mode)};
}

TEST_P(CudaParity, MaxPool2dValuesAndIndices) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const Shape xs = {2, 3, 11, 10};
  int i = 0;
  for (const auto& p : pool_cases()) {
    Pair x = coarse(xs, dt(), rng);  // many ties: the first maximum must win on both sides
    const Shape os = pool_out_shape(xs, p);
    Outs o = empty_pair(os, dt());
    Outs idx = empty_pair(os, DType::Int64);
    cpu().max_pool2d(x.h, o.h, idx.h, p);
    gpu().max_pool2d(x.d, o.d, idx.d, p);
    const std::string name = "max_pool2d case " + std::to_string(i++);
    expect_close(o.d, o.h, Tol{0, 0}, name);
    expect_equal_int(idx.d, idx.h, name + " indices");

    // scatter (the backward) and gather (its adjoint) with the same indices. The scatter adds
    // each pixel's windows in the CPU's order (no atomics): equal bit for bit, overlapping
    // windows included, and so the same on every run.
    Pair g = randn(os, dt(), rng);
    Outs sc = empty_pair(xs, dt());
    cpu().max_pool2d_scatter(g.h, idx.h, p, sc.h);
    gpu().max_pool2d_scatter(g.d, idx.d, p, sc.d);
    expect_close(sc.d, sc.h, Tol{0, 0}, name + " scatter");
    Pair y = randn(xs, dt(), rng);
    Outs ga = empty_pair(os, dt());
    cpu().max_pool2d_gather(y.h, idx.h, ga.h);
    gpu().max_pool2d_gather(y.d, idx.d, ga.d);
    expect_close(ga.d, ga.h, Tol{0, 0}, name + " gather");
  }
}

TEST_P(CudaParity, AvgPool2dForwardBackward) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const Shape xs = {2, 3, 11, 10};
  int i = 0;
  for (const auto& p : pool_cases()) {
    const std::string name = "avg_pool2d case " + std::to_string(i++);
    const Shape os = pool_out_shape(xs, p);
    Pair x = randn(xs, dt(), rng);
    Outs o = empty_pair(os, dt());
    cpu().avg_pool2d(x.h, o.h, p);
    gpu().avg_pool2d(x.d, o.d, p);
    expect_close(o.d, o.h, tol(dt()), name);
    Pair g = randn(os, dt(), rng);
    Outs b = empty_pair(xs, dt());
    cpu().avg_pool2d_backward(g.h, b.h, p);
    gpu().avg_pool2d_backward(g.d, b.d, p);
    expect_close(b.d, b.h, tol(dt()), name + " backward");
  }
}

// ---- fused kernels ----------------------------------------------------------------------

TEST_P(CudaParity, FusedSoftplusForwardBackward) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const double beta = 3.0;
  Pair x = randn({41, 13}, dt(), rng);
  Outs value = empty_pair({41, 13}, dt()), sig = empty_pair({41, 13}, dt());
  cpu().unary(UnaryOp::Softplus, x.h, value.h, {beta, 0});
  const Tensor ones = Tensor::ones({41, 13}, dt());
  cpu().binary(BinaryOp::SoftplusBackward, ones, x.h, sig.h, {beta, 0});  // 1 * sigmoid(beta x)
  cuda::softplus_forward_backward(x.d, beta, value.d, sig.d);
  expect_close(value.d, value.h, tol(dt()), "fused softplus value");
  expect_close(sig.d, sig.h, tol(dt()), "fused softplus sigmoid");
  // x one element into its buffer: not 16-byte aligned, so the one-element-per-access path.
  const Tensor shifted = make_view(x.d, {40, 13}, x.d.strides(), 1);
  const Tensor shifted_h = make_view(x.h, {40, 13}, x.h.strides(), 1);
  Outs v2 = empty_pair({40, 13}, dt()), s2 = empty_pair({40, 13}, dt());
  cpu().unary(UnaryOp::Softplus, shifted_h, v2.h, {beta, 0});
  cpu().binary(BinaryOp::SoftplusBackward, Tensor::ones({40, 13}, dt()), shifted_h, s2.h,
               {beta, 0});
  cuda::softplus_forward_backward(shifted, beta, v2.d, s2.d);
  expect_close(v2.d, v2.h, tol(dt()), "fused softplus value, unaligned x");
  expect_close(s2.d, s2.h, tol(dt()), "fused softplus sigmoid, unaligned x");
}

TEST_P(CudaParity, FusedSoftplusDoubleBackward) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const double beta = 2.0;
  const Shape s = {23, 17};
  Pair u = randn(s, dt(), rng), g = randn(s, dt(), rng), x = randn(s, dt(), rng);
  Outs gg = empty_pair(s, dt()), gx = empty_pair(s, dt());
  const std::vector<double> uv = u.h.to_vector(), gv = g.h.to_vector(), xv = x.h.to_vector();
  std::vector<double> rg(uv.size()), rx(uv.size());
  const fn::SoftplusDoubleBackward f{beta};
  for (size_t i = 0; i < uv.size(); ++i) f(uv[i], gv[i], xv[i], rg[i], rx[i]);
  cuda::softplus_double_backward(u.d, g.d, x.d, beta, gg.d, gx.d);
  expect_close(gg.d, Tensor::from_vector(rg, s, dt()), tol(dt()), "fused double backward g");
  expect_close(gx.d, Tensor::from_vector(rx, s, dt()), tol(dt()), "fused double backward x");
  // u one element into its buffer: not 16-byte aligned, so the one-element-per-access path.
  const Shape s2 = {22, 17};
  const Tensor u2 = make_view(u.d, s2, u.d.strides(), 1);
  const Tensor g2 = make_view(g.d, s2, g.d.strides(), 0), x2 = make_view(x.d, s2, x.d.strides(), 0);
  Outs gg2 = empty_pair(s2, dt()), gx2 = empty_pair(s2, dt());
  std::vector<double> rg2(22 * 17), rx2(22 * 17);
  for (size_t i = 0; i < rg2.size(); ++i) f(uv[i + 1], gv[i], xv[i], rg2[i], rx2[i]);
  cuda::softplus_double_backward(u2, g2, x2, beta, gg2.d, gx2.d);
  expect_close(gg2.d, Tensor::from_vector(rg2, s2, dt()), tol(dt()), "double backward g, unaligned u");
  expect_close(gx2.d, Tensor::from_vector(rx2, s2, dt()), tol(dt()), "double backward x, unaligned u");
}

TEST_P(CudaParity, FusedAttackStep) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  // Two images, three channels with their own step, ball and box (as ImageNet preprocessing
  // gives): the CPU backend's loop over the same functor is the reference.
  // The flat kernel: planes of 35, of 24 and 9000 planes of 4. The plane kernel (aligned
  // planes of at least a block of 16-byte vectors): 150 planes of 32 x 48, more than the
  // simulator's grid has rows, so it loops over planes.
  AttackStepParams p;
  p.alpha = {0.05, 0.02, 0.08};
  p.eps = {0.08, 0.03, 0.1};
  p.lo = {0.0, -0.5, 0.1};
  p.hi = {1.0, 0.5, 0.9};
  for (const Shape& s :
       {Shape{2, 3, 5, 7}, Shape{2, 3, 4, 6}, Shape{3000, 3, 2, 2}, Shape{50, 3, 32, 48}}) {
    const std::string name = "attack step " + shape_str(s);
    Pair x0 = uniform(s, 0.0, 1.0, dt(), rng);
    Pair d = coarse(s, dt(), rng);  // includes zeros: sign(0) = 0
    Pair x = uniform(s, -0.2, 1.2, dt(), rng);
    Tensor ref = Tensor::empty(s, dt());
    cpu().attack_step(x.h, d.h, x0.h, p, ref);
    Tensor out = Tensor::empty(s, dt(), Device::CUDA);
    gpu().attack_step(x.d, d.d, x0.d, p, out);
    expect_close(out, ref, tol(dt()), name);
    gpu().attack_step(x.d, d.d, x0.d, p, x.d);  // in place
    expect_close(x.d, ref, tol(dt()), name + " in place");
  }
}

TEST_P(CudaParity, FusedSaliencyMoments) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  // Per-image masks (top-k / targeted) and shared coordinate maps (centre of mass), a map
  // large enough for several blocks per image, and an all-zero image (total 0).
  for (const int64_t wn : {int64_t{3}, int64_t{1}}) {
    const Shape s = {3, 3, 61, 67};
    const int64_t k = wn == 3 ? 1 : 2;
    Tensor host = Tensor::randn(s, rng, dt());
    Tensor first_image = make_view(host, {1, 3, 61, 67}, host.strides(), 0);
    cpu().fill(first_image, 0.0);
    const Tensor a_dev = to_device(host);
    Pair w = uniform({wn, k, 61, 67}, 0.0, 60.0, dt(), rng);
    Tensor ref = Tensor::empty({3, k + 1}, dt()), out = Tensor::empty({3, k + 1}, dt(), Device::CUDA);
    cpu().saliency_moments(host, w.h, ref);
    gpu().saliency_moments(a_dev, w.d, out);
    expect_close(out, ref, tol(dt(), 10.0), "saliency moments");

    Pair g = randn({3, k + 1}, dt(), rng);
    Tensor gref = Tensor::empty(s, dt()), gout = Tensor::empty(s, dt(), Device::CUDA);
    cpu().saliency_moments_backward(g.h, host, w.h, ref, gref);
    gpu().saliency_moments_backward(g.d, a_dev, w.d, to_device(ref), gout);
    expect_close(gout, gref, tol(dt()), "saliency moments backward");
  }
}

// More images than a grid's y dimension holds (65535): the moments kernel puts images on
// grid.x. Tiny 1x1x2x2 maps; one dtype, since the launch geometry does not depend on it.
TEST(CudaKernelGeometry, SaliencyMomentsOfMoreImagesThanGridYHolds) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const int64_t n = 65536 + 7;
  std::mt19937_64 rng(99);
  Pair a = randn({n, 1, 2, 2}, DType::Float32, rng);
  Pair w = uniform({n, 1, 2, 2}, 0.0, 1.0, DType::Float32, rng);
  Tensor ref = Tensor::empty({n, 2}, DType::Float32);
  Tensor out = Tensor::empty({n, 2}, DType::Float32, Device::CUDA);
  cpu().saliency_moments(a.h, w.h, ref);
  gpu().saliency_moments(a.d, w.d, out);
  expect_close(out, ref, tol(DType::Float32, 10.0), "saliency moments of 65543 images");
}

// Softmax and log_softmax forward and backward for each kernel layout: contiguous rows of up
// to 1024 (one warp per row, in registers: every elements-per-lane count 1 to 32, full and
// partial, 1000 ImageNet classes), longer rows (one block per row: 1025, 5000), rows over a
// middle dim and over dim 0 (strided columns), plus huge logits (the max shift).
TEST_P(CudaParity, SoftmaxForwardBackward) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{7, 10}, 1},    {{17, 32}, 1},  {{17, 33}, 1},   {{9, 100}, 1},  {{9, 129}, 1},
      {{9, 256}, 1},   {{9, 300}, 1},  {{5, 64}, 1},    {{5, 128}, 1},  {{5, 512}, 1},  {{33, 1000}, 1}, {{3, 1024}, 1}, {{3, 1025}, 1},
      {{2, 5000}, 1},  {{1, 1}, 0},    {{4, 6, 3, 5}, 1}, {{9, 257}, 0}};
  for (const auto& [shape, dim] : cases) {
    for (const bool log : {false, true}) {
      const std::string what = std::string(log ? "log_softmax" : "softmax") + " dim " +
                               std::to_string(dim) + " of " + std::to_string(numel_of(shape));
      Pair x = randn(shape, dt(), rng);
      Tensor scaled = Tensor::empty(shape, dt(), Device::CPU);
      cpu().binary(BinaryOp::Mul, x.h, Tensor::full(shape, 30.0, dt()), scaled, {});
      x = make_pair_from(scaled);  // logits up to ~100: exp would overflow float unshifted
      Outs y = empty_pair(shape, dt());
      cpu().softmax(x.h, dim, log, y.h);
      gpu().softmax(x.d, dim, log, y.d);
      expect_close(y.d, y.h, tol(dt()), what);

      Pair g = randn(shape, dt(), rng);
      const Tensor y_dev = to_device(y.h);
      Outs dx = empty_pair(shape, dt());
      cpu().softmax_backward(g.h, y.h, dim, log, dx.h);
      gpu().softmax_backward(g.d, y_dev, dim, log, dx.d);
      expect_close(dx.d, dx.h, tol(dt(), 10.0), what + " backward");
    }
  }
}

TEST_P(CudaParity, FusedIgAccumulate) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const Shape s = {5, 31};
  Pair acc = randn(s, dt(), rng), g = randn(s, dt(), rng);
  const double w = 0.125;
  const std::vector<double> av = acc.h.to_vector(), gv = g.h.to_vector();
  std::vector<double> ref(av.size());
  for (size_t i = 0; i < av.size(); ++i) ref[i] = av[i] + w * gv[i];
  cuda::ig_accumulate(acc.d, g.d, w);
  expect_close(acc.d, Tensor::from_vector(ref, s, dt()), tol(dt()), "ig accumulate");
}

// ---- CUDA Graph capture (graph.cu) -------------------------------------------------------

// A recorded computation replays on new inputs into the same output buffers; while it lives,
// its pool's blocks are not handed to other allocations; a computation that reads back to
// the host is refused with the reason, and the stream works normally afterwards.
TEST_P(CudaParity, CapturedComputationReplays) {
  FRAGILE_REQUIRE_CUDA_DEVICE();
  const Shape s = {3, 257};
  const void* scratch = nullptr;  // a buffer the recording frees before it ends
  auto twice_plus_sum = [&scratch](const std::vector<Tensor>& in) {
    Tensor tmp = Tensor::empty(in[0].shape(), in[0].dtype(), Device::CUDA);
    cuda_backend().binary(BinaryOp::Add, in[0], in[0], tmp, {});
    scratch = tmp.raw_data();
    Tensor twice = Tensor::empty(in[0].shape(), in[0].dtype(), Device::CUDA);
    cuda_backend().copy(tmp, twice);
    Tensor total = Tensor::empty({1, 1}, in[0].dtype(), Device::CUDA);  // reduce keeps dims
    cuda_backend().reduce(ReduceOp::Sum, twice, {0, 1}, total);
    return std::vector<Tensor>{twice, total};
  };
  std::string why;
  Pair a = randn(s, dt(), rng), b = randn(s, dt(), rng);
  const auto recorded = gpu().capture(twice_plus_sum, {a.d}, &why);
  ASSERT_NE(recorded, nullptr) << why;
  for (const Pair* p : {&b, &a}) {
    const std::vector<Tensor> out = recorded->run({p->d});
    const std::vector<double> x = p->h.to_vector();
    std::vector<double> ref(x.size());
    double total = 0;
    for (size_t i = 0; i < x.size(); ++i) total += ref[i] = 2 * x[i];
    expect_close(out[0], Tensor::from_vector(ref, s, dt()), tol(dt()), "replayed 2x");
    EXPECT_NEAR(to_host(out[1]).to_vector()[0], total, 1e-4 * (1 + std::abs(total)));
  }
  // Allocations after the recording never land on the recording's buffers, not even on the
  // scratch buffer it freed (the replay still writes there).
  const void* recorded_out = recorded->run({a.d})[0].raw_data();
  std::vector<Tensor> later;
  for (int i = 0; i < 8; ++i) {
    later.push_back(Tensor::empty(s, dt(), Device::CUDA));
    EXPECT_NE(later.back().raw_data(), recorded_out);
    EXPECT_NE(later.back().raw_data(), scratch);
  }

  auto reads_back = [](const std::vector<Tensor>& in) {
    (void)to_host(in[0]);  // a device -> host copy: not recordable
    return std::vector<Tensor>{in[0]};
  };
  EXPECT_EQ(gpu().capture(reads_back, {a.d}, &why), nullptr);
  EXPECT_NE(why.find("CUDA Graph capture failed"), std::string::npos) << why;
  expect_close(to_host(a.d), a.h, Tol{0, 0}, "the stream after a failed capture");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaParity,
                         ::testing::Values(DType::Float32, DType::Float64),
                         [](const ::testing::TestParamInfo<DType>& info) {
                           return std::string(dtype_name(info.param));
                         });

}  // namespace
}  // namespace fragile
