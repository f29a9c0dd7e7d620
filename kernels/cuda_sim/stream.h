// The simulator's one ordering rule, shared by the runtime, cuBLAS and cuDNN stand-ins: work
// handed to a stream runs at once (the simulated device is synchronous), unless the stream is
// capturing a CUDA Graph, in which case it is recorded, not run, exactly as on a GPU, and runs
// at every cudaGraphLaunch of the instantiated graph.
#pragma once
#include <cstddef>
#include <functional>

#include "kernels/cuda_sim/runtime_api.h"

namespace fragile_sim {

// Runs `work` now or records it (see above). `what` names the work in error messages.
// Returns cudaSuccess, or the error that invalidated the capture.
cudaError_t enqueue(cudaStream_t stream, std::function<void()> work, const char* what);

// Whether [p, p + bytes) lies inside one live block of simulated device memory (cudaMalloc).
// Device memory is host memory here; this is how the simulator tells a device pointer from a
// host one, as a GPU would by faulting.
bool is_device_pointer(const void* p, std::size_t bytes = 1);

}  // namespace fragile_sim
