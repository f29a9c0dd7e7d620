// The SqueezeNet workloads both benchmark files time, CPU (bench_squeezenet.cpp) and GPU
// (bench_cuda.cpp), written once so the two measure the same thing: the real SqueezeNet v1.0
// from ../shared, 227x227 inputs in the BGR-minus-mean range, class 285 (Egyptian cat).
// bench/compare_pytorch.py mirrors them in PyTorch.
#pragma once
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "nn/session.h"

namespace fragile::bench {

inline constexpr int64_t kClass = 285;

std::string squeezenet_path();
// False, with the benchmark skipped and the path named, when the model is missing.
bool have_squeezenet(benchmark::State& st);
// The network with every ReLU swapped for softplus(beta) (beta <= 0: as in the file), its
// parameters on `device`; built once per (beta, device) and kept for the process (device
// tensors must not be freed by static destructors racing the CUDA runtime's teardown).
const nn::Session& squeezenet(double beta, Device device = Device::CPU);
// [n, 3, 227, 227] uniform in the preprocessed range, drawn on the host from `seed` (the same
// values on every device), then moved to `device`: a leaf that can require grad.
Tensor squeezenet_input(int64_t n, uint64_t seed, Device device = Device::CPU);

// Gradient of the class score w.r.t. x (a saliency map); x must require grad.
Tensor input_grad(const nn::Session& s, const Tensor& x);
// H v of the class score (reverse over reverse).
Tensor input_hvp(const nn::Session& s, const Tensor& x, const Tensor& v);

// One top-k attack direction, as `fragile attack` computes it: the gradient-method saliency map
// of the softplus(1) surrogate with create_graph, Ghorbani's normalisation and the mass on the
// original top-1000 pixels (the fused saliency_moments op), and its gradient w.r.t. x. The
// original map and its top-k mask are made once, in the constructor (untimed).
class AttackStep {
 public:
  AttackStep(int64_t n, Device device);
  Tensor direction() const;

 private:
  const nn::Session& surrogate_;
  Tensor x0_, top_;
  std::vector<int64_t> classes_;
};

}  // namespace fragile::bench
