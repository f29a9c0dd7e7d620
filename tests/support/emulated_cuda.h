// An emulated CUDA device for machines without a GPU. Device::CUDA tensors live in host
// memory and the CPU kernels compute on them, so every code path above the backend that
// only runs with --device cuda (sessions, attribution, attacks, their device plumbing) runs
// in the ordinary test suite.
//
// What it checks: every kernel argument is on the device (a host tensor handed to a CUDA
// kernel, or a device tensor to a host loop, would fault or be refused on a real GPU), and
// how many host<->device transfers a computation makes (so a test can hold an attack
// iteration to the transfers it really needs: a transfer inside the iteration stalls the GPU
// and rules out CUDA Graph capture). Results are bitwise those of Device::CPU, because the
// same kernels run.
// What it cannot check: the CUDA kernels themselves (tests/gpu, label gpu on a GPU and
// cuda-sim on the host simulator of kernels/cuda_sim).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/backend.h"

namespace fragile::testing {

// Matrix products and convolutions (matmul, conv2d and its two backward ops) by the dtype
// they computed in: what Float32SumsScope (core/accumulation.h) changes.
struct ProductCounts {
  int64_t float32 = 0, float64 = 0;
};

struct TransferCounts {
  int64_t uploads = 0;        // host -> device copies
  int64_t downloads = 0;      // device -> host copies
  int64_t device_copies = 0;  // device -> device copies (no bus crossing)
  int64_t host_transfers() const { return uploads + downloads; }
};

class EmulatedCuda final : public Backend {
 public:
  Device device() const override { return Device::CUDA; }
  void unary(UnaryOp op, const Tensor& x, Tensor& out, ScalarArgs args) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out,
              ScalarArgs args) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;
  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& dst, double value) override;
  void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
              Tensor& out) override;
  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override;
  void conv2d(const Tensor& x, const Tensor& w, Tensor& out, const Conv2dParams& p) override;
  void conv2d_backward_input(const Tensor& grad, const Tensor& w, Tensor& out,
                             const Conv2dParams& p) override;
  void conv2d_backward_weight(const Tensor& x, const Tensor& grad, Tensor& out,
                              const Conv2dParams& p) override;
  void max_pool2d(const Tensor& x, Tensor& out, Tensor& indices, const Pool2dParams& p) override;
  void max_pool2d_scatter(const Tensor& grad, const Tensor& indices, const Pool2dParams& p,
                          Tensor& out) override;
  void max_pool2d_gather(const Tensor& x, const Tensor& indices, Tensor& out) override;
  void avg_pool2d(const Tensor& x, Tensor& out, const Pool2dParams& p) override;
  void avg_pool2d_backward(const Tensor& grad, Tensor& out, const Pool2dParams& p) override;
  void softmax(const Tensor& x, int64_t dim, bool log, Tensor& out) override;
  void softmax_backward(const Tensor& grad, const Tensor& y, int64_t dim, bool log,
                        Tensor& out) override;
  void attack_step(const Tensor& x, const Tensor& d, const Tensor& x0, const AttackStepParams& p,
                   Tensor& out) override;
  void saliency_moments(const Tensor& attribution, const Tensor& weights, Tensor& out) override;
  void saliency_moments_backward(const Tensor& grad, const Tensor& attribution,
                                 const Tensor& weights, const Tensor& moments,
                                 Tensor& out) override;

  // Graph capture, emulated: what a recording does to its buffers, without the recording.
  // The computation runs once at capture (as the host code does while a real capture
  // records; the output buffers are then NaN, as a real recording computes nothing) and
  // again at every run(), on the recorded input buffers, its results copied into the
  // recorded output buffers that every run() returns. A host<->device transfer while
  // capturing or replaying throws, as it makes a real capture fail. What it cannot see: host
  // decisions inside the computation that change between runs, which a real recording would
  // freeze at their capture-time values.
  std::unique_ptr<CapturedComputation> capture(const DeviceComputation& fn,
                                               const std::vector<Tensor>& inputs,
                                               std::string* why_not) override;

  const TransferCounts& counts() const { return counts_; }
  void reset_counts() { counts_ = {}; }
  const ProductCounts& products() const { return products_; }
  void reset_products() { products_ = {}; }
  int64_t captures() const { return captures_; }  // computations recorded successfully
  int64_t replays() const { return replays_; }

  // Set while a (emulated) recorded computation runs.
  bool recording = false;

 private:
  friend class EmulatedRecording;
  void count_product(const Tensor& out);
  TransferCounts counts_;
  ProductCounts products_;
  int64_t captures_ = 0, replays_ = 0;
};

// Installs an EmulatedCuda as the CUDA stand-in and host memory as Device::CUDA's allocator
// for its lifetime; restores both after. One at a time.
class EmulatedCudaScope {
 public:
  EmulatedCudaScope();
  ~EmulatedCudaScope();
  EmulatedCudaScope(const EmulatedCudaScope&) = delete;
  EmulatedCudaScope& operator=(const EmulatedCudaScope&) = delete;

  EmulatedCuda& device() { return device_; }

 private:
  EmulatedCuda device_;
  Backend* previous_backend_ = nullptr;
  Allocator* previous_allocator_ = nullptr;
};

}  // namespace fragile::testing
