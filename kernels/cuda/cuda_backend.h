// The CUDA backend. Plain C++ header: no CUDA types, so .cpp code can name the class.
// Methods are defined across the kernel files, one op family each:
//   elementwise.cu (unary, binary, where, fill), copy.cu, reduce.cu, matmul.cu (cuBLAS),
//   conv2d.cu (cuDNN), max_pool2d.cu, avg_pool2d.cu, softmax.cu, fused_attack.cu (attack step,
//   saliency moments); register.cu builds the singleton.
// All work is queued on one stream (context.h); methods return without waiting for the
// device, except copies to host memory, which return once the host data is valid.
#pragma once
#include "core/backend.h"

namespace fragile::cuda {

class CudaBackend final : public Backend {
 public:
  CudaBackend();  // requires a device; installs the caching allocator
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
  std::unique_ptr<CapturedComputation> capture(const DeviceComputation& fn,
                                               const std::vector<Tensor>& inputs,
                                               std::string* why_not) override;  // graph.cu
};

}  // namespace fragile::cuda
