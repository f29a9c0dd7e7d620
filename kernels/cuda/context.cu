// The process-wide CUDA context objects: see context.h for why there is exactly one stream.
// Everything here is created lazily and deliberately leaked: destroying handles from static
// destructors races with the CUDA runtime's own teardown at exit.
#include "kernels/cuda/context.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include "kernels/cuda/check.h"

namespace fragile::cuda {
namespace {

struct Context {
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  int sms = 1;
  Context() {
    int dev = 0;
    FRAGILE_CUDA_CHECK(cudaGetDevice(&dev));
    FRAGILE_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    FRAGILE_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamDefault));
    FRAGILE_CUBLAS_CHECK(cublasCreate(&cublas));
    FRAGILE_CUBLAS_CHECK(cublasSetStream(cublas, stream));
    // Default math mode: no TF32 for float32 GEMMs. Attacks differentiate through gradients;
    // TF32's 10-bit mantissa would make CPU/GPU parity and second-order results drift.
    FRAGILE_CUBLAS_CHECK(cublasSetMathMode(cublas, CUBLAS_DEFAULT_MATH));
    // A fixed workspace (cuBLAS's recommendation for Hopper: 32 MiB), so that GEMMs recorded
    // in a CUDA Graph use the same memory as eager ones instead of adding allocation nodes.
    void* workspace = nullptr;
    FRAGILE_CUDA_CHECK(cudaMalloc(&workspace, kCublasWorkspaceBytes));
    FRAGILE_CUBLAS_CHECK(cublasSetWorkspace(cublas, workspace, kCublasWorkspaceBytes));
  }
  static constexpr size_t kCublasWorkspaceBytes = size_t{32} << 20;
};

Context& ctx() {
  static Context* c = new Context();  // thread-safe initialisation; leaked on purpose
  return *c;
}

}  // namespace

cudaStream_t stream() { return ctx().stream; }
cublasHandle_t cublas_handle() { return ctx().cublas; }
int sm_count() { return ctx().sms; }

cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t handle = [] {
    cudnnHandle_t h = nullptr;
    FRAGILE_CUDNN_CHECK(cudnnCreate(&h));
    FRAGILE_CUDNN_CHECK(cudnnSetStream(h, stream()));
    return h;
  }();
  return handle;
}

int64_t grid_for(int64_t n, int threads) {
  const int64_t needed = (n + threads - 1) / threads;
  // 2048 threads per SM on sm_80/sm_90: 8 blocks of 256 fill one SM; 4 waves of that hides
  // the tail of a grid-stride loop without launching millions of tiny blocks.
  const int64_t cap = static_cast<int64_t>(sm_count()) * (2048 / threads) * 4;
  return std::max<int64_t>(1, std::min(needed, cap));
}

void synchronize() { FRAGILE_CUDA_CHECK(cudaStreamSynchronize(stream())); }

namespace {
bool sync_from_environment() {
  const char* v = std::getenv("FRAGILE_CUDA_SYNC");
  return v != nullptr && std::string(v) == "1";
}
std::atomic<bool> g_sync_after_each_launch{sync_from_environment()};
}  // namespace

bool sync_after_each_launch() { return g_sync_after_each_launch.load(std::memory_order_relaxed); }
void set_sync_after_each_launch(bool on) { g_sync_after_each_launch.store(on); }

bool capturing() {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(stream(), &status) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return status != cudaStreamCaptureStatusNone;
}

}  // namespace fragile::cuda
