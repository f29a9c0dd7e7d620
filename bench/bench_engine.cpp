// Google Benchmark: the engine's hot paths on the CPU. Workloads mirror bench/compare_pytorch.py,
// which times the same shapes in PyTorch and prints fragile/PyTorch ratios.
//
//   conv/forward          y = conv2d(x, w)                         x [N,32,32,32], w [64,32,3,3]
//   conv/backward         dL/dx and dL/dw of sum(y * r)
//   conv/double_backward  H v for f(x) = sum(softplus(conv(x, w)) * r)   (reverse over reverse)
//   cnn/input_hvp         H v of a class score of the Fashion-MNIST-sized softplus CNN
//   cnn/input_grad        the gradient alone (HVP / gradient time is the cost of second order)
//   elementwise/sigmoid            sigmoid(x), 4M float32 in [-12, 12] (the saturated tails of a
//   elementwise/softplus_backward  g * sigmoid(beta x)     real network's pre-activations), beta 1
//   elementwise/softplus           softplus_beta(x)
//   engine/op_overhead/forward     the engine's own host cost per op: 64 chained softplus on a
//   engine/op_overhead/grad        one-element tensor (no math to speak of), without autograd,
//                                  and recorded then differentiated (a forward op and its
//                                  backward op each); items_per_second = ops per second.
//                                  Device backends pay this on top of their launches.
#include <benchmark/benchmark.h>

#include <random>

#include "core/autograd.h"
#include "core/functional.h"
#include "core/ops.h"

using namespace fragile;

namespace {

constexpr int64_t kCin = 32, kCout = 64, kHW = 32;

struct ConvCase {
  Tensor x, w, r, v;
  explicit ConvCase(int64_t n) {
    std::mt19937_64 rng(0);
    x = Tensor::randn({n, kCin, kHW, kHW}, rng);
    w = mul(Tensor::randn({kCout, kCin, 3, 3}, rng), 0.05);
    r = Tensor::randn({n, kCout, kHW, kHW}, rng);
    v = Tensor::randn({n, kCin, kHW, kHW}, rng);
  }
};

Conv2dParams pad1() {
  Conv2dParams p;
  p.padding = {1, 1};
  return p;
}

void conv_forward(benchmark::State& st) {
  ConvCase c(st.range(0));
  for (auto _ : st) benchmark::DoNotOptimize(conv2d(c.x, c.w, Tensor(), pad1()).raw_data());
}

void conv_backward(benchmark::State& st) {
  ConvCase c(st.range(0));
  Tensor x = c.x.detach(), w = c.w.detach();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  for (auto _ : st) {
    Tensor y = conv2d(x, w, Tensor(), pad1());
    auto g = grad({y}, {x, w}, {c.r});
    benchmark::DoNotOptimize(g[0].raw_data());
  }
}

void conv_double_backward(benchmark::State& st) {
  ConvCase c(st.range(0));
  auto f = [&](const Tensor& x) { return sum(mul(softplus(conv2d(x, c.w, Tensor(), pad1())), c.r)); };
  for (auto _ : st) benchmark::DoNotOptimize(hvp(f, c.x, c.v).hvp.raw_data());
}

// The shipped Fashion-MNIST architecture: conv(1->16) sp pool conv(16->32) sp pool fc(1568->64)
// sp fc(64->10), random weights.
struct SmallCnn {
  Tensor w1, b1, w2, b2, w3, b3, w4, b4;
  SmallCnn() {
    std::mt19937_64 rng(1);
    w1 = mul(Tensor::randn({16, 1, 3, 3}, rng), 0.3);
    b1 = mul(Tensor::randn({16}, rng), 0.1);
    w2 = mul(Tensor::randn({32, 16, 3, 3}, rng), 0.1);
    b2 = mul(Tensor::randn({32}, rng), 0.1);
    w3 = mul(Tensor::randn({64, 1568}, rng), 0.03);
    b3 = mul(Tensor::randn({64}, rng), 0.1);
    w4 = mul(Tensor::randn({10, 64}, rng), 0.1);
    b4 = mul(Tensor::randn({10}, rng), 0.1);
  }
  Tensor operator()(const Tensor& x) const {
    Pool2dParams pool;
    Tensor h = max_pool2d(softplus(conv2d(x, w1, b1, pad1())), pool);
    h = max_pool2d(softplus(conv2d(h, w2, b2, pad1())), pool);
    h = softplus(linear(flatten(h), w3, b3));
    return linear(h, w4, b4);
  }
};

void cnn_input_hvp(benchmark::State& st) {
  SmallCnn net;
  std::mt19937_64 rng(2);
  const int64_t n = st.range(0);
  Tensor x = Tensor::uniform({n, 1, 28, 28}, 0, 1, rng), v = Tensor::randn({n, 1, 28, 28}, rng);
  auto score = [&](const Tensor& in) { return sum(slice(net(in), 1, 3, 4)); };
  for (auto _ : st) benchmark::DoNotOptimize(hvp(score, x, v).hvp.raw_data());
}

void cnn_input_grad(benchmark::State& st) {
  SmallCnn net;
  std::mt19937_64 rng(2);
  const int64_t n = st.range(0);
  Tensor x = Tensor::uniform({n, 1, 28, 28}, 0, 1, rng);
  x.set_requires_grad(true);
  for (auto _ : st) {
    Tensor s = sum(slice(net(x), 1, 3, 4));
    benchmark::DoNotOptimize(grad({s}, {x})[0].raw_data());
  }
}

// The element-wise maps whose exp dominates a softplus network's backward passes. Bytes per
// call: one float read per input, one written.
constexpr int64_t kElementwise = int64_t{1} << 22;

struct ElementwiseCase {
  Tensor x, g;
  ElementwiseCase() {
    std::mt19937_64 rng(3);
    x = Tensor::uniform({kElementwise}, -12.0, 12.0, rng);
    g = Tensor::randn({kElementwise}, rng);
  }
};

void elementwise_sigmoid(benchmark::State& st) {
  const ElementwiseCase c;
  for (auto _ : st) benchmark::DoNotOptimize(sigmoid(c.x).raw_data());
  st.SetBytesProcessed(st.iterations() * kElementwise * 4 * 2);
}

void elementwise_softplus(benchmark::State& st) {
  const ElementwiseCase c;
  for (auto _ : st) benchmark::DoNotOptimize(softplus(c.x, 1.0).raw_data());
  st.SetBytesProcessed(st.iterations() * kElementwise * 4 * 2);
}

void elementwise_softplus_backward(benchmark::State& st) {
  const ElementwiseCase c;
  for (auto _ : st) benchmark::DoNotOptimize(softplus_backward(c.g, c.x, 1.0).raw_data());
  st.SetBytesProcessed(st.iterations() * kElementwise * 4 * 3);
}

// The engine's host cost per op, measured where the math is negligible: 64 softplus ops chained
// on a one-element tensor. What an eager GPU step pays besides kernel launches and library
// calls (a shape check, an output tensor, with autograd a graph node and its backward).
constexpr int kChain = 64;

Tensor softplus_chain(Tensor x) {
  for (int i = 0; i < kChain; ++i) x = softplus(x, 1.0);
  return x;
}

void engine_op_overhead_forward(benchmark::State& st) {
  const Tensor x = Tensor::full({1}, 0.5, DType::Float32);
  for (auto _ : st) benchmark::DoNotOptimize(softplus_chain(x).raw_data());
  st.SetItemsProcessed(st.iterations() * kChain);
}

void engine_op_overhead_grad(benchmark::State& st) {
  Tensor x = Tensor::full({1}, 0.5, DType::Float32);
  x.set_requires_grad(true);
  for (auto _ : st) benchmark::DoNotOptimize(grad({softplus_chain(x)}, {x})[0].raw_data());
  st.SetItemsProcessed(st.iterations() * 2 * kChain);  // each forward op and its backward
}

}  // namespace

BENCHMARK(conv_forward)->Name("conv/forward")->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(conv_backward)->Name("conv/backward")->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(conv_double_backward)->Name("conv/double_backward")->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(cnn_input_grad)->Name("cnn/input_grad")->Arg(1)->Arg(32)->Unit(benchmark::kMillisecond);
BENCHMARK(cnn_input_hvp)->Name("cnn/input_hvp")->Arg(1)->Arg(32)->Unit(benchmark::kMillisecond);
BENCHMARK(elementwise_sigmoid)->Name("elementwise/sigmoid")->Unit(benchmark::kMicrosecond);
BENCHMARK(elementwise_softplus)->Name("elementwise/softplus")->Unit(benchmark::kMicrosecond);
BENCHMARK(elementwise_softplus_backward)->Name("elementwise/softplus_backward")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(engine_op_overhead_forward)->Name("engine/op_overhead/forward")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(engine_op_overhead_grad)->Name("engine/op_overhead/grad")
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
