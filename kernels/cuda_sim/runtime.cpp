// The CUDA runtime stand-in: device memory, copies, streams, stream capture and graphs,
// events and errors, with the rules a GPU would enforce (see sim.h).
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/cuda_sim/runtime_api.h"
#include "kernels/cuda_sim/sim.h"
#include "kernels/cuda_sim/stream.h"

struct FragileSimStream {
  bool capturing = false;
  bool invalidated = false;
  std::vector<std::function<void()>> recorded;
};
struct FragileSimGraph {
  std::vector<std::function<void()>> work;
};
struct FragileSimGraphExec {
  std::vector<std::function<void()>> work;
};
struct FragileSimEvent {
  std::chrono::steady_clock::time_point at;
};

namespace fragile_sim {
namespace {

struct Device {
  std::mutex mu;
  std::map<std::uintptr_t, std::size_t> blocks;  // start -> size
  std::size_t in_use = 0;
  std::size_t limit = std::size_t{16} << 30;
  int sms = 4;
  FragileSimStream legacy;  // the default stream (nullptr)
};
Device& device() {
  static Device* d = new Device();
  return *d;
}

thread_local cudaError_t g_last_error = cudaSuccess;
thread_local std::string g_last_message;

FragileSimStream& resolve(cudaStream_t s) { return s ? *s : device().legacy; }

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) g_last_error = e;
  return e;
}

// The streams capturing now (guarded by device().mu).
std::vector<FragileSimStream*>& capturing_streams() {
  static auto* v = new std::vector<FragileSimStream*>();
  return *v;
}

bool any_capture() {
  std::lock_guard<std::mutex> lock(device().mu);
  return !capturing_streams().empty();
}

// An operation a capture cannot contain: every capturing stream's recording is spoilt (one
// device, one order of work), as a GPU reports at cudaStreamEndCapture.
cudaError_t illegal_during_capture() {
  for (FragileSimStream* s : capturing_streams()) s->invalidated = true;
  return set_error(cudaErrorStreamCaptureUnsupported);
}

bool is_device_locked(const void* p, std::size_t bytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  auto& blocks = device().blocks;
  auto it = blocks.upper_bound(a);
  if (it == blocks.begin()) return false;
  --it;
  return a >= it->first && a + bytes <= it->first + it->second;
}

}  // namespace

bool is_device_pointer(const void* p, std::size_t bytes) {
  std::lock_guard<std::mutex> lock(device().mu);
  return is_device_locked(p, bytes == 0 ? 1 : bytes);
}

cudaError_t enqueue(cudaStream_t stream, std::function<void()> work, const char* what) {
  FragileSimStream& s = resolve(stream);
  if (s.capturing) {
    if (s.invalidated) return set_error(cudaErrorStreamCaptureInvalidated);
    s.recorded.push_back(std::move(work));
    return cudaSuccess;
  }
  if (any_capture() && &s == &device().legacy) return illegal_during_capture();
  work();
  return cudaSuccess;
}

void record_launch_error(cudaError_t error, const std::string& what) {
  g_last_error = error;
  g_last_message = what;
}

void poison(void* device_memory, std::size_t bytes) {
  if (device_memory != nullptr && is_device_pointer(device_memory, bytes))
    std::memset(device_memory, 0xff, bytes);
}

void set_sm_count(int sms) { device().sms = sms > 0 ? sms : 1; }

void set_device_memory_limit(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(device().mu);
  device().limit = bytes;
}

std::size_t device_bytes_in_use() {
  std::lock_guard<std::mutex> lock(device().mu);
  return device().in_use;
}

}  // namespace fragile_sim

using fragile_sim::set_error;

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
  }
  return "unknown error";
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = fragile_sim::g_last_error;
  fragile_sim::g_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return fragile_sim::g_last_error; }

cudaError_t cudaGetDeviceCount(int* count) {
  if (!count) return set_error(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* dev) {
  if (!dev) return set_error(cudaErrorInvalidValue);
  *dev = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev) {
  if (!value || dev != 0) return set_error(cudaErrorInvalidValue);
  if (attr != cudaDevAttrMultiProcessorCount) return set_error(cudaErrorInvalidValue);
  *value = fragile_sim::device().sms;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int dev) {
  if (!p || dev != 0) return set_error(cudaErrorInvalidValue);
  std::memset(p, 0, sizeof(*p));
  std::strncpy(p->name, "fragile CUDA simulator (host)", sizeof(p->name) - 1);
  p->totalGlobalMem = fragile_sim::device().limit;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = fragile_sim::device().sms;
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (fragile_sim::any_capture()) return fragile_sim::illegal_during_capture();
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (!ptr) return set_error(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  auto& d = fragile_sim::device();
  std::lock_guard<std::mutex> lock(d.mu);
  if (d.in_use + bytes > d.limit) return set_error(cudaErrorMemoryAllocation);
  const size_t rounded = (bytes + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, rounded);
  if (!p) return set_error(cudaErrorMemoryAllocation);
  std::memset(p, 0xff, rounded);  // NaN in every float type: a GPU's memory is not zeroed
  d.blocks[reinterpret_cast<std::uintptr_t>(p)] = bytes;
  d.in_use += bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (!ptr) return cudaSuccess;
  if (fragile_sim::any_capture()) return fragile_sim::illegal_during_capture();
  auto& d = fragile_sim::device();
  std::lock_guard<std::mutex> lock(d.mu);
  auto it = d.blocks.find(reinterpret_cast<std::uintptr_t>(ptr));
  if (it == d.blocks.end()) return set_error(cudaErrorInvalidValue);
  d.in_use -= it->second;
  d.blocks.erase(it);
  std::free(ptr);
  return cudaSuccess;
}

namespace {

// Whether the pointers agree with the copy's direction (cudaMemcpyDefault: any), and every
// device range lies inside its block. The side is decided by the first byte, so a device
// pointer whose range overruns its block is an error, not a host pointer.
bool direction_ok(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  const bool dd = fragile_sim::is_device_pointer(dst, 1);
  const bool sd = fragile_sim::is_device_pointer(src, 1);
  if ((dd && !fragile_sim::is_device_pointer(dst, n)) ||
      (sd && !fragile_sim::is_device_pointer(src, n)))
    return false;
  switch (kind) {
    case cudaMemcpyHostToHost: return !dd && !sd;
    case cudaMemcpyHostToDevice: return dd && !sd;
    case cudaMemcpyDeviceToHost: return !dd && sd;
    case cudaMemcpyDeviceToDevice: return dd && sd;
    case cudaMemcpyDefault: return true;
  }
  return false;
}

bool touches_host(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  if (kind == cudaMemcpyDefault)
    return !fragile_sim::is_device_pointer(dst, n) || !fragile_sim::is_device_pointer(src, n);
  return kind != cudaMemcpyDeviceToDevice;
}

}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind) {
  if (n == 0) return cudaSuccess;
  if ((!dst || !src) || !direction_ok(dst, src, n, kind)) return set_error(cudaErrorInvalidValue);
  if (fragile_sim::any_capture()) return fragile_sim::illegal_during_capture();
  std::memmove(dst, src, n);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if ((!dst || !src) || !direction_ok(dst, src, n, kind)) return set_error(cudaErrorInvalidValue);
  // Pageable host memory cannot be part of a graph: a host transfer spoils the capture.
  if (fragile_sim::resolve(stream).capturing && touches_host(dst, src, n, kind))
    return fragile_sim::illegal_during_capture();
  return set_error(fragile_sim::enqueue(
      stream, [dst, src, n] { std::memmove(dst, src, n); }, "cudaMemcpyAsync"));
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (!fragile_sim::is_device_pointer(dst, n)) return set_error(cudaErrorInvalidValue);
  return set_error(fragile_sim::enqueue(
      stream, [dst, value, n] { std::memset(dst, value, n); }, "cudaMemsetAsync"));
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  if (!stream) return set_error(cudaErrorInvalidValue);
  *stream = new FragileSimStream();
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream && stream->capturing) return set_error(cudaErrorIllegalState);
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (fragile_sim::resolve(stream).capturing) return fragile_sim::illegal_during_capture();
  return cudaSuccess;  // the simulated device has already done the work
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (!stream) return set_error(cudaErrorStreamCaptureUnsupported);  // legacy stream
  if (stream->capturing) return set_error(cudaErrorIllegalState);
  stream->capturing = true;
  stream->invalidated = false;
  stream->recorded.clear();
  std::lock_guard<std::mutex> lock(fragile_sim::device().mu);
  fragile_sim::capturing_streams().push_back(stream);
  (void)mode;  // every mode records the same way here; the illegal calls are the same set
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (!graph) return set_error(cudaErrorInvalidValue);
  *graph = nullptr;
  if (!stream || !stream->capturing) return set_error(cudaErrorIllegalState);
  stream->capturing = false;
  {
    std::lock_guard<std::mutex> lock(fragile_sim::device().mu);
    auto& v = fragile_sim::capturing_streams();
    std::erase(v, stream);
  }
  std::vector<std::function<void()>> work = std::move(stream->recorded);
  stream->recorded.clear();
  if (stream->invalidated) {
    stream->invalidated = false;
    return set_error(cudaErrorStreamCaptureInvalidated);
  }
  *graph = new FragileSimGraph{std::move(work)};
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (!status) return set_error(cudaErrorInvalidValue);
  const FragileSimStream& s = fragile_sim::resolve(stream);
  *status = !s.capturing ? cudaStreamCaptureStatusNone
            : s.invalidated ? cudaStreamCaptureStatusInvalidated
                            : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return set_error(cudaErrorInvalidValue);
  *exec = new FragileSimGraphExec{graph->work};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return set_error(cudaErrorInvalidValue);
  for (const auto& w : exec->work) {
    const cudaError_t e = fragile_sim::enqueue(stream, w, "cudaGraphLaunch");
    if (e != cudaSuccess) return set_error(e);
  }
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (!event) return set_error(cudaErrorInvalidValue);
  *event = new FragileSimEvent();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (!event) return set_error(cudaErrorInvalidResourceHandle);
  return set_error(fragile_sim::enqueue(
      stream, [event] { event->at = std::chrono::steady_clock::now(); }, "cudaEventRecord"));
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (!event) return set_error(cudaErrorInvalidResourceHandle);
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms || !start || !end) return set_error(cudaErrorInvalidValue);
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}
