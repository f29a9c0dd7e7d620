// GPU timing for the benchmarks (bench/bench_cuda.cpp): CUDA-event timers on the backend's
// stream, a one-line device description, and the device's copy bandwidth as the yardstick for
// memory-bound kernels. Plain C++ header (no CUDA types) so .cpp files can use it; the bodies
// are in timing.cu. Every function needs a usable device (check fragile::cuda_available()
// first); CUDA failures throw fragile::Error naming the call.
#pragma once
#include <cstddef>
#include <string>

namespace fragile::cuda {

// Elapsed device time between two events recorded on stream() (context.h), the one stream
// every kernel, copy, cuBLAS and cuDNN call of the backend goes to. Because ops only enqueue
// work, a host-side clock would time the launches; events time the work itself, including
// any time the GPU sits idle waiting for the host to enqueue the next kernel (so a
// launch-bound step is charged for its launch overhead).
//
//   EventTimer t;
//   t.start();
//   ... ops on CUDA tensors ...
//   double ms = t.stop();
class EventTimer {
 public:
  EventTimer();  // creates the two events (throws when no device is usable)
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;

  // Records the start event on stream().
  void start();
  // Records the stop event on stream(), waits for it, and returns the milliseconds between
  // the start and stop events (resolution about 0.5 us). Throws unless start() came first.
  double stop();

 private:
  void* start_ = nullptr;  // cudaEvent_t, kept opaque here
  void* stop_ = nullptr;
  bool started_ = false;
};

// The current device in one line, e.g.
//   "NVIDIA H200, 132 SMs, 139.8 GiB, compute capability 9.0".
std::string device_description();

// Device-to-device copy bandwidth in GB/s (1e9 bytes per second): cudaMemcpyAsync between two
// fresh `bytes`-sized buffers on stream(), the best of a few timed batches of copies.
// Convention: a copy of `bytes` moves 2 * bytes (every byte is read once and written once),
// the same read + write count the benchmarks use for kernels, so achieved / copy bandwidth is
// a fraction of what the memory system delivers for pure streaming. Pick `bytes` well above
// the L2 cache (tens of MB on sm_80/sm_90) to measure DRAM rather than cache bandwidth.
double device_copy_gbps(std::size_t bytes);

}  // namespace fragile::cuda
