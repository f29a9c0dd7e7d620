// The host simulator's own promises (kernels/cuda_sim/sim.h): it computes what the CUDA
// execution model computes, and it refuses what a GPU would refuse or get wrong. A simulator
// whose checks never fire would make every test run on it worthless, so each check is made
// to fire here, on small kernels written for the purpose.
#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/conv2d_direct.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda_sim/cudnn_api.h"
#include "kernels/cuda_sim/sim.h"

namespace fragile {
namespace {

Tensor upload(const std::vector<double>& v) {
  const Tensor h = Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, DType::Float64);
  Tensor d = Tensor::empty(h.shape(), DType::Float64, Device::CUDA);
  cuda_backend().copy(h, d);
  return d;
}

std::vector<double> download(const Tensor& d) {
  Tensor h = Tensor::empty(d.shape(), d.dtype(), Device::CPU);
  cuda_backend().copy(d, h);
  return h.to_vector();
}

// Expects `f` to throw an error whose message contains `needle`.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning \"" << needle << "\"";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// ---- kernels -----------------------------------------------------------------------------

// Per block of 64 threads (two warps): a shuffle reduction per warp, then the two warp sums
// through shared memory after a barrier.
__global__ void block_sums(const double* in, double* out) {
  FRAGILE_SHARED(double, warp_sum, [2]);
  double v = in[blockIdx.x * blockDim.x + threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) warp_sum[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) out[blockIdx.x] = warp_sum[0] + warp_sum[1];
}

// Butterfly: after it, every lane holds its warp's sum; out[i] per thread.
__global__ void butterfly(const double* in, double* out) {
  double v = in[threadIdx.x];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  out[threadIdx.x] = v;
}

// Lanes 0-15 exchange among themselves (mask 0xffff) while lanes 16-31 already wait at the
// block barrier; then all meet there. And a shuffle in segments of 8 lanes (width 8).
__global__ void partial_masks_and_widths(double* pairs, double* segments) {
  double v = threadIdx.x;
  if (threadIdx.x < 16) v = __shfl_xor_sync(0x0000ffffu, v, 1);
  __syncthreads();
  pairs[threadIdx.x] = v;
  segments[threadIdx.x] = __shfl_down_sync(0xffffffffu, double(threadIdx.x), 1, 8);
}

// Half of each warp waits at __syncthreads, the other half at a full-warp shuffle that needs
// the first half: neither can complete (a hang on a GPU). Whole warps at different barriers
// would not be one: exited threads do not hold up __syncthreads.
__global__ void split_barriers(double* out) {
  double v = 1.0;
  if (threadIdx.x % 32 < 16)
    __syncthreads();
  else
    v = __shfl_down_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// Lane 5 returns, the others shuffle with a full mask that still names it.
__global__ void shuffle_after_return(double* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, 1.0, 1);
}

// Uses a barrier only in the middle one of three blocks (blocks run in either order).
__global__ void late_barrier(double* out) {
  if (blockIdx.x == 1) __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0;
}

// Threads 0-31 wait at one __syncthreads, threads 32-63 at another.
__global__ void two_barriers(double* out) {
  if (threadIdx.x < 32)
    __syncthreads();
  else
    __syncthreads();
  out[threadIdx.x] = 1.0;
}

// Warp 1 reads what warp 0 wrote to shared memory, with no barrier in between (a race).
__global__ void missing_barrier(double* out) {
  FRAGILE_SHARED(double, slot, [64]);
  slot[threadIdx.x] = threadIdx.x;
  const double v = __shfl_down_sync(0xffffffffu, 1.0, 1);  // warps meet only their own lanes
  out[threadIdx.x] = slot[(threadIdx.x + 32) % 64] + 0 * v;
}

// Sums all 64 slots of a shared array of which the block writes only 32.
__global__ void half_written_shared(double* out) {
  FRAGILE_SHARED(double, slot, [64]);
  if (threadIdx.x < 32) slot[threadIdx.x] = 1.0;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0;
    for (int i = 0; i < 64; ++i) s += slot[i];
    out[blockIdx.x] = s;
  }
}

// Lanes 8-15 read from lanes 16-23, which their mask 0xffff leaves out.
__global__ void outside_mask(double* out) {
  if (threadIdx.x < 16) out[threadIdx.x] = __shfl_down_sync(0x0000ffffu, 1.0, 8);
}

// Thread 33 fails between two barriers of a block that runs as fibers.
__global__ void throws_between_barriers(double* out) {
  __syncthreads();
  if (threadIdx.x == 33) throw std::runtime_error("thread 33 gave up");
  __syncthreads();
  out[threadIdx.x] = 1.0;
}

// Thread 0 rounds upwards from its first instruction to its last; every other thread keeps
// the default. Each writes 1 + 2^-60 rounded after a barrier (so the fibers interleave).
__global__ void own_rounding_mode(double* out) {
  if (threadIdx.x == 0) std::fesetround(FE_UPWARD);
  volatile double tiny = std::ldexp(1.0, -60);
  __syncthreads();
  out[threadIdx.x] = 1.0 + tiny;
}

__global__ void fill_index(double* out) {
  out[blockIdx.x * blockDim.x + threadIdx.x] = blockIdx.x * blockDim.x + threadIdx.x;
}

// ---- execution model ---------------------------------------------------------------------

TEST(CudaSimulator, BarriersSharedMemoryAndShufflesCompute) {
  std::vector<double> x(3 * 64);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-1, 1);
  for (double& v : x) v = u(rng);
  const Tensor in = upload(x);
  Tensor sums = Tensor::empty({3}, DType::Float64, Device::CUDA);
  const int64_t fiber_blocks = fragile_sim::stats().fiber_blocks;
  cuda::launch(block_sums, 3, 64)(in.data<double>(), sums.data<double>());
  const std::vector<double> got = download(sums);
  for (int b = 0; b < 3; ++b) {
    double want = 0;
    for (int t = 0; t < 64; ++t) want += x[b * 64 + t];
    EXPECT_NEAR(got[b], want, 1e-12) << "block " << b;
  }
  EXPECT_GT(fragile_sim::stats().fiber_blocks, fiber_blocks);  // threads interleaved

  Tensor all = Tensor::empty({64}, DType::Float64, Device::CUDA);
  cuda::launch(butterfly, 1, 64)(in.data<double>(), all.data<double>());
  const std::vector<double> b = download(all);
  for (int t = 0; t < 64; ++t) {
    double want = 0;
    for (int l = 0; l < 32; ++l) want += x[t / 32 * 32 + l];
    EXPECT_NEAR(b[t], want, 1e-12) << "thread " << t;
  }
}

TEST(CudaSimulator, ShuffleMasksAndWidthsFollowCuda) {
  Tensor pairs = Tensor::empty({32}, DType::Float64, Device::CUDA);
  Tensor segments = Tensor::empty({32}, DType::Float64, Device::CUDA);
  cuda::launch(partial_masks_and_widths, 1, 32)(pairs.data<double>(), segments.data<double>());
  const std::vector<double> p = download(pairs), s = download(segments);
  for (int t = 0; t < 32; ++t) {
    EXPECT_EQ(p[t], t < 16 ? (t ^ 1) : t) << "lane " << t;
    EXPECT_EQ(s[t], t % 8 == 7 ? t : t + 1) << "lane " << t;  // no reading across segments
  }
}

TEST(CudaSimulator, DivergentBarriersAreADeadlock) {
  Tensor out = Tensor::empty({64}, DType::Float64, Device::CUDA);
  expect_error([&] { cuda::launch(split_barriers, 1, 64)(out.data<double>()); }, "deadlock");
}

TEST(CudaSimulator, ShuffleNamingAReturnedLaneIsAnError) {
  Tensor out = Tensor::empty({32}, DType::Float64, Device::CUDA);
  expect_error([&] { cuda::launch(shuffle_after_return, 1, 32)(out.data<double>()); },
               "names lane 5, which has already returned");
}

TEST(CudaSimulator, BarrierOnlyInLaterBlocksFailsLoudly) {
  Tensor out = Tensor::empty({3 * 32}, DType::Float64, Device::CUDA);
  expect_error([&] { cuda::launch(late_barrier, 3, 32)(out.data<double>()); },
               "which its first block never did");
}

TEST(CudaSimulator, DifferentSyncthreadsCallsAreAnError) {
  Tensor out = Tensor::empty({64}, DType::Float64, Device::CUDA);
  expect_error([&] { cuda::launch(two_barriers, 1, 64)(out.data<double>()); },
               "threads wait at different __syncthreads");
}

// What a GPU leaves undefined reads as NaN: shared memory no thread of the block wrote (also
// across a warp race: each warp runs to its next barrier before the other starts) and a
// shuffle from a lane outside the mask.
TEST(CudaSimulator, UndefinedReadsAreNaN) {
  Tensor out = Tensor::empty({64}, DType::Float64, Device::CUDA);
  for (int launch = 0; launch < 2; ++launch) {  // warps run in both orders
    cuda::launch(missing_barrier, 1, 64)(out.data<double>());
    const std::vector<double> v = download(out);
    int nan = 0;
    for (double e : v) nan += std::isnan(e);
    EXPECT_EQ(nan, 32) << "launch " << launch << ": the warp that ran first read garbage";
  }
  Tensor sums = Tensor::empty({2}, DType::Float64, Device::CUDA);
  cuda::launch(half_written_shared, 2, 64)(sums.data<double>());
  for (double s : download(sums)) EXPECT_TRUE(std::isnan(s)) << s;
  cuda::launch(outside_mask, 1, 32)(out.data<double>());
  const std::vector<double> v = download(out);
  for (int t = 0; t < 16; ++t) EXPECT_EQ(std::isnan(v[t]), t >= 8) << "lane " << t;
}

// A simulated thread that throws ends its launch with that error; the fibers (and their
// stacks, reused by the next block) are left in order for the next launch.
TEST(CudaSimulator, AnErrorInsideAFiberEndsTheLaunchCleanly) {
  Tensor out = Tensor::empty({64}, DType::Float64, Device::CUDA);
  expect_error([&] { cuda::launch(throws_between_barriers, 2, 64)(out.data<double>()); },
               "thread 33 gave up");
  std::vector<double> in(128);
  for (size_t i = 0; i < in.size(); ++i) in[i] = double(i);
  const Tensor d_in = upload(in);
  Tensor sums = Tensor::empty({2}, DType::Float64, Device::CUDA);
  cuda::launch(block_sums, 2, 64)(d_in.data<double>(), sums.data<double>());
  EXPECT_EQ(download(sums), (std::vector<double>{2016.0, 6112.0}));
}

// Each fiber keeps its own floating-point control state (x87 control word, MXCSR) across
// switches, and the launching thread gets its own back.
TEST(CudaSimulator, FibersKeepTheirOwnRoundingMode) {
  ASSERT_EQ(std::fegetround(), FE_TONEAREST);
  Tensor out = Tensor::empty({64}, DType::Float64, Device::CUDA);
  cuda::launch(own_rounding_mode, 1, 64)(out.data<double>());
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
  const std::vector<double> v = download(out);
  EXPECT_EQ(v[0], std::nextafter(1.0, 2.0));
  for (int t = 1; t < 64; ++t) EXPECT_EQ(v[t], 1.0) << "thread " << t;
}

TEST(CudaSimulator, HostPointerArgumentIsRefused) {
  std::vector<double> host(32);
  expect_error([&] { cuda::launch(fill_index, 1, 32)(host.data()); },
               "argument 0 is a pointer outside device memory");
}

TEST(CudaSimulator, InvalidLaunchConfigurationIsReported) {
  Tensor out = Tensor::empty({2048}, DType::Float64, Device::CUDA);
  expect_error([&] { cuda::launch(fill_index, 1, 2048)(out.data<double>()); },
               "invalid configuration");
  expect_error([&] { cuda::launch(fill_index, 0, 32)(out.data<double>()); },
               "invalid configuration");
  // The error was consumed: the next launch works.
  cuda::launch(fill_index, 64, 32)(out.data<double>());
  EXPECT_EQ(download(out)[2047], 2047.0);
}

// ---- memory ------------------------------------------------------------------------------

TEST(CudaSimulator, FreshDeviceMemoryIsNotZero) {
  // A kernel that forgets to initialise its output shows NaN, not a lucky zero.
  const Tensor fresh = Tensor::empty({1000}, DType::Float32, Device::CUDA);
  for (double v : download(fresh)) ASSERT_TRUE(std::isnan(v));
}

TEST(CudaSimulator, AllocationBeyondTheDeviceFailsCleanly) {
  cuda::empty_cache();
  const std::size_t in_use = fragile_sim::device_bytes_in_use();
  fragile_sim::set_device_memory_limit(in_use + (std::size_t{1} << 20));
  expect_error([] { (void)Tensor::empty({1 << 20}, DType::Float64, Device::CUDA); },
               "CUDA allocation of 8388608 bytes");
  fragile_sim::set_device_memory_limit(std::size_t{16} << 30);
  const Tensor ok = Tensor::empty({1 << 20}, DType::Float64, Device::CUDA);
  EXPECT_EQ(ok.numel(), 1 << 20);
}

// A recording allocates from its own pool: memory the shared cache holds from earlier eager
// runs must go back to the device first, or a device that had room for the eager run has none
// for the recording (seen on an H200: 100 GB cached, the recording short of 1.9 GB).
// ---- kernels per op ------------------------------------------------------------------------

// ReLU's backward is one kernel (relu_backward, a select), not a mask and a product: on a GPU
// an eager batch-1 SqueezeNet input gradient is bound by the host's launches, and this took it
// from 124 launches to 98 (counted on this simulator).
TEST(CudaSimulator, ReluBackwardIsOneKernel) {
  Tensor x = upload({-1.0, 0.0, 2.0, 3.0});
  x.set_requires_grad(true);
  const Tensor y = relu(x);
  const Tensor go = upload({5.0, 6.0, std::nan(""), 8.0});
  const int64_t before = fragile_sim::stats().launches;
  const Tensor g = grad({y}, {x}, {go})[0];
  EXPECT_EQ(fragile_sim::stats().launches - before, 1);
  const std::vector<double> got = download(g);
  EXPECT_EQ(got[0], 0.0);
  EXPECT_EQ(got[1], 0.0);  // relu'(0) = 0
  EXPECT_TRUE(std::isnan(got[2]));
  EXPECT_EQ(got[3], 8.0);
}

TEST(CudaSimulator, ARecordingGetsTheMemoryThatEagerRunsLeftCached) {
  cuda::empty_cache();
  constexpr int64_t kElems = 1 << 20;  // 8 MiB of float64 per buffer
  auto three_buffers = [](const std::vector<Tensor>& in) {
    std::vector<Tensor> scratch;
    for (int i = 0; i < 3; ++i) {
      scratch.push_back(Tensor::empty({kElems}, DType::Float64, Device::CUDA));
      cuda_backend().binary(BinaryOp::Add, in[0], in[0], scratch.back(), {});
    }
    return std::vector<Tensor>{scratch.back()};
  };
  const Tensor x = upload(std::vector<double>(kElems, 1.5));
  (void)three_buffers({x});  // eager: three buffers now cached
  const std::size_t in_use = fragile_sim::device_bytes_in_use();
  // The recording's input copy takes one cached buffer; its three buffers (24 MiB) fit in the
  // 12 MiB left plus the two still cached (16 MiB), not in the 12 MiB alone.
  fragile_sim::set_device_memory_limit(in_use + (std::size_t{12} << 20));
  std::string why;
  const auto recorded = cuda_backend().capture(three_buffers, {x}, &why);
  fragile_sim::set_device_memory_limit(std::size_t{16} << 30);
  ASSERT_NE(recorded, nullptr) << why;
  EXPECT_EQ(download(recorded->run({x})[0])[kElems - 1], 3.0);
}

// ---- stream capture ----------------------------------------------------------------------

TEST(CudaSimulator, CapturedWorkRunsOnlyWhenTheGraphIsLaunched) {
  Tensor out = Tensor::empty({32}, DType::Float64, Device::CUDA);
  cuda_backend().fill(out, -1.0);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(cuda::stream(), cudaStreamCaptureModeRelaxed), cudaSuccess);
  cuda::launch(fill_index, 1, 32)(out.data<double>());
  ASSERT_EQ(cudaStreamEndCapture(cuda::stream(), &graph), cudaSuccess);
  EXPECT_EQ(download(out)[7], -1.0);  // recorded, not run
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, cuda::stream()), cudaSuccess);
  EXPECT_EQ(download(out)[7], 7.0);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

TEST(CudaSimulator, SynchronisingWhileCapturingSpoilsTheCapture) {
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(cuda::stream(), cudaStreamCaptureModeRelaxed), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(cuda::stream()), cudaErrorStreamCaptureUnsupported);
  EXPECT_EQ(cudaStreamEndCapture(cuda::stream(), &graph), cudaErrorStreamCaptureInvalidated);
  EXPECT_EQ(graph, nullptr);
  (void)cudaGetLastError();
}

// FRAGILE_CUDA_SYNC=1 (cuda::set_sync_after_each_launch): eager launches wait for their
// kernel, launches being recorded do not (a synchronisation would spoil the capture).
struct SyncAfterEachLaunch {
  const bool before = cuda::sync_after_each_launch();
  SyncAfterEachLaunch() { cuda::set_sync_after_each_launch(true); }
  ~SyncAfterEachLaunch() { cuda::set_sync_after_each_launch(before); }
};

TEST(CudaSimulator, SyncAfterEachLaunchLeavesCapturesAlone) {
  const SyncAfterEachLaunch on;
  Tensor out = Tensor::empty({32}, DType::Float64, Device::CUDA);
  cuda::launch(fill_index, 1, 32)(out.data<double>());
  EXPECT_EQ(download(out)[7], 7.0);
  cuda_backend().fill(out, -1.0);
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamBeginCapture(cuda::stream(), cudaStreamCaptureModeRelaxed), cudaSuccess);
  cuda::launch(fill_index, 1, 32)(out.data<double>());
  EXPECT_EQ(cudaStreamEndCapture(cuda::stream(), &graph), cudaSuccess);
  ASSERT_NE(graph, nullptr);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, cuda::stream()), cudaSuccess);
  EXPECT_EQ(download(out)[7], 7.0);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

// cuDNN's descriptors hold at most 2^31 - 1 elements; kernels/cuda/conv2d.cu splits larger
// problems (or sends them to its direct kernels) rather than asking.
TEST(CudaSimulator, TensorDescriptorsRefuseMoreThanTwoGigaElements) {
  cudnnTensorDescriptor_t d = nullptr;
  ASSERT_EQ(cudnnCreateTensorDescriptor(&d), CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1815, 96, 111, 111),
            CUDNN_STATUS_SUCCESS);
  EXPECT_EQ(CUDNN_STATUS_CATEGORY(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW,
                                                             CUDNN_DATA_FLOAT, 1816, 96, 111, 111)),
            CUDNN_STATUS_NOT_SUPPORTED);
  cudnnDestroyTensorDescriptor(d);
}

// ---- cuDNN refusals: fragile's own convolution kernels ------------------------------------

// With cuDNN refusing (no algorithm, or refusing at execution), kernels/cuda/conv2d.cu falls
// back to its direct kernels; they must agree with the CPU. Each mode uses shapes of its own:
// conv2d.cu remembers per shape that cuDNN refused.
void check_direct_convolutions(fragile_sim::CudnnMode mode, int64_t channels) {
  const fragile_sim::CudnnMode before = fragile_sim::set_cudnn_mode(mode);
  const int64_t calls = fragile_sim::cudnn_calls();
  std::mt19937_64 rng(11);
  std::normal_distribution<double> nd;
  auto randn = [&](const Shape& s) {
    std::vector<double> v(static_cast<size_t>(numel_of(s)));
    for (double& e : v) e = nd(rng);
    return Tensor::from_vector(v, s, DType::Float64);
  };
  auto dev = [](const Tensor& h) {
    Tensor d = Tensor::empty(h.shape(), h.dtype(), Device::CUDA);
    cuda_backend().copy(h, d);
    return d;
  };
  Conv2dParams p;
  p.stride = {2, 1};
  p.padding = {1, 2};
  p.dilation = {1, 2};
  p.groups = 2;
  const Tensor x = randn({2, channels, 9, 8}), w = randn({6, channels / 2, 3, 2});
  const Shape ys = {2, 6, 5, 10};
  Tensor y_cpu = Tensor::empty(ys, DType::Float64, Device::CPU);
  Tensor y_gpu = Tensor::empty(ys, DType::Float64, Device::CUDA);
  cpu_backend().conv2d(x, w, y_cpu, p);
  cuda_backend().conv2d(dev(x), dev(w), y_gpu, p);
  const Tensor gy = randn(ys);
  Tensor gx_cpu = Tensor::empty(x.shape(), DType::Float64, Device::CPU);
  Tensor gx_gpu = Tensor::empty(x.shape(), DType::Float64, Device::CUDA);
  cpu_backend().conv2d_backward_input(gy, w, gx_cpu, p);
  cuda_backend().conv2d_backward_input(dev(gy), dev(w), gx_gpu, p);
  Tensor gw_cpu = Tensor::empty(w.shape(), DType::Float64, Device::CPU);
  Tensor gw_gpu = Tensor::empty(w.shape(), DType::Float64, Device::CUDA);
  cpu_backend().conv2d_backward_weight(x, gy, gw_cpu, p);
  cuda_backend().conv2d_backward_weight(dev(x), dev(gy), gw_gpu, p);
  fragile_sim::set_cudnn_mode(before);

  EXPECT_EQ(fragile_sim::cudnn_calls(), calls) << "cuDNN ran although it refused";
  const std::pair<const Tensor*, const Tensor*> pairs[] = {
      {&y_gpu, &y_cpu}, {&gx_gpu, &gx_cpu}, {&gw_gpu, &gw_cpu}};
  const char* names[] = {"forward", "backward input", "backward weight"};
  for (int i = 0; i < 3; ++i) {
    const std::vector<double> got = download(*pairs[i].first), want = pairs[i].second->to_vector();
    ASSERT_EQ(got.size(), want.size());
    for (size_t j = 0; j < got.size(); ++j)
      ASSERT_NEAR(got[j], want[j], 1e-10 * (1 + std::abs(want[j]))) << names[i] << " at " << j;
  }
}

TEST(CudaSimulator, DirectConvolutionsWhenCudnnHasNoAlgorithm) {
  check_direct_convolutions(fragile_sim::CudnnMode::NoAlgorithm, 4);
}

TEST(CudaSimulator, DirectConvolutionsWhenCudnnRefusesAtExecution) {
  check_direct_convolutions(fragile_sim::CudnnMode::RefuseAtExecution, 6);
}

// A convolution whose tensors are too large for one cuDNN descriptor is split along the
// batch into calls that fit (the weight gradient summed over them); only when one image is
// too large do the direct kernels run. The limit (2^31 - 1 elements) is lowered here so that
// small tensors exercise it: x is 288 elements per image, y 300.
TEST(CudaSimulator, ConvolutionsTooLargeForCudnnAreSplitAlongTheBatch) {
  struct Limit {
    int64_t before = cuda::cudnn_tensor_element_limit.load();
    explicit Limit(int64_t n) { cuda::cudnn_tensor_element_limit = n; }
    ~Limit() { cuda::cudnn_tensor_element_limit = before; }
  };
  std::mt19937_64 rng(12);
  Conv2dParams p;
  p.stride = {2, 1};
  p.padding = {1, 2};
  p.dilation = {1, 2};
  const Tensor x = Tensor::randn({7, 4, 9, 8}, rng, DType::Float64);
  const Tensor w = Tensor::randn({6, 4, 3, 2}, rng, DType::Float64);
  const Shape ys = {7, 6, 5, 10};
  const Tensor gy = Tensor::randn(ys, rng, DType::Float64);
  Tensor y_cpu = Tensor::empty(ys, DType::Float64);
  Tensor gx_cpu = Tensor::empty(x.shape(), DType::Float64);
  Tensor gw_cpu = Tensor::empty(w.shape(), DType::Float64);
  cpu_backend().conv2d(x, w, y_cpu, p);
  cpu_backend().conv2d_backward_input(gy, w, gx_cpu, p);
  cpu_backend().conv2d_backward_weight(x, gy, gw_cpu, p);
  auto dev = [](const Tensor& h) {
    Tensor d = Tensor::empty(h.shape(), h.dtype(), Device::CUDA);
    cuda_backend().copy(h, d);
    return d;
  };
  const Tensor xd = dev(x), wd = dev(w), gyd = dev(gy);
  // limit 700: two images per call, calls of 2, 2, 2 and 1 images; limit 250: not one image.
  for (const auto& [limit, calls_each] : {std::pair<int64_t, int64_t>{700, 4}, {250, 0}}) {
    SCOPED_TRACE("element limit " + std::to_string(limit));
    const Limit lowered(limit);
    const int64_t calls = fragile_sim::cudnn_calls();
    Tensor y = Tensor::empty(ys, DType::Float64, Device::CUDA);
    Tensor gx = Tensor::empty(x.shape(), DType::Float64, Device::CUDA);
    Tensor gw = Tensor::empty(w.shape(), DType::Float64, Device::CUDA);
    cuda_backend().conv2d(xd, wd, y, p);
    cuda_backend().conv2d_backward_input(gyd, wd, gx, p);
    cuda_backend().conv2d_backward_weight(xd, gyd, gw, p);
    EXPECT_EQ(fragile_sim::cudnn_calls() - calls, 3 * calls_each);
    const std::pair<const Tensor*, const Tensor*> pairs[] = {
        {&y, &y_cpu}, {&gx, &gx_cpu}, {&gw, &gw_cpu}};
    const char* names[] = {"forward", "backward input", "backward weight"};
    for (int i = 0; i < 3; ++i) {
      const std::vector<double> got = download(*pairs[i].first);
      const std::vector<double> want = pairs[i].second->to_vector();
      ASSERT_EQ(got.size(), want.size());
      for (size_t j = 0; j < got.size(); ++j)
        ASSERT_NEAR(got[j], want[j], 1e-10 * (1 + std::abs(want[j]))) << names[i] << " at " << j;
    }
  }
}

}  // namespace
}  // namespace fragile
