// The CPU backend: Eigen GEMM, im2col convolution, OpenMP loops over the shared functors.
// Methods are defined across elementwise.cpp, reduce.cpp, gemm.cpp, conv2d.cpp, pool2d.cpp,
// softmax.cpp and fused.cpp (attack step, saliency moments).
#pragma once
#include "core/backend.h"

namespace fragile::cpu {

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device::CPU; }
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
};

// The strided, converting copy behind CpuBackend::copy, without its both-on-the-host check:
// for memory that is host memory whatever the tensors' device says (the emulated CUDA device
// of tests/support/emulated_cuda.h).
void copy_host_memory(const Tensor& src, Tensor& dst);

}  // namespace fragile::cpu
