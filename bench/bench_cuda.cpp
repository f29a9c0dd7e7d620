// Google Benchmark: the CUDA backend, timed with CUDA events (kernels/cuda/timing.h). Built
// only with the CUDA backend (bench/CMakeLists.txt); every benchmark skips itself, saying why,
// when no device is present. bench/compare_pytorch.py --device cuda runs the same workloads in
// PyTorch on the same GPU and prints fragile/PyTorch ratios.
//
// Ops only enqueue work on the backend's one stream, so every benchmark uses manual time: CUDA
// events on that stream around the timed work, the stop event waited for. Google Benchmark
// appends "/manual_time" to the names.
//
// Fused element-wise kernels on N = 16M float32 elements (64 MiB per tensor, far beyond L2):
//   cuda/softplus_fwd_bwd           value, sigmoid = softplus_beta(x), sigmoid(beta x)   3N x 4 B
//   cuda/softplus_double_backward   grad_g, grad_x from (u, g, x)                       5N x 4 B
//   cuda/ig_accumulate              acc += w g, in place                                 3N x 4 B
//   cuda/sigmoid                    fragile::sigmoid(x) through the backend, unfused     2N x 4 B
// Times are per call: the mean of 10 back-to-back calls between one pair of events (launch
// latency hidden behind the previous call, as in a real sequence of ops). Bytes count every
// tensor read once and written once (the minimum traffic). Counters: GBps (achieved, 1e9 B/s),
// copy_GBps (device-to-device cudaMemcpy bandwidth, same read + write convention, measured
// once per process), pct_of_copy = 100 GBps / copy_GBps.
//
// The real SqueezeNet v1.0 on the GPU (bench/squeezenet_workloads.h, as bench_squeezenet.cpp
// times on the CPU), batch 1, 8, 64:
//   cuda/squeezenet/input_grad/N    gradient of logit 285 w.r.t. the input
//   cuda/squeezenet/input_hvp/N     H v of that logit, softplus(10) network
//   cuda/squeezenet/attack_step/N   one top-k attack direction through the softplus(1)
//                                   surrogate (create_graph saliency map, mass on the original
//                                   top-1000 pixels, its input gradient)
//   cuda/squeezenet/attack_step_graph/N   the same direction recorded once as a CUDA Graph
//                                   (Backend::capture) and replayed, as `fragile attack` runs
//                                   iterations 2..P; skipped, saying why, if recording fails
// One step per pair of events, so the time includes any stretch where the GPU waited for the
// host to launch the next kernel: what a caller of the step waits for. Counter images_per_s =
// N / step time.
//
// Host cost per device op (what makes eager batch-1 SqueezeNet host bound), ops so small the
// GPU always waits for the host, so the event time is the host's:
//   cuda/host/softplus_op    64 chained softplus on a one-element tensor: the engine plus one
//                            kernel launch per op
//   cuda/host/conv_op        64 chained 1x1 convolutions of a [1, 1, 4, 4] tensor: the engine
//                            plus conv2d.cu's per-call set-up and one cuDNN call per op
//   cuda/host/cudnn_conv_descriptors  only that set-up's descriptors: the 4 cuDNN descriptors
//                            conv2d.cu creates, sets and destroys per call; host code that
//                            needs no device (CPU time, not events)
// items_per_second = ops per second.
#include <benchmark/benchmark.h>
#include <cudnn.h>

#include <exception>
#include <memory>
#include <random>
#include <string>

#include "bench/squeezenet_workloads.h"
#include "core/backend.h"
#include "core/ops.h"
#include "kernels/cuda/fused.h"
#include "kernels/cuda/timing.h"

using namespace fragile;

namespace {

// ---- common -------------------------------------------------------------------------------

// Runs body() unless there is no device; an exception (an op the CUDA backend rejects, a
// device fault) skips this benchmark with its message instead of ending the whole run.
// SkipWithError stops the running timer itself, so leaving the loop by exception is safe.
template <class Body>
void on_device(benchmark::State& st, Body&& body) {
  if (!cuda_available()) {
    st.SkipWithError("no CUDA device: cuda_available() is false (no driver or no GPU)");
    return;
  }
  try {
    body();
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
  }
}

const std::string& device_label() {
  static const std::string label = cuda::device_description();
  return label;
}

// Times step() with CUDA events, after one untimed warm-up call (cuDNN handle creation and
// algorithm choice, caching-allocator growth, first-launch costs). Each iteration records the
// events around `calls` back-to-back calls and reports their mean as the iteration's time, so
// the reported time is per call. Returns the total timed milliseconds per call summed over
// iterations. step() should keep its tensors local, so freeing them is inside the timed
// interval as on the CPU.
template <class Step>
double time_steps(benchmark::State& st, Step&& step, int calls = 1) {
  step();
  cuda::EventTimer timer;
  double total_ms = 0.0;
  for (auto _ : st) {
    timer.start();
    for (int i = 0; i < calls; ++i) step();
    const double ms = timer.stop() / calls;
    st.SetIterationTime(ms * 1e-3);
    total_ms += ms;
  }
  st.SetLabel(device_label());
  return total_ms;
}

// ---- fused element-wise kernels -----------------------------------------------------------

constexpr int64_t kNumel = int64_t{1} << 24;                       // 16M elements
constexpr double kTensorBytes = static_cast<double>(kNumel) * 4;  // float32: 64 MiB
// Copy yardstick: 256 MiB buffers (512 MiB of traffic per copy), several times any L2.
constexpr std::size_t kCopyBytes = std::size_t{256} << 20;
constexpr double kBeta = 1.0;  // the attack surrogate's softplus; the kernels' cost is beta-blind
// Kernel calls between one pair of events. A single call would also time the host's launch
// latency (and, for ops, their allocation and dispatch) while the GPU idles, a visible share of
// a kernel that only streams a few hundred MB; back to back, the host enqueues call i+1 while
// call i runs, and what is left is the kernel's own time, which a bandwidth figure is about.
constexpr int kCallsPerIteration = 10;

double copy_gbps() {
  static const double gbps = cuda::device_copy_gbps(kCopyBytes);
  return gbps;
}

// Inputs shared by the kernel benchmarks, made once: x ~ U(-6, 6) (pre-activations, no
// saturated tails), u, g ~ N(0, 1). Leaked on purpose: device tensors must not be freed by
// static destructors racing the CUDA runtime's own teardown.
struct KernelInputs {
  Tensor x, u, g;
};
const KernelInputs& kernel_inputs() {
  static const KernelInputs* in = [] {
    std::mt19937_64 rng(7);
    auto* k = new KernelInputs;
    k->x = Tensor::uniform({kNumel}, -6.0, 6.0, rng, DType::Float32).to(Device::CUDA);
    k->u = Tensor::randn({kNumel}, rng, DType::Float32).to(Device::CUDA);
    k->g = Tensor::randn({kNumel}, rng, DType::Float32).to(Device::CUDA);
    return k;
  }();
  return *in;
}

Tensor device_empty() { return Tensor::empty({kNumel}, DType::Float32, Device::CUDA); }

// `tensors_moved` tensors of kNumel float32 read or written per call.
template <class Step>
void run_kernel(benchmark::State& st, int tensors_moved, Step&& step) {
  const double yardstick = copy_gbps();  // measured before the timed loop, once per process
  const double bytes = tensors_moved * kTensorBytes;
  const double total_ms = time_steps(st, step, kCallsPerIteration);
  st.SetBytesProcessed(static_cast<int64_t>(bytes * static_cast<double>(st.iterations())));
  const double gbps = bytes * static_cast<double>(st.iterations()) / (total_ms * 1e-3) / 1e9;
  st.counters["GBps"] = gbps;
  st.counters["copy_GBps"] = yardstick;
  st.counters["pct_of_copy"] = 100.0 * gbps / yardstick;
}

void cuda_softplus_fwd_bwd(benchmark::State& st) {
  on_device(st, [&] {
    const KernelInputs& in = kernel_inputs();
    Tensor value = device_empty(), sig = device_empty();
    // read x; write value, sig
    run_kernel(st, 3, [&] { cuda::softplus_forward_backward(in.x, kBeta, value, sig); });
  });
}

void cuda_softplus_double_backward(benchmark::State& st) {
  on_device(st, [&] {
    const KernelInputs& in = kernel_inputs();
    Tensor grad_g = device_empty(), grad_x = device_empty();
    // read u, g, x; write grad_g, grad_x
    run_kernel(st, 5, [&] {
      cuda::softplus_double_backward(in.u, in.g, in.x, kBeta, grad_g, grad_x);
    });
  });
}

void cuda_ig_accumulate(benchmark::State& st) {
  on_device(st, [&] {
    const KernelInputs& in = kernel_inputs();
    Tensor acc = Tensor::zeros({kNumel}, DType::Float32, Device::CUDA);
    // read acc, g; write acc. w = 1/32: a 32-step IG path (the value does not change the cost).
    run_kernel(st, 3, [&] { cuda::ig_accumulate(acc, in.g, 1.0 / 32); });
  });
}

// The attack step (Backend::attack_step): read x, d, x0; write x_new. The 16M elements as
// 64 images of 4 x 256 x 256 with ImageNet-like per-channel parameters (only the first three
// channels' values differ; the kernel's cost does not depend on them).
void cuda_attack_step(benchmark::State& st) {
  on_device(st, [&] {
    const KernelInputs& in = kernel_inputs();
    const Shape s = {64, 4, 256, 256};
    const Tensor x = reshape(in.x, s), d = reshape(in.u, s), x0 = reshape(in.g, s);
    AttackStepParams p;
    p.alpha = {0.5, 0.5, 0.5, 0.5};
    p.eps = {8, 8, 8, 8};
    p.lo = {-104, -117, -123, -123};
    p.hi = {151, 138, 132, 132};
    Tensor out = Tensor::empty(s, DType::Float32, Device::CUDA);
    run_kernel(st, 4, [&] { cuda_backend().attack_step(x, d, x0, p, out); });
  });
}

// The unfused baseline: one element-wise op through the public API (allocates its output
// from the caching allocator, as every op does).
void cuda_sigmoid(benchmark::State& st) {
  on_device(st, [&] {
    const KernelInputs& in = kernel_inputs();
    // read x; write the result
    run_kernel(st, 2, [&] { benchmark::DoNotOptimize(sigmoid(in.x).raw_data()); });
  });
}

// Softmax over rows of kSoftmaxRow (the warp-per-row kernel; 1000 ImageNet classes is this
// size) and its backward. The forward reads each row three times (max, sum, write), but rows
// are 4 KB: the second and third reads come from L1/L2, so the bytes counted are the minimum.
constexpr int64_t kSoftmaxRow = 1024;

void cuda_softmax(benchmark::State& st) {
  on_device(st, [&] {
    const Tensor x = reshape(kernel_inputs().x, {kNumel / kSoftmaxRow, kSoftmaxRow});
    Tensor y = Tensor::empty(x.shape(), DType::Float32, Device::CUDA);
    // read x; write y
    run_kernel(st, 2, [&] { cuda_backend().softmax(x, 1, /*log=*/false, y); });
  });
}

void cuda_softmax_backward(benchmark::State& st) {
  on_device(st, [&] {
    const KernelInputs& in = kernel_inputs();
    const Shape rows = {kNumel / kSoftmaxRow, kSoftmaxRow};
    const Tensor g = reshape(in.g, rows);
    Tensor y = Tensor::empty(rows, DType::Float32, Device::CUDA);
    cuda_backend().softmax(reshape(in.x, rows), 1, false, y);
    Tensor dx = Tensor::empty(rows, DType::Float32, Device::CUDA);
    // read g, y; write dx
    run_kernel(st, 3, [&] { cuda_backend().softmax_backward(g, y, 1, /*log=*/false, dx); });
  });
}

// ---- SqueezeNet ---------------------------------------------------------------------------

template <class Step>
void run_model_step(benchmark::State& st, Step&& step) {
  time_steps(st, step);
  st.counters["images_per_s"] = benchmark::Counter(static_cast<double>(st.range(0)),
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

void cuda_squeezenet_input_grad(benchmark::State& st) {
  on_device(st, [&] {
    if (!bench::have_squeezenet(st)) return;
    const nn::Session& s = bench::squeezenet(0, Device::CUDA);
    Tensor x = bench::squeezenet_input(st.range(0), 1, Device::CUDA);
    x.set_requires_grad(true);
    run_model_step(st, [&] { benchmark::DoNotOptimize(bench::input_grad(s, x).raw_data()); });
  });
}

void cuda_squeezenet_input_hvp(benchmark::State& st) {
  on_device(st, [&] {
    if (!bench::have_squeezenet(st)) return;
    const nn::Session& s = bench::squeezenet(10.0, Device::CUDA);
    const Tensor x = bench::squeezenet_input(st.range(0), 1, Device::CUDA);
    const Tensor v = bench::squeezenet_input(st.range(0), 2, Device::CUDA);
    run_model_step(st, [&] { benchmark::DoNotOptimize(bench::input_hvp(s, x, v).raw_data()); });
  });
}

void cuda_squeezenet_attack_step(benchmark::State& st) {
  on_device(st, [&] {
    if (!bench::have_squeezenet(st)) return;
    const bench::AttackStep step(st.range(0), Device::CUDA);
    run_model_step(st, [&] { benchmark::DoNotOptimize(step.direction().raw_data()); });
  });
}

void cuda_squeezenet_attack_step_graph(benchmark::State& st) {
  on_device(st, [&] {
    if (!bench::have_squeezenet(st)) return;
    const bench::AttackStep step(st.range(0), Device::CUDA);
    (void)step.direction();  // eagerly once: library handles, algorithm choices, cached masks
    std::string why_not;
    const std::unique_ptr<CapturedComputation> graph = cuda_backend().capture(
        [&](const std::vector<Tensor>&) { return std::vector<Tensor>{step.direction()}; }, {},
        &why_not);
    if (!graph) {
      st.SkipWithError(why_not.c_str());
      return;
    }
    run_model_step(st, [&] { benchmark::DoNotOptimize(graph->run({})[0].raw_data()); });
  });
}

// ---- host cost per op ---------------------------------------------------------------------

constexpr int kHostChain = 64;

void cuda_host_softplus_op(benchmark::State& st) {
  on_device(st, [&] {
    const Tensor x = Tensor::full({1}, 0.5, DType::Float32, Device::CUDA);
    time_steps(st, [&] {
      Tensor y = x;
      for (int i = 0; i < kHostChain; ++i) y = softplus(y, kBeta);
      benchmark::DoNotOptimize(y.raw_data());
    });
    st.SetItemsProcessed(st.iterations() * kHostChain);
  });
}

void cuda_host_conv_op(benchmark::State& st) {
  on_device(st, [&] {
    const Tensor x = Tensor::full({1, 1, 4, 4}, 0.5, DType::Float32, Device::CUDA);
    const Tensor w = Tensor::full({1, 1, 1, 1}, 0.9, DType::Float32, Device::CUDA);
    time_steps(st, [&] {
      Tensor y = x;
      for (int i = 0; i < kHostChain; ++i) y = conv2d(y, w, Tensor(), Conv2dParams{});
      benchmark::DoNotOptimize(y.raw_data());
    });
    st.SetItemsProcessed(st.iterations() * kHostChain);
  });
}

// As conv2d.cu's Descs for one SqueezeNet fire-module squeeze (x [1, 64, 55, 55], w [16, 64,
// 1, 1]); the calls' cost does not depend on the extents.
void cuda_host_cudnn_conv_descriptors(benchmark::State& st) {
  int failed = 0;  // cuDNN calls that did not return CUDNN_STATUS_SUCCESS
  auto call = [&](cudnnStatus_t status) { failed += status != CUDNN_STATUS_SUCCESS; };
  for (auto _ : st) {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    call(cudnnCreateTensorDescriptor(&x));
    call(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 64, 55, 55));
    call(cudnnCreateTensorDescriptor(&y));
    call(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 16, 55, 55));
    call(cudnnCreateFilterDescriptor(&w));
    call(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, 16, 64, 1, 1));
    call(cudnnCreateConvolutionDescriptor(&conv));
    call(cudnnSetConvolution2dDescriptor(conv, 0, 0, 1, 1, 1, 1, CUDNN_CROSS_CORRELATION,
                                         CUDNN_DATA_FLOAT));
    call(cudnnSetConvolutionGroupCount(conv, 1));
    call(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
    benchmark::DoNotOptimize(conv);
    call(cudnnDestroyConvolutionDescriptor(conv));
    call(cudnnDestroyFilterDescriptor(w));
    call(cudnnDestroyTensorDescriptor(y));
    call(cudnnDestroyTensorDescriptor(x));
  }
  if (failed) st.SkipWithError("a cuDNN descriptor call failed");
  st.SetItemsProcessed(st.iterations());
}

}  // namespace

// Names stay as given apart from Google Benchmark's "/manual_time" (MinTime or Iterations would
// append more). The kernel rows run --benchmark_min_time of per-call time, i.e. about 10x that
// on the device (10 calls per iteration).
BENCHMARK(cuda_softplus_fwd_bwd)->Name("cuda/softplus_fwd_bwd")->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_softplus_double_backward)->Name("cuda/softplus_double_backward")->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_ig_accumulate)->Name("cuda/ig_accumulate")->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_attack_step)->Name("cuda/attack_step")->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_sigmoid)->Name("cuda/sigmoid")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_softmax)->Name("cuda/softmax")->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_softmax_backward)->Name("cuda/softmax_backward")->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_squeezenet_input_grad)->Name("cuda/squeezenet/input_grad")->Arg(1)->Arg(8)
    ->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(cuda_squeezenet_input_hvp)->Name("cuda/squeezenet/input_hvp")->Arg(1)->Arg(8)
    ->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(cuda_squeezenet_attack_step)->Name("cuda/squeezenet/attack_step")->Arg(1)->Arg(8)
    ->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(cuda_squeezenet_attack_step_graph)->Name("cuda/squeezenet/attack_step_graph")->Arg(1)
    ->Arg(8)->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(cuda_host_softplus_op)->Name("cuda/host/softplus_op")->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_host_conv_op)->Name("cuda/host/conv_op")->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(cuda_host_cudnn_conv_descriptors)->Name("cuda/host/cudnn_conv_descriptors")
    ->Unit(benchmark::kMicrosecond);
