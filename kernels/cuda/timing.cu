// CUDA-event timing, device description and copy bandwidth (declared in timing.h).
#include "kernels/cuda/timing.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"

namespace fragile::cuda {
namespace {

cudaEvent_t as_event(void* e) { return static_cast<cudaEvent_t>(e); }

// Two device buffers for the copy measurement, freed however the measurement ends.
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(std::size_t bytes) { FRAGILE_CUDA_CHECK(cudaMalloc(&p, bytes)); }
  ~DeviceBuffer() { cudaFree(p); }  // no throw from a destructor; nothing to report here
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
};

}  // namespace

EventTimer::EventTimer() {
  cudaEvent_t a = nullptr, b = nullptr;
  FRAGILE_CUDA_CHECK(cudaEventCreate(&a));
  const cudaError_t status = cudaEventCreate(&b);
  if (status != cudaSuccess) {
    cudaEventDestroy(a);
    FRAGILE_CUDA_CHECK(status);
  }
  start_ = a;
  stop_ = b;
}

EventTimer::~EventTimer() {
  // Errors ignored: a destructor must not throw, and a failing destroy at teardown has no
  // consequence for the measurement already returned.
  cudaEventDestroy(as_event(start_));
  cudaEventDestroy(as_event(stop_));
}

void EventTimer::start() {
  FRAGILE_CUDA_CHECK(cudaEventRecord(as_event(start_), stream()));
  started_ = true;
}

double EventTimer::stop() {
  FRAGILE_CHECK(started_, "EventTimer::stop() without start()");
  FRAGILE_CUDA_CHECK(cudaEventRecord(as_event(stop_), stream()));
  FRAGILE_CUDA_CHECK(cudaEventSynchronize(as_event(stop_)));
  float ms = 0.0f;
  FRAGILE_CUDA_CHECK(cudaEventElapsedTime(&ms, as_event(start_), as_event(stop_)));
  started_ = false;
  return static_cast<double>(ms);
}

std::string device_description() {
  int dev = 0;
  FRAGILE_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp p{};
  FRAGILE_CUDA_CHECK(cudaGetDeviceProperties(&p, dev));
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%s, %d SMs, %.1f GiB, compute capability %d.%d", p.name,
                p.multiProcessorCount,
                static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0), p.major,
                p.minor);
  return buf;
}

double device_copy_gbps(std::size_t bytes) {
  FRAGILE_CHECK(bytes > 0, "device_copy_gbps: bytes must be > 0");
  // Batches of kCopies back-to-back copies, the best of kBatches: a batch of large copies is
  // long against the event resolution (~0.5 us), and the best batch is the bandwidth the
  // memory system sustains for pure streaming (so pct_of_copy errs low, not high).
  constexpr int kCopies = 10, kBatches = 5;
  DeviceBuffer src(bytes), dst(bytes);
  cudaStream_t s = stream();
  // Touch both buffers so no first-use cost lands in the timed copies, then one untimed copy.
  FRAGILE_CUDA_CHECK(cudaMemsetAsync(src.p, 0, bytes, s));
  FRAGILE_CUDA_CHECK(cudaMemsetAsync(dst.p, 0, bytes, s));
  FRAGILE_CUDA_CHECK(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, s));
  EventTimer timer;
  double best_ms = 0.0;
  for (int b = 0; b < kBatches; ++b) {
    timer.start();
    for (int i = 0; i < kCopies; ++i) {
      FRAGILE_CUDA_CHECK(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, s));
    }
    const double ms = timer.stop();
    best_ms = b == 0 ? ms : std::min(best_ms, ms);
  }
  FRAGILE_CHECK(best_ms > 0.0, "device_copy_gbps: timed copies took no measurable time");
  // Read + write: 2 * bytes per copy.
  return 2.0 * static_cast<double>(bytes) * kCopies / (best_ms * 1e-3) / 1e9;
}

}  // namespace fragile::cuda
