// CUDA Graph capture of a device computation (core/backend.h: Backend::capture).
//
// Why: an attack iteration on SqueezeNet queues several hundred small kernels (forward,
// backward, double backward) plus the host work that builds the autograd tape; at batch 1 on
// an H100 the GPU mostly waits for the host. Replaying a recorded graph is one launch.
//
// How: the inputs are copied into buffers owned by the recording, the computation runs once
// on the host with the backend stream in capture mode (kernels are recorded, not executed),
// and the graph is instantiated. Relaxed capture mode, so that a pool miss may still call
// cudaMalloc (the allocation happens once, at record time).
//
// Memory: a graph keeps using the addresses it recorded, so
//  - everything allocated while recording, and every block freed while recording, belongs to
//    a private pool of the caching allocator (allocator.h), reserved while the graph lives;
//  - every buffer the recorded kernels were handed and that is still alive when recording
//    ends (weights, x0, cached masks, the outputs) is kept alive by the recording
//    (StorageObserver), so that e.g. a cache evicting a mask cannot free a block a replay
//    still reads.
//
// Failure is not an error: a computation that moves data to or from the host or waits for
// the device (copy.cu synchronises after every transfer, which a capturing stream refuses)
// throws inside the capture; the capture is then abandoned, the pool released, and the
// caller told why so it can run eagerly.
#include <algorithm>

#include "core/error.h"
#include "kernels/cuda/allocator.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/tensor_util.h"

namespace fragile::cuda {
namespace {

// The private pool of one recording: routed to while recording, reserved until released.
class GraphPool {
 public:
  GraphPool() : id_(begin_graph_pool()) {}
  ~GraphPool() {
    stop_routing();
    if (!kept_) release_graph_pool(id_);
  }
  void stop_routing() {
    if (routing_) end_graph_pool();
    routing_ = false;
  }
  // Hands the reservation over to the recording (released in its destructor).
  int keep() {
    kept_ = true;
    return id_;
  }

 private:
  int id_;
  bool routing_ = true, kept_ = false;
};

class CudaGraphComputation final : public CapturedComputation {
 public:
  CudaGraphComputation(std::vector<Tensor> inputs, std::vector<Tensor> outputs,
                       std::vector<std::shared_ptr<Storage>> kept_alive, cudaGraphExec_t exec,
                       int pool)
      : inputs_(std::move(inputs)), outputs_(std::move(outputs)),
        kept_alive_(std::move(kept_alive)), exec_(exec), pool_(pool) {}

  ~CudaGraphComputation() override {
    (void)cudaGraphExecDestroy(exec_);
    outputs_.clear();
    inputs_.clear();
    kept_alive_.clear();
    release_graph_pool(pool_);  // later work on the stream is queued after any last replay
  }

  std::vector<Tensor> run(const std::vector<Tensor>& inputs) override {
    FRAGILE_CHECK(inputs.size() == inputs_.size(), "captured computation: ", inputs.size(),
                  " inputs given, recorded with ", inputs_.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      check_on_device(inputs[i], "captured computation", "an input");
      FRAGILE_CHECK(inputs[i].shape() == inputs_[i].shape() &&
                        inputs[i].dtype() == inputs_[i].dtype(),
                    "captured computation: input ", i, " is ", shape_str(inputs[i].shape()), " ",
                    dtype_name(inputs[i].dtype()), ", recorded with ",
                    shape_str(inputs_[i].shape()), " ", dtype_name(inputs_[i].dtype()));
      copy_device(inputs[i], inputs_[i]);
    }
    FRAGILE_CUDA_CHECK(cudaGraphLaunch(exec_, stream()));
    return outputs_;
  }

 private:
  std::vector<Tensor> inputs_, outputs_;  // the recorded buffers
  std::vector<std::shared_ptr<Storage>> kept_alive_;  // every other buffer the graph touches
  cudaGraphExec_t exec_;
  int pool_;
};

// Strong references to the observed storages still alive, each once.
std::vector<std::shared_ptr<Storage>> still_alive(const std::vector<std::weak_ptr<Storage>>& seen) {
  std::vector<std::shared_ptr<Storage>> alive;
  for (const auto& w : seen) {
    if (auto s = w.lock()) alive.push_back(std::move(s));
  }
  std::sort(alive.begin(), alive.end());
  alive.erase(std::unique(alive.begin(), alive.end()), alive.end());
  return alive;
}

}  // namespace

std::unique_ptr<CapturedComputation> CudaBackend::capture(const DeviceComputation& fn,
                                                          const std::vector<Tensor>& inputs,
                                                          std::string* why_not) {
  auto refuse = [&](const std::string& why) -> std::unique_ptr<CapturedComputation> {
    (void)cudaGetLastError();  // an invalidated capture leaves an error behind
    if (why_not) *why_not = "CUDA Graph capture failed: " + why;
    return nullptr;
  };
  // The recording's own input buffers, allocated from the shared cache before capturing.
  std::vector<Tensor> recorded_inputs;
  for (const Tensor& t : inputs) {
    check_on_device(t, "capture", "an input");
    Tensor own = empty_device(t.shape(), t.dtype());
    copy_device(t, own);
    recorded_inputs.push_back(own);
  }
  synchronize();  // surfaces any earlier asynchronous error before the capture, not inside it
  // The recording allocates from a private pool, never from the shared cache, and it cannot
  // release that cache once capturing (freeing waits for the capturing stream). Eager runs
  // before it leave their peak cached: on an H200, an integrated-gradients attack step at 100
  // points left 100 GB cached and its recording then failed for want of 1.9 GB. So the cache
  // goes back to the device first; eager work after the recording refills it once.
  empty_cache();

  GraphPool pool;
  std::string failure;
  std::vector<Tensor> outputs;
  std::vector<std::weak_ptr<Storage>> seen;
  const cudaError_t began = cudaStreamBeginCapture(stream(), cudaStreamCaptureModeRelaxed);
  if (began != cudaSuccess) return refuse(std::string("begin: ") + cudaGetErrorString(began));
  try {
    StorageObserver observe(&seen);
    for (const Tensor& t : fn(recorded_inputs)) outputs.push_back(t.detach());
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "the computation threw a non-standard exception";
  }
  cudaGraph_t graph = nullptr;
  const cudaError_t ended = cudaStreamEndCapture(stream(), &graph);
  pool.stop_routing();
  cudaGraphExec_t exec = nullptr;
  if (failure.empty() && ended != cudaSuccess) failure = cudaGetErrorString(ended);
  if (failure.empty()) {
    const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
    if (made != cudaSuccess) failure = std::string("instantiation: ") + cudaGetErrorString(made);
  }
  if (graph != nullptr) (void)cudaGraphDestroy(graph);
  if (!failure.empty()) {
    outputs.clear();  // before the pool is released (GraphPool's destructor)
    return refuse(failure);
  }
  return std::make_unique<CudaGraphComputation>(std::move(recorded_inputs), std::move(outputs),
                                                still_alive(seen), exec, pool.keep());
}

}  // namespace fragile::cuda
